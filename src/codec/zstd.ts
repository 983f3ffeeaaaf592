/**
 * zstd (id 6): each block is one zstd frame (mksquashfs calls ZSTD_compressCCtx).
 *
 * Choice, measured on this machine on 125 real 128 KiB blocks of a mksquashfs -comp zstd image
 * (TypeScript's JS + x86-64 code from the node binary), median of 7 rounds, two alternating runs:
 *   zstddec 0.3.4 (the reference C decoder compiled to WASM), used synchronously:  338 / 363 MB/s
 *   fzstd 0.1.1 (pure JS, allocating form):                                          93 / 126 MB/s
 * zstddec also bounds the output by construction: ZSTD_decompress writes into a buffer of exactly
 * maxOutput bytes and returns an error code instead of writing past it, whereas fzstd sizes its output
 * from the frame header (or grows it without bound when the header has no size).
 *
 * zstddec only offers an async init(); its WASM module is a base64 string inside its (ESM) dist file. We
 * read those bytes and compile them synchronously with new WebAssembly.Module on first use (~10 ms).
 * If WebAssembly is unavailable (node --jitless) or the pinned package ever changes its layout, we fall
 * back to fzstd, guarded by the frame's declared content size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
// fzstd (the fallback decoder) is required on first use only: every process that opens an image
// loads this module, and most never need it (~4 ms of start-up each, e.g. both processes of a
// `distri mount`).
import { SquashfsError } from '../errors';
import type { Codec, CompressOptions } from './index';
import { checkArgs, corrupt, finish, optionalModule, wrapForeign } from './util';

// The project compiles without the DOM lib, so the few WebAssembly pieces used are typed here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface ZstdExports {
  memory: { buffer: ArrayBuffer };
  malloc(size: number): number;
  free(ptr: number): void;
  ZSTD_decompress(dst: number, dstCapacity: number, src: number, srcSize: number): number;
  ZSTD_isError(code: number): number;
}

let wasm: { exports: ZstdExports; heap: Uint8Array } | null | undefined;

function loadWasm(): { exports: ZstdExports; heap: Uint8Array } | null {
  if (wasm !== undefined) return wasm;
  try {
    const text = fs.readFileSync(require.resolve('zstddec'), 'utf8');
    const m = /const wasm\s*=\s*["']([A-Za-z0-9+/=]+)["']/.exec(text);
    if (!m) throw new Error('zstddec: WASM bytes not found in its dist file');
    const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    if (!WA) throw new Error('WebAssembly is not available');
    const module = new WA.Module(Buffer.from(m[1]!, 'base64'));
    const state = { exports: undefined as unknown as ZstdExports, heap: new Uint8Array(0) };
    const instance = new WA.Instance(module, {
      // Called by the WASM side whenever malloc grows its memory: the old ArrayBuffer is then detached.
      env: { emscripten_notify_memory_growth: () => (state.heap = new Uint8Array(state.exports.memory.buffer)) },
    });
    state.exports = instance.exports as unknown as ZstdExports;
    state.heap = new Uint8Array(state.exports.memory.buffer);
    wasm = state;
  } catch {
    wasm = null;
  }
  return wasm;
}

function decodeWasm(w: { exports: ZstdExports; heap: Uint8Array }, input: Uint8Array, maxOutput: number): Uint8Array {
  const E = w.exports;
  const src = E.malloc(input.length);
  const dst = E.malloc(Math.max(1, maxOutput));
  try {
    if (src === 0 || dst === 0) throw corrupt('zstd', `cannot allocate ${input.length + maxOutput} bytes of WASM memory`);
    w.heap.set(input, src);
    const n = E.ZSTD_decompress(dst, maxOutput, src, input.length);
    // size_t is 32 bits in WASM: error codes come back as small negative numbers.
    if (E.ZSTD_isError(n) || n < 0 || n > maxOutput) throw corrupt('zstd', `ZSTD_decompress error code ${-n} (output limit ${maxOutput})`);
    return w.heap.slice(dst, dst + n);
  } finally {
    E.free(src);
    E.free(dst);
  }
}

/** Frame_Content_Size of the first frame, or -1 when absent. Only used to guard the fzstd fallback. */
// Bounds (the `!`s on indexed reads are type-only): b.length >= 6 and p + fcsBytes <= b.length are checked before the reads; the small tables are indexed by 2-bit fields.
function declaredSize(b: Uint8Array): number {
  if (b.length < 6 || b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) return -1;
  const fhd = b[4]!;
  const fcsFlag = fhd >>> 6;
  const single = (fhd >>> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [single, 2, 4, 8][fcsFlag]!;
  let p = 5 + (single ? 0 : 1) + dictBytes;
  if (fcsBytes === 0 || p + fcsBytes > b.length) return -1;
  let v = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + b[p + i]!;
  p += fcsBytes;
  return fcsBytes === 2 ? v + 256 : v;
}

// The native decoder: zstd-napi (the optional dependency that also encodes, below) wraps
// ZSTD_decompressDCtx, which writes into the buffer we give it (exactly maxOutput bytes) and fails
// instead of writing past it; the C decoder is the reference one, fuzzed upstream. One DCtx is kept
// for the whole process (ZSTD_decompress creates and frees one per call, ~100 KiB each), and the
// output goes straight into the buffer we return: no copy out of a WASM heap.
interface NativeDCtx {
  decompress(dst: Uint8Array, src: Uint8Array): number;
}
const nativeDecoder = optionalModule(() => new (require('zstd-napi/binding') as { DCtx: new () => NativeDCtx }).DCtx());

function decodeNative(d: NativeDCtx, input: Uint8Array, maxOutput: number): Uint8Array {
  const out = Buffer.allocUnsafe(maxOutput);
  return finish(out, decodeNativeInto(d, input, out));
}

/** ZSTD_decompressDCtx into `out` (its length is the limit): the decoded length. */
function decodeNativeInto(d: NativeDCtx, input: Uint8Array, out: Uint8Array): number {
  let n: number;
  try {
    n = d.decompress(out, input);
  } catch (e) {
    throw wrapForeign('zstd', e);
  }
  if (!(n >= 0 && n <= out.length)) throw corrupt('zstd', `ZSTD_decompressDCtx returned ${n} (output limit ${out.length})`);
  return n;
}

/**
 * Into the caller's buffer (its length is the limit): zstd-napi writes there directly, so a reader
 * that reuses its output buffers allocates nothing per block; the fallbacks copy their result in.
 */
export function zstdDecompressInto(input: Uint8Array, out: Uint8Array): number {
  checkArgs('zstd', input, out.length);
  const d = decoderChoice === 'auto' ? nativeDecoder() : null;
  if (d) return decodeNativeInto(d, input, out);
  const r = zstdDecompressWasm(input, out.length);
  out.set(r);
  return r.length;
}

let decoderChoice: 'auto' | 'wasm' | 'fzstd' = 'auto';

export function zstdDecompress(input: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs('zstd', input, maxOutput);
  const d = decoderChoice === 'auto' ? nativeDecoder() : null;
  if (d) return decodeNative(d, input, maxOutput);
  return zstdDecompressWasm(input, maxOutput);
}

/** The WASM decoder (else fzstd): what decodes where zstd-napi is not installed. */
function zstdDecompressWasm(input: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs('zstd', input, maxOutput);
  const w = decoderChoice === 'fzstd' ? null : loadWasm();
  if (w) {
    try {
      return decodeWasm(w, input, maxOutput);
    } catch (e) {
      if (e instanceof SquashfsError) throw e;
      // A trap (WebAssembly.RuntimeError, e.g. an abort in malloc) can leave the C heap inconsistent:
      // drop this instance; the next call compiles a fresh one.
      wasm = undefined;
      throw wrapForeign('zstd', e);
    }
  }
  const declared = declaredSize(input);
  if (declared > maxOutput) throw corrupt('zstd', `frame declares ${declared} bytes, more than the limit ${maxOutput}`);
  let out: Uint8Array;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    out = (require('fzstd') as typeof import('fzstd')).decompress(input);
  } catch (e) {
    throw wrapForeign('zstd', e);
  }
  if (out.length > maxOutput) throw corrupt('zstd', `block decompresses to ${out.length} bytes, more than the limit ${maxOutput}`);
  return out;
}

/** Which implementation decodes: 'native' (zstd-napi), 'wasm' (zstddec) or 'fzstd'. For tests and the benchmark. */
export function zstdBackend(): 'native' | 'wasm' | 'fzstd' {
  if (decoderChoice === 'auto' && nativeDecoder()) return 'native';
  return decoderChoice !== 'fzstd' && loadWasm() ? 'wasm' : 'fzstd';
}

/** Forces a decoder: 'wasm' (zstddec, else fzstd), 'fzstd', or 'auto' (native first). Tests and benchmarks only. */
export function _setZstdBackendForTest(backend: 'wasm' | 'fzstd' | 'auto'): void {
  decoderChoice = backend;
  if (backend !== 'fzstd' && wasm === null) wasm = undefined;
}

/** Every decoder available here, by name, each with zstdDecompress's contract (benchmarks). */
export function zstdDecoders(): Record<string, (input: Uint8Array, maxOutput: number) => Uint8Array> {
  const r: Record<string, (input: Uint8Array, maxOutput: number) => Uint8Array> = {};
  const d = nativeDecoder();
  if (d) r['zstd-napi (native)'] = (i, m) => (checkArgs('zstd', i, m), decodeNative(d, i, m));
  if (loadWasm()) r['zstddec (WASM)'] = (i, m) => withChoice('wasm', () => zstdDecompressWasm(i, m));
  r['fzstd (JS)'] = (i, m) => withChoice('fzstd', () => zstdDecompressWasm(i, m));
  return r;
}

function withChoice<T>(c: typeof decoderChoice, f: () => T): T {
  const old = decoderChoice;
  decoderChoice = c;
  try {
    return f();
  } finally {
    decoderChoice = old;
  }
}

// ---- compressor ----
//
// @bokuweb/zstd-wasm 0.0.27 (MIT, reference zstd compiled with emscripten, no dependencies) is the one
// compressor. Its public init() is async (it reads zstd.wasm with fs/promises), but its emscripten glue
// honours Module.instantiateWasm: we hand it an instance made synchronously with new WebAssembly.Module /
// Instance from the bundled zstd.wasm, and the glue then runs the C constructors synchronously too (the
// run-dependency counter drops to zero inside init()). Works the same in worker threads: each thread has
// its own module registry, so its own Module and WASM memory. We keep one ZSTD_CCtx (ZSTD_compress would
// allocate and free the level-15 workspace on every block) and call ZSTD_compress_usingDict with no
// dictionary, which is ZSTD_compressCCtx, what mksquashfs calls.

interface ZstdCompressModule {
  HEAPU8: Uint8Array;
  instantiateWasm?: (imports: object, receive: (instance: object) => void) => unknown;
  init(): void;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _ZSTD_createCCtx(): number;
  _ZSTD_compressBound(size: number): number;
  _ZSTD_compress_usingDict(cctx: number, dst: number, cap: number, src: number, srcSize: number, dict: number, dictSize: number, level: number): number;
  _ZSTD_isError(code: number): number;
}

/** mksquashfs's default (ZSTD_DEFAULT_COMPRESSION_LEVEL in squashfs-tools' zstd_wrapper.h). */
export const ZSTD_DEFAULT_LEVEL = 15;

let encoder: { M: ZstdCompressModule; cctx: number; src: number; dst: number; cap: number } | undefined;

function loadEncoder(): NonNullable<typeof encoder> {
  if (encoder) return encoder;
  const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (!WA) throw new SquashfsError('UNSUPPORTED', 'zstd compression needs WebAssembly, which this Node runtime lacks');
  const dir = path.dirname(require.resolve('@bokuweb/zstd-wasm'));
  const M = (require(`${dir}/zstd.js`) as { Module: ZstdCompressModule }).Module;
  const bytes = fs.readFileSync(`${dir}/zstd.wasm`);
  M.instantiateWasm = (imports, receive) => {
    const instance = new WA.Instance(new WA.Module(bytes), imports);
    receive(instance);
    return instance.exports;
  };
  M.init();
  if (typeof M._ZSTD_compress_usingDict !== 'function' || !(M.HEAPU8 instanceof Uint8Array)) {
    throw new SquashfsError('UNSUPPORTED', 'zstd: @bokuweb/zstd-wasm did not initialise synchronously (package layout changed?)');
  }
  const cctx = M._ZSTD_createCCtx();
  if (cctx === 0) throw new SquashfsError('IO', 'zstd: cannot allocate a compression context');
  encoder = { M, cctx, src: 0, dst: 0, cap: 0 };
  return encoder;
}

// The native encoder: zstd-napi 0.0.13 (Apache-2.0, bundles zstd 1.5.7, built at install), an
// optional dependency. Measured on 876 128 KiB blocks of /usr/include at level 15: 1.7× the speed of
// the WASM build, within a few % of the zstd CLI, and the same bytes as the WASM build. Where it did
// not build, the WASM encoder above does the work.
interface NativeCCtx {
  compress(dst: Uint8Array, src: Uint8Array, level: number): number;
}
const nativeEncoder = optionalModule(() => ({ cctx: new (require('zstd-napi/binding') as { CCtx: new () => NativeCCtx }).CCtx(), dst: Buffer.allocUnsafe(0) }));
let backend: 'auto' | 'wasm' = 'auto';

/** Forces the WASM encoder (tests and benchmarks only). */
export function _setZstdEncoderForTest(which: 'auto' | 'wasm'): void {
  backend = which;
}
/** The encoder zstd blocks get: "native" (zstd-napi) or "wasm". */
export function zstdEncoderName(): 'native' | 'wasm' {
  return backend === 'auto' && nativeEncoder() ? 'native' : 'wasm';
}

export function zstdCompress(input: Uint8Array, options?: CompressOptions): Uint8Array | null {
  const level = options?.level ?? ZSTD_DEFAULT_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > 22) throw new SquashfsError('UNSUPPORTED', `zstd compression level ${level} (must be 1..22)`);
  if (input.length === 0) return null;
  const n8 = backend === 'auto' ? nativeEncoder() : null;
  if (n8) {
    // Only input.length - 1 bytes of room, as below: zstd stops early when the frame cannot be smaller.
    if (n8.dst.length < input.length - 1) n8.dst = Buffer.allocUnsafe(Math.max(input.length, 131072));
    let n: number;
    try {
      n = n8.cctx.compress(n8.dst.subarray(0, input.length - 1), input, level);
    } catch (e) {
      if (/too small/i.test((e as Error).message)) return null;
      throw new SquashfsError('IO', `zstd: ${(e as Error).message}`);
    }
    return Buffer.from(n8.dst.subarray(0, n));
  }
  const e = loadEncoder();
  const M = e.M;
  if (e.cap < input.length) {
    if (e.src) M._free(e.src);
    if (e.dst) M._free(e.dst);
    e.cap = Math.max(input.length, 131072);
    e.src = M._malloc(e.cap);
    e.dst = M._malloc(M._ZSTD_compressBound(e.cap));
    if (e.src === 0 || e.dst === 0) {
      encoder = undefined;
      throw new SquashfsError('IO', `zstd: cannot allocate ${2 * e.cap} bytes of WASM memory`);
    }
  }
  M.HEAPU8.set(input, e.src);
  // Only input.length - 1 bytes of room: a frame that is not smaller is of no use, and zstd stops early.
  const n = M._ZSTD_compress_usingDict(e.cctx, e.dst, input.length - 1, e.src, input.length, 0, 0, level);
  if (M._ZSTD_isError(n)) {
    // size_t is 32 bits in WASM: -70 is ZSTD_error_dstSize_tooSmall, i.e. not smaller than the input.
    if ((n | 0) === -70) return null;
    throw new SquashfsError('IO', `zstd: ZSTD_compressCCtx error code ${-(n | 0)}`);
  }
  return M.HEAPU8.slice(e.dst, e.dst + n); // HEAPU8 is re-read: malloc may have grown the memory
}

export const zstdCodec: Codec = { id: 6, name: 'zstd', decompress: zstdDecompress, decompressInto: zstdDecompressInto, compress: zstdCompress };
