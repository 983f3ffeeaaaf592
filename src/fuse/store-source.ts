/**
 * The /ro store as a running service: the StoreVfs (served as a NodeFs through the temporary
 * VfsNodeBridge until the store is a NodeFs itself), its control socket (ping, scan, mkdirall,
 * stats), and the liveness machinery, handed to the daemon as a DaemonSource.
 *
 * The tree is kept in step with the store without being told: the store directory is watched
 * (inotify through fs.watch; a change is picked up ~100 ms after the last event), its mtime is
 * polled every second in case the watch is not delivered (network filesystems), and SIGUSR1 and
 * `distri fusectl MNT scan` rescan too. The kernel caches virtual entries for one second, so a new
 * revision's links show within about a second of the rename that installed it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { CtlServer } from '../vfs/ctl';
import { StoreVfs } from '../vfs/store-vfs';
import { VfsNodeBridge } from '../vfs/vfs-node-bridge';
import type { DaemonSource } from './daemon';

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
    fs: new VfsNodeBridge(vfs, VIRTUAL_TIMEOUT),
    fsname: store,
    cacheTimeout: VIRTUAL_TIMEOUT,
    useIno: false,
    stats: () => vfs.stats(),
    started: (_log, notified) => {
      readyAtMs = performance.now();
      // Assemble the exchange dirs right away, off the path to readiness (a request that comes
      // first simply builds them itself) -- but after the notify pipe has its 's', since this
      // synchronous work would otherwise hold back the write that readiness waits for.
      void notified.finally(() => setImmediate(() => {
        try {
          warmMs = vfs.warm();
          rescan('full check after the quick first scan');
        } catch (e) {
          log(`assembling the exchange dirs: ${(e as Error).message}`);
        }
      }));
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

