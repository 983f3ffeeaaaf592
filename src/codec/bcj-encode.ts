/**
 * BCJ filters, encoding direction (the decoders are in bcj.ts). Machine code calls the same function
 * from many places with a different *relative* displacement each time; rewriting each displacement
 * into the *absolute* target (displacement + position of the instruction) turns those calls into
 * repeated byte strings that LZMA2 then finds as matches. The decoder subtracts the position again.
 *
 * Each encoder is the exact mirror of its decoder: it must take the same decision at every byte
 * (convert or leave), so every test a decoder makes reads bytes the conversion does not change (the
 * x86 filter tests only the displacement's top byte, which stays 0x00 or 0xFF either way). `start`
 * is the filter's start offset (0: squashfs never sets one). Each function rewrites a whole block in
 * place; the last bytes that cannot hold a whole instruction are left as they are, as the decoders
 * expect.
 */

export type BcjEncoder = (buf: Uint8Array, start: number) => void;

const isMsb = (b: number) => b === 0x00 || b === 0xff;

/** x86: E8 (call) / E9 (jmp) + 32-bit displacement; see x86Decode for the prevMask rule. */
export function x86Encode(buf: Uint8Array, start: number): void {
  const ALLOWED = [true, true, true, false, true, false, false, false];
  const MASK_TO_BYTE = [0, 1, 2, 2, 3, 3, 3, 3];
  if (buf.length < 5) return;
  const limit = buf.length - 4;
  let prevPos = -1;
  let prevMask = 0;
  for (let i = 0; i < limit; i++) {
    if ((buf[i]! & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0 && (!ALLOWED[prevMask] || isMsb(buf[i + 4 - MASK_TO_BYTE[prevMask]!]!))) {
        prevPos = i;
        prevMask = ((prevMask << 1) | 1) & 7;
        continue;
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
      dest = (src + (start + i + 5)) >>> 0; // relative → absolute
      if (prevMask === 0) break;
      const j = MASK_TO_BYTE[prevMask]! * 8;
      if (!isMsb((dest >>> (24 - j)) & 0xff)) break;
      src = (dest ^ (2 ** (32 - j) - 1)) >>> 0;
    }
    dest &= 0x01ffffff;
    if (dest & 0x01000000) dest |= 0xff000000;
    buf[i + 1] = dest & 0xff;
    buf[i + 2] = (dest >>> 8) & 0xff;
    buf[i + 3] = (dest >>> 16) & 0xff;
    buf[i + 4] = (dest >>> 24) & 0xff;
    i += 4;
  }
}

/** PowerPC: big-endian `bl` (opcode 18, AA=0, LK=1), 24-bit word displacement. */
export function powerpcEncode(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let ins = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    if ((ins & 0xfc000003) >>> 0 !== 0x48000001) continue;
    ins = (((ins & 0x03fffffc) + (start + i)) & 0x03fffffc) | 0x48000001;
    buf[i] = ins >>> 24;
    buf[i + 1] = (ins >>> 16) & 0xff;
    buf[i + 2] = (ins >>> 8) & 0xff;
    buf[i + 3] = ins & 0xff;
  }
}

/** IA-64: branch slots of 128-bit bundles, 21-bit target in 16-byte units. */
export function ia64Encode(buf: Uint8Array, start: number): void {
  const BRANCH_SLOTS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 6, 6, 0, 0, 7, 7, 4, 4, 0, 0, 4, 4, 0, 0];
  for (let i = 0; i + 16 <= buf.length; i += 16) {
    const mask = BRANCH_SLOTS[buf[i]! & 0x1f]!;
    for (let slot = 0; slot < 3; slot++) {
      if (((mask >>> slot) & 1) === 0) continue;
      const bitPos = 5 + 41 * slot;
      const bytePos = i + (bitPos >>> 3);
      const shift = BigInt(bitPos & 7);
      let instr = 0n;
      for (let j = 0; j < 6; j++) instr |= BigInt(buf[bytePos + j]!) << BigInt(8 * j);
      let norm = instr >> shift;
      if (((norm >> 37n) & 0x0fn) !== 0x05n || ((norm >> 9n) & 0x07n) !== 0n) continue;
      let addr = Number((norm >> 13n) & 0x0fffffn) | (Number((norm >> 36n) & 1n) << 20);
      addr = ((addr << 4) + (start + i)) >>> 4;
      norm &= ~(0x8fffffn << 13n);
      norm |= BigInt(addr & 0x0fffff) << 13n;
      norm |= BigInt(addr & 0x100000) << 16n;
      instr &= (1n << shift) - 1n;
      instr |= norm << shift;
      for (let j = 0; j < 6; j++) buf[bytePos + j] = Number((instr >> BigInt(8 * j)) & 0xffn);
    }
  }
}

/** ARM: little-endian BL (0xEB), 24-bit word offset from the instruction + 8. */
export function armEncode(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    if (buf[i + 3] !== 0xeb) continue;
    const src = ((buf[i + 2]! << 16) | (buf[i + 1]! << 8) | buf[i]!) << 2;
    const dest = ((src + (start + i + 8)) >>> 2) & 0xffffff;
    buf[i] = dest & 0xff;
    buf[i + 1] = (dest >>> 8) & 0xff;
    buf[i + 2] = (dest >>> 16) & 0xff;
  }
}

/** ARM Thumb: the F000/F800 halfword pair of BL, 22-bit halfword offset from the instruction + 4. */
export function armThumbEncode(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 2) {
    if ((buf[i + 1]! & 0xf8) !== 0xf0 || (buf[i + 3]! & 0xf8) !== 0xf8) continue;
    const src = (((buf[i + 1]! & 7) << 19) | (buf[i]! << 11) | ((buf[i + 3]! & 7) << 8) | buf[i + 2]!) << 1;
    const dest = (src + (start + i + 4)) >>> 1;
    buf[i + 1] = 0xf0 | ((dest >>> 19) & 7);
    buf[i] = (dest >>> 11) & 0xff;
    buf[i + 3] = 0xf8 | ((dest >>> 8) & 7);
    buf[i + 2] = dest & 0xff;
    i += 2;
  }
}

/** SPARC: big-endian `call` with a small 30-bit word displacement (top bits all 0 or all 1). */
export function sparcEncode(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let ins = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    const top = ins >>> 22;
    if (top !== 0x100 && top !== 0x1ff) continue;
    ins = (((ins << 2) >>> 0) + (start + i)) >>> 2;
    ins = ((0x40000000 - (ins & 0x400000)) | 0x40000000 | (ins & 0x3fffff)) >>> 0;
    buf[i] = ins >>> 24;
    buf[i + 1] = (ins >>> 16) & 0xff;
    buf[i + 2] = (ins >>> 8) & 0xff;
    buf[i + 3] = ins & 0xff;
  }
}

/**
 * The filters squashfs's xz options name, in the order of their bits in the options block
 * (bit 0 x86 … bit 5 sparc), with the xz filter ids that name them in a block header.
 */
export const XZ_BCJ_FILTERS: ReadonlyArray<{ name: string; id: number; encode: BcjEncoder }> = [
  { name: 'x86', id: 0x04, encode: x86Encode },
  { name: 'powerpc', id: 0x05, encode: powerpcEncode },
  { name: 'ia64', id: 0x06, encode: ia64Encode },
  { name: 'arm', id: 0x07, encode: armEncode },
  { name: 'armthumb', id: 0x08, encode: armThumbEncode },
  { name: 'sparc', id: 0x09, encode: sparcEncode },
];
