/**
 * xz (id 4): every SquashFS block is a complete .xz stream (mksquashfs calls lzma_stream_buffer_encode with
 * an optional BCJ filter before LZMA2 and a CRC32 check). Own implementation; the xz-compat package was
 * rejected because it installs lzma-native at run time (npm through install-module-linked) unless an
 * environment variable is set, and pulls in 69 packages.
 *
 * Compression: liblzma through lzma-native where it loads (xz-liblzma.ts), else our own encoder;
 * -Xbcj and -Xdict-size in xz-settings.ts.
 *
 * Container layout (all multi-byte integers LE unless said otherwise):
 *   stream header  FD 37 7A 58 5A 00 | flags (00, check type) | CRC32(flags)
 *   blocks         header (size byte (n+1)*4, flags, [compressed size], [uncompressed size], filter flags...,
 *                  zero padding, CRC32) | compressed data | zero padding to 4 | check
 *   index          00 | record count | (unpadded size, uncompressed size)* | zero padding | CRC32
 *   stream footer  CRC32 | backward size ((index size / 4) - 1, LE32) | flags | 59 5A
 *   [stream padding: zero bytes in multiples of 4, then possibly another stream]
 * Integers inside headers and the index are "VLI": 7 bits per byte, least significant first, high bit = more.
 *
 * LZMA2 splits the data into chunks; a control byte starts each one:
 *   00                     end of the LZMA2 data
 *   01 / 02 + BE16(size-1)  stored (uncompressed) chunk, with / without a dictionary reset
 *   1RR UUUUU + BE16 + BE16(packed-1) [+ props]  LZMA chunk of ((U << 16) + BE16 + 1) output bytes;
 *                          RR: 0 continue, 1 reset state, 2 reset state + new props, 3 also reset dictionary
 * Every LZMA chunk restarts the range coder.
 */
import { createHash } from 'node:crypto';
import { SquashfsError } from '../errors';
import { armDecode, armThumbDecode, deltaDecode, ia64Decode, powerpcDecode, sparcDecode, x86Decode } from './bcj';
import { crc32, crc64 } from './checksum';
import type { Codec, CompressOptions } from './index';
import { LzmaDecoder, parsePropsByte } from './lzma-core';
import { checkArgs, corrupt, finish, wrapForeign } from './util';
import { liblzma, xzDecompressLiblzma } from './xz-liblzma';
import { xzCompressBest } from './xz-settings';

const C = 'xz';
const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FILTER_DELTA = 0x03;
const FILTER_LZMA2 = 0x21;
/** Size-preserving filters before LZMA2 (decoded after it, in reverse order). */
const BCJ: ReadonlyMap<number, { name: string; align: number; fn: (b: Uint8Array, start: number) => void }> = new Map([
  [0x04, { name: 'x86', align: 1, fn: x86Decode }],
  [0x05, { name: 'powerpc', align: 4, fn: powerpcDecode }],
  [0x06, { name: 'ia64', align: 16, fn: ia64Decode }],
  [0x07, { name: 'arm', align: 4, fn: armDecode }],
  [0x08, { name: 'armthumb', align: 2, fn: armThumbDecode }],
  [0x09, { name: 'sparc', align: 4, fn: sparcDecode }],
]);
/** Bytes of the integrity check for each check type 0..15 (xz file format, section 3.4). */
const CHECK_SIZE = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

// Bounds (the `!`s on indexed reads are type-only): callers read 4 bytes they checked are there.
function u32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

class Reader {
  constructor(
    readonly b: Uint8Array,
    public p: number,
    readonly end: number,
    readonly what: string,
  ) {}
  byte(): number {
    if (this.p >= this.end) throw corrupt(C, `truncated ${this.what} at input offset ${this.p}`);
    return this.b[this.p++]!;
  }
  /** A VLI: up to 9 bytes; values above 2^53 cannot be real sizes here and are rejected. */
  vli(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 9; i++) {
      const byte = this.byte();
      v += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (i > 0 && byte === 0) throw corrupt(C, `non-minimal integer encoding in ${this.what} at input offset ${this.p - 1}`);
        if (v > Number.MAX_SAFE_INTEGER) throw corrupt(C, `integer ${v} in ${this.what} is too large`);
        return v;
      }
      scale *= 128;
    }
    throw corrupt(C, `integer longer than 9 bytes in ${this.what} at input offset ${this.p}`);
  }
}

interface Filter {
  id: number;
  props: Uint8Array;
}

function verifyCheck(type: number, data: Uint8Array, start: number, end: number, input: Uint8Array, at: number): void {
  let want: Uint8Array | undefined;
  if (type === 1) {
    const c = crc32(data, start, end);
    want = new Uint8Array([c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, c >>> 24]);
  } else if (type === 4) {
    want = crc64(data, start, end);
  } else if (type === 10) {
    want = createHash('sha256').update(data.subarray(start, end)).digest();
  }
  // Other check types are reserved; the format lets a decoder skip them (their size is fixed by type).
  if (want === undefined) return;
  for (let i = 0; i < want.length; i++) {
    if (input[at + i] !== want[i]) throw corrupt(C, `check (type ${type}) mismatch for block data ending at output offset ${end}`);
  }
}

/** Decodes LZMA2 chunks from input[p..end) into the decoder's output, up to `limit`. Returns the input position after the end byte. */
// Bounds (the `!`s on indexed reads are type-only): every header read is after a check against `end`.
function lzma2(dec: LzmaDecoder, input: Uint8Array, p: number, end: number, limit: number, dictSize: number): number {
  void dictSize; // the whole output buffer is the dictionary; distances are checked against it, not against this
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    if (p >= end) throw corrupt(C, `LZMA2 data ends without an end marker at input offset ${p}`);
    const control = input[p++]!;
    if (control === 0x00) {
      if (dec.pendingMatch > 0) throw corrupt(C, `LZMA2 data ends inside a match at output offset ${dec.op}`);
      return p;
    }
    if (control >= 0xe0 || control === 0x01) {
      needProps = true;
      needDictReset = false;
      dec.resetDict();
    } else if (needDictReset) {
      throw corrupt(C, `first LZMA2 chunk (control 0x${control.toString(16)}) does not reset the dictionary`);
    }
    if (control >= 0x80) {
      if (end - p < 4) throw corrupt(C, `truncated LZMA2 chunk header at input offset ${p}`);
      const unpacked = (control & 0x1f) * 65536 + ((input[p]! << 8) | input[p + 1]!) + 1;
      const packed = ((input[p + 2]! << 8) | input[p + 3]!) + 1;
      p += 4;
      if (control >= 0xc0) {
        if (p >= end) throw corrupt(C, `truncated LZMA2 properties at input offset ${p}`);
        const props = parsePropsByte(input[p++]!, C);
        if (props.lc + props.lp > 4) throw corrupt(C, `LZMA2 properties lc=${props.lc} lp=${props.lp}: lc + lp must be at most 4`);
        dec.setProps(props);
        needProps = false;
      } else if (needProps) {
        throw corrupt(C, `LZMA2 chunk (control 0x${control.toString(16)}) continues without properties after a reset`);
      }
      if (control >= 0xa0) dec.resetState();
      if (packed > end - p) throw corrupt(C, `LZMA2 chunk of ${packed} packed bytes at input offset ${p} runs past the block`);
      if (unpacked > limit - dec.op) throw corrupt(C, `LZMA2 chunk of ${unpacked} bytes at output offset ${dec.op} exceeds the output limit ${limit}`);
      dec.initRangeCoder(input, p, p + packed);
      const target = dec.op + unpacked;
      if (dec.run(target)) throw corrupt(C, `end marker inside an LZMA2 chunk at output offset ${dec.op}`);
      if (dec.ip !== p + packed || !dec.rangeCoderFinished()) {
        throw corrupt(C, `LZMA2 chunk at input offset ${p} did not end cleanly (used ${dec.ip - p} of ${packed} bytes)`);
      }
      p += packed;
    } else if (control === 0x01 || control === 0x02) {
      if (end - p < 2) throw corrupt(C, `truncated LZMA2 chunk header at input offset ${p}`);
      const size = ((input[p]! << 8) | input[p + 1]!) + 1;
      p += 2;
      if (size > end - p) throw corrupt(C, `stored LZMA2 chunk of ${size} bytes at input offset ${p} runs past the block`);
      if (size > limit - dec.op) throw corrupt(C, `stored LZMA2 chunk of ${size} bytes at output offset ${dec.op} exceeds the output limit ${limit}`);
      if (dec.pendingMatch > 0) throw corrupt(C, 'stored LZMA2 chunk interrupts a match');
      dec.out.set(input.subarray(p, p + size), dec.op);
      dec.op += size;
      p += size;
    } else {
      throw corrupt(C, `invalid LZMA2 control byte 0x${control.toString(16)} at input offset ${p - 1}`);
    }
  }
}

/** Decodes one xz block at input offset p into out at dec.op. Returns the input offset after the block's check. */
// Bounds (the `!`s on indexed reads are type-only): the header is read inside [p, headerEnd) after its size was checked; a filter list has 1..4 entries; CHECK_SIZE has 16 (checkType <= 15).
function block(input: Uint8Array, p: number, dec: LzmaDecoder, checkType: number, records: [number, number][]): number {
  const headerStart = p;
  const headerSize = (input[p]! + 1) * 4;
  if (headerSize > input.length - p) throw corrupt(C, `block header of ${headerSize} bytes at input offset ${p} runs past the end`);
  const headerEnd = p + headerSize - 4;
  if (crc32(input, p, headerEnd) !== u32(input, headerEnd)) throw corrupt(C, `block header CRC32 mismatch at input offset ${p}`);
  const r = new Reader(input, p + 1, headerEnd, 'block header');
  const flags = r.byte();
  if (flags & 0x3c) throw new SquashfsError('UNSUPPORTED', `xz block flags 0x${flags.toString(16)} use reserved bits`, 'xz block');
  const nFilters = (flags & 3) + 1;
  const compressedSize = flags & 0x40 ? r.vli() : -1;
  const uncompressedSize = flags & 0x80 ? r.vli() : -1;
  const filters: Filter[] = [];
  for (let i = 0; i < nFilters; i++) {
    const id = r.vli();
    const propsSize = r.vli();
    if (propsSize > headerEnd - r.p) throw corrupt(C, `filter properties of ${propsSize} bytes run past the block header`);
    filters.push({ id, props: input.subarray(r.p, r.p + propsSize) });
    r.p += propsSize;
  }
  for (let i = r.p; i < headerEnd; i++) if (input[i] !== 0) throw corrupt(C, `non-zero block header padding at input offset ${i}`);

  const last = filters[filters.length - 1]!;
  if (last.id !== FILTER_LZMA2) throw new SquashfsError('UNSUPPORTED', `xz filter chain ends with filter 0x${last.id.toString(16)}, not LZMA2`, 'xz block');
  if (last.props.length !== 1 || last.props[0]! > 40) throw corrupt(C, 'bad LZMA2 dictionary size property');
  const pre = filters.slice(0, -1).map((f) => {
    if (f.id === FILTER_DELTA) {
      if (f.props.length !== 1) throw corrupt(C, 'bad delta filter properties');
      const distance = f.props[0]! + 1;
      return (b: Uint8Array) => deltaDecode(b, distance);
    }
    const bcj = BCJ.get(f.id);
    if (!bcj) throw new SquashfsError('UNSUPPORTED', `xz filter id 0x${f.id.toString(16)}`, 'xz block');
    let start = 0;
    if (f.props.length === 4) start = u32(f.props, 0);
    else if (f.props.length !== 0) throw corrupt(C, `bad ${bcj.name} filter properties (${f.props.length} bytes)`);
    if (start % bcj.align !== 0) throw corrupt(C, `${bcj.name} filter start offset ${start} is not a multiple of ${bcj.align}`);
    return (b: Uint8Array) => bcj.fn(b, start);
  });

  const dataStart = headerStart + headerSize;
  const outStart = dec.op;
  const limit = uncompressedSize >= 0 ? Math.min(dec.out.length, outStart + uncompressedSize) : dec.out.length;
  if (uncompressedSize >= 0 && outStart + uncompressedSize > dec.out.length) {
    throw corrupt(C, `block declares ${uncompressedSize} uncompressed bytes, more than the output limit ${dec.out.length - outStart}`);
  }
  const dataEnd = compressedSize >= 0 ? dataStart + compressedSize : input.length;
  if (dataEnd > input.length) throw corrupt(C, `block declares ${compressedSize} compressed bytes, past the end of the input`);
  const after = lzma2(dec, input, dataStart, dataEnd, limit, last.props[0]!);
  if (compressedSize >= 0 && after !== dataEnd) throw corrupt(C, `block used ${after - dataStart} compressed bytes, header declares ${compressedSize}`);
  if (uncompressedSize >= 0 && dec.op - outStart !== uncompressedSize) throw corrupt(C, `block produced ${dec.op - outStart} bytes, header declares ${uncompressedSize}`);
  const region = dec.out.subarray(outStart, dec.op);
  for (let i = pre.length - 1; i >= 0; i--) pre[i]!(region);

  let q = after;
  while (q % 4 !== 0) {
    if (q >= input.length || input[q] !== 0) throw corrupt(C, `bad block padding at input offset ${q}`);
    q++;
  }
  const checkSize = CHECK_SIZE[checkType]!;
  if (checkSize > input.length - q) throw corrupt(C, `truncated block check at input offset ${q}`);
  verifyCheck(checkType, dec.out, outStart, dec.op, input, q);
  records.push([after - headerStart + checkSize, dec.op - outStart]);
  return q + checkSize;
}

// Bounds (the `!`s on indexed reads are type-only): at least 24 bytes from p, checked first.
function stream(input: Uint8Array, p: number, dec: LzmaDecoder): number {
  if (input.length - p < 24) throw corrupt(C, `stream at input offset ${p} is shorter than a header and footer`);
  for (let i = 0; i < 6; i++) if (input[p + i] !== MAGIC[i]) throw corrupt(C, `bad stream header magic at input offset ${p}`);
  if (crc32(input, p + 6, p + 8) !== u32(input, p + 8)) throw corrupt(C, `stream header CRC32 mismatch at input offset ${p}`);
  if (input[p + 6] !== 0 || input[p + 7]! > 0x0f) throw new SquashfsError('UNSUPPORTED', `xz stream flags ${input[p + 6]} ${input[p + 7]}`, 'xz block');
  const checkType = input[p + 7]!;
  p += 12;
  const records: [number, number][] = [];
  while (p < input.length && input[p] !== 0) p = block(input, p, dec, checkType, records);

  // Index: must list exactly the blocks we decoded.
  const indexStart = p;
  const r = new Reader(input, p + 1, input.length, 'index');
  const count = r.vli();
  if (count !== records.length) throw corrupt(C, `index lists ${count} blocks, the stream has ${records.length}`);
  for (const [unpadded, size] of records) {
    if (r.vli() !== unpadded || r.vli() !== size) throw corrupt(C, 'index record does not match its block');
  }
  while ((r.p - indexStart) % 4 !== 0) if (r.byte() !== 0) throw corrupt(C, `bad index padding at input offset ${r.p - 1}`);
  if (input.length - r.p < 16) throw corrupt(C, 'truncated index CRC32 or stream footer');
  if (crc32(input, indexStart, r.p) !== u32(input, r.p)) throw corrupt(C, `index CRC32 mismatch at input offset ${r.p}`);
  const footer = r.p + 4;
  if (crc32(input, footer + 4, footer + 10) !== u32(input, footer)) throw corrupt(C, `stream footer CRC32 mismatch at input offset ${footer}`);
  if ((u32(input, footer + 4) + 1) * 4 !== footer - indexStart) throw corrupt(C, 'stream footer backward size does not match the index');
  if (input[footer + 8] !== 0 || input[footer + 9] !== checkType) throw corrupt(C, 'stream footer flags differ from the header');
  if (input[footer + 10] !== 0x59 || input[footer + 11] !== 0x5a) throw corrupt(C, `bad stream footer magic at input offset ${footer + 10}`);
  return footer + 12;
}

/**
 * The exact output size of a block in the one shape mksquashfs writes (one stream, one block, an
 * optional BCJ/delta filter then LZMA2, nothing after the stream), read from the LZMA2 chunk headers
 * alone: each chunk states its uncompressed size, and the decoder (ours or liblzma) must produce
 * exactly that many bytes for it or fail. -1 for any other shape, or a header that does not parse
 * (our own decoder then decides, with its precise error). Only the framing is read here: the CRCs
 * and the index are checked by whichever decoder runs.
 */
// Bounds (the `!`s on indexed reads are type-only): each read after a check against n.
export function xzOutputSize(input: Uint8Array): number {
  const n = input.length;
  if (n < 12 + 8 + 12) return -1;
  for (let i = 0; i < 6; i++) if (input[i] !== MAGIC[i]) return -1;
  const headerSize = (input[12]! + 1) * 4;
  if (input[12] === 0 || 12 + headerSize > n) return -1;
  // The block header (filters, optional declared sizes) is liblzma's or our decoder's to check:
  // the chunks start right after it either way.
  let p = 12 + headerSize;
  let total = 0;
  for (;;) {
    if (p >= n) return -1;
    const control = input[p++]!;
    if (control === 0x00) break;
    if (control >= 0x80) {
      if (p + 4 > n) return -1;
      total += (control & 0x1f) * 65536 + ((input[p]! << 8) | input[p + 1]!) + 1;
      p += 4 + (control >= 0xc0 ? 1 : 0) + ((input[p + 2]! << 8) | input[p + 3]!) + 1;
    } else if (control === 0x01 || control === 0x02) {
      if (p + 2 > n) return -1;
      const size = ((input[p]! << 8) | input[p + 1]!) + 1;
      total += size;
      p += 2 + size;
    } else return -1;
  }
  // One block only: after its padding and check comes the index, listing one record; the index and
  // the footer end the input (more blocks, or concatenated streams, go to our decoder: liblzma would
  // decode blocks this scan did not count, or stop after the first stream).
  while (p % 4 !== 0) p++;
  p += CHECK_SIZE[input[7]! & 0x0f]!;
  if (p + 2 > n || input[p] !== 0x00 || input[p + 1] !== 0x01) return -1;
  const indexStart = p;
  p += 2;
  for (let v = 0; v < 2; v++) {
    let i = 0;
    while (p < n && input[p]! & 0x80 && i++ < 9) p++;
    p++;
  }
  while ((p - indexStart) % 4 !== 0) p++;
  if (p + 4 + 12 !== n || input[n - 2] !== 0x59 || input[n - 1] !== 0x5a) return -1;
  return total;
}

/**
 * liblzma (lzma-native, where it loaded) decodes blocks whose exact size xzOutputSize read and the
 * limit allows: ~1.45× our decoder's speed on the blocks of a Debian root filesystem (CPU time,
 * bench/README-codecs.md). liblzma's synchronous call gathers the whole output before it returns,
 * so it is only given blocks whose output is known to fit: its LZMA2 decoder stops at each chunk's
 * stated size, and the length is checked again after.
 */
let decoderChoice: 'auto' | 'builtin' = 'auto';

export function xzDecompress(input: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs(C, input, maxOutput);
  if (decoderChoice === 'auto' && liblzma()) {
    const size = xzOutputSize(input);
    if (size >= 0 && size <= maxOutput) {
      let out: Uint8Array;
      try {
        out = xzDecompressLiblzma(input, maxOutput);
      } catch (e) {
        throw wrapForeign(C, e);
      }
      if (out.length !== size) throw corrupt(C, `block decoded to ${out.length} bytes, its LZMA2 chunks state ${size}`);
      return out;
    }
  }
  return xzDecompressBuiltin(input, maxOutput);
}

/** Forces our own decoder (tests and benchmarks only). */
export function _setXzDecoderForTest(which: 'auto' | 'builtin'): void {
  decoderChoice = which;
}
/** The decoder xz blocks get where their size is known: "liblzma" or "builtin". */
export function xzDecoderName(): 'liblzma' | 'builtin' {
  return decoderChoice === 'auto' && liblzma() ? 'liblzma' : 'builtin';
}

/** Our own decoder: any valid .xz input, every error named. */
export function xzDecompressBuiltin(input: Uint8Array, maxOutput: number): Buffer {
  checkArgs(C, input, maxOutput);
  const out = Buffer.allocUnsafe(maxOutput);
  const dec = new LzmaDecoder(out, C);
  let p = stream(input, 0, dec);
  // Stream padding (multiples of 4 zero bytes) and concatenated streams.
  while (p < input.length) {
    const padStart = p;
    while (p < input.length && input[p] === 0) p++;
    if ((p - padStart) % 4 !== 0) throw corrupt(C, `stream padding at input offset ${padStart} is not a multiple of 4 bytes`);
    if (p < input.length) p = stream(input, p, dec);
  }
  return finish(out, dec.op);
}

export const xzCodec: Codec = {
  id: 4,
  name: 'xz',
  decompress: xzDecompress,
  /**
   * One xz stream per block, CRC32 check, as mksquashfs: liblzma's encoder (xz-liblzma.ts) where
   * it loads, else our own (xz-encoder.ts, ~6 % larger output).
   */
  compress: (input: Uint8Array, options?: CompressOptions) => xzCompressBest(input, options, encoder === 'auto' && liblzma() !== null),
};

let encoder: 'auto' | 'builtin' = 'auto';
/** Forces our own encoder (tests and benchmarks only). */
export function _setXzEncoderForTest(which: 'auto' | 'builtin'): void {
  encoder = which;
}
/** The encoder xz blocks get: "liblzma" or "builtin". */
export function xzEncoderName(): 'liblzma' | 'builtin' {
  return encoder === 'auto' && liblzma() ? 'liblzma' : 'builtin';
}

/** Every decoder available here, by name (benchmarks). */
export function xzDecoders(): Record<string, (input: Uint8Array, maxOutput: number) => Uint8Array> {
  const r: Record<string, (input: Uint8Array, maxOutput: number) => Uint8Array> = { 'ours (JS)': xzDecompressBuiltin };
  if (liblzma()) r['liblzma (lzma-native)'] = xzDecompress;
  return r;
}
