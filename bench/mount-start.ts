/**
 * Where the time from `distri mount` to the first byte goes, build against build: each build's CLI
 * mounts the image, `head -c1` reads the first byte of big.bin, the mount goes away; builds
 * alternate for --reps rounds. Prints the median wall time and the median of each start-up mark
 * that DISTRI_MOUNT_TIMING=1 prints (ms since that process started: the command's marks, then the
 * daemon's). The page cache stays warm unless --drop-caches (bench/fuse.ts's `first` drops it).
 *
 *   node dist/bench/mount-start.js [--reps 8] [--image $TMPDIR/distri-bench-fuse/zstd.sqfs]
 *       [--drop-caches] [path/to/other/dist/src/cli/main.js ...]
 *
 * Root only (the kernel transport). Builds given on the command line run beside this one.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, cli, median } from './lib';
import { mountedAt } from '../test/helpers/mount';

const reps = Number(arg('reps', '8'));
const image = arg('image', path.join(os.tmpdir(), 'distri-bench-fuse', 'zstd.sqfs'));
const drop = process.argv.includes('--drop-caches');
const builds = [cli, ...process.argv.slice(2).filter((a, i, all) => a.endsWith('.js') && !['--reps', '--image'].includes(all[i - 1]!))];

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('run as root (the kernel transport mounts)');
  if (!fs.existsSync(image)) throw new Error(`${image} is missing (node dist/bench/fuse.js makes it)`);
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-mount-start-'));
  const results = builds.map(() => ({ wall: [] as number[], marks: new Map<string, number[]>() }));
  try {
    for (let r = 0; r < reps; r++) {
      const order = r % 2 ? [...builds.keys()].reverse() : [...builds.keys()];
      for (const i of order) {
        if (drop) {
          spawnSync('sync');
          fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
        }
        const t0 = process.hrtime.bigint();
        const p = spawnSync('sh', ['-c', `"$0" "$1" mount "$2" "$3" && head -c1 "$3/big.bin" > /dev/null`, process.execPath, builds[i]!, image, mnt], {
          env: { ...process.env, DISTRI_MOUNT_TIMING: '1' },
          encoding: 'utf8',
          timeout: 60_000,
        });
        const wall = Number(process.hrtime.bigint() - t0) / 1e6;
        spawnSync(process.execPath, [builds[i]!, 'unmount', mnt], { timeout: 30_000 });
        for (let k = 0; k < 100 && mountedAt(mnt); k++) spawnSync('sleep', ['0.1']);
        if (p.status !== 0) throw new Error(`${builds[i]} mount failed: ${p.stderr}`);
        results[i]!.wall.push(wall);
        for (const m of p.stderr.matchAll(/timing: ([\d.]+) ms (.*) \(pid/g)) {
          const list = results[i]!.marks.get(m[2]!) ?? [];
          list.push(Number(m[1]));
          results[i]!.marks.set(m[2]!, list);
        }
      }
    }
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  }
  console.log(
    `${image}, ${reps} rounds${drop ? ', page cache dropped before each' : ', page cache warm'}; load average ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  builds.forEach((b, i) => {
    const res = results[i]!;
    console.log(`\n${b}: mount to first byte, median ${median(res.wall).toFixed(0)} ms (min ${Math.min(...res.wall).toFixed(0)})`);
    for (const [what, list] of res.marks) console.log(`  ${median(list).toFixed(1).padStart(8)} ms  ${what}`);
  });
}

main();
