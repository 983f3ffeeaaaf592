#!/usr/bin/env node
/**
 * The `distri` entry point. The short read commands (info, ls, stat, cat, xattrs) are what people
 * type many times a day, and `mount` (with `unmount`) waits for Node's start-up twice (itself, then
 * its daemon), so they run from one bundled file, cli.bundle.js, that `npm run build`
 * makes with esbuild (./bundle.ts): Node then reads and compiles one file instead of resolving
 * and loading some forty modules and commander's, which was most of such a command's time
 * (bench/README-cli.md has the numbers). Every other command, and every run where the bundle is
 * missing or older than this build (a `tsc` without the bundle step), loads the modules as tsc
 * emitted them: the bundle is only ever a faster way to run the same code.
 *
 * A background `distri mount` or `distri fuse` goes another way before any of that: it spawns its
 * daemon first thing and only relays its report (./daemon-first.ts), so that the daemon's Node
 * start-up does not wait for this one's module loading.
 *
 * info, ls, stat and cat go first to a smaller bundle of their own, cli-short.bundle.js (./short.ts:
 * a small argument parser instead of commander, and only the code these commands use); what its
 * parser does not take (--help, usage errors) goes on to the full bundle.
 *
 * cli-short.bundle.js runs from a V8 code cache that `npm run build` makes (./code-cache.ts).
 *
 * This module loads nothing else before deciding, so that the choice itself costs nothing.
 * DISTRI_NO_BUNDLE=1 turns the bundles off, DISTRI_NO_FAST_PATH=1 only the short commands' one
 * (benchmarks and tests compare them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The commands the bundle holds (bundle.ts keeps every other command out of it). */
export const BUNDLED_COMMANDS: readonly string[] = ['info', 'ls', 'stat', 'cat', 'xattrs', 'mount', 'unmount', 'umount', 'pack'];

export const BUNDLE_FILE = 'cli.bundle.js';

/**
 * The short commands' own bundle (./short.ts): no commander, no other command, no codec until an
 * image needs it. A command line its small parser does not take goes on to BUNDLE_FILE.
 */
export const SHORT_BUNDLED_COMMANDS: readonly string[] = ['info', 'ls', 'stat', 'cat'];
export const SHORT_BUNDLE_FILE = 'cli-short.bundle.js';

/** The bundle beside this file, if there is one at least as new as the program it was made from. */
function freshBundle(file: string): string | undefined {
  if (process.env.DISTRI_NO_BUNDLE) return undefined;
  const bundle = path.join(__dirname, file);
  try {
    if (fs.statSync(bundle).mtimeMs >= fs.statSync(path.join(__dirname, 'program.js')).mtimeMs) return bundle;
  } catch {
    // no bundle (tsc alone): the modules
  }
  return undefined;
}

/** See KernelMount.prestart: a new isolate loads its code while this one parses the command line. */
function startServingThreadFirst(builder: string): void {
  if (!(require('../fuse/mount-env') as typeof import('../fuse/mount-env')).kernelTransportWanted(process.argv)) return;
  (require('../fuse/kernel/thread-start') as typeof import('../fuse/kernel/thread-start')).prestartServingThread(builder);
}

/** The command line, unbundled (tests build it to inspect --help). */
export function buildProgram(only?: string): import('commander').Command {
  return (require('./program') as typeof import('./program')).buildProgram(only);
}

if (require.main === module) {
  const first = process.argv.slice(2).find((a) => !a.startsWith('-'));
  // A background mount starts its daemon before anything else is loaded (./daemon-first.ts).
  const daemonFirst = first === 'mount' || first === 'fuse' ? (require('./daemon-first') as typeof import('./daemon-first')) : undefined;
  const early = daemonFirst?.daemonFirstCommand(process.argv.slice(2), process.env);
  if (early) daemonFirst!.runDaemonFirst(early, __filename);
  else {
    if (process.env.DISTRI_MOUNT_READY_FD !== undefined) (require('../fuse/mount-env') as typeof import('../fuse/mount-env')).mark('daemon entry');
    // Serving the mount in this process (the daemon of `distri fuse` is this CLI; -f): the serving
    // thread starts before anything else loads.
    if (daemonFirst?.servesHere(process.argv.slice(2), process.env)) startServingThreadFirst(first === 'mount' ? 'image-source.js' : 'store-build.js');
    const short = first !== undefined && SHORT_BUNDLED_COMMANDS.includes(first) && !process.env.DISTRI_NO_FAST_PATH ? freshBundle(SHORT_BUNDLE_FILE) : undefined;
    const full = !short && first !== undefined && BUNDLED_COMMANDS.includes(first) ? freshBundle(BUNDLE_FILE) : undefined;
    // The short commands' bundle runs from its V8 code cache (./code-cache.ts).
    if (short) (require('./code-cache') as typeof import('./code-cache')).runBundle(short);
    else if (full) require(full);
    else (require('./program') as typeof import('./program')).run();
  }
}
