/**
 * LZ4 (id 5): SquashFS stores raw LZ4 *blocks* (no frame header, no checksums), as LZ4_compress_default /
 * LZ4_compress_HC produce them. A block is a run of sequences:
 *
 *   token (1 byte: high nibble = literal count, low nibble = match length - 4; 15 means "more bytes follow")
 *   [literal count extension: bytes of 255 summed until one is < 255]
 *   literals
 *   offset (2 bytes LE, 1..65535, back from the current output position)
 *   [match length extension, same scheme]
 *
 * The last sequence ends right after its literals, with no offset. Our decoder checks every length against
 * both the remaining input and the output limit before copying, so corrupt input can only raise an error.
 * (lz4js was measured at the same speed but does no bounds checking at all.)
 */
import type { Codec, CompressOptions } from './index';
import { lz4CompressHC } from './lz4-hc';
import { liblz4Available, liblz4CompressBlock, liblz4CompressInto, liblz4DecodeInto, liblz4DecoderAvailable } from './lz4-liblz4';
import { checkArgs, corrupt, finish, optionalModule, wrapForeign } from './util';

/** Our decoder into a fresh buffer of at most maxOutput bytes. */
export function lz4DecompressBlock(src: Uint8Array, maxOutput: number): Buffer {
  checkArgs('lz4', src, maxOutput);
  const out = Buffer.allocUnsafe(maxOutput);
  return finish(out, lz4DecodeInto(src, out));
}

/** Our decoder into `out` (its length is the output limit); returns the decoded length. */
// Bounds (the `!`s on indexed reads are type-only): every read of src is at ip < iend (checked before each read or copy) and every read of out at from < op.
export function lz4DecodeInto(src: Uint8Array, out: Uint8Array): number {
  const maxOutput = out.length;
  const iend = src.length;
  let ip = 0;
  let op = 0;
  for (;;) {
    if (ip >= iend) throw corrupt('lz4', `truncated: sequence token expected at input offset ${ip}`);
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= iend) throw corrupt('lz4', 'truncated in a literal length');
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (lit > iend - ip) throw corrupt('lz4', `literal run of ${lit} bytes at input offset ${ip} runs past the end of the block (${iend})`);
    if (lit > maxOutput - op) throw corrupt('lz4', `literal run of ${lit} bytes at output offset ${op} exceeds the output limit ${maxOutput}`);
    if (lit < 32) {
      for (let i = 0; i < lit; i++) out[op + i] = src[ip + i]!;
    } else {
      out.set(src.subarray(ip, ip + lit), op);
    }
    ip += lit;
    op += lit;
    if (ip === iend) break; // the last sequence has literals only
    if (iend - ip < 2) throw corrupt('lz4', `truncated match offset at input offset ${ip}`);
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw corrupt('lz4', `match offset ${offset} at output offset ${op} points before the start of the block`);
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= iend) throw corrupt('lz4', 'truncated in a match length');
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    len += 4;
    if (len > maxOutput - op) throw corrupt('lz4', `match of ${len} bytes at output offset ${op} exceeds the output limit ${maxOutput}`);
    let from = op - offset;
    if (len < 32) {
      // Short matches (most of them): a byte loop costs less than a native call. Overlapping ones
      // (offset < len) repeat the last `offset` bytes, which the forward byte order does by itself.
      const end = op + len;
      while (op < end) out[op++] = out[from++]!;
    } else if (offset >= len) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else if (offset >= 8) {
      // A long overlapping match: copy `offset` bytes at a time (each copy reads bytes already
      // written), so a run of 64 KiB with offset 16 is 4096 native copies, not 64 Ki loop turns.
      const end = op + len;
      while (op < end) {
        const n = Math.min(offset, end - op);
        out.copyWithin(op, from, from + n);
        op += n;
        from += n;
      }
    } else {
      const end = op + len;
      while (op < end) out[op++] = out[from++]!;
    }
  }
  return op;
}

// ---- native decoders ----
//
// Two native decoders may be installed, both optional dependencies that the encoders use too:
//  - liblz4 (the `lz4` package's addon, lz4-liblz4.ts): LZ4_decompress_safe, the reference decoder
//    mksquashfs's own blocks are made for, writes into the buffer we give it and never past its
//    length nor reads past the input's (the upstream guarantee for malformed input; the one known
//    hole of the bundled 1.9.2, a negative output capacity, cannot be reached: ours is at most
//    MAX_OUTPUT_LIMIT). Preferred: no allocation, no copy, and the fastest here.
//  - lz4-napi (lz4_flex 0.13, safe Rust with every length checked). Its uncompressSync takes the
//    frame its compressSync makes, the decoded size (4 bytes LE) before one raw block; we put
//    maxOutput there, so lz4_flex refuses a block that decodes to more. It returns a fresh vector:
//    one allocation and, for decodeInto callers, one copy per block, and the 4-byte prefix forces a
//    copy of the input too. Measured on the Debian rootfs (bench/README-extract.md): that per-block
//    work, not the decoding, was most of what lz4 extraction cost over an uncompressed image.

const nativeLz4Decoder = optionalModule(() => (require('lz4-napi') as { uncompressSync: (data: Uint8Array) => Buffer }).uncompressSync);
/** lz4-napi's decoder, or null where it is not installed (tests and benchmarks). */
export const lz4NativeDecoder = nativeLz4Decoder;
type Lz4Decoder = 'liblz4' | 'lz4-napi' | 'builtin';
let decoder: 'auto' | Lz4Decoder = 'auto';
/** Forces one decoder (tests and benchmarks only); 'auto': the best one installed. */
export function _setLz4DecoderForTest(which: 'auto' | Lz4Decoder): void {
  decoder = which;
}
/** The decoder lz4 blocks get: liblz4, else lz4-napi, else ours ("builtin"). */
export function lz4DecoderName(): Lz4Decoder {
  if (decoder === 'auto') return liblz4DecoderAvailable() ? 'liblz4' : nativeLz4Decoder() ? 'lz4-napi' : 'builtin';
  return decoder;
}
/** Reused size-prefixed input for lz4-napi: one block at a time, never kept. */
let prefixed: Buffer = Buffer.alloc(0);

/** One raw LZ4 block decoded by lz4-napi; same contract as lz4DecompressBlock. */
export function lz4DecompressNative(src: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs('lz4', src, maxOutput);
  const f = nativeLz4Decoder();
  if (!f) throw new Error('lz4-napi is not available');
  if (prefixed.length < src.length + 4) prefixed = Buffer.allocUnsafe(Math.max(src.length + 4, 4 + (1 << 17)));
  prefixed.writeUInt32LE(maxOutput, 0);
  prefixed.set(src, 4);
  let out: Buffer;
  try {
    out = f(prefixed.subarray(0, src.length + 4));
  } catch (e) {
    throw wrapForeign('lz4', e);
  }
  if (out.length > maxOutput) throw corrupt('lz4', `block decoded to ${out.length} bytes, more than the limit ${maxOutput}`);
  return out;
}

/** One raw LZ4 block decoded by liblz4 into a fresh buffer; same contract as lz4DecompressBlock. */
export function lz4DecompressLiblz4(src: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs('lz4', src, maxOutput);
  const out = Buffer.allocUnsafe(maxOutput);
  return finish(out, liblz4Checked(src, out));
}

function liblz4Checked(src: Uint8Array, out: Uint8Array): number {
  const n = liblz4DecodeInto(src, out);
  // LZ4_decompress_safe: the decoded length, or a negative number for a malformed block (one
  // that would run past either buffer included).
  if (!(n >= 0 && n <= out.length)) throw corrupt('lz4', `malformed block (liblz4 stopped at input offset ${n < 0 ? -n - 1 : n}; output limit ${out.length})`);
  return n;
}

/** Decodes with the chosen decoder into `out` (its length is the limit); returns the decoded length. */
function lz4DecompressInto(src: Uint8Array, out: Uint8Array): number {
  checkArgs('lz4', src, out.length);
  switch (lz4DecoderName()) {
    case 'liblz4':
      return liblz4Checked(src, out);
    case 'lz4-napi': {
      const r = lz4DecompressNative(src, out.length);
      out.set(r);
      return r.length;
    }
    default:
      return lz4DecodeInto(src, out);
  }
}

// ---- compressor ----
//
// Greedy, one probe per position, like LZ4_compress_default (acceleration 1), with two differences that
// both make blocks smaller at the same speed (measured on 128 KiB blocks against liblz4 1.9.4 through
// its C API, see bench/README-codecs.md):
//   - the hash covers 5 bytes, as liblz4 does on 64-bit machines: the table then keeps the latest
//     position sharing 5 bytes, so greedy matches are longer than with a 4-byte hash (a 4-byte hash
//     made text-like blocks ~5 % larger than liblz4's);
//   - the table has up to 2^16 entries (liblz4: 2^12), sized to the input so 8 KiB metadata blocks
//     do not pay for clearing a large table.

const MAX_HASH_LOG = 16;
const MIN_MATCH = 4;
/** Format rules the reference decoder relies on: the last 5 bytes are always literals ... */
const LAST_LITERALS = 5;
/** ... and the last match starts at least 12 bytes before the end of the block. */
const MF_LIMIT = 12;
const MAX_OFFSET = 65535;
/** After 2^SKIP_TRIGGER failed probes in a row, probe every 2nd byte, then every 3rd, ... (as liblz4). */
const SKIP_TRIGGER = 6;

let hashTable: Int32Array | undefined;

// Bounds (the `!`s on indexed reads are type-only): callers read at i + 3 < src.length (positions below matchStartLimit or a found match).
function read32(a: Uint8Array, i: number): number {
  return a[i]! | (a[i + 1]! << 8) | (a[i + 2]! << 16) | (a[i + 3]! << 24);
}

function writeLength(out: Uint8Array, op: number, n: number): number {
  // n >= 15 was already put in the token as 15; the rest goes out as 255s and a final byte < 255.
  n -= 15;
  while (n >= 255) {
    out[op++] = 255;
    n -= 255;
  }
  out[op++] = n;
  return op;
}

/**
 * Writes one sequence (literals src[litStart, litEnd), then a match unless matchLen is 0); the new op.
 * Bounds (the `!`s on indexed reads are type-only): litStart <= i < litEnd <= src.length.
 */
export function emit(src: Uint8Array, out: Uint8Array, op: number, litStart: number, litEnd: number, offset: number, matchLen: number): number {
  const lit = litEnd - litStart;
  const tokenPos = op++;
  let token = (lit >= 15 ? 15 : lit) << 4;
  if (lit >= 15) op = writeLength(out, op, lit);
  if (lit < 16) {
    for (let i = 0; i < lit; i++) out[op + i] = src[litStart + i]!;
  } else {
    out.set(src.subarray(litStart, litEnd), op);
  }
  op += lit;
  if (matchLen > 0) {
    out[op++] = offset & 0xff;
    out[op++] = offset >>> 8;
    const ml = matchLen - MIN_MATCH;
    token |= ml >= 15 ? 15 : ml;
    if (ml >= 15) op = writeLength(out, op, ml);
  }
  out[tokenPos] = token;
  return op;
}

/** Greedy LZ4 block compressor; null when the block would not get smaller. */
// Bounds (the `!`s on indexed reads are type-only): ip + 4 < n below matchStartLimit; table indices are hashes shifted to hashLog bits.
export function lz4CompressBlock(src: Uint8Array): Uint8Array | null {
  const n = src.length;
  // Worst case (LZ4_compressBound): every byte a literal plus the length bytes.
  const out = Buffer.allocUnsafe(n + Math.floor(n / 255) + 16);
  let op = 0;
  let anchor = 0;
  if (n > MF_LIMIT) {
    let hashLog = 10;
    while (hashLog < MAX_HASH_LOG && 1 << hashLog < n) hashLog++;
    const shift = 32 - hashLog;
    const table = (hashTable ??= new Int32Array(1 << MAX_HASH_LOG));
    table.fill(-1, 0, 1 << hashLog);
    const matchStartLimit = n - MF_LIMIT; // a match may start at ip < this (ip + 4 < n: 5 bytes hash)
    const matchEndLimit = n - LAST_LITERALS; // and must end at or before this
    let ip = 0;
    let probes = 1 << SKIP_TRIGGER;
    while (ip < matchStartLimit) {
      const seq = read32(src, ip);
      const h = (Math.imul(seq, 0x9e3779b1) ^ Math.imul(src[ip + 4]!, 0x85ebca6b)) >>> shift;
      const ref = table[h]!;
      table[h] = ip;
      if (ref < 0 || ip - ref > MAX_OFFSET || read32(src, ref) !== seq) {
        ip += probes++ >>> SKIP_TRIGGER;
        continue;
      }
      let start = ip;
      let mref = ref;
      while (start > anchor && mref > 0 && src[start - 1] === src[mref - 1]) {
        start--;
        mref--;
      }
      let end = ip + MIN_MATCH;
      let r = ref + MIN_MATCH;
      while (end < matchEndLimit && src[end] === src[r]) {
        end++;
        r++;
      }
      op = emit(src, out, op, anchor, start, start - mref, end - start);
      anchor = end;
      ip = end;
      probes = 1 << SKIP_TRIGGER;
      const p = ip - 2;
      if (p < matchStartLimit) table[(Math.imul(read32(src, p), 0x9e3779b1) ^ Math.imul(src[p + 4]!, 0x85ebca6b)) >>> shift] = p;
    }
  }
  op = emit(src, out, op, anchor, n, 0, 0);
  return op < n ? out.subarray(0, op) : null;
}

export const lz4Codec: Codec = {
  id: 5,
  name: 'lz4',
  /** liblz4 where it built, else lz4-napi where it installed (~3× ours in CPU time), else ours. */
  decompress: (src: Uint8Array, maxOutput: number) => {
    const which = lz4DecoderName();
    return which === 'liblz4' ? lz4DecompressLiblz4(src, maxOutput) : which === 'lz4-napi' ? lz4DecompressNative(src, maxOutput) : lz4DecompressBlock(src, maxOutput);
  },
  decompressInto: lz4DecompressInto,
  /**
   * liblz4 where it built (lz4-liblz4.ts), else lz4-napi where it installed (~2.5× ours), else our
   * encoder (lz4CompressBlock); with lz4HighCompression (-Xhc) our HC encoder (lz4-hc.ts).
   */
  compress: (input: Uint8Array, options?: CompressOptions) => {
    if (options?.lz4HighCompression) return lz4CompressHC(input);
    const which = lz4EncoderName();
    return which === 'liblz4' ? liblz4CompressBlock(input) : which === 'native' ? lz4CompressNative(input) : lz4CompressBlock(input);
  },
  /** The same blocks as compress, without its copies where liblz4 is the encoder. */
  compressInto: (input: Buffer, output: Buffer, options?: CompressOptions) => {
    if (!options?.lz4HighCompression && lz4EncoderName() === 'liblz4') return liblz4CompressInto(input, output);
    const out = lz4Codec.compress!(input, options);
    if (!out) return -1;
    output.set(out);
    return out.length;
  },
};

// ---- native compressor ----
//
// lz4-napi 2.10.0 (MIT; lz4_flex compiled to a Node addon, shipped prebuilt in per-platform npm
// packages, so nothing is built at install), an optional dependency. Its compressSync returns the
// uncompressed size (4 bytes LE) followed by one raw LZ4 block: the block is what SquashFS stores.
// Measured on 876 128 KiB blocks of /usr/include: 215-430 MB/s against 150-175 for ours, blocks
// 3 % larger than ours (0.05 % larger than liblz4's, which mksquashfs writes).

const nativeLz4 = optionalModule(() => (require('lz4-napi') as { compressSync: (data: Buffer) => Buffer }).compressSync);
let encoder: 'auto' | 'lz4-napi' | 'builtin' = 'auto';

/** One raw LZ4 block by lz4-napi; null when not smaller. */
export function lz4CompressNative(input: Uint8Array): Uint8Array | null {
  const f = nativeLz4();
  if (!f) throw new Error('lz4-napi is not available');
  if (input.length === 0) return null;
  const out = f(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  if (out.length < 4 || out.readUInt32LE(0) !== input.length) throw new Error(`lz4-napi returned ${out.length} bytes without the expected size prefix`);
  return out.length - 4 < input.length ? out.subarray(4) : null;
}

/** Forces lz4-napi or our own encoder (tests and benchmarks only); 'auto': the best one installed. */
export function _setLz4EncoderForTest(which: 'auto' | 'lz4-napi' | 'builtin'): void {
  encoder = which;
}
/** The encoder lz4 blocks get: "liblz4" (the lz4 package), "native" (lz4-napi) or "builtin". */
export function lz4EncoderName(): 'liblz4' | 'native' | 'builtin' {
  if (encoder === 'auto' && liblz4Available()) return 'liblz4';
  return encoder !== 'builtin' && nativeLz4() ? 'native' : 'builtin';
}
