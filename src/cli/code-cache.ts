/**
 * The short commands' bundle (cli-short.bundle.js, ./short.ts) run from a V8 code cache: the
 * bytecode of its top level and of every function that `info`, `ls`, `stat` and `cat` call, as V8
 * serialised it after running them once at build time. Compiling the bundle and then, lazily, each
 * function a command reaches was about 9 ms of such a command's ~20 ms over Node's own start-up
 * (bench/README-cli.md); reading the cache back costs a fraction of that. Node 20 has no
 * `module.enableCompileCache` (Node 22 does), so this is the same done by hand with node:vm.
 *
 * V8 checks its own version, its flags and the *length* of the source, but not the source itself,
 * and damaged bytes in the middle of its data crash Node inside the deserializer (seen). So the
 * file carries a header of ours, a copy of the bundle it was made from (compared with the bundle
 * byte for byte, natively: no hash to compute, and no trust in mtimes, which copies and package
 * managers change), and V8's data; both are one zlib stream, whose Adler-32 zlib checks natively as
 * it inflates (../codec/zlib-binding.ts: no node:zlib, no stream modules):
 *
 *     offset  size  field
 *          0     8  "distriCC"
 *          8     4  format version (2), u32 LE
 *         12     4  length of the bundle's copy, u32 LE
 *         16     4  length of V8's data, u32 LE
 *         20     …  the bundle's copy and V8's data, one after the other, as one zlib stream
 *                   (stored, not compressed: inflating it is a copy)
 *
 * Anything that does not match, or a Node whose zlib binding is not known, runs the bundle as
 * before (`require`); a cache V8 itself rejects (another Node, other V8 flags) costs the compile
 * it would have saved, nothing more. DISTRI_CODE_CACHE=off runs without it (benchmarks);
 * DISTRI_CODE_CACHE=report says on stderr what became of it (tests).
 *
 * `npm run build` makes the cache (./bundle.ts): a child process runs this module with --train,
 * which runs the bundle's commands on fixtures/demo.sqfs in one process and writes the cache as it
 * leaves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Vm from 'node:vm';
import { bindingInflateHandle, Z_FINISH } from '../codec/zlib-binding';

const MAGIC = 'distriCC';
const VERSION = 2;
const HEADER_SIZE = 20;

/** Where the cache of BUNDLE sits: beside it, `.js` replaced by `.cache`. */
export function cacheFileOf(bundle: string): string {
  return bundle.replace(/\.js$/, '') + '.cache';
}

/**
 * The bundle as Node's CommonJS loader would run it, the wrapper on a line of its own (lineOffset
 * -1 keeps the bundle's line numbers in stack traces).
 */
function compile(bundle: string, source: Buffer, cachedData: Buffer | undefined): Vm.Script {
  const vm = require('node:vm') as typeof Vm;
  const wrapped = `(function (exports, require, module, __filename, __dirname) {\n${source.toString('utf8')}\n})`;
  return new vm.Script(wrapped, { filename: bundle, lineOffset: -1, cachedData });
}

/** Runs a compiled bundle as the module it is: its own `module`, `require` and directory. */
function runCompiled(script: Vm.Script, bundle: string): void {
  // The module of this file's kind (Node's Module class, reached without loading node:module).
  const Module = module.constructor as new (id: string, parent: NodeModule) => NodeModule;
  const m = new Module(bundle, module);
  m.filename = bundle;
  m.paths = module.paths; // the same directory's node_modules chain: the bundle sits beside this file
  m.loaded = true;
  require.cache[bundle] = m;
  const fn = script.runInThisContext() as (exports: unknown, require: (id: string) => unknown, module: NodeModule, filename: string, dirname: string) => void;
  fn.call(m.exports, m.exports, (id: string) => m.require(id), m, bundle, path.dirname(bundle));
}

/** V8's data from the cache of BUNDLE if it is whole and was made from SOURCE; else why not. */
export function readCodeCache(bundle: string, source: Buffer): Buffer | string {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(cacheFileOf(bundle));
  } catch {
    return 'no cache file';
  }
  if (raw.length < HEADER_SIZE || raw.toString('latin1', 0, 8) !== MAGIC || raw.readUInt32LE(8) !== VERSION) return 'not a cache of this format';
  const sourceLength = raw.readUInt32LE(12);
  const dataLength = raw.readUInt32LE(16);
  if (sourceLength !== source.length) return 'made from another build of the bundle';
  let z: ReturnType<typeof bindingInflateHandle>;
  try {
    z = bindingInflateHandle();
  } catch {
    z = null;
  }
  if (!z) return "this Node's zlib binding is not known";
  let error: string | undefined;
  z.handle.onerror = (message: string) => {
    error = message;
  };
  // One byte of room past the end: a stream that has more to give fills it.
  const out = Buffer.allocUnsafe(sourceLength + dataLength + 1);
  try {
    z.handle.writeSync(Z_FINISH, raw, HEADER_SIZE, raw.length - HEADER_SIZE, out, 0, out.length);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    z.handle.close();
  }
  if (error !== undefined) return `damaged (${error})`;
  if (z.state[0] !== 1 || z.state[1] !== 0) return 'damaged (its contents are not of the length its header says)';
  if (!out.subarray(0, sourceLength).equals(source)) return 'made from another build of the bundle';
  return out.subarray(sourceLength, sourceLength + dataLength);
}

/** Says on stderr what became of the cache, with DISTRI_CODE_CACHE=report. */
function report(what: string): void {
  if (process.env.DISTRI_CODE_CACHE === 'report') fs.writeSync(2, `distri: code cache: ${what}\n`);
}

/** Runs BUNDLE from its code cache when there is a good one, else as `require` would. */
export function runBundle(bundle: string): void {
  if (process.env.DISTRI_CODE_CACHE === 'off') {
    report('not used: switched off');
    require(bundle);
    return;
  }
  const source = fs.readFileSync(bundle);
  const data = readCodeCache(bundle, source);
  if (typeof data === 'string') {
    report(`not used: ${data}`);
    require(bundle);
    return;
  }
  const script = compile(bundle, source, data);
  report(script.cachedDataRejected ? 'rejected by V8 (another Node or other V8 flags)' : 'used');
  runCompiled(script, bundle);
}

/**
 * Runs BUNDLE once for each command line (in one process, so that the bytecode of every one of
 * them is in the cache) and writes its cache when the process has nothing left to do.
 */
function train(bundle: string, main: string, lines: string[][]): void {
  const source = fs.readFileSync(bundle);
  const script = compile(bundle, source, undefined);
  for (const line of lines) {
    process.argv = [process.argv[0]!, main, ...line];
    runCompiled(script, bundle);
    delete require.cache[bundle];
  }
  process.once('beforeExit', () => {
    if (process.exitCode) return; // a command failed: no cache, and the build says so
    const data = script.createCachedData();
    const header = Buffer.alloc(HEADER_SIZE);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(source.length, 12);
    header.writeUInt32LE(data.length, 16);
    const stream = (require('node:zlib') as typeof import('node:zlib')).deflateSync(Buffer.concat([source, data]), { level: 0 });
    const file = cacheFileOf(bundle);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.concat([header, stream]));
    fs.renameSync(tmp, file);
  });
}

// node code-cache.js --train BUNDLE MAIN LINE_JSON…: what ./bundle.ts runs (standard output unused).
if (require.main === module && process.argv[2] === '--train') {
  const [bundle, main, ...lines] = process.argv.slice(3);
  train(
    bundle!,
    main!,
    lines.map((l) => JSON.parse(l) as string[]),
  );
}
