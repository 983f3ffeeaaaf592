/**
 * The life of one mount: check the mountpoint (cleaning up a stale one), build the tree, mount,
 * report readiness, serve until told to stop, unmount, exit.
 *
 * Two transports carry the requests (src/fuse/kernel: our own protocol code on /dev/fuse, served by
 * a thread of its own; src/fuse/adapter.ts: libfuse 2 through fuse-native, served on this thread).
 * The kernel transport is the default where it can work (root and /dev/fuse); `--transport libfuse`
 * picks the other. A DaemonSource says how to build the NodeFs (a module and an export, so that the
 * serving thread can build it itself) and what else runs beside it on this thread (the store's
 * control socket and watcher); both transports then share everything in this module.
 *
 * Two processes take part when the mount goes to the background (the default, like squashfuse):
 * the command the user ran spawns this daemon as a detached child with a readiness pipe on fd 3
 * (DISTRI_MOUNT_READY_FD), waits for one line on it ("ok", or the failure), relays the child's
 * stderr until then and exits with the result, so `distri mount a.sqfs m && ls m` works. With -f
 * the same code runs in the user's process and no pipe is involved.
 *
 * The daemon never touches its own mountpoint with a synchronous call after mounting: with libfuse
 * every FUSE request is answered on this JavaScript thread, so a synchronous stat of the mountpoint
 * would wait for itself forever. Unmount commands run as child processes for the same reason.
 *
 * The end of a mount is noticed three ways: SIGINT/SIGTERM (unmount, lazily when busy, exit);
 * the idle timeout (unmount only when nothing is open, else try again later); and the mount
 * going away because someone ran `distri unmount` or `umount` (the kernel transport's serving
 * thread sees the connection end; for libfuse the mount disappears from /proc/self/mountinfo): the
 * daemon leaves once no file is open any more (after a lazy unmount, processes that still have
 * files open keep reading until they close them).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError, isPathMistake } from '../errors';
import type { NodeFs } from '../vfs/node-fs';
import type { FuseServer } from './adapter';
import type { ImageSourceArgs } from './image-source';
import type { FsBuilder } from './kernel/worker-api';
import { DEFAULT_CACHE_MIB, READY_ENV, mark } from './mount-env';

/** Which FUSE transport serves the mount. */
export type Transport = 'kernel' | 'libfuse';

export interface MountOptions {
  image: string;
  mountpoint: string;
  offset?: number;
  subdir?: string;
  uid?: number;
  gid?: number;
  allowOther?: boolean;
  /** Unmount after this many seconds without a request while no file is open. */
  idleTimeout?: number;
  /** Write 's' (mounted) or 'f' (failed) to this FIFO, as squashfuse does. */
  notifyPipe?: string;
  pidFile?: string;
  debug?: boolean;
  /**
   * In the background: print a failure to mount on stderr after this prefix before reporting it
   * (the command that started the daemon before parsing anything cannot name the image itself).
   */
  failurePrefix?: string;
  /** Prefix of log lines (default "distri mount"). */
  logName?: string;
  /** Decompressed data blocks kept, in MiB (default DEFAULT_CACHE_MIB). */
  cacheMiB?: number;
  /** Attributes with every page of a listing (default) or as the kernel decides (ImageFsOptions.attributesOnEveryPage). */
  readdirplus?: 'always' | 'auto';
  /** Default: kernel where it can work (root, /dev/fuse), else libfuse. */
  transport?: Transport | 'auto';
  /** setuid/setgid bits take effect (default false: nosuid, as squashfuse). */
  suid?: boolean;
  /** Device nodes can be opened (default false: nodev). */
  dev?: boolean;
  /** The kernel checks each inode's mode against the caller (default true). */
  defaultPermissions?: boolean;
}

export { DEFAULT_CACHE_MIB } from './mount-env';

/**
 * What a daemon serves. `distri mount` serves one image (the default, made from MountOptions);
 * other commands (`distri fuse`, the /ro store) pass their own to runDaemon.
 */
export interface DaemonSource {
  /** The mount's source in /proc/mounts (findmnt SOURCE). */
  fsname: string;
  /** How the serving thread builds the NodeFs: `require(module)[exportName](args, log)`. */
  build: FsBuilder;
  /** libfuse only: seconds the kernel caches entries and attributes (default: what the NodeFs says, a day for images). */
  cacheTimeout?: number;
  /** libfuse only: false lets libfuse number the inodes (when several images' numbers would collide). */
  useIno?: boolean;
  /**
   * Called once the mount is up and reported (e.g. to start a control socket or a watcher).
   * `notified` settles once the notify pipe has its 's' (at once without one): heavy follow-up
   * work should wait for it, or it delays the very signal that readiness is waiting for.
   * `control` carries a request to the NodeFs's control() on the thread that serves it.
   */
  started?(ctx: {
    log: (s: string) => void;
    notified: Promise<void>;
    control: (req: { op: string; [k: string]: unknown }) => Promise<unknown>;
    /** Where the NodeFs's own asks for a control request go (Invalidator.ask); the source answers them. */
    onAsk: (handler: (req: { op: string; why: string }) => void) => void;
  }): void;
  /**
   * Settles once the source's own endpoints accept connections (the store's control socket): the
   * mount is reported ready only after, so that whoever waits for readiness can use them at once.
   */
  listening?: Promise<void>;
  /** Counters of the source's own (main-thread) machinery, for the stats file. */
  stats?(): Record<string, unknown>;
  /** Releases what the source runs on this thread (sockets, watchers). */
  close?(): void;
}

/**
 * A running mount, whichever transport serves it: what the lifecycle below needs to watch it,
 * talk to its NodeFs, and end it.
 */
interface Served {
  readonly transport: Transport;
  /** Requests answered so far. */
  requests(): number;
  counts(): Record<string, number>;
  /** Files open through libfuse (the kernel transport reads without open: 0). */
  openFiles(): number;
  control(req: { op: string; [k: string]: unknown }): Promise<unknown>;
  /** The daemon's stats file content beyond the request counts. */
  stats(): Promise<Record<string, unknown>>;
  /** Settles when the kernel ended the connection (kernel transport only). */
  ended?: Promise<string>;
  /**
   * Ends serving after a failed or lazy unmount, so that the process can leave. false: a thread
   * is stuck inside a request and the process cannot end normally (Node would wait for it).
   */
  shutdown(): Promise<boolean>;
}

/** What a daemon run reports to its caller; `message` explains a failure. */
export interface MountResult {
  ok: boolean;
  message?: string;
  /** The exit status a failure asks for (2: a path missing or of the wrong type; else 1). */
  status?: number;
}

const STATS_ENV = 'DISTRI_FUSE_STATS';
/** Paths the adapter keeps resolved (its default when unset); tests set it small. */
const PATH_CACHE_ENV = 'DISTRI_FUSE_PATH_CACHE';
/** Bound on every wait in here: mounting, notify_pipe, unmount commands. */
const MOUNT_WAIT_MS = 20_000;
const NOTIFY_WAIT_MS = 30_000;
const COMMAND_WAIT_MS = 10_000;

function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: COMMAND_WAIT_MS }, (err, stdout, stderr) => {
      resolve({ ok: !err, out: `${stdout}${stderr}`.trim() || (err ? err.message : '') });
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Unmounts the FUSE mount at `mountpoint`: plainly first; when that fails (busy) and `lazy`,
 * detaches it lazily so that it vanishes from the namespace now and goes away once the last user
 * lets go. fusermount first (works for non-root users too), then umount. Undefined when it is
 * unmounted; else what went wrong, in our words, with the exit status: 2 for a path that is not
 * there or is no FUSE mount (nothing is tried then: as root, umount would end any mount), 1 when
 * unmounting failed.
 */
export async function unmount(mountpoint: string, lazy: boolean): Promise<{ message: string; status: number } | undefined> {
  let mnt = path.resolve(mountpoint);
  try {
    mnt = fs.realpathSync.native(mnt); // mountinfo names the real path
  } catch (e) {
    // A mount whose daemon died answers ENOTCONN: still a mount to end. Only a missing path is not.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { message: 'no such file or directory', status: 2 };
  }
  const top = (await mountsAt(mnt)).pop();
  if (!top) return { message: 'not mounted', status: 2 };
  if (!top.fstype.startsWith('fuse')) return { message: `not a FUSE mount (${top.fstype}); distri unmount ends only FUSE mounts`, status: 2 };
  const attempts: Array<[string, string[]]> = [
    ['fusermount', ['-u', mnt]],
    ['umount', [mnt]],
  ];
  if (lazy) attempts.push(['fusermount', ['-uz', mnt]], ['umount', ['-l', mnt]]);
  let busy = false;
  let last = '';
  for (const [cmd, args] of attempts) {
    const r = await run(cmd, args);
    if (r.ok) return undefined;
    busy ||= /busy/i.test(r.out);
    last = r.out;
  }
  if (busy && !lazy) return { message: 'busy: a process is using it (--lazy detaches it now, and it goes away once no longer used)', status: 1 };
  return { message: `could not unmount: ${last.replace(/^(fusermount|umount): /, '')}`, status: 1 };
}

/** A mount in /proc/self/mountinfo: its device (major:minor), mountpoint and type. */
interface MountInfo {
  dev: string;
  mountpoint: string;
  fstype: string;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function mountsAt(mountpoint: string): Promise<MountInfo[]> {
  const text = await fs.promises.readFile('/proc/self/mountinfo', 'utf8');
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 10 || dash < 0) continue;
    const mp = unescapeMountinfo(f[4]!);
    if (mp === mountpoint) out.push({ dev: f[2]!, mountpoint: mp, fstype: f[dash + 1]! });
  }
  return out;
}

/**
 * Checks the mountpoint before mounting. A FUSE mount whose daemon died answers every access with
 * ENOTCONN ("Transport endpoint is not connected"): it is unmounted (lazily) and checked again.
 */
/** The mountpoint is unusable: reported as it is, not as a failure to mount. */
class MountpointError extends Error {}

async function prepareMountpoint(mnt: string, log: (s: string) => void): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(mnt);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new Error(`mountpoint ${mnt} does not exist`);
    if (err.code !== 'ENOTCONN') throw new Error(`mountpoint ${mnt}: ${err.message}`);
    log(`${mnt}: stale mount of a daemon that is gone (transport endpoint is not connected); unmounting it`);
    const problem = await unmount(mnt, true);
    if (problem) throw new Error(`mountpoint ${mnt} is a stale FUSE mount and could not be unmounted: ${problem}`);
    try {
      st = await fs.promises.stat(mnt);
    } catch (e2) {
      throw new Error(`mountpoint ${mnt} after cleaning up a stale mount: ${(e2 as Error).message}`);
    }
  }
  if (!st.isDirectory()) throw new Error(`mountpoint ${mnt} is not a directory`);
  const parent = await fs.promises.stat(path.dirname(mnt));
  if (parent.dev !== st.dev && mnt !== '/') {
    throw new Error(`mountpoint ${mnt} is already a mount point (see findmnt ${mnt}); unmount it first`);
  }
}

/** Writes one byte to squashfuse's notify pipe; bounded, because opening a FIFO waits for a reader. */
async function notify(fifo: string, byte: 's' | 'f', log: (s: string) => void): Promise<void> {
  try {
    const fh = await withTimeout(fs.promises.open(fifo, fs.constants.O_WRONLY), NOTIFY_WAIT_MS, `notify_pipe ${fifo}`);
    try {
      await fh.write(byte);
    } finally {
      await fh.close();
    }
  } catch (e) {
    log(`notify_pipe ${fifo}: ${(e as Error).message}`);
  }
}

/** The readiness pipe to a parent that spawned this daemon, if any. */
function readyFd(): number | undefined {
  const v = process.env[READY_ENV];
  if (v === undefined) return undefined;
  delete process.env[READY_ENV];
  const fd = Number(v);
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

function describe(e: unknown): string {
  if (e instanceof SquashfsError) return e.describe();
  return e instanceof Error ? e.message : String(e);
}

/** The transport a mount uses: the one asked for, or kernel where it can work. */
export function chooseTransport(want: Transport | 'auto' | undefined): { transport: Transport; why?: string } {
  if (want === 'libfuse') return { transport: 'libfuse' };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { kernelTransportAvailable } = require('./kernel/transport') as typeof import('./kernel/transport');
  const k = kernelTransportAvailable();
  if (want === 'kernel') {
    if (!k.ok) throw new Error(`--transport kernel: ${k.why}; use --transport libfuse`);
    return { transport: 'kernel' };
  }
  return k.ok ? { transport: 'kernel' } : { transport: 'libfuse', why: k.why };
}

/** Builds a NodeFs on this thread (the libfuse transport serves it here). */
function buildHere(b: FsBuilder, log: (s: string) => void): NodeFs {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = require(b.module) as Record<string, (args: unknown, log: (s: string) => void) => NodeFs>;
  return m[b.exportName]!(b.args, log);
}

async function mountKernel(o: MountOptions, mnt: string, source: DaemonSource, log: (s: string) => void, onAsk: (req: { op: string; why: string }) => void, prepared: Promise<void>): Promise<Served> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { KernelMount } = require('./kernel/transport') as typeof import('./kernel/transport');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DAEMON_STATS } = require('./kernel/worker-api') as typeof import('./kernel/worker-api');
  const km = await KernelMount.mount({
    mountpoint: mnt,
    fsname: source.fsname,
    build: source.build,
    allowOther: o.allowOther,
    defaultPermissions: o.defaultPermissions,
    suid: o.suid,
    dev: o.dev,
    log,
    onAsk,
    prepared,
    timeoutMs: MOUNT_WAIT_MS,
  });
  return {
    transport: 'kernel',
    requests: () => km.requests,
    counts: () => km.counts(),
    openFiles: () => 0,
    control: (req) => km.control(req),
    stats: async () => {
      const st = (km.hasEnded ? km.finalStats : await withTimeout(km.control({ op: DAEMON_STATS }), 5000, 'stats')) as { nodes?: number; fs?: Record<string, unknown> } | undefined;
      return { nodes: st?.nodes, wakes: km.wakes, cache: (st?.fs as { cache?: unknown } | undefined)?.cache ?? st?.fs };
    },
    ended: km.ended,
    shutdown: async () => {
      if (await km.stop()) return true;
      log('the serving thread did not leave its current request; ending the process without it');
      return false;
    },
  };
}

async function mountLibfuse(o: MountOptions, mnt: string, source: DaemonSource, log: (s: string) => void, onAsk: (req: { op: string; why: string }) => void): Promise<Served> {
  const fsys = buildHere(source.build, log);
  let Server: typeof import('./adapter').FuseServer;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Server = (require('./adapter') as typeof import('./adapter')).FuseServer;
  } catch (e) {
    fsys.close();
    const why = (e as Error).message.split('\n')[0];
    throw new Error(
      `the libfuse transport needs the optional package fuse-native and Debian's libfuse2 (apt-get install libfuse2; npm ci): ${why}${process.getuid?.() === 0 ? '; as root, --transport kernel needs neither' : ''}`,
    );
  }
  const pathCache = Number(process.env[PATH_CACHE_ENV]);
  const server: FuseServer = new Server(fsys, mnt, {
    allowOther: o.allowOther,
    fsname: source.fsname,
    subtype: 'distri',
    debug: o.debug,
    cacheTimeout: source.cacheTimeout,
    useIno: source.useIno,
    suid: o.suid,
    dev: o.dev,
    defaultPermissions: o.defaultPermissions,
    pathCacheEntries: Number.isSafeInteger(pathCache) && pathCache > 0 ? pathCache : undefined,
    onUnexpected: (op, e) => log(`${op}: unexpected ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
    // Asked on this very thread, inside a request: the source answers it later, between requests.
    onAsk: (req) => setImmediate(() => onAsk(req)),
  });
  try {
    await withTimeout(server.mount(), MOUNT_WAIT_MS, `mounting on ${mnt}`);
  } catch (e) {
    fsys.close();
    throw new Error(`${describe(e)}${(e as Error).message === 'fuse failed' ? ' (libfuse refused: see its message above; is /dev/fuse there, are you allowed to mount?)' : ''}`);
  }
  return {
    transport: 'libfuse',
    requests: () => server.requests,
    counts: () => ({ ...server.counts }),
    openFiles: () => server.openHandles,
    control: async (req) => {
      if (!fsys.control) throw new Error(`this filesystem takes no control requests (${req.op})`);
      return fsys.control(req);
    },
    stats: async () => {
      const st = fsys.stats?.() as { cache?: unknown } | undefined;
      return { nodes: fsys.nodeCount, cachedPaths: server.cachedPaths, openFiles: server.openHandles, cache: st?.cache ?? st };
    },
    shutdown: async () => {
      try {
        fsys.close();
      } catch {
        // the process leaves next
      }
      return true;
    },
  };
}

/**
 * Runs one mount to its end (in this process) and returns the exit status: 0 after a clean
 * unmount, 1 when mounting failed. The caller exits the process with it: the FUSE thread of the
 * native binding keeps the event loop alive after unmounting.
 */
export async function runDaemon(o: MountOptions, makeSource?: (log: (s: string) => void) => DaemonSource | Promise<DaemonSource>): Promise<number> {
  const ready = readyFd();
  const background = ready !== undefined;
  // In the background, stderr is a pipe to a parent that leaves once the mount is up: write to it
  // only until then, and never let a write to the closed pipe become an uncaught error.
  let stderrOpen = true;
  process.stderr.on('error', () => {
    stderrOpen = false;
  });
  const log = (s: string) => {
    if (stderrOpen) process.stderr.write(`${o.logName ?? 'distri mount'}: ${s}\n`);
  };
  const report = (r: MountResult) => {
    if (ready === undefined) return;
    try {
      fs.writeSync(ready, JSON.stringify(r) + '\n');
      fs.closeSync(ready);
    } catch {
      // the parent is gone; nothing to tell
    }
  };

  const mnt = path.resolve(o.mountpoint);
  // The NodeFs's asks (Invalidator.ask) go to the source's handler once it has started.
  let askHandler: ((req: { op: string; why: string }) => void) | undefined;
  const ask = (req: { op: string; why: string }) => askHandler?.(req);
  let source: DaemonSource | undefined;
  let served: Served;
  try {
    mark('daemon started');
    const { transport } = chooseTransport(o.transport);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (transport !== 'kernel') (require('./kernel/thread-start') as typeof import('./kernel/thread-start')).dropPrestarted();
    // Checked while the kernel transport's serving thread starts and opens the image.
    const prepared = prepareMountpoint(mnt, log).then(
      () => mark('mountpoint checked'),
      (e: Error) => Promise.reject(new MountpointError(e.message)),
    );
    prepared.catch(() => undefined); // awaited below; a rejection is not unhandled meanwhile
    source = makeSource ? await makeSource(log) : imageSource(o);
    try {
      if (transport === 'kernel') served = await mountKernel(o, mnt, source, log, ask, prepared);
      else {
        await prepared;
        served = await mountLibfuse(o, mnt, source, log, ask);
      }
    } catch (e) {
      if (e instanceof MountpointError || isPathMistake(e)) throw e;
      const m = describe(e);
      throw new Error(m.startsWith('cannot open image') || m.startsWith(o.image) ? m : `cannot mount on ${mnt}: ${m}`);
    }
    mark('mounted (FUSE_INIT)');
  } catch (e) {
    source?.close?.();
    // A path that is not there or of the wrong type (subdir=) is said plainly and exits 2, like
    // the other commands' caller mistakes; anything else is a failure to mount (1).
    const mistake = isPathMistake(e);
    const message = mistake ? e.message : describe(e);
    const status = mistake ? 2 : 1;
    // In the foreground the failure line is the command's; in the background the parent prints
    // the report, unless it left that to the daemon.
    if (o.failurePrefix !== undefined && stderrOpen) process.stderr.write(`${o.failurePrefix}${message}\n`);
    else if (!background) log(message);
    if (o.notifyPipe) await notify(o.notifyPipe, 'f', log);
    report({ ok: false, message, status });
    return status;
  }

  if (o.pidFile) {
    try {
      fs.writeFileSync(o.pidFile, `${process.pid}\n`);
    } catch (e) {
      log(`pid file ${o.pidFile}: ${(e as Error).message}`);
    }
  }
  const mine = (await mountsAt(mnt).catch(() => [])).filter((m) => m.fstype.startsWith('fuse')).pop();
  await source.listening;
  mark('ready reported');
  report({ ok: true });
  if (background) {
    stderrOpen = false; // the parent exits now; see above
    process.chdir('/'); // do not keep the caller's directory busy, like daemon(3)
  }
  const notified = o.notifyPipe ? notify(o.notifyPipe, 's', log) : Promise.resolve();
  const src = source;
  src.started?.({ log, notified, control: (req) => served.control(req), onAsk: (h) => (askHandler = h) });
  const writeStats = async () => {
    const file = process.env[STATS_ENV];
    if (!file) return;
    try {
      const extra = await served.stats();
      fs.writeFileSync(
        file,
        JSON.stringify({ pid: process.pid, transport: served.transport, rssBytes: process.memoryUsage().rss, ops: served.counts(), ...extra, source: src.stats?.() }, null, 1) + '\n',
      );
    } catch {
      // statistics are best effort
    }
  };

  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (c: number) => {
      for (const t of timers) clearInterval(t);
      resolve(c);
    };

    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      if (!background) log(`${why}: unmounting ${mnt}`);
      // A plain unmount first: it ends the connection cleanly. A busy mount is detached lazily
      // once serving has stopped (its users then get ENOTCONN, as with any daemon that leaves).
      let problem = await unmount(mnt, false);
      if (problem === undefined && served.ended) await Promise.race([served.ended, new Promise((r) => setTimeout(r, COMMAND_WAIT_MS))]);
      if (problem !== undefined) {
        await served.shutdown();
        problem = await unmount(mnt, true);
      }
      if (problem) log(`could not unmount ${mnt}: ${problem}`);
      finish(problem ? 1 : 0);
    };
    process.on('SIGINT', () => void stop('interrupted'));
    process.on('SIGTERM', () => void stop('terminated'));
    process.on('SIGHUP', () => void stop('hangup'));
    process.on('SIGUSR1', () => void writeStats());

    if (served.ended) {
      // The kernel ended the connection: unmounted (and the last user let go), or aborted.
      void served.ended.then(() => {
        if (stopping) return;
        stopping = true;
        finish(0);
      });
    } else {
      // Gone from the mount table (someone unmounted it): leave once no file is open any more.
      timers.push(
        setInterval(() => {
          if (stopping) return;
          mountsAt(mnt)
            .then((ms) => {
              const present = mine ? ms.some((m) => m.dev === mine.dev) : ms.some((m) => m.fstype.startsWith('fuse'));
              if (!present && served.openFiles() === 0 && !stopping) {
                stopping = true;
                finish(0);
              }
            })
            .catch(() => undefined);
        }, 500),
      );
    }

    if (o.idleTimeout !== undefined && o.idleTimeout > 0) {
      const limitMs = o.idleTimeout * 1000;
      let seen = served.requests();
      let idleSince = Date.now();
      let trying = false;
      timers.push(
        setInterval(
          () => {
            if (served.requests() !== seen || served.openFiles() > 0) {
              seen = served.requests();
              idleSince = Date.now();
              return;
            }
            if (trying || stopping || Date.now() - idleSince < limitMs) return;
            // Plain unmount only: a busy mount (a shell inside it) is not idle; try again later.
            trying = true;
            void unmount(mnt, false).then(async (problem) => {
              trying = false;
              idleSince = Date.now();
              if (!problem && !stopping) {
                stopping = true;
                if (served.ended) await Promise.race([served.ended, new Promise((r) => setTimeout(r, COMMAND_WAIT_MS))]);
                finish(0);
              }
            });
          },
          Math.max(100, Math.min(1000, limitMs / 4)),
        ),
      );
    }
  });

  await writeStats();
  const clean = await served.shutdown();
  try {
    src.close?.();
  } catch (e) {
    log(`closing: ${describe(e)}`);
  }
  await withTimeout(notified, 1000, 'notify_pipe').catch(() => undefined);
  if (o.pidFile) fs.rmSync(o.pidFile, { force: true });
  // A thread blocked in a request would keep process.exit() waiting forever: no hung daemon.
  if (!clean) process.kill(process.pid, 'SIGKILL');
  return code;
}

/** The default source: one image, as `distri mount` serves it. */
function imageSource(o: MountOptions): DaemonSource {
  const args: ImageSourceArgs = { image: path.resolve(o.image), offset: o.offset, subdir: o.subdir, uid: o.uid, gid: o.gid, cacheMiB: o.cacheMiB ?? DEFAULT_CACHE_MIB, readdirplus: o.readdirplus };
  return { fsname: path.resolve(o.image), build: { module: path.join(__dirname, 'image-source.js'), exportName: 'buildImageFs', args } };
}

export const readyEnvName = READY_ENV;
