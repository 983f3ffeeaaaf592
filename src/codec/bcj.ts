/**
 * BCJ ("branch/call/jump") filters, both directions. The encoder rewrites the relative target of call and
 * branch instructions into an absolute address (relative + position), which makes repeated calls to one
 * function identical bytes and so compress better; decoding subtracts the position again. `start` is the
 * filter's start offset property (usually 0). Each function filters a whole, already decompressed xz block
 * in place; bytes too close to the end to hold a whole instruction are left as they are, exactly as the
 * encoder left them.
 *
 * Each filter is one function over a `sign`: +1 encodes (relative → absolute), -1 decodes. The two
 * directions must take the same decision at every byte (convert or leave), and every test a filter
 * makes reads bytes the conversion does not change (x86 tests only the displacement's top byte,
 * which stays 0x00 or 0xFF either way), so one body serves both.
 */

/** +1: encode (relative → absolute); -1: decode. */
export type BcjSign = 1 | -1;

/** x86: E8 (call) / E9 (jmp) followed by a 32-bit relative displacement. */
// Bounds (the `!`s on indexed reads are type-only): every index read is below `limit` (buf.length - 4) plus at most 4, or a MASK_TO_BYTE entry (prevMask is 0..7).
function x86(buf: Uint8Array, start: number, sign: BcjSign): void {
  // The x86 filter only converts displacements whose most significant byte is 0x00 or 0xFF (plausible
  // near targets), and it skips E8/E9 bytes that sit inside the 4 bytes after a recent E8/E9 unless the
  // pattern of those recent hits (prevMask, one bit per byte back) says it is safe. The two tables encode
  // that rule: which masks allow a conversion, and which byte of the displacement to test for a mask.
  const ALLOWED = [true, true, true, false, true, false, false, false];
  const MASK_TO_BYTE = [0, 1, 2, 2, 3, 3, 3, 3];
  const isMsb = (b: number) => b === 0x00 || b === 0xff;
  const size = buf.length;
  if (size < 5) return;
  const limit = size - 4;
  let prevPos = -1;
  let prevMask = 0;
  let i = 0;
  for (; i < limit; i++) {
    if ((buf[i]! & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[i + 4 - MASK_TO_BYTE[prevMask]!]!;
        if (!ALLOWED[prevMask] || isMsb(b)) {
          prevPos = i;
          prevMask = ((prevMask << 1) | 1) & 7;
          continue;
        }
      }
    }
    prevPos = i;
    if (!isMsb(buf[i + 4]!)) {
      prevMask = ((prevMask << 1) | 1) & 7;
      continue;
    }
    let src = (buf[i + 1]! | (buf[i + 2]! << 8) | (buf[i + 3]! << 16) | (buf[i + 4]! << 24)) >>> 0;
    let dest: number;
    for (;;) {
      dest = (src + sign * (start + i + 5)) >>> 0;
      if (prevMask === 0) break;
      const j = MASK_TO_BYTE[prevMask]! * 8;
      if (!isMsb((dest >>> (24 - j)) & 0xff)) break;
      src = (dest ^ (2 ** (32 - j) - 1)) >>> 0;
    }
    // Sign-extend bit 24 into the top byte: the result is again 0x00xxxxxx or 0xFFxxxxxx.
    dest &= 0x01ffffff;
    if (dest & 0x01000000) dest |= 0xff000000;
    buf[i + 1] = dest & 0xff;
    buf[i + 2] = (dest >>> 8) & 0xff;
    buf[i + 3] = (dest >>> 16) & 0xff;
    buf[i + 4] = (dest >>> 24) & 0xff;
    i += 4;
  }
}

/** PowerPC: big-endian "bl" (opcode 18 with AA=0, LK=1). */
// Bounds (the `!`s on indexed reads are type-only): i + 3 < buf.length by the loop condition.
function powerpc(buf: Uint8Array, start: number, sign: BcjSign): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let ins = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    if ((ins & 0xfc000003) >>> 0 !== 0x48000001) continue;
    ins = (((ins & 0x03fffffc) + sign * (start + i)) & 0x03fffffc) | 0x48000001;
    buf[i] = ins >>> 24;
    buf[i + 1] = (ins >>> 16) & 0xff;
    buf[i + 2] = (ins >>> 8) & 0xff;
    buf[i + 3] = ins & 0xff;
  }
}

/** IA-64: 128-bit bundles; the template (low 5 bits) says which of the three 41-bit slots hold branches. */
// Bounds (the `!`s on indexed reads are type-only): i + 15 < buf.length by the loop condition; slot bytes stay within the 16-byte bundle.
function ia64(buf: Uint8Array, start: number, sign: BcjSign): void {
  const BRANCH_SLOTS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 6, 6, 0, 0, 7, 7, 4, 4, 0, 0, 4, 4, 0, 0];
  for (let i = 0; i + 16 <= buf.length; i += 16) {
    const mask = BRANCH_SLOTS[buf[i]! & 0x1f]!;
    for (let slot = 0; slot < 3; slot++) {
      if (((mask >>> slot) & 1) === 0) continue;
      const bitPos = 5 + 41 * slot;
      const bytePos = i + (bitPos >>> 3);
      const bitRes = BigInt(bitPos & 7);
      // A slot spans up to 6 bytes; 48-bit arithmetic is done in BigInt (rare path, only branch slots).
      let instr = 0n;
      for (let j = 0; j < 6; j++) instr |= BigInt(buf[bytePos + j]!) << BigInt(8 * j);
      let norm = instr >> bitRes;
      if (((norm >> 37n) & 0x0fn) !== 0x05n || ((norm >> 9n) & 0x07n) !== 0n) continue;
      let addr = Number((norm >> 13n) & 0x0fffffn) | (Number((norm >> 36n) & 1n) << 20);
      addr = ((addr << 4) + sign * (start + i)) >>> 4; // 21-bit target in 16-byte units
      norm &= ~(0x8fffffn << 13n);
      norm |= BigInt(addr & 0x0fffff) << 13n;
      norm |= BigInt(addr & 0x100000) << 16n; // bit 20 of the target goes to bit 36
      instr &= (1n << bitRes) - 1n;
      instr |= norm << bitRes;
      for (let j = 0; j < 6; j++) buf[bytePos + j] = Number((instr >> BigInt(8 * j)) & 0xffn);
    }
  }
}

/** ARM: little-endian BL (condition "always", 0xEB) with a 24-bit word offset. */
// Bounds (the `!`s on indexed reads are type-only): i + 3 < buf.length by the loop condition.
function arm(buf: Uint8Array, start: number, sign: BcjSign): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    if (buf[i + 3] !== 0xeb) continue;
    const src = ((buf[i + 2]! << 16) | (buf[i + 1]! << 8) | buf[i]!) << 2;
    const dest = ((src + sign * (start + i + 8)) >>> 2) & 0xffffff;
    buf[i] = dest & 0xff;
    buf[i + 1] = (dest >>> 8) & 0xff;
    buf[i + 2] = (dest >>> 16) & 0xff;
  }
}

/** ARM Thumb: the two-halfword BL pair (F000 prefix, F800 suffix) with a 22-bit halfword offset. */
// Bounds (the `!`s on indexed reads are type-only): i + 3 < buf.length by the loop condition.
function armThumb(buf: Uint8Array, start: number, sign: BcjSign): void {
  for (let i = 0; i + 4 <= buf.length; i += 2) {
    if ((buf[i + 1]! & 0xf8) !== 0xf0 || (buf[i + 3]! & 0xf8) !== 0xf8) continue;
    const src = (((buf[i + 1]! & 7) << 19) | (buf[i]! << 11) | ((buf[i + 3]! & 7) << 8) | buf[i + 2]!) << 1;
    const dest = (src + sign * (start + i + 4)) >>> 1;
    buf[i + 1] = 0xf0 | ((dest >>> 19) & 7);
    buf[i] = (dest >>> 11) & 0xff;
    buf[i + 3] = 0xf8 | ((dest >>> 8) & 7);
    buf[i + 2] = dest & 0xff;
    i += 2;
  }
}

/** SPARC: big-endian "call" whose 30-bit displacement is a small positive or negative number. */
// Bounds (the `!`s on indexed reads are type-only): i + 3 < buf.length by the loop condition.
function sparc(buf: Uint8Array, start: number, sign: BcjSign): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let ins = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    const top = ins >>> 22;
    if (top !== 0x100 && top !== 0x1ff) continue;
    ins = (((ins << 2) >>> 0) + sign * (start + i)) >>> 2;
    ins = ((0x40000000 - (ins & 0x400000)) | 0x40000000 | (ins & 0x3fffff)) >>> 0;
    buf[i] = ins >>> 24;
    buf[i + 1] = (ins >>> 16) & 0xff;
    buf[i + 2] = (ins >>> 8) & 0xff;
    buf[i + 3] = ins & 0xff;
  }
}

/** A filter over a whole block in place; `start` is the filter's start offset. */
export type BcjFilter = (buf: Uint8Array, start: number) => void;

export const x86Decode: BcjFilter = (b, s) => x86(b, s, -1);
export const powerpcDecode: BcjFilter = (b, s) => powerpc(b, s, -1);
export const ia64Decode: BcjFilter = (b, s) => ia64(b, s, -1);
export const armDecode: BcjFilter = (b, s) => arm(b, s, -1);
export const armThumbDecode: BcjFilter = (b, s) => armThumb(b, s, -1);
export const sparcDecode: BcjFilter = (b, s) => sparc(b, s, -1);

/**
 * The filters squashfs's xz options name, in the order of their bits in the options block
 * (bit 0 x86 … bit 5 sparc), with the xz filter ids that name them in a block header, and their
 * encoders (pack -Xbcj).
 */
export const XZ_BCJ_FILTERS: ReadonlyArray<{ name: string; id: number; encode: BcjFilter }> = [
  { name: 'x86', id: 0x04, encode: (b, s) => x86(b, s, 1) },
  { name: 'powerpc', id: 0x05, encode: (b, s) => powerpc(b, s, 1) },
  { name: 'ia64', id: 0x06, encode: (b, s) => ia64(b, s, 1) },
  { name: 'arm', id: 0x07, encode: (b, s) => arm(b, s, 1) },
  { name: 'armthumb', id: 0x08, encode: (b, s) => armThumb(b, s, 1) },
  { name: 'sparc', id: 0x09, encode: (b, s) => sparc(b, s, 1) },
];

/** Delta: each byte was stored as its difference from the byte `distance` positions earlier. */
// Bounds (the `!`s on indexed reads are type-only): distance <= i < buf.length.
export function deltaDecode(buf: Uint8Array, distance: number): void {
  for (let i = distance; i < buf.length; i++) buf[i] = (buf[i]! + buf[i - distance]!) & 0xff;
}
