/**
 * Our own FUSE transport, the main thread's half: open /dev/fuse, start the serving thread
 * (serve-worker.ts) that builds the NodeFs and answers requests, mount with mount(8) (the device's
 * descriptor passed as fd 3: no libfuse, no fusermount, no native code), then relay between the
 * daemon's event loop and that thread: control requests (a store rescan, stats), invalidations the
 * NodeFs asks for, and the request counters (shared memory, read without asking the thread).
 *
 * Mounting this way needs root (CAP_SYS_ADMIN); `distri mount --transport libfuse` is for the rest.
 *
 * Stopping: a plain unmount ends the connection, read(2) in the serving thread answers ENODEV and
 * the thread ends. When the mount is busy, stop() tells the thread to leave after its current
 * request and wakes it (a lookup of WAKE_NAME); once it has left, closing the device aborts the
 * connection (users of the mount get ENOTCONN) and the lazy unmount cleans up. A worker blocked in
 * read(2) cannot be terminated from outside (Node would wait for it forever at exit), which is why
 * every way out goes through the thread leaving its loop by itself.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../../errors';
import { mark } from '../mount-env';
import { encodeInvalEntry, encodeInvalInode, opName } from './protocol';
import { WAKE_NAME, WAKE_SLOT } from './session';
import { startThread, takePrestarted } from './thread-start';
import type { Ask, ControlAnswer, FsBuilder, Invalidation, WorkerEvent } from './worker-api';

// Where the kernel transport can work, and the early start of the serving thread (./thread-start.ts).
export { dropPrestarted, kernelTransportAvailable, prestartServingThread } from './thread-start';

export interface KernelMountOptions {
  mountpoint: string;
  /** The mount's source in /proc/mounts (findmnt SOURCE). */
  fsname: string;
  /** Filesystem type shown as fuse.<subtype>. */
  subtype?: string;
  /** How the serving thread builds the NodeFs. */
  build: FsBuilder;
  /** Every user may enter (the kernel's allow_other); otherwise only the mounting user. */
  allowOther?: boolean;
  /** The kernel checks each inode's mode against the caller (default true). */
  defaultPermissions?: boolean;
  /** setuid and setgid bits take effect (default false: nosuid). */
  suid?: boolean;
  /** Device nodes can be opened (default false: nodev). */
  dev?: boolean;
  log: (s: string) => void;
  /** Settles once the mountpoint is ready for mount(8) (checked while the thread starts). */
  prepared?: Promise<void>;
  /** The NodeFs asked for a control request (Invalidator.ask); called on the main thread. */
  onAsk?: (req: { op: string; why: string }) => void;
  /** Bound on mount(8) and on the kernel's INIT (default 20 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;

/** The mount(8) option string for a FUSE mount served on fd 3. */
export function mountOptions(o: Pick<KernelMountOptions, 'allowOther' | 'defaultPermissions' | 'suid' | 'dev'>): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const gid = typeof process.getgid === 'function' ? process.getgid() : 0;
  const opts = ['fd=3', 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'ro', o.suid ? 'suid' : 'nosuid', o.dev ? 'dev' : 'nodev'];
  if (o.allowOther) opts.push('allow_other');
  if (o.defaultPermissions !== false) opts.push('default_permissions');
  return opts.join(',');
}

/** Detaches a mount whose daemon gave up before serving it (best effort, bounded). */
function lazyUnmount(mountpoint: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('umount', ['-l', mountpoint], { stdio: 'ignore', timeout: DEFAULT_TIMEOUT_MS });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

function runMount(fd: number, o: KernelMountOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['-i', '-t', `fuse.${o.subtype ?? 'distri'}`, '-o', mountOptions(o), o.fsname, o.mountpoint];
    const child = spawn('mount', args, { stdio: ['ignore', 'pipe', 'pipe', fd] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`mount(8): ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`mount(8) ${signal ? `killed by ${signal}` : `exit ${code}`}: ${out.trim() || 'no message'}`));
    });
  });
}

export class KernelMount {
  private readonly counters: Float64Array;
  private readonly start: Int32Array;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private endedWhy: string | undefined;
  /** What the serving thread reported of its NodeFs as it left (daemonStats). */
  finalStats: unknown;
  /** Settles when the serving thread has left its loop (unmounted, stopped, or failed). */
  readonly ended: Promise<string>;
  private readonly controlPort;

  private constructor(
    private readonly fd: number,
    counters: SharedArrayBuffer,
    start: SharedArrayBuffer,
    controlPort: import('node:worker_threads').MessagePort,
    private readonly o: KernelMountOptions,
    ended: Promise<string>,
  ) {
    this.counters = new Float64Array(counters);
    this.start = new Int32Array(start);
    this.controlPort = controlPort;
    this.ended = ended.then((why) => (this.endedWhy = why));
    controlPort.on('message', (m: ControlAnswer | Invalidation | Ask) => {
      if ('ask' in m) {
        this.o.onAsk?.(m.ask);
        return;
      }
      if ('inval' in m) {
        this.notify(m.inval === 'entry' ? encodeInvalEntry(m.parent, Buffer.from(m.name)) : encodeInvalInode(m.node));
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      // Answered once the kernel has taken every invalidation the request caused: when a rescan
      // returns, /ro already shows the new tree.
      const settle = () => (m.ok ? p.resolve(m.value) : p.reject(new Error(m.message ?? 'control request failed')));
      void Promise.all(this.writing).then(settle, settle);
    });
  }

  /**
   * Builds the NodeFs on the serving thread, mounts, and resolves once the kernel's INIT has been
   * answered (the mount is usable). On failure nothing is left mounted or running.
   */
  static async mount(o: KernelMountOptions): Promise<KernelMount> {
    const builder = path.basename(o.build.module);
    let thread = takePrestarted(builder);
    if (thread) {
      thread.worker.ref();
      thread.port1.ref();
      thread.worker.postMessage({ build: o.build });
    } else thread = startThread(builder, o.build);
    const { fd, counters, start, port1, worker } = thread;
    let onBuilt: ((err?: Error) => void) | undefined;
    let onInit: (() => void) | undefined;
    const built = new Promise<void>((resolve, reject) => (onBuilt = (err) => (err ? reject(err) : resolve())));
    const inited = new Promise<void>((resolve) => (onInit = resolve));
    let endedResolve: (why: string) => void = () => undefined;
    const ended = new Promise<string>((resolve) => (endedResolve = resolve));
    let km: KernelMount | undefined;
    worker.on('message', (e: WorkerEvent) => {
      switch (e.type) {
        case 'built':
          onBuilt?.();
          break;
        case 'build-failed':
          onBuilt?.(e.code ? new SquashfsError(e.code, e.message) : new Error(e.message));
          break;
        case 'init':
          onInit?.();
          break;
        case 'log':
          o.log(e.message);
          break;
        case 'ended':
          if (km) km.finalStats = e.stats;
          endedResolve(e.why);
          break;
      }
    });
    worker.on('error', (e) => {
      o.log(`serving thread: ${e.stack ?? e.message}`);
      onBuilt?.(e);
      endedResolve(`serving thread failed: ${e.message}`);
    });
    worker.on('exit', () => {
      onBuilt?.(new Error('serving thread exited before it was ready'));
      endedResolve('serving thread exited');
    });
    let mounted = false;
    const giveUp = async (e: unknown): Promise<never> => {
      Atomics.store(new Int32Array(start), 0, 2);
      Atomics.notify(new Int32Array(start), 0);
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
      port1.close();
      // Closing the device aborts the connection of a mount made meanwhile; the lazy unmount then
      // takes it away (its users, if any got in, see ENOTCONN, as with any daemon that leaves).
      fs.closeSync(fd);
      if (mounted) await lazyUnmount(o.mountpoint);
      throw e;
    };
    // mount(8) runs as soon as the mountpoint is checked, while the thread still loads its code and
    // opens the image (most of the time to a mount): the kernel queues its INIT on the device until
    // the thread reads it, and a first access waits for that answer.
    let buildFailed = false;
    built.then(
      () => mark('serving thread built the filesystem'),
      () => (buildFailed = true),
    );
    const mounting = (async () => {
      await o.prepared;
      if (buildFailed) return; // reported from `built` below; nothing to mount for
      await runMount(fd, o);
      mounted = true;
      mark('mount(8) done');
    })();
    try {
      await Promise.all([built, mounting]);
    } catch (e) {
      await mounting.catch(() => undefined);
      return giveUp(e);
    }
    km = new KernelMount(fd, counters, start, port1, o, ended);
    Atomics.store(km.start, 0, 1);
    Atomics.notify(km.start, 0);
    // The kernel sends INIT right after the mount; the first access would wait for it anyway.
    let timer: NodeJS.Timeout | undefined;
    const initOk = await Promise.race([inited.then(() => true), ended.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), o.timeoutMs ?? DEFAULT_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (!initOk) {
      await km.stop();
      throw new Error(`mounted on ${o.mountpoint}, but the kernel's INIT never came (${km.endedWhy ?? 'timed out'})`);
    }
    return km;
  }

  /** Requests answered so far (every opcode). */
  /** Times the main thread woke the serving thread (a control request each). */
  get wakes(): number {
    return this.counters[WAKE_SLOT]!;
  }

  get requests(): number {
    return this.counters[0]!;
  }

  /** Requests by opcode name, for stats files and benchmarks. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 1; i < WAKE_SLOT; i++) if (this.counters[i]) out[opName(i)] = this.counters[i]!;
    return out;
  }

  get hasEnded(): boolean {
    return this.endedWhy !== undefined;
  }

  /** Notifications being written now (each settles when the kernel has taken it). */
  private readonly writing = new Set<Promise<void>>();

  /** Writes a notification to the kernel, asynchronously (it may wait for a directory lock). */
  private notify(msg: Uint8Array): void {
    if (this.hasEnded) return;
    const w = new Promise<void>((resolve) => {
      fs.write(this.fd, msg, (err) => {
        // ENOENT: the kernel had nothing cached under that name or node; nothing to invalidate.
        if (err && err.code !== 'ENOENT' && err.code !== 'ENODEV' && err.code !== 'EBADF') this.o.log(`invalidation: ${err.message}`);
        resolve();
      });
    });
    this.writing.add(w);
    void w.then(() => this.writing.delete(w));
  }

  /** Wakes the serving thread when it sits in read(2) with nothing to do. */
  private wake(): void {
    fs.lstat(path.join(this.o.mountpoint, WAKE_NAME), () => undefined);
  }

  /** A control request answered by the NodeFs on the serving thread (between two requests). */
  control(req: { op: string; [k: string]: unknown }): Promise<unknown> {
    if (this.hasEnded) return Promise.reject(new Error('the filesystem is no longer served'));
    const id = this.nextId++;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.controlPort.postMessage({ id, req });
    this.wake();
    return p;
  }

  /**
   * Makes the serving thread leave after its current request, waits for it (bounded), and closes
   * the device, which aborts the connection if it is still mounted. Idempotent.
   */
  async stop(waitMs = 5000): Promise<boolean> {
    if (!this.hasEnded) {
      Atomics.store(this.start, 0, 3);
      this.wake();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    }
    return this.close();
  }

  /** Closes the device once the thread has left; false when it has not (it is stuck in a request). */
  close(): boolean {
    if (!this.hasEnded) return false;
    for (const p of this.pending.values()) p.reject(new Error('the filesystem is no longer served'));
    this.pending.clear();
    this.controlPort.close();
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
    return true;
  }
}
