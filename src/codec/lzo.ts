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
export function lzo1xDecompress(src: Uint8Array, maxOutput: number): Buffer {
  checkArgs('lzo', src, maxOutput);
  const out = Buffer.allocUnsafe(maxOutput);
  const iend = src.length;
  let ip = 0;
  let op = 0;
  let state = 0;

  if (src[0] > 17) {
    const n = src[0] - 17;
    ip = 1;
    if (n > iend - ip || n > maxOutput - op) throw literalsError(n, ip, op, iend, maxOutput);
    for (let i = 0; i < n; i++) out[op++] = src[ip++];
    state = n < 4 ? n : 4;
  }
  for (;;) {
    if (ip >= iend) throw truncated('instruction (no end-of-stream marker)', ip, iend);
    const inst = src[ip++];
    let len: number;
    let dist: number;
    let next: number; // literals that follow this match: the S bits
    if (inst >= 64) {
      if (ip >= iend) throw truncated('distance', ip, iend);
      len = (inst >>> 5) + 1; // 01L..... -> 3..4, 1LL..... -> 5..8
      dist = (src[ip++] << 3) + ((inst >>> 2) & 7) + 1;
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
        len += src[ip - 1];
      }
      len += 2;
      if (iend - ip < 2) throw truncated('distance', ip, iend);
      const le = src[ip] | (src[ip + 1] << 8);
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
        n += src[ip - 1];
      }
      n += 3;
      if (n > iend - ip || n > maxOutput - op) throw literalsError(n, ip, op, iend, maxOutput);
      if (n < 64) {
        for (let i = 0; i < n; i++) out[op + i] = src[ip + i];
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
      dist = (src[ip++] << 2) + (inst >>> 2) + (far ? 2049 : 1);
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
      while (op < end) out[op++] = out[from++]; // may overlap (dist < len): byte by byte, forwards
    }
    if (next !== 0) {
      if (next > iend - ip || next > maxOutput - op) throw literalsError(next, ip, op, iend, maxOutput);
      for (let i = 0; i < next; i++) out[op++] = src[ip++];
    }
    state = next;
  }
  return finish(out, op);
}

export const lzoCodec: Codec = {
  id: 3,
  name: 'lzo',
  decompress: lzo1xDecompress,
};
