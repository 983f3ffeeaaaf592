/**
 * A preload that prints, as the process exits, the CPU time of its main thread (for `distri pack`,
 * the packing thread: scan, file reading, ordering, metadata) beside the whole process's and the
 * wall time since the preload ran, on stderr:
 *
 *   node -r ./dist/bench/thread-cpu.js dist/src/cli/main.js pack TREE x.sqfs --comp lz4 --quiet
 *   → THREADCPU main=0.58 proc=1.40 wall=0.84
 *
 * Why: on a shared machine the wall time measures the neighbours too, and a CPU profile's times
 * are wall-clock samples (a preempted thread is charged to whatever it was in). The main thread's
 * own utime + stime (/proc/self/task/PID/stat; its thread id is the process id) is what a change
 * to the packing thread moves. Worker threads inherit the preload but print nothing.
 */
import * as fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const start = process.hrtime.bigint();
if (isMainThread) {
  process.on('exit', () => {
    const ticks = 100; // USER_HZ on Linux
    const fields = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const main = (Number(fields[11]) + Number(fields[12])) / ticks;
    const u = process.cpuUsage();
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    fs.writeSync(2, `THREADCPU main=${main.toFixed(2)} proc=${((u.user + u.system) / 1e6).toFixed(2)} wall=${wall.toFixed(2)}\n`);
  });
}
