/**
 * LZ4 "high compression" (mksquashfs -Xhc): the same raw LZ4 block format as lz4.ts, found with a
 * slower, better search. The fast encoder probes one earlier position per byte and takes the first
 * match; this one keeps every earlier position in hash chains (all positions sharing the hash of
 * their first 4 bytes, newest first, back to the 64 KiB an offset can reach), walks a chain for the
 * longest match, and defers a match by one or two bytes when starting later finds a longer one.
 * lz4-napi (lz4_flex) has no HC mode, so this is the only HC encoder; decoding is the same as ever.
 */
import { emit } from './lz4';

const MIN_MATCH = 4;
/** Format rules the reference decoder relies on: the last 5 bytes are literals, ... */
const LAST_LITERALS = 5;
/** ... and the last match starts at least 12 bytes before the end of the block. */
const MF_LIMIT = 12;
const MAX_OFFSET = 65535;
const HASH_LOG = 16;
/** Chain links followed per search: deep enough to find nearly every long match in a 128 KiB block. */
const MAX_ATTEMPTS = 512;
/** A match this long is taken at once (further search rarely pays for its time). */
const GOOD_ENOUGH = 1024;

function read32(a: Uint8Array, i: number): number {
  return a[i]! | (a[i + 1]! << 8) | (a[i + 2]! << 16) | (a[i + 3]! << 24);
}

class HashChains {
  readonly head = new Int32Array(1 << HASH_LOG).fill(-1);
  readonly prev: Int32Array;
  private next = 0;
  /** After find(): the position the longest match starts from. */
  ref = -1;

  constructor(
    private readonly src: Uint8Array,
    /** Positions from which a 4-byte sequence can be hashed: [0, last). */
    private readonly last: number,
  ) {
    this.prev = new Int32Array(src.length);
  }

  private hash(p: number): number {
    return Math.imul(read32(this.src, p), 0x9e3779b1) >>> (32 - HASH_LOG);
  }

  /** Adds positions [next, to) to the chains. */
  private insertTo(to: number): void {
    for (let p = this.next; p < to && p < this.last; p++) {
      const h = this.hash(p);
      this.prev[p] = this.head[h]!;
      this.head[h] = p;
    }
    if (to > this.next) this.next = to;
  }

  /** Length of the longest match at ip ending at or before endLimit (0 if under 4 bytes); sets ref. */
  find(ip: number, endLimit: number): number {
    const src = this.src;
    this.insertTo(ip);
    const maxLen = endLimit - ip;
    if (maxLen < MIN_MATCH) return 0;
    let best = MIN_MATCH - 1;
    const seq = read32(src, ip);
    let cand = this.head[this.hash(ip)]!;
    for (let k = 0; k < MAX_ATTEMPTS && cand >= 0 && ip - cand <= MAX_OFFSET; k++, cand = this.prev[cand]!) {
      // The byte just past the best so far must match, or this candidate cannot be longer.
      if (src[cand + best] !== src[ip + best] || read32(src, cand) !== seq) continue;
      let l = MIN_MATCH;
      while (l < maxLen && src[cand + l] === src[ip + l]) l++;
      if (l > best) {
        best = l;
        this.ref = cand;
        if (l >= maxLen || l >= GOOD_ENOUGH) break;
      }
    }
    return best >= MIN_MATCH ? best : 0;
  }
}

/** An LZ4 block of src by the HC search; null when it would not be smaller. */
export function lz4CompressHC(src: Uint8Array): Uint8Array | null {
  const n = src.length;
  const out = Buffer.allocUnsafe(n + Math.floor(n / 255) + 16);
  let op = 0;
  let anchor = 0;
  if (n > MF_LIMIT) {
    const matchStartLimit = n - MF_LIMIT;
    const matchEndLimit = n - LAST_LITERALS;
    const mf = new HashChains(src, matchStartLimit + 1);
    let ip = 0;
    while (ip < matchStartLimit) {
      let len = mf.find(ip, matchEndLimit);
      if (len === 0) {
        ip++;
        continue;
      }
      let ref = mf.ref;
      // Lazy evaluation: a longer match one or two bytes on wins over this one.
      for (let step = 0; step < 2 && len < GOOD_ENOUGH && ip + 1 < matchStartLimit; step++) {
        const nextLen = mf.find(ip + 1, matchEndLimit);
        if (nextLen <= len) break;
        ip++;
        len = nextLen;
        ref = mf.ref;
      }
      // Extend backwards over literals that match too.
      let start = ip;
      while (start > anchor && ref > 0 && src[start - 1] === src[ref - 1]) {
        start--;
        ref--;
      }
      const end = ip + len;
      op = emit(src, out, op, anchor, start, start - ref, end - start);
      anchor = end;
      ip = end;
    }
  }
  op = emit(src, out, op, anchor, n, 0, 0);
  return op < n ? out.subarray(0, op) : null;
}
