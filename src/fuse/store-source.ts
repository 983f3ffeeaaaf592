/**
 * The /ro store as a running service: how the StoreFs is built (./store-build.ts, on the thread
 * that serves it), its control socket (ping, scan, mkdirall, stats), and the liveness machinery, handed to the daemon
 * as a DaemonSource.
 *
 * The tree is kept in step with the store without being told: the store directory is watched
 * (inotify through fs.watch; a change is picked up ~100 ms after the last event), its mtime is
 * polled every second in case the watch is not delivered (network filesystems), and SIGUSR1 and
 * `distri fusectl MNT scan` rescan too; so does the StoreFs itself when an opened image disagrees
 * with its index (it asks through Invalidator.ask). Every one of those is a control request to the StoreFs
 * (`{op:'scan'}`), carried by the transport to the thread that serves requests (the kernel
 * transport's serving thread; the main thread for libfuse), where it falls between two requests;
 * the StoreFs tells the kernel what changed through the transport's invalidator. This module only
 * forwards; what the requests mean lives in StoreFs.control.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { errnoWords } from '../io/errno';
import { CtlServer } from '../vfs/ctl';
import type { DaemonSource } from './daemon';
import { mark } from './mount-env';
import type { StoreBuildArgs } from './store-build';

/**
 * Seconds the libfuse transport lets the kernel cache names and attributes: it cannot tell the
 * kernel about a rescan, so virtual entries must expire (distri used 1 s too).
 */
const UNNOTIFIED_TIMEOUT = 1;
/** Quiet time after the last directory event before rescanning. */
const DEBOUNCE_MS = 100;
const POLL_MS = 1000;

export interface StoreDaemonOptions {
  store: string;
  pkgs?: string[];
  overlays?: string[];
  maxOpenImages?: number;
  cacheBytes?: number;
  /** `--repo URL --autodownload`: the repository's packages shown before they are local. */
  remote?: { repo: string; timeoutMs?: number; readAhead?: number; fill?: boolean };
}

/** The store as a daemon source: how to build the StoreFs, its control socket, the watcher, SIGUSR1. */
export function storeSource(o: StoreDaemonOptions): DaemonSource {
  const store = path.resolve(o.store);
  let st: fs.Stats;
  try {
    st = fs.statSync(store);
  } catch (e) {
    // A store that is not there is a missing path (exit 2), like a missing image for `distri mount`.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SquashfsError('NOT_FOUND', `store ${store}: no such directory`);
    throw new Error(`store ${store}: ${errnoWords(e)}`);
  }
  if (!st.isDirectory()) throw new SquashfsError('NOT_A_DIRECTORY', `store ${store} is not a directory`);
  const ctl = new CtlServer();
  const args: StoreBuildArgs = { ...o, store, ctlPath: ctl.path };
  // The control socket listens from the start, while the mount is being made, and the daemon
  // reports ready only once it does: a caller that waits for the mount (distri build, distri
  // demo) asks it right away. Requests wait for the serving thread's control(), set once started.
  let control: ((req: { op: string; [k: string]: unknown }) => Promise<unknown>) | undefined;
  let gotControl!: () => void;
  const haveControl = new Promise<void>((resolve) => (gotControl = resolve));
  let listenError: Error | undefined;
  const listening = ctl
    .listen(async (req) => {
      await haveControl;
      return (await control!(req as { op: string })) as Record<string, unknown>;
    })
    .then(() => mark('control socket listening'))
    .catch((e: Error) => {
      listenError = e;
    });

  let watcher: fs.FSWatcher | undefined;
  const timers: NodeJS.Timeout[] = [];
  let pending: NodeJS.Timeout | undefined;
  let dirMtime = st.mtimeMs;
  /** Polls of the store directory so far, and rescans asked for by the StoreFs (stats file). */
  let polls = 0;
  let asks = 0;

  return {
    fsname: store,
    build: { module: path.join(__dirname, 'store-build.js'), exportName: 'buildStoreFs', args },
    cacheTimeout: UNNOTIFIED_TIMEOUT,
    useIno: false,
    listening,
    started: ({ log, notified, control: toFs, onAsk }) => {
      /** Milliseconds from process start to the mount being ready (performance.now() at that moment). */
      const readyAtMs = performance.now();
      control = async (req: { op: string; [k: string]: unknown }): Promise<unknown> => {
        const answer = (await toFs(req)) as Record<string, unknown>;
        if (req.op === 'stats' && answer.stats) (answer.stats as Record<string, unknown>).readyAtMs = Math.round(readyAtMs * 10) / 10;
        return answer;
      };
      gotControl();
      if (listenError) log(`control socket ${ctl.path}: ${listenError.message}`);
      const rescan = (why: string) => {
        control!({ op: 'scan', why }).catch((e: Error) => log(`rescan (${why}) failed: ${e.message}`));
      };
      // An opened image disagreed with its index (rewritten in place, same size and mtime): the
      // StoreFs asks, and only then is the serving thread disturbed.
      onAsk((req) => {
        asks++;
        if (req.op === 'scan') soon(req.why);
      });
      const soon = (why: string) => {
        if (pending) clearTimeout(pending);
        pending = setTimeout(() => {
          pending = undefined;
          rescan(why); // a failure is logged; the next event or poll tries again
        }, DEBOUNCE_MS);
      };
      // Check the store right away, off the path to readiness -- but after the notify pipe has
      // its 's', since this work would otherwise hold back the write that readiness waits for.
      // The mount answered its first requests from the saved index (or a quick scan when the
      // store directory changed since the index was saved); this full scan checks every image
      // and meta against it and applies what differs as any rescan does: the kernel is told
      // about each name of /ro that appeared, went or changed. It also assembles the exchange
      // dirs (a request that comes first simply builds them itself).
      void notified.finally(() => setImmediate(() => rescan('full check after the first listing')));
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
          polls++;
          if (err) return;
          // Only the directory's own mtime: a stat, and the serving thread is left alone unless
          // something changed (an idle mount is never woken).
          if (s.mtimeMs !== dirMtime) {
            dirMtime = s.mtimeMs;
            soon('poll');
          }
        });
      }, POLL_MS);
      poll.unref();
      timers.push(poll);
    },
    stats: () => ({ polls, asks }),
    close: () => {
      watcher?.close();
      for (const t of timers) clearInterval(t);
      if (pending) clearTimeout(pending);
      ctl.close();
    },
  };
}
