/**
 * Little-endian field access for the pure decoders. A ByteCursor walks a byte sequence that may be
 * longer than one buffer (an inode can straddle two metadata blocks); the reader implements it over
 * its metadata cache, tests implement it over a Uint8Array. 64-bit fields are read as BigInt and
 * converted only when they fit exactly in a JavaScript number (≤ 2^53); bitwise operators are never
 * used on values that can exceed 32 bits.
 */
import { SquashfsError } from '../errors';

export interface ByteCursor {
  /** The next n bytes as one contiguous view (valid until the cache evicts; copy to keep longer). */
  bytes(n: number): Uint8Array;
  /** Where the cursor is, for error messages (an image offset or a metadata position). */
  position(): number;
}

export function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
export function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x1000000;
}
export function i16(b: Uint8Array, at: number): number {
  const v = u16(b, at);
  return v >= 0x8000 ? v - 0x10000 : v;
}
/** A u64 as BigInt (no precision lost). */
export function u64big(b: Uint8Array, at: number): bigint {
  return BigInt(u32(b, at)) + (BigInt(u32(b, at + 4)) << 32n);
}
export const U64_ABSENT = 0xffffffffffffffffn;
/**
 * A u64 as a number, or a typed OVERFLOW error if it exceeds 2^53 (no image can be that large, and
 * accepting it would silently lose bits).
 */
export function u64(b: Uint8Array, at: number, what: string, structure: string, offset?: number): number {
  const lo = u32(b, at);
  const hi = u32(b, at + 4);
  if (hi > 0x1fffff) {
    throw new SquashfsError('OVERFLOW', `${what} = 0x${u64big(b, at).toString(16)} exceeds 2^53`, structure, offset);
  }
  return hi * 0x100000000 + lo;
}

export function writeU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}
export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}
/** Writes a u64 from a number (≤ 2^53) without bitwise truncation. */
export function writeU64(b: Uint8Array, at: number, v: number | bigint): void {
  const big = BigInt(v);
  writeU32(b, at, Number(big & 0xffffffffn));
  writeU32(b, at + 4, Number((big >> 32n) & 0xffffffffn));
}

/** A cursor over one buffer; throws OUT_OF_BOUNDS when asked for bytes past its end. */
export class BufferCursor implements ByteCursor {
  constructor(
    private readonly buf: Uint8Array,
    private at = 0,
    private readonly structure = 'buffer',
    private readonly base = 0,
  ) {}
  bytes(n: number): Uint8Array {
    if (n < 0 || this.at + n > this.buf.length) {
      throw new SquashfsError('OUT_OF_BOUNDS', `need ${n} bytes at ${this.at}, have ${this.buf.length - this.at}`, this.structure, this.base + this.at);
    }
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  position(): number {
    return this.base + this.at;
  }
}
