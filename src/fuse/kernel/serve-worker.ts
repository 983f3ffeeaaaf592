/**
 * The serving thread of our own FUSE transport (a worker_threads entry point). It builds the NodeFs
 * (so the image, its caches and the node table live on this thread, one copy for the mount), then
 * blocks in read(2) on /dev/fuse, answers each request with one write(2), and goes back to read.
 *
 * Why a thread of its own: requests never wait for the daemon's event loop (the control socket, the
 * store watcher, signals and timers run on the main thread), and the main thread never waits for a
 * request. Between two requests this thread takes the main thread's control requests (a store
 * rescan, stats) from a MessagePort without returning to its own event loop; when it sits in read(2)
 * with nothing to do, the main thread wakes it by looking up WAKE_NAME through the mount.
 *
 * Invalidations (NOTIFY_INVAL_ENTRY/INODE) are not written here but posted to the main thread,
 * which writes them asynchronously: the kernel may hold the directory lock for a request that only
 * this thread can answer, and a notification written here would wait for that lock forever.
 *
 * The loop ends when read(2) says ENODEV (the filesystem was unmounted and the last user let go,
 * or the connection was aborted). ENOENT from read(2) or write(2) means the kernel dropped a request
 * (interrupted, or the connection aborted); it is not an error of ours.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../../errors';
import type { NodeFs } from '../../vfs/node-fs';
import { REQUEST_BUFFER_SIZE, Session } from './session';
import { DAEMON_STATS, daemonStats, type ControlAnswer, type ControlRequest, type FsBuilder, type ServeWorkerData, type WorkerEvent } from './worker-api';

/**
 * The NodeFs builders this thread carries itself, by module file name: `distri mount`'s image and
 * `distri fuse`'s store, so that each bundled thread (../bundles.ts SERVE_WORKER_BUNDLES lists the
 * same names) has its builder inside and loads no module for it; each bundle leaves the other's
 * out. Any other builder is required by its path, by the unbundled thread only.
 */
const BUILT_IN: Record<string, () => unknown> = {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  'image-source.js': () => require('../image-source'),
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  'store-build.js': () => require('../store-build'),
};

function post(e: WorkerEvent): void {
  parentPort!.postMessage(e);
}

function log(message: string): void {
  post({ type: 'log', message });
}

function answerControl(fsys: NodeFs, port: MessagePort): void {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const { id, req } = m.message as ControlRequest;
    let a: ControlAnswer;
    try {
      if (req.op === DAEMON_STATS) a = { id, ok: true, value: daemonStats(fsys) };
      else if (fsys.control) a = { id, ok: true, value: fsys.control(req) };
      else a = { id, ok: false, message: `this filesystem takes no control requests (${req.op})` };
    } catch (e) {
      a = { id, ok: false, message: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(a);
  }
}

function serve(d: ServeWorkerData, fsys: NodeFs): string {
  const counters = new Float64Array(d.counters);
  let initSeen = false;
  const session = new Session(fsys, {
    counters,
    onUnexpected: (what, e) => log(`${what}: unexpected ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
  });
  const buf = Buffer.allocUnsafe(REQUEST_BUFFER_SIZE);
  const start = new Int32Array(d.start);
  for (;;) {
    answerControl(fsys, d.control);
    if (Atomics.load(start, 0) === 3) return 'stopped';
    let n: number;
    try {
      n = fs.readSync(d.fd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') continue;
      if (code === 'ENODEV') return 'unmounted';
      return `reading /dev/fuse: ${(e as Error).message}`;
    }
    if (n === 0) return 'end of /dev/fuse';
    const reply = session.handle(buf.subarray(0, n));
    if (reply) {
      try {
        fs.writeSync(d.fd, reply);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENODEV') return 'unmounted';
        if (code !== 'ENOENT') log(`answering a request: ${(e as Error).message}`);
      }
    }
    if (!initSeen && session.minor > 0) {
      initSeen = true;
      post({ type: 'init' });
    }
  }
}

function main(d: ServeWorkerData, build: FsBuilder): void {
  let fsys: NodeFs;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = (BUILT_IN[path.basename(build.module)]?.() ?? require(build.module)) as Record<string, (args: unknown, log: (s: string) => void) => NodeFs>;
    fsys = m[build.exportName]!(build.args, log);
  } catch (e) {
    // A SquashfsError's code crosses with its message (the main thread tells a missing subdir, a
    // caller's mistake, from a broken image by it); by name, since the builder may be a bundle's copy.
    const code = e instanceof Error && e.name === 'SquashfsError' ? (e as Error & { code: ErrorCode }).code : undefined;
    post({ type: 'build-failed', message: e instanceof Error ? e.message : String(e), code });
    return;
  }
  fsys.setInvalidator?.({
    // On the control port, so that they reach the main thread before the answer to the control
    // request (a rescan) that caused them: messages on one port keep their order.
    entry: (parent, name) => d.control.postMessage({ inval: 'entry', parent, name }),
    inode: (node) => d.control.postMessage({ inval: 'inode', node }),
    ask: (req) => d.control.postMessage({ ask: req }),
  });
  post({ type: 'built' });
  const start = new Int32Array(d.start);
  Atomics.wait(start, 0, 0);
  if (Atomics.load(start, 0) !== 1) {
    fsys.close();
    return;
  }
  let why: string;
  try {
    why = serve(d, fsys);
  } catch (e) {
    why = `serving: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
  }
  let stats: unknown;
  try {
    stats = daemonStats(fsys);
    fsys.close();
  } catch {
    // closing is best effort; the process is about to leave
  }
  post({ type: 'ended', why, stats });
}

const data = workerData as ServeWorkerData;
data.control.unref();
if (data.build) main(data, data.build);
// Started early (KernelMount.prestart): this isolate and its code load while the daemon parses
// its command line; the builder follows as one message.
else parentPort!.once('message', (m: { build: FsBuilder }) => main(data, m.build));
