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
 * Both bundles run from V8 code caches that `npm run build` makes (./code-cache.ts); they are read
 * here (runCachedBundle), in the module every command loads anyway: as a module of its own, the
 * reader cost 1.5–3 ms of the 7–12 ms the cache saves a short command.
 *
 * This module loads nothing else before deciding, so that the choice itself costs nothing.
 * DISTRI_NO_BUNDLE=1 turns the bundles off, DISTRI_NO_FAST_PATH=1 only the short commands' one
 * (benchmarks and tests compare them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Vm from 'node:vm';

/** The commands the bundle holds (bundle.ts keeps every other command out of it). */
export const BUNDLED_COMMANDS: readonly string[] = ['info', 'ls', 'stat', 'cat', 'xattrs', 'mount', 'unmount', 'umount', 'pack', 'extract'];

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

/**
 * The code cache's file, beside its bundle (`.js` replaced by `.cache`). V8 checks its own version,
 * its flags and the *length* of the source, but not the source itself, and damaged bytes in its
 * data crash Node inside the deserializer (seen: status 133, or a segmentation fault). So the file
 * carries a header of ours, a copy of the bundle it was made from, and V8's data twice:
 *
 *     offset     size  field
 *          0        8  "distriCC"
 *          8        4  format version, u32 LE
 *         12        4  S, the length of the bundle's copy, u32 LE
 *         16        4  D, the length of V8's data, u32 LE
 *         20       32  the V8 that made the cache (process.versions.v8, NUL-padded): after an
 *                      upgrade of Node the cache is not even offered to V8, which would refuse
 *                      it only after costing ~5 ms more than a plain `require`
 *         52        S  the bundle the cache was made from: used only while the bundle is the same
 *       52+S        D  V8's data
 *     52+S+D        D  V8's data again: damage to either copy shows as a difference
 *
 * Both comparisons are memcmp in native code (Buffer.equals), a fraction of a millisecond; a
 * checksum would need node:crypto or zlib, each more to load than the whole check costs. The
 * bundle is compared byte for byte rather than by mtime, which copies and package managers change.
 */
const V8_AT = 20;
const V8_SIZE = 32;
export const CODE_CACHE = { magic: 'distriCC', version: 4, v8At: V8_AT, v8Size: V8_SIZE, headerSize: V8_AT + V8_SIZE } as const;

export function codeCacheFileOf(bundle: string): string {
  return bundle.replace(/\.js$/, '') + '.cache';
}

/** V8's data from the code cache of BUNDLE if it is whole and was made from SOURCE; else why not. */
export function readCodeCache(bundle: string, source: Buffer): Buffer | string {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(codeCacheFileOf(bundle));
  } catch {
    return 'no cache file';
  }
  const { magic, version, headerSize, v8At, v8Size } = CODE_CACHE;
  if (raw.length < headerSize || raw.toString('latin1', 0, magic.length) !== magic || raw.readUInt32LE(8) !== version) return 'not a cache of this format';
  const madeBy = raw.toString('latin1', v8At, v8At + v8Size).replace(/\0+$/, '');
  if (madeBy !== process.versions.v8) return `made by another V8 (${madeBy}; this is ${process.versions.v8})`;
  const s = raw.readUInt32LE(12);
  const d = raw.readUInt32LE(16);
  if (raw.length !== headerSize + s + 2 * d) return 'damaged (not of the length its header says)';
  if (s !== source.length || !raw.subarray(headerSize, headerSize + s).equals(source)) return 'made from another build of the bundle';
  const data = raw.subarray(headerSize + s, headerSize + s + d);
  if (!data.equals(raw.subarray(headerSize + s + d))) return "damaged (the two copies of V8's data differ)";
  return data;
}

/**
 * BUNDLE compiled as Node's CommonJS loader would wrap it, the wrapper on a line of its own
 * (lineOffset -1 keeps the bundle's line numbers in stack traces), with V8's cached data if any.
 */
export function compileBundle(bundle: string, source: Buffer, cachedData: Buffer | undefined): Vm.Script {
  const vm = require('node:vm') as typeof Vm;
  const wrapped = `(function (exports, require, module, __filename, __dirname) {\n${source.toString('utf8')}\n})`;
  return new vm.Script(wrapped, { filename: bundle, lineOffset: -1, cachedData });
}

/**
 * Runs a compiled bundle as the module it is. Its `require` is this module's: the bundle sits
 * beside this file, so every name resolves the same, and require.resolve and the rest come with it.
 */
export function runCompiledBundle(script: Vm.Script, bundle: string): void {
  // Node's Module class, reached without loading node:module.
  const Module = module.constructor as new (id: string, parent: NodeModule) => NodeModule;
  const m = new Module(bundle, module);
  m.filename = bundle;
  m.paths = module.paths;
  m.loaded = true;
  require.cache[bundle] = m;
  const fn = script.runInThisContext() as (exports: unknown, require: NodeRequire, module: NodeModule, filename: string, dirname: string) => void;
  fn.call(m.exports, m.exports, require, m, bundle, path.dirname(bundle));
}

/**
 * Runs a bundle from its code cache when there is a good one, else as `require` would.
 * DISTRI_CODE_CACHE=off runs it without (benchmarks); =report says on stderr what became of the
 * cache (tests).
 */
function runCachedBundle(bundle: string): void {
  const say = (what: string) => {
    if (process.env.DISTRI_CODE_CACHE === 'report') fs.writeSync(2, `distri: code cache: ${what}\n`);
  };
  const source = process.env.DISTRI_CODE_CACHE === 'off' ? undefined : fs.readFileSync(bundle);
  const data = source ? readCodeCache(bundle, source) : 'switched off';
  if (typeof data === 'string') {
    say(`not used: ${data}`);
    require(bundle);
    return;
  }
  const script = compileBundle(bundle, source!, data);
  // A cache V8 refuses (another Node, other V8 flags) costs the compile it would have saved.
  say(script.cachedDataRejected ? 'rejected by V8 (another Node or other V8 flags)' : 'used');
  runCompiledBundle(script, bundle);
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
    const bundle = short ?? full;
    if (bundle) runCachedBundle(bundle);
    else (require('./program') as typeof import('./program')).run();
  }
}
