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
 * This module loads nothing else before deciding, so that the choice itself costs nothing.
 * DISTRI_NO_BUNDLE=1 turns the bundle off (benchmarks compare both).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The commands the bundle holds (bundle.ts keeps every other command out of it). */
export const BUNDLED_COMMANDS: readonly string[] = ['info', 'ls', 'stat', 'cat', 'xattrs', 'mount', 'unmount', 'umount', 'pack'];

export const BUNDLE_FILE = 'cli.bundle.js';

/** The bundle beside this file, if there is one at least as new as the program it was made from. */
function freshBundle(): string | undefined {
  if (process.env.DISTRI_NO_BUNDLE) return undefined;
  const bundle = path.join(__dirname, BUNDLE_FILE);
  try {
    if (fs.statSync(bundle).mtimeMs >= fs.statSync(path.join(__dirname, 'program.js')).mtimeMs) return bundle;
  } catch {
    // no bundle (tsc alone): the modules
  }
  return undefined;
}

/** The command line, unbundled (tests build it to inspect --help). */
export function buildProgram(only?: string): import('commander').Command {
  return (require('./program') as typeof import('./program')).buildProgram(only);
}

if (require.main === module) {
  const first = process.argv.slice(2).find((a) => !a.startsWith('-'));
  const bundle = first !== undefined && BUNDLED_COMMANDS.includes(first) ? freshBundle() : undefined;
  if (bundle) require(bundle);
  else (require('./program') as typeof import('./program')).run();
}
