/**
 * Running one of our esbuild bundles (the CLI's short commands, the mount daemon, its serving
 * thread) with a V8 code cache beside it: `X.js` runs with the bytecode V8 saved in `X.js.cache`,
 * so that Node neither parses the bundle nor compiles the functions a run calls (Node 20 has no
 * `module.enableCompileCache`; this is the same thing by hand, with vm.Script's cachedData).
 *
 * The cache is made at build time (bundle.ts runs each bundle on the committed demo image with
 * DISTRI_CODE_CACHE_WRITE=1, which writes the cache as that process leaves, with every function
 * the run compiled), never at run time: an installed tree may be read-only and shared.
 *
 * A cache is a speed-up only, never trusted. V8 itself rejects data from another V8 version or
 * other V8 flags, but it does not check the bytes: a damaged cache crashes the process inside the
 * deserializer (tried), and a cache made for another bundle of the same length runs the wrong
 * code. So the file starts with our own header: a magic word, the CRC-32 of the bundle it was made
 * from (a rebuilt bundle makes it stale) and the CRC-32 and length of the V8 data (a damaged or cut
 * file). Any mismatch, an unreadable file, or V8's own refusal: the bundle runs without the cache,
 * as if there were none. DISTRI_CODE_CACHE_DEBUG=1 says on stderr which of these happened;
 * DISTRI_NO_CODE_CACHE=1 ignores the cache (benchmarks compare both).
 *
 * This module loads node:fs, node:path, node:vm and node:module (part of Node's own start-up
 * already) and node:zlib (the gzip codec loads it anyway).
 */
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';

export const CACHE_SUFFIX = '.cache';
/** "DCC1", little-endian: this header layout. */
const MAGIC = 0x31434344;
/** magic, bundle CRC-32, bundle length, data CRC-32, data length (u32 each). */
const HEADER_BYTES = 20;

export const WRITE_ENV = 'DISTRI_CODE_CACHE_WRITE';
export const DEBUG_ENV = 'DISTRI_CODE_CACHE_DEBUG';
export const OFF_ENV = 'DISTRI_NO_CODE_CACHE';

/**
 * CRC-32 of the bytes, computed by zlib (the trailer of a stored, uncompressed gzip member): native
 * speed, where a JavaScript loop over the ~400 KiB of bundle and cache runs in the interpreter at
 * this point of start-up (measured 6-12 ms, more than the cache saves). Node 20 has no zlib.crc32.
 */
export function crc32(b: Uint8Array): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const gz = (require('node:zlib') as typeof import('node:zlib')).gzipSync(b, { level: 0 });
  return gz.readUInt32LE(gz.length - 8);
}

/** What became of the cache in a run (DISTRI_CODE_CACHE_DEBUG prints it). */
export type CacheOutcome = 'used' | 'absent' | 'off' | `rejected: ${string}`;

/** The V8 data in `cacheFile` if it was made from exactly `source`, else why not. */
export function readCache(cacheFile: string, source: Uint8Array): { data?: Buffer; outcome: CacheOutcome } {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(cacheFile);
  } catch {
    return { outcome: 'absent' };
  }
  if (raw.length < HEADER_BYTES || raw.readUInt32LE(0) !== MAGIC) return { outcome: 'rejected: not a code cache of ours' };
  if (raw.readUInt32LE(4) !== crc32(source) || raw.readUInt32LE(8) !== source.length) return { outcome: 'rejected: made from another bundle' };
  const data = raw.subarray(HEADER_BYTES);
  if (raw.readUInt32LE(16) !== data.length || raw.readUInt32LE(12) !== crc32(data)) return { outcome: 'rejected: damaged' };
  return { data, outcome: 'used' };
}

/** Writes `data` (V8's) as the cache of `source`, atomically (a reader sees the old file or the new). */
export function writeCache(cacheFile: string, source: Uint8Array, data: Uint8Array): void {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(crc32(source), 4);
  header.writeUInt32LE(source.length, 8);
  header.writeUInt32LE(crc32(data), 12);
  header.writeUInt32LE(data.length, 16);
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, Buffer.concat([header, data]));
  fs.renameSync(tmp, cacheFile);
}

/**
 * Runs `file` as a CommonJS module (its require, module, __filename and __dirname are its own, as
 * if required), with its code cache when there is a valid one. Returns what became of the cache.
 */
export function runBundle(file: string): CacheOutcome {
  const sourceBytes = fs.readFileSync(file);
  const cacheFile = file + CACHE_SUFFIX;
  const { data, outcome: found } = process.env[OFF_ENV] ? { data: undefined, outcome: 'off' as const } : readCache(cacheFile, sourceBytes);
  const script = new vm.Script(Module.wrap(sourceBytes.toString('utf8')), { filename: file, cachedData: data });
  const outcome: CacheOutcome = data && script.cachedDataRejected ? 'rejected: by V8 (another Node or other V8 flags)' : found;
  if (process.env[DEBUG_ENV]) process.stderr.write(`distri: code cache ${path.basename(cacheFile)}: ${outcome}\n`);
  // Only for this process: children (a mount's daemon) and threads started from here make none.
  const write = process.env[WRITE_ENV];
  delete process.env[WRITE_ENV];
  if (write) {
    // Written as the process leaves, so that it holds every function this run compiled.
    process.once('exit', () => writeCache(cacheFile, sourceBytes, script.createCachedData()));
  }
  const m = new Module(file, require.main);
  m.filename = file;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  const req = Module.createRequire(file);
  const fn = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
  fn.call(m.exports, m.exports, req, m, file, path.dirname(file));
  m.loaded = true;
  return outcome;
}
