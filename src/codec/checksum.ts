/** Integrity checks of the xz container: CRC32 (IEEE, reflected) and CRC64 (ECMA-182, reflected). */

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC32_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
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
export function crc64(data: Uint8Array, start = 0, end = data.length): Uint8Array {
  let hi = 0xffffffff;
  let lo = 0xffffffff;
  for (let i = start; i < end; i++) {
    const idx = (lo ^ data[i]) & 0xff;
    // (crc >> 8) on the 64-bit pair, then xor the table entry.
    const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
    const nhi = hi >>> 8;
    lo = (nlo ^ CRC64_LO[idx]) >>> 0;
    hi = (nhi ^ CRC64_HI[idx]) >>> 0;
  }
  hi = (hi ^ 0xffffffff) >>> 0;
  lo = (lo ^ 0xffffffff) >>> 0;
  const r = new Uint8Array(8);
  new DataView(r.buffer).setUint32(0, lo, true);
  new DataView(r.buffer).setUint32(4, hi, true);
  return r;
}
