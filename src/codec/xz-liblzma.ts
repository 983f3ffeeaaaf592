/**
 * xz compression through liblzma, the library mksquashfs calls: lzma-native 8.0.6 bundles xz 5.2.3
 * and builds it at install (package.json's postinstall rebuilds it with -O2: the bundled build script
 * drops the optimisation flags, and its prebuilt binary is about 2× slower).
 *
 * A block is what squashfs-tools' xz wrapper writes: one .xz stream with a CRC32 check and a single
 * LZMA2 filter, options of preset 6 (normal mode, BT4 match finder, nice length 64) with the
 * dictionary set to the block size; the kernel's decoder refuses a dictionary larger than that.
 * liblzma's streaming encoder leaves the optional sizes out of the block header, so each block is
 * 4 bytes shorter than mksquashfs's; the LZMA2 data is the same.
 *
 * Only compression: decoding stays in xz.ts, our own bounds-checked decoder. When the native module
 * cannot be loaded, xz.ts falls back to our encoder (xz-encoder.ts).
 */
import { optionalModule } from './util';

interface NativeStream {
  streamEncoder_(filters: Array<{ id: string; options?: Record<string, number> }>, check: number): void;
  bufferHandler: (buf: Buffer | null | undefined, processed?: number, err?: Error | null) => void;
  /** Synchronous when `async` is false; null finishes the stream. */
  code(chunk: Buffer | null, async: boolean): void;
}
interface LzmaNative {
  Stream: new () => NativeStream;
  FILTER_LZMA2: string;
  CHECK_CRC32: number;
  MODE_NORMAL: number;
  MF_BT4: number;
}

/**
 * The native module, or null when it is not installed, does not load here, or lacks the API. The
 * addon alone, as postinstall built it: the package's index adds stream classes on top, and loading
 * them (readable-stream and its dependencies) took 20-30 ms of every isolate's first xz block (the
 * CLI's, and each decoding worker's). Everything used here (Stream and the constants) is the addon's
 * own. Where postinstall could not build it, the index finds the prebuilt binary.
 */
export const liblzma = optionalModule((): LzmaNative => {
  let m: LzmaNative;
  try {
    m = require('lzma-native/build/Release/lzma_native.node') as LzmaNative;
  } catch {
    m = require('lzma-native') as LzmaNative;
  }
  if (typeof m.Stream !== 'function' || typeof new m.Stream().streamEncoder_ !== 'function') throw new Error('unexpected lzma-native API');
  return m;
});

/** liblzma's dictionary minimum. */
const MIN_DICT = 4096;

/**
 * One .xz stream holding `input`, as mksquashfs writes a block; null when not smaller. `bcj` names a
 * BCJ filter to put before LZMA2 (x86, arm, …: lzma-native exports each as FILTER_<NAME>).
 */
export function xzCompressLiblzma(input: Uint8Array, dictSize: number, bcj?: string): Uint8Array | null {
  const m = liblzma();
  if (!m) throw new Error('lzma-native is not available');
  if (input.length === 0) return null;
  const s = new m.Stream();
  const options = { dictSize: Math.max(MIN_DICT, dictSize), lc: 3, lp: 0, pb: 2, mode: m.MODE_NORMAL, niceLen: 64, mf: m.MF_BT4, depth: 0 };
  const filters: Array<{ id: string; options?: Record<string, number> }> = [{ id: m.FILTER_LZMA2, options }];
  if (bcj !== undefined) {
    const id = (m as unknown as Record<string, unknown>)[`FILTER_${bcj.toUpperCase()}`];
    if (typeof id !== 'string') throw new Error(`lzma-native has no ${bcj} filter`);
    filters.unshift({ id });
  }
  s.streamEncoder_(filters, m.CHECK_CRC32);
  const r = codeAll(s, input);
  return r.length < input.length ? r : null;
}

/**
 * Feeds a whole input through a native stream synchronously and returns everything it produced.
 * The addon reports the end of the stream as a call with neither output nor error (and resets
 * itself); a decoder that saw its stream's footer in the input has nothing left to finish, so the
 * finishing call (which allocates and clears an output buffer of the stream's buffer size) is made
 * only when the end was not seen: always for an encoder, and for a truncated or corrupt block, where
 * it yields liblzma's error.
 */
function codeAll(s: Pick<NativeDecodeStream, 'bufferHandler' | 'code'>, input: Uint8Array): Buffer {
  const out: Buffer[] = [];
  let error: Error | null | undefined;
  let ended = false;
  s.bufferHandler = (buf, n, e) => {
    if (e) error = e;
    else if (buf) out.push(buf);
    else if (buf === null && n === undefined) ended = true;
  };
  s.code(Buffer.from(input.buffer, input.byteOffset, input.byteLength), false);
  if (!ended && !error) s.code(null, false);
  if (error) throw error;
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

// ---- decoding (measured as a candidate; see bench/README-codecs.md) ----

interface NativeDecodeStream {
  streamDecoder_(memlimit: number | null, flags: number): void;
  setBufsize(n: number): number;
  bufferHandler: (buf: Buffer | null | undefined, processed?: number, err?: Error | null) => void;
  code(chunk: Buffer | null, async: boolean): void;
}

let decodeStream: NativeDecodeStream | undefined;

/**
 * One .xz stream decoded by liblzma. The caller bounds the output beforehand (liblzma's synchronous
 * API here gathers the whole output before it returns).
 */
export function xzDecompressLiblzma(input: Uint8Array, maxOutput: number): Buffer {
  const m = liblzma();
  if (!m) throw new Error('lzma-native is not available');
  const s = (decodeStream ??= new m.Stream() as unknown as NativeDecodeStream);
  s.streamDecoder_(64 << 20, 0);
  s.setBufsize(Math.max(4096, maxOutput + 1));
  return codeAll(s, input);
}
