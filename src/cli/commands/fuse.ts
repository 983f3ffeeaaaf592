/**
 * `distri fuse [--store DIR] MOUNTPOINT`: every package image of a store under one mount, the way
 * distri's /ro works (src/vfs/store-vfs.ts has the tree). Returns once the mount is ready, like
 * `distri mount`; with -f it stays in the foreground.
 *
 * The daemon keeps the tree in step with the store without being told: it watches the store
 * directory (inotify through fs.watch; a change is picked up ~100 ms after the last event), polls
 * the directory's mtime every second in case the watch is not delivered (network filesystems), and
 * rescans on SIGUSR1 and on `distri fusectl MNT scan`. The kernel caches virtual entries for one
 * second, so a new revision's links show within about a second of the rename that installed it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { SquashfsError } from '../../errors';
import { readyEnvName, runDaemon, type DaemonSource, type MountOptions } from '../../fuse/daemon';
import { CtlServer } from '../../vfs/ctl';
import { StoreVfs } from '../../vfs/store-vfs';
import { spawnDaemon } from './mount';

export const DEFAULT_STORE = '/roimg';
/** Seconds the kernel caches virtual entries (distri used 1 s too). */
const VIRTUAL_TIMEOUT = 1;
/** Quiet time after the last directory event before rescanning. */
const DEBOUNCE_MS = 100;
const POLL_MS = 1000;

export interface StoreDaemonOptions {
  store: string;
  pkgs?: string[];
  overlays?: string[];
  maxOpenImages?: number;
  cacheBytes?: number;
}

function list(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The store as a daemon source: the Vfs, its control socket, the watcher, SIGUSR1. */
export function storeSource(o: StoreDaemonOptions, log: (s: string) => void): DaemonSource {
  const store = path.resolve(o.store);
  let st: fs.Stats;
  try {
    st = fs.statSync(store);
  } catch (e) {
    throw new Error(`store ${store}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`store ${store} is not a directory`);
  const ctl = new CtlServer();
  let vfs: StoreVfs;
  try {
    vfs = new StoreVfs(store, { pkgs: o.pkgs, overlays: o.overlays, maxOpenImages: o.maxOpenImages, cacheBytes: o.cacheBytes, ctlPath: ctl.path, log });
  } catch (e) {
    ctl.close();
    throw new Error(e instanceof SquashfsError ? e.describe() : (e as Error).message);
  }
  vfs.index.save();
  if (vfs.index.stats.writeError) log(`index ${vfs.index.stats.dir}: not saved: ${vfs.index.stats.writeError}`);

  let watcher: fs.FSWatcher | undefined;
  const timers: NodeJS.Timeout[] = [];
  let pending: NodeJS.Timeout | undefined;
  let dirMtime = st.mtimeMs;
  /** Milliseconds from process start to the mount being ready (performance.now() at that moment). */
  let readyAtMs = 0;
  let warmMs = 0;
  const firstScanMs = vfs.lastScanMs;

  const rescan = (why: string) => {
    try {
      const r = vfs.scan();
      if (r.added.length || r.removed.length) log(`rescan (${why}): ${r.known} packages, +${r.added.length} -${r.removed.length} in ${r.ms.toFixed(1)} ms`);
      vfs.warm();
      vfs.index.save();
      return r;
    } catch (e) {
      log(`rescan (${why}) failed: ${(e as Error).message}`);
      throw e;
    }
  };
  const soon = (why: string) => {
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      pending = undefined;
      try {
        rescan(why);
      } catch {
        // logged; the next event or poll tries again
      }
    }, DEBOUNCE_MS);
  };

  return {
    vfs,
    fsname: store,
    cacheTimeout: VIRTUAL_TIMEOUT,
    useIno: false,
    openHandles: () => vfs.openHandles,
    stats: () => vfs.stats(),
    started: () => {
      readyAtMs = performance.now();
      // Assemble the exchange dirs right away, off the path to readiness (a request that comes
      // first simply builds them itself).
      setImmediate(() => {
        try {
          warmMs = vfs.warm();
          rescan('full check after the quick first scan');
        } catch (e) {
          log(`assembling the exchange dirs: ${(e as Error).message}`);
        }
      });
      void ctl
        .listen((req) => {
          switch (req.op) {
            case 'ping':
              return { ok: true, pid: process.pid, store };
            case 'scan': {
              const r = rescan('ctl');
              return { ok: true, ...r };
            }
            case 'mkdirall':
              if (typeof req.dir !== 'string') throw new Error('mkdirall needs "dir": a single path component');
              vfs.mkdirAll(req.dir);
              return { ok: true };
            case 'stats':
              return { ok: true, stats: { ...vfs.stats(), rssBytes: process.memoryUsage().rss, readyAtMs: Math.round(readyAtMs * 10) / 10, firstScanMs: Math.round(firstScanMs * 10) / 10, exchangeBuildMs: Math.round(warmMs * 10) / 10 } };
            default:
              throw new Error(`unknown op ${JSON.stringify(req.op)} (ping, scan, mkdirall, stats)`);
          }
        })
        .catch((e: Error) => log(`control socket ${ctl.path}: ${e.message}`));
      process.on('SIGUSR1', () => soon('SIGUSR1'));
      try {
        watcher = fs.watch(store, { persistent: false }, (_event, name) => {
          if (name && String(name).startsWith('.')) return; // the index and temp files
          soon('store changed');
        });
        watcher.on('error', (e) => log(`watching ${store}: ${e.message}; polling only`));
      } catch (e) {
        log(`cannot watch ${store} (${(e as Error).message}); polling every ${POLL_MS / 1000} s`);
      }
      const poll = setInterval(() => {
        fs.stat(store, (err, s) => {
          if (err) return;
          if (s.mtimeMs !== dirMtime || vfs.rescanWanted) {
            dirMtime = s.mtimeMs;
            soon('poll');
          }
        });
      }, POLL_MS);
      poll.unref();
      timers.push(poll);
    },
    close: () => {
      watcher?.close();
      for (const t of timers) clearInterval(t);
      if (pending) clearTimeout(pending);
      ctl.close();
      vfs.close();
    },
  };
}

interface FuseFlags {
  store: string;
  foreground?: boolean;
  debug?: boolean;
  notifyPipe?: string;
  overlays?: string;
  pkgs?: string;
  pidFile?: string;
  maxOpen?: string;
  cacheMb?: string;
  allowOther?: boolean;
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export function register(program: Command): void {
  program
    .command('fuse')
    .description('mount every package of a store at MOUNTPOINT (distri\'s /ro): lazy package dirs, exchange dirs, ctl; returns once ready unless -f')
    .argument('<mountpoint>', 'an existing directory, e.g. /ro')
    .option('--store <dir>', 'the package store: <full>.squashfs + <full>.meta.textproto files', DEFAULT_STORE)
    .option('-f, --foreground', 'stay in the foreground until unmounted (Ctrl-C unmounts)')
    .option('-d, --debug', 'libfuse debug output on stderr (implies -f)')
    .option('--notify-pipe <fifo>', 'write "s" to FIFO once mounted, "f" if mounting failed')
    .option('--overlays <list>', 'only these exchange dirs, comma-separated (e.g. /bin,/lib); default all')
    .option('--pkgs <list>', 'only these packages, comma-separated: full names, <pkg>-<arch> or <pkg>; default all')
    .option('--max-open <n>', 'images open at once (least recently used closed first)', '64')
    .option('--cache-mb <n>', 'decoder cache budget over all open images, MiB', '256')
    .option('--allow-other', 'let other users in (non-root needs user_allow_other in /etc/fuse.conf)')
    .option('--pid-file <file>', 'write the daemon pid here while mounted')
    .addHelpText(
      'after',
      [
        '',
        'The store is live: images added or removed show up within about a second (directory watch;',
        'SIGUSR1 and `distri fusectl MNT scan` also rescan). The index of exchange entries is kept in',
        '<store>/.distri-index/ (or ~/.cache/distri/store-index/ for a read-only store).',
        '',
        'Examples:',
        '  distri fuse --store /roimg /ro && ls /ro/bin',
        '  distri fuse --store ./store --pkgs bash-amd64,coreutils-amd64 --overlays /bin /tmp/ro',
        '  distri fusectl /ro stats',
        '  distri unmount /ro',
      ].join('\n'),
    )
    .action(async (mountpoint: string, flags: FuseFlags) => {
      let store: StoreDaemonOptions;
      try {
        store = {
          store: path.resolve(flags.store),
          pkgs: list(flags.pkgs),
          overlays: list(flags.overlays),
          maxOpenImages: positiveInt('--max-open', flags.maxOpen),
          cacheBytes: (positiveInt('--cache-mb', flags.cacheMb) ?? 256) << 20,
        };
      } catch (e) {
        process.stderr.write(`distri: fuse: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const opts: MountOptions = {
        image: store.store,
        mountpoint: path.resolve(mountpoint),
        notifyPipe: flags.notifyPipe && path.resolve(flags.notifyPipe),
        pidFile: flags.pidFile && path.resolve(flags.pidFile),
        allowOther: flags.allowOther,
        debug: flags.debug,
        logName: 'distri fuse',
      };
      if (flags.foreground || flags.debug || process.env[readyEnvName] !== undefined) {
        const code = await runDaemon(opts, (log) => storeSource(store, log));
        process.exit(code); // the native FUSE thread keeps the loop alive after unmounting
      }
      const r = await spawnDaemon(process.argv.slice(1), opts);
      if (!r.ok) {
        process.stderr.write(`distri: fuse ${store.store} on ${mountpoint}: ${r.message ?? 'failed'}\n`);
        process.exitCode = 1;
      }
    });
}
