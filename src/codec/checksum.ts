/** Integrity checks of the xz container: CRC32 (IEEE, reflected) and CRC64 (ECMA-182, reflected). */

import * as zlib from 'node:zlib';

// Slicing-by-4 tables: T[k][n] is the CRC of byte n followed by k zero bytes, so four input bytes are
// folded in with four independent lookups instead of four dependent ones.
const CRC32_TABLES = (() => {
  const t = new Int32Array(4 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) for (let k = 1; k < 4; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n]! >>> 8) ^ t[t[(k - 1) * 256 + n]! & 0xff]!;
  return t;
})();

/** The JS CRC32 (used where node:zlib has no crc32, before Node 20.15, and for short ranges). */
// Bounds (the `!`s on indexed reads are type-only): start <= i < end <= data.length (callers pass ranges inside data); table indices are masked to 0..1023.
export function crc32Js(data: Uint8Array, start = 0, end = data.length): number {
  const t = CRC32_TABLES;
  // Kept as a signed 32-bit value throughout (only ^, & and >>> 8 on it), so V8 never sees a double.
  let c = -1;
  let i = start;
  for (const end4 = end - 3; i < end4; i += 4) {
    c ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    c = t[768 + (c & 0xff)]! ^ t[512 + ((c >>> 8) & 0xff)]! ^ t[256 + ((c >>> 16) & 0xff)]! ^ t[c >>> 24]!;
  }
  for (; i < end; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// node:zlib.crc32 (Node >= 20.15 / 22.2) is native and several times faster than any JS loop; the xz check
// of every 128 KiB block goes through it. Not in the @types/node this project builds against, hence the cast.
const nativeCrc32 = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC32 (IEEE 802.3, reflected) of data[start..end). */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  if (nativeCrc32 !== undefined && end - start >= 64) return nativeCrc32(data.subarray(start, end));
  return crc32Js(data, start, end);
}

// CRC64 works on 64-bit values, so it is kept as two 32-bit halves (hi, lo); JS bitwise operators are
// only ever applied to each half. Reflected polynomial 0xC96C5795D7870F42.
const POLY_HI = 0xc96c5795;
const POLY_LO = 0xd7870f42;
const CRC64_HI = new Uint32Array(256);
const CRC64_LO = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let hi = 0;
  let lo = n;
  for (let k = 0; k < 8; k++) {
    const bit = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (bit) {
      hi = (hi ^ POLY_HI) >>> 0;
      lo = (lo ^ POLY_LO) >>> 0;
    }
  }
  CRC64_HI[n] = hi;
  CRC64_LO[n] = lo;
}

/** Returns the CRC64 as 8 little-endian bytes, the way xz stores it. */
// Bounds (the `!`s on indexed reads are type-only): start <= i < end <= data.length; table indices are masked to 0..255.
export function crc64(data: Uint8Array, start = 0, end = data.length): Uint8Array {
  let hi = 0xffffffff;
  let lo = 0xffffffff;
  for (let i = start; i < end; i++) {
    const idx = (lo ^ data[i]!) & 0xff;
    // (crc >> 8) on the 64-bit pair, then xor the table entry.
    const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
    const nhi = hi >>> 8;
    lo = (nlo ^ CRC64_LO[idx]!) >>> 0;
    hi = (nhi ^ CRC64_HI[idx]!) >>> 0;
  }
  hi = (hi ^ 0xffffffff) >>> 0;
  lo = (lo ^ 0xffffffff) >>> 0;
  const r = new Uint8Array(8);
  new DataView(r.buffer).setUint32(0, lo, true);
  new DataView(r.buffer).setUint32(4, hi, true);
  return r;
}
