/**
 * lz4 blocks from liblz4 itself: LZ4_compress_default, the call mksquashfs makes (without -Xhc),
 * through the `lz4` npm package (0.6.5, MIT; it bundles liblz4 1.9.2 and builds it with node-gyp
 * at install, like lzma-native and zstd-napi). An optional dependency: where it did not build, the
 * lz4 codec falls back to lz4-napi, then to our own encoder (lz4.ts). Its decoder
 * (LZ4_decompress_safe) is the lz4 codec's first choice for decoding too.
 *
 * Why a third encoder: on 128 KiB blocks of the Debian root filesystem it compressed 2-3x faster
 * than lz4-napi (lz4_flex) and 0.3 % smaller, and lz4 packing is bound by the encoder's speed on two
 * cores. The output is a raw LZ4 block, what SquashFS stores.
 */
import { optionalModule } from './util';

type EncodeBlock = (input: Buffer, output: Buffer, start: number, end: number) => number;

// The addon alone: the package's index also loads its stream classes and an xxhash addon, which
// packing does not use.
const encodeBlock = optionalModule<EncodeBlock>(() => {
  try {
    return (require('lz4/build/Release/lz4.node') as { compress: EncodeBlock }).compress;
  } catch {
    return (require('lz4') as { encodeBlock: EncodeBlock }).encodeBlock;
  }
});

/**
 * The addon's decoder, LZ4_decompress_safe(input, output, input.length, output.length): the decoded
 * length, or a negative number for a malformed block. Only the addon itself: the package's index
 * falls back to a JavaScript decoder that does not check lengths, which is no use on hostile input.
 * Called with exactly two arguments, so the addon takes both lengths from the buffers themselves
 * (with four it would trust the caller's start and end indices unchecked).
 */
type DecodeBlock = (input: Uint8Array, output: Uint8Array) => number;
const decodeBlock = optionalModule<DecodeBlock>(() => {
  const f = (require('lz4/build/Release/lz4.node') as { uncompress?: DecodeBlock }).uncompress;
  if (typeof f !== 'function') throw new Error('the lz4 addon has no uncompress');
  return f;
});

/** Whether liblz4's decoder loaded here. */
export function liblz4DecoderAvailable(): boolean {
  return decodeBlock() !== null;
}

/** One raw LZ4 block into `output` (its length is the limit): LZ4_decompress_safe's result. */
export function liblz4DecodeInto(input: Uint8Array, output: Uint8Array): number {
  const f = decodeBlock();
  if (!f) throw new Error('liblz4 (the lz4 package) is not available');
  return f(input, output);
}

/** Output room, reused from block to block (the result is copied out of it). */
let scratch = Buffer.alloc(0);

/** Whether liblz4 loaded here. */
export function liblz4Available(): boolean {
  return encodeBlock() !== null;
}

/**
 * One raw LZ4 block by liblz4; null when not smaller. The output room is one byte less than the
 * input, so liblz4 gives up (returns 0) as soon as the block could not come out smaller.
 */
export function liblz4CompressBlock(input: Uint8Array): Uint8Array | null {
  const f = encodeBlock();
  if (!f) throw new Error('liblz4 (the lz4 package) is not available');
  if (input.length < 2) return null;
  if (scratch.length < input.length) scratch = Buffer.allocUnsafeSlow(Math.max(input.length, 1 << 17));
  const src = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const n = f(src, scratch, 0, input.length - 1);
  if (!(n > 0)) return null;
  // A copy of its own: callers may keep the block (metadata blocks are kept until the table is written).
  return Uint8Array.prototype.slice.call(scratch, 0, n);
}

/**
 * One raw LZ4 block by liblz4 written into `output` (at least input.length bytes); its length, or
 * -1 when not smaller. Both may be views of shared memory: the addon takes any Buffer's bytes.
 */
export function liblz4CompressInto(input: Buffer, output: Buffer): number {
  const f = encodeBlock();
  if (!f) throw new Error('liblz4 (the lz4 package) is not available');
  if (input.length < 2) return -1;
  // The end index bounds what liblz4 may write; the addon does not check it against the buffer.
  if (output.length < input.length - 1) throw new Error('liblz4CompressInto: output shorter than the input');
  const n = f(input, output, 0, input.length - 1);
  return n > 0 ? n : -1;
}
