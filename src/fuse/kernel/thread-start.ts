/**
 * Starting the kernel transport's serving thread (./serve-worker.ts): /dev/fuse opened, the memory
 * it shares with the main thread, the worker itself, from the bundle that carries its builder
 * (../bundles.ts). A module of its own, loading only node:fs, node:path, node:worker_threads and two
 * modules that load nothing, so that a daemon's entry can start the thread before it loads the
 * protocol code or its command-line parser: the new isolate is the longest step before a mount can
 * answer INIT (bench/README-fuse.md), and it runs on the other core meanwhile.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { SERVE_WORKER_BUNDLES, bundleOr, fuseDirOf } from '../bundles';
import { mark } from '../mount-env';
import { COUNTER_SLOTS, type FsBuilder, type ServeWorkerData } from './worker-api';

/** Whether this process can use the kernel transport: root and a /dev/fuse it can open. */
export function kernelTransportAvailable(): { ok: boolean; why?: string } {
  if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, why: 'not root (mounting a FUSE device directly needs CAP_SYS_ADMIN)' };
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { ok: false, why: 'no /dev/fuse' };
  }
  return { ok: true };
}

/** A serving thread and what it shares with the main thread, before it is mounted. */
export interface Thread {
  fd: number;
  counters: SharedArrayBuffer;
  start: SharedArrayBuffer;
  port1: import('node:worker_threads').MessagePort;
  worker: Worker;
  /** The builder's module file name: it picks the thread's bundle (../bundles.ts). */
  builder: string;
  /** Set when the thread failed or left before it was given its builder. */
  failed?: string;
}

/** Opens /dev/fuse and starts a serving thread; without `build`, it waits for it as a message. */
export function startThread(builder: string, build?: FsBuilder): Thread {
  const fd = fs.openSync('/dev/fuse', fs.constants.O_RDWR);
  const counters = new SharedArrayBuffer(COUNTER_SLOTS * 8);
  const start = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const data: ServeWorkerData = { fd, counters, start, control: port2, build };
  const fuseDir = fuseDirOf(__dirname);
  const plain = path.join(fuseDir, 'kernel', 'serve-worker.js');
  const bundle = SERVE_WORKER_BUNDLES[builder];
  const worker = new Worker(bundle ? bundleOr(path.join(fuseDir, bundle), plain, plain) : plain, { workerData: data, transferList: [port2], stdout: false, stderr: false });
  return { fd, counters, start, port1, worker, builder };
}

let prestarted: Thread | undefined;

/**
 * Starts the serving thread before the daemon knows what it will serve: where the main thread has
 * much to load before it can mount (`distri fuse`'s daemon is the whole CLI, unbundled; -f runs
 * the command line's parser first), the new isolate and its code load meanwhile on the other core
 * (../../cli/main.ts calls this first thing; bench/README-lazy.md has the figures). The next
 * KernelMount.mount (./transport.ts) takes it over if its builder is `builder` (the module file
 * name, e.g. store-build.js); otherwise, or when the mount goes another way (libfuse, a usage
 * error), it is dropped. It keeps no process alive while waiting. Does nothing where the kernel
 * transport cannot work.
 */
export function prestartServingThread(builder: string): void {
  if (prestarted || !kernelTransportAvailable().ok) return;
  let t: Thread;
  try {
    t = startThread(builder);
  } catch {
    return; // mount() starts one itself and reports what goes wrong
  }
  t.worker.unref();
  t.port1.unref();
  t.worker.on('error', (e) => (t.failed = e.message));
  t.worker.on('exit', () => (t.failed ??= 'exited'));
  prestarted = t;
  mark('serving thread started early');
}

/** Ends an early serving thread nobody will use (the mount went another way). */
export function dropPrestarted(): void {
  const t = prestarted;
  prestarted = undefined;
  if (!t) return;
  void t.worker.terminate();
  t.port1.close();
  fs.closeSync(t.fd);
}

export function takePrestarted(builder: string): Thread | undefined {
  if (prestarted && (prestarted.builder !== builder || prestarted.failed)) dropPrestarted();
  const t = prestarted;
  prestarted = undefined;
  return t;
}
