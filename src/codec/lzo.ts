/**
 * LZO1X (id 3), the "safe" decoder: every input read, output write and back-reference is bounds-checked.
 * All mksquashfs -Xalgorithm choices (lzo1x_1, _1_11, _1_12, _1_15, lzo1x_999) emit the same LZO1X stream
 * format, so one decoder serves them all. No pure-JS package exists; this is written from the format
 * description.
 *
 * Stream format. A stream is a sequence of instructions; each is a match (copy from earlier output) whose
 * last two "S" bits say how many literal bytes (0..3) follow it directly. The meaning of an instruction byte
 * below 16 depends on what came before it, which is the `state` below:
 *   state 0 (previous match had S = 0, or start of stream)  0000LLLL: a literal run of L+3 bytes
 *            (L = 0: 18 + 255*zero bytes + next non-zero byte); afterwards state = 4
 *   state 1..3 (previous instruction was followed by 1..3 literals)  0000DDSS + H: 2-byte match at
 *            distance (H<<2) + D + 1
 *   state 4 (previous instruction was a literal run of 4 or more)  0000DDSS + H: 3-byte match at
 *            distance (H<<2) + D + 2049
 * Instructions >= 16 mean the same in every state:
 *   0001HLLL + LE16(D:14,S:2)   length L+2 (L = 0: extended, base 7), distance 16384 + (H<<14) + D;
 *                              distance exactly 16384 is the end-of-stream marker (bytes 11 00 00)
 *   001LLLLL + LE16(D:14,S:2)   length L+2 (L = 0: extended, base 31), distance D + 1
 *   01LDDDSS + H               length 3 + L, distance (H<<3) + D + 1
 *   1LLDDDSS + H               length 5 + L, distance (H<<3) + D + 1
 * A first byte above 17 is special: a literal run of (byte - 17) bytes, after which state is min(run, 4).
 */
import type { Codec } from './index';
import { liblzoAvailable, liblzoDecodeInto } from './lzo-liblzo';
import { checkArgs, corrupt, finish } from './util';

function truncated(what: string, ip: number, iend: number) {
  return corrupt('lzo', `truncated ${what} at input offset ${ip} (block is ${iend} bytes)`);
}

function literalsError(n: number, ip: number, op: number, iend: number, maxOutput: number) {
  return n > iend - ip
    ? corrupt('lzo', `literal run of ${n} bytes at input offset ${ip} runs past the end of the block (${iend})`)
    : corrupt('lzo', `literal run of ${n} bytes at output offset ${op} exceeds the output limit ${maxOutput}`);
}

// The loop below keeps ip/op in plain locals (no helper closures that would capture and mutate them:
// that moves them to the heap and halves the speed), so literal copies and long lengths are written out
// inline at each place they occur.
// Bounds (the `!`s on indexed reads are type-only): every read of src is after a check against iend, every read of out at from >= 0 after the distance check.
export function lzo1xDecompress(src: Uint8Array, maxOutput: number): Buffer {
  checkArgs('lzo', src, maxOutput);
  const out = Buffer.allocUnsafe(maxOutput);
  const iend = src.length;
  let ip = 0;
  let op = 0;
  let state = 0;

  if (src[0]! > 17) {
    const n = src[0]! - 17;
    ip = 1;
    if (n > iend - ip || n > maxOutput - op) throw literalsError(n, ip, op, iend, maxOutput);
    for (let i = 0; i < n; i++) out[op++] = src[ip++]!;
    state = n < 4 ? n : 4;
  }
  for (;;) {
    if (ip >= iend) throw truncated('instruction (no end-of-stream marker)', ip, iend);
    const inst = src[ip++]!;
    let len: number;
    let dist: number;
    let next: number; // literals that follow this match: the S bits
    if (inst >= 64) {
      if (ip >= iend) throw truncated('distance', ip, iend);
      len = (inst >>> 5) + 1; // 01L..... -> 3..4, 1LL..... -> 5..8
      dist = (src[ip++]! << 3) + ((inst >>> 2) & 7) + 1;
      next = inst & 3;
    } else if (inst >= 16) {
      // 001LLLLL (base 31) and 0001HLLL (base 7): long lengths add 255 per zero byte, then a non-zero byte.
      const m3 = inst >= 32;
      len = m3 ? inst & 31 : inst & 7;
      if (len === 0) {
        len = m3 ? 31 : 7;
        for (;;) {
          if (ip >= iend) throw truncated('length', ip, iend);
          const b = src[ip++];
          if (b !== 0) break;
          len += 255;
        }
        len += src[ip - 1]!;
      }
      len += 2;
      if (iend - ip < 2) throw truncated('distance', ip, iend);
      const le = src[ip]! | (src[ip + 1]! << 8);
      ip += 2;
      next = le & 3;
      if (m3) {
        dist = (le >>> 2) + 1;
      } else {
        dist = 16384 + ((inst & 8) << 11) + (le >>> 2);
        if (dist === 16384) {
          if (ip !== iend) throw corrupt('lzo', `end-of-stream marker at input offset ${ip - 3}, but the block has ${iend - ip} more bytes`);
          break;
        }
      }
    } else if (state === 0) {
      let n = inst;
      if (n === 0) {
        n = 15;
        for (;;) {
          if (ip >= iend) throw truncated('length', ip, iend);
          const b = src[ip++];
          if (b !== 0) break;
          n += 255;
        }
        n += src[ip - 1]!;
      }
      n += 3;
      if (n > iend - ip || n > maxOutput - op) throw literalsError(n, ip, op, iend, maxOutput);
      if (n < 64) {
        for (let i = 0; i < n; i++) out[op + i] = src[ip + i]!;
      } else {
        out.set(src.subarray(ip, ip + n), op);
      }
      ip += n;
      op += n;
      state = 4;
      continue;
    } else {
      if (ip >= iend) throw truncated('distance', ip, iend);
      const far = state === 4;
      len = far ? 3 : 2;
      dist = (src[ip++]! << 2) + (inst >>> 2) + (far ? 2049 : 1);
      next = inst & 3;
    }
    if (dist > op) throw corrupt('lzo', `match distance ${dist} at output offset ${op} points before the start of the block`);
    if (len > maxOutput - op) throw corrupt('lzo', `match of ${len} bytes at output offset ${op} exceeds the output limit ${maxOutput}`);
    let from = op - dist;
    if (dist >= len && len >= 64) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      const end = op + len;
      while (op < end) out[op++] = out[from++]!; // may overlap (dist < len): byte by byte, forwards
    }
    if (next !== 0) {
      if (next > iend - ip || next > maxOutput - op) throw literalsError(next, ip, op, iend, maxOutput);
      for (let i = 0; i < next; i++) out[op++] = src[ip++]!;
    }
    state = next;
  }
  return finish(out, op);
}

// ---- compressor ----
//
// Writes the LZO1X stream format above (written from that description, not from liblzo). It emits only
// four kinds of instruction, all of which every LZO1X decompressor (liblzo's lzo1x_decompress_safe, the
// kernel's, ours) reads the same way:
//   - literals: a first byte 17 + n (n = 1..238) at the start of the stream, else 0000LLLL literal
//     runs of 4 or more bytes (only ever after a match with S = 0, i.e. in state 0), or 1..3
//     literals carried in the previous match's S bits;
//   - M2 (len 3..8, distance <= 2048, 2 bytes), M3 (distance <= 16384), M4 (distance <= 49151);
//   - the end marker 11 00 00.
// It never emits M1 (the state-dependent short matches), so the state only matters for literal runs.
// A stream never starts with byte 17 (that would be a match before any output), which matters because the
// kernel reads a leading 17 as the LZO-RLE version header.
//
// Match finding: hash chains over 4-byte sequences, `depth` candidates per position, with one step of
// lazy evaluation (a match is deferred by a byte when the next position has a longer one). mksquashfs's
// default lzo1x_999 searches much harder; see bench/README-codecs.md for the measured gap.

const LZO_MAX_DIST = 0xbfff; // M4: 16384 + 32767
const LZO_MIN_MATCH = 4;
const LZO_HASH_LOG = 15;
let lzoHead: Int32Array | undefined;
let lzoPrev: Int32Array | undefined;

function lzoLength(out: Uint8Array, op: number, n: number): number {
  // n > 0: zero bytes add 255 each, then a final non-zero byte.
  while (n > 255) {
    out[op++] = 0;
    n -= 255;
  }
  out[op++] = n;
  return op;
}

/** Literals src[from..to) after a match whose S bits are at out[sPos] (sPos < 0: start of stream). */
// Bounds (the `!`s on indexed reads are type-only): from <= i < to <= src.length; sPos < op.
function lzoLiterals(src: Uint8Array, out: Uint8Array, op: number, from: number, to: number, sPos: number): number {
  const t = to - from;
  if (t === 0) return op;
  if (sPos < 0 && t <= 238) {
    out[op++] = 17 + t;
  } else if (sPos >= 0 && t <= 3) {
    out[sPos]! |= t;
  } else if (t <= 18) {
    out[op++] = t - 3;
  } else {
    out[op++] = 0;
    op = lzoLength(out, op, t - 18);
  }
  if (t < 16) {
    for (let i = 0; i < t; i++) out[op + i] = src[from + i]!;
  } else {
    out.set(src.subarray(from, to), op);
  }
  return op + t;
}

/** Emits one match; returns the new output position. The S bits (0 for now) are at the returned `sPos`. */
function lzoMatch(out: Uint8Array, op: number, len: number, dist: number): number {
  if (len <= 8 && dist <= 2048) {
    const d = dist - 1;
    out[op++] = ((len - 1) << 5) | ((d & 7) << 2);
    out[op++] = d >>> 3;
    return op;
  }
  let d: number;
  if (dist <= 16384) {
    d = dist - 1;
    if (len <= 33) out[op++] = 32 | (len - 2);
    else {
      out[op++] = 32;
      op = lzoLength(out, op, len - 33);
    }
  } else {
    d = dist - 16384;
    const h = (d >>> 11) & 8;
    if (len <= 9) out[op++] = 16 | h | (len - 2);
    else {
      out[op++] = 16 | h;
      op = lzoLength(out, op, len - 9);
    }
  }
  out[op++] = (d << 2) & 0xff;
  out[op++] = (d >>> 6) & 0xff;
  return op;
}

/** LZO1X compressor (greedy with hash chains and one-step lazy matching); null when not smaller. */
// Bounds (the `!`s on indexed reads are type-only): hash reads at ip + 3 < n; head/prev indices are hashes or earlier positions.
export function lzo1xCompress(src: Uint8Array, depth = 16): Uint8Array | null {
  const n = src.length;
  if (n === 0) return null;
  const out = Buffer.allocUnsafe(n + (n >>> 4) + 64 + 3);
  let op = 0;
  let sPos = -1; // where the last match's S bits live
  let anchor = 0;
  const lastStart = n - LZO_MIN_MATCH; // a match may start at ip <= this
  if (n >= 8) {
    const head = (lzoHead ??= new Int32Array(1 << LZO_HASH_LOG));
    head.fill(-1);
    if (!lzoPrev || lzoPrev.length < n) lzoPrev = new Int32Array(Math.max(n, 131072));
    const prev = lzoPrev;
    const shift = 32 - LZO_HASH_LOG;
    let inserted = 0; // positions < inserted are in the chains
    const insertUpTo = (end: number) => {
      for (let p = inserted; p < end && p <= lastStart; p++) {
        const h = Math.imul(src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24), 0x9e3779b1) >>> shift;
        prev[p] = head[h]!;
        head[h] = p;
      }
      if (end > inserted) inserted = end;
    };
    // Longest match at ip among `depth` chain candidates; its distance goes to bestDist.
    let bestDist = 0;
    const find = (ip: number): number => {
      insertUpTo(ip);
      const h = Math.imul(src[ip]! | (src[ip + 1]! << 8) | (src[ip + 2]! << 16) | (src[ip + 3]! << 24), 0x9e3779b1) >>> shift;
      let cand = head[h]!;
      let best = 0;
      const maxLen = n - ip;
      for (let k = 0; k < depth && cand >= 0 && ip - cand <= LZO_MAX_DIST; k++, cand = prev[cand]!) {
        if (src[cand + best] !== src[ip + best] || src[cand] !== src[ip] || src[cand + 1] !== src[ip + 1]) continue;
        let l = 0;
        while (l < maxLen && src[cand + l] === src[ip + l]) l++;
        if (l > best) {
          best = l;
          bestDist = ip - cand;
          if (l === maxLen) break;
        }
      }
      return best >= LZO_MIN_MATCH ? best : 0;
    };
    let ip = 0;
    let misses = 0;
    while (ip <= lastStart) {
      let len = find(ip);
      if (len === 0) {
        ip += 1 + (misses++ >>> 5);
        continue;
      }
      misses = 0;
      let dist = bestDist;
      // Lazy step: a longer match one byte on wins, the byte becomes a literal.
      while (ip + 1 <= lastStart && len < 64) {
        const l2 = find(ip + 1);
        if (l2 <= len) break;
        ip++;
        len = l2;
        dist = bestDist;
      }
      op = lzoLiterals(src, out, op, anchor, ip, sPos);
      op = lzoMatch(out, op, len, dist);
      sPos = op - 2;
      ip += len;
      anchor = ip;
    }
  }
  op = lzoLiterals(src, out, op, anchor, n, sPos);
  out[op++] = 0x11;
  out[op++] = 0;
  out[op++] = 0;
  return op < n ? out.subarray(0, op) : null;
}

export type LzoDecoder = 'liblzo' | 'builtin';
let decoder: 'auto' | LzoDecoder = 'auto';
/** Forces one decoder (tests and benchmarks only). */
export function _setLzoDecoderForTest(which: 'auto' | LzoDecoder): void {
  decoder = which;
}
/** The decoder lzo blocks get: liblzo's safe decoder where the addon built (about 2x ours), else ours. */
export function lzoDecoderName(): LzoDecoder {
  if (decoder === 'auto') return liblzoAvailable() ? 'liblzo' : 'builtin';
  return decoder;
}

/** Decodes with the chosen decoder into `out` (its length is the limit); returns the decoded length. */
function lzoDecompressInto(src: Uint8Array, out: Uint8Array): number {
  checkArgs('lzo', src, out.length);
  if (lzoDecoderName() === 'builtin') {
    const r = lzo1xDecompress(src, out.length);
    out.set(r);
    return r.length;
  }
  const n = liblzoDecodeInto(src, out);
  if (typeof n === 'string') throw corrupt('lzo', `malformed block (liblzo: ${n}; output limit ${out.length})`);
  return n;
}

export const lzoCodec: Codec = {
  id: 3,
  name: 'lzo',
  decompress(src: Uint8Array, maxOutput: number): Uint8Array {
    if (lzoDecoderName() === 'builtin') return lzo1xDecompress(src, maxOutput);
    checkArgs('lzo', src, maxOutput);
    const out = Buffer.allocUnsafe(maxOutput);
    return finish(out, lzoDecompressInto(src, out));
  },
  decompressInto: lzoDecompressInto,
  compress: (input: Uint8Array) => lzo1xCompress(input),
};
