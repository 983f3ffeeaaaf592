/**
 * xz (id 4) compressor: one block becomes one xz stream (stream header, one xz block with a single
 * LZMA2 filter and a CRC32 check, index, footer), as mksquashfs writes it with its default options
 * (no BCJ filter, dictionary = the block size, lc 3 lp 0 pb 2); with -Xdict-size a smaller dictionary
 * and with -Xbcj one BCJ filter before LZMA2 (bcj.ts; xz-settings.ts picks among them).
 *
 * No well-kept npm package encodes xz synchronously without a native addon (the pure-JS ones only decode;
 * @napi-rs/lzma is native and its current line needs Node >= 22), so this is our own encoder, written from
 * the LZMA/LZMA2/xz format descriptions. It favours correctness over ratio:
 *   - parsing is greedy with one step of lazy evaluation (the decisions of liblzma's "fast" mode, not its
 *     optimal parser), over hash chains of 3-byte sequences, plus the four repeated distances;
 *   - LZMA2 chunks are cut before their compressed size could pass 64 KiB; a chunk that does not shrink is
 *     re-sent as an uncompressed chunk, and the model is reset (a state reset) after it;
 *   - the range coder and model follow the LZMA specification; the probability layout is private to this
 *     file (only the bit sequence matters to a decoder).
 */
import { crc32 } from './checksum';

// ---- probability model layout (private) ----
const NUM_STATES = 12;
const POS_STATES = 16;
const IS_MATCH = 0;
const IS_REP = IS_MATCH + NUM_STATES * POS_STATES;
const IS_REP_G0 = IS_REP + NUM_STATES;
const IS_REP_G1 = IS_REP_G0 + NUM_STATES;
const IS_REP_G2 = IS_REP_G1 + NUM_STATES;
const IS_REP0_LONG = IS_REP_G2 + NUM_STATES;
const DIST_SLOT = IS_REP0_LONG + NUM_STATES * POS_STATES; // [4][64]
const DIST_SPECIAL = DIST_SLOT + 4 * 64; // 128 (only 114 used)
const DIST_ALIGN = DIST_SPECIAL + 128; // 16
const LEN_CHOICE = 0;
const LEN_CHOICE2 = 1;
const LEN_LOW = 2; // [16][8]
const LEN_MID = LEN_LOW + POS_STATES * 8; // [16][8]
const LEN_HIGH = LEN_MID + POS_STATES * 8; // 256
const LEN_SIZE = LEN_HIGH + 256;
const MATCH_LEN = DIST_ALIGN + 16;
const REP_LEN = MATCH_LEN + LEN_SIZE;
const LITERAL = REP_LEN + LEN_SIZE; // 0x300 per literal context

const LC = 3;
const LP = 0;
const PB = 2;
const PB_MASK = (1 << PB) - 1;
const LZMA_PROPS = (PB * 5 + LP) * 9 + LC; // 0x5d
const MATCH_LEN_MIN = 2;
const MATCH_LEN_MAX = 273;
const NICE_LEN = 64;
const CHAIN_DEPTH = 64;
const HASH_LOG = 16;
/** Cut an LZMA2 chunk when its compressed size could come within this of the 64 KiB limit. */
const CHUNK_COMPRESSED_LIMIT = 65536 - 64;
const CHUNK_UNCOMPRESSED_LIMIT = (1 << 21) - MATCH_LEN_MAX;

class RangeEncoder {
  low = 0; // up to 2^32 + 2^32: kept in a double
  range = 0xffffffff;
  cache = 0;
  cacheSize = 1;
  out: Uint8Array;
  pos = 0;

  constructor(capacity: number) {
    this.out = new Uint8Array(capacity);
  }

  reset(): void {
    this.low = 0;
    this.range = 0xffffffff;
    this.cache = 0;
    this.cacheSize = 1;
    this.pos = 0;
  }

  /** Bytes the chunk will take once flushed. */
  pending(): number {
    return this.pos + this.cacheSize + 5;
  }

  private shiftLow(): void {
    const low = this.low;
    if (low < 0xff000000 || low >= 0x100000000) {
      const carry = low >= 0x100000000 ? 1 : 0;
      let temp = this.cache;
      do {
        this.out[this.pos++] = (temp + carry) & 0xff;
        temp = 0xff;
      } while (--this.cacheSize !== 0);
      this.cache = (low >>> 24) & 0xff; // bits 24..31 (>>> takes the value mod 2^32)
    }
    this.cacheSize++;
    this.low = ((low >>> 0) & 0x00ffffff) * 256;
  }

  bit(probs: Uint16Array, i: number, bit: number): void {
    const p = probs[i]!;
    const bound = (this.range >>> 11) * p;
    if (bit === 0) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
    } else {
      this.low += bound;
      this.range = (this.range - bound) >>> 0;
      probs[i] = p - (p >>> 5);
    }
    while (this.range < 0x1000000) {
      this.range = (this.range << 8) >>> 0;
      this.shiftLow();
    }
  }

  direct(value: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) {
      this.range >>>= 1;
      if ((value >>> i) & 1) this.low += this.range;
      while (this.range < 0x1000000) {
        this.range = (this.range << 8) >>> 0;
        this.shiftLow();
      }
    }
  }

  flush(): void {
    for (let i = 0; i < 5; i++) this.shiftLow();
  }
}

function bitTree(rc: RangeEncoder, probs: Uint16Array, base: number, bits: number, value: number): void {
  let m = 1;
  for (let i = bits - 1; i >= 0; i--) {
    const b = (value >>> i) & 1;
    rc.bit(probs, base + m, b);
    m = (m << 1) | b;
  }
}

function bitTreeReverse(rc: RangeEncoder, probs: Uint16Array, base: number, bits: number, value: number): void {
  let m = 1;
  for (let i = 0; i < bits; i++) {
    const b = value & 1;
    value >>>= 1;
    rc.bit(probs, base + m, b);
    m = (m << 1) | b;
  }
}

function encodeLength(rc: RangeEncoder, probs: Uint16Array, base: number, len: number, posState: number): void {
  let l = len - MATCH_LEN_MIN;
  if (l < 8) {
    rc.bit(probs, base + LEN_CHOICE, 0);
    bitTree(rc, probs, base + LEN_LOW + posState * 8, 3, l);
    return;
  }
  rc.bit(probs, base + LEN_CHOICE, 1);
  l -= 8;
  if (l < 8) {
    rc.bit(probs, base + LEN_CHOICE2, 0);
    bitTree(rc, probs, base + LEN_MID + posState * 8, 3, l);
    return;
  }
  rc.bit(probs, base + LEN_CHOICE2, 1);
  bitTree(rc, probs, base + LEN_HIGH, 8, l - 8);
}

function distSlot(d: number): number {
  if (d < 4) return d;
  const n = 31 - Math.clz32(d);
  return (n << 1) | ((d >>> (n - 1)) & 1);
}

/** The LZMA model and symbol writer over one input block (the dictionary is the block itself). */
// Bounds (the `!`s on indexed reads are type-only): positions are inside the block (pos < src.length), reps[] has 4 entries, probs indices are tree positions inside each array.
class LzmaModel {
  readonly probs = new Uint16Array(LITERAL + 0x300 * (1 << (LC + LP)));
  state = 0;
  reps = [0, 0, 0, 0]; // 0-based distances (distance - 1)

  constructor(readonly src: Uint8Array) {
    this.reset();
  }

  reset(): void {
    this.probs.fill(1024);
    this.state = 0;
    this.reps[0] = this.reps[1] = this.reps[2] = this.reps[3] = 0;
  }

  literal(rc: RangeEncoder, pos: number): void {
    const src = this.src;
    const probs = this.probs;
    const posState = pos & PB_MASK;
    const state = this.state;
    rc.bit(probs, IS_MATCH + state * POS_STATES + posState, 0);
    const prev = pos > 0 ? src[pos - 1]! : 0;
    const base = LITERAL + 0x300 * (((pos & ((1 << LP) - 1)) << LC) + (prev >>> (8 - LC)));
    let symbol = src[pos]! | 0x100;
    if (state < 7) {
      // Plain literal: an 8-bit tree.
      do {
        rc.bit(probs, base + (symbol >>> 8), (symbol >>> 7) & 1);
        symbol <<= 1;
      } while (symbol < 0x10000);
    } else {
      // Matched literal: while its bits equal those of the byte at rep0, use the match-bit contexts.
      let matchByte = src[pos - this.reps[0]! - 1]!;
      let offs = 0x100;
      do {
        matchByte <<= 1;
        rc.bit(probs, base + offs + (matchByte & offs) + (symbol >>> 8), (symbol >>> 7) & 1);
        symbol <<= 1;
        offs &= ~(matchByte ^ symbol);
      } while (symbol < 0x10000);
    }
    this.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
  }

  match(rc: RangeEncoder, pos: number, dist: number, len: number): void {
    const probs = this.probs;
    const posState = pos & PB_MASK;
    const state = this.state;
    rc.bit(probs, IS_MATCH + state * POS_STATES + posState, 1);
    rc.bit(probs, IS_REP + state, 0);
    encodeLength(rc, probs, MATCH_LEN, len, posState);
    const lenState = len - MATCH_LEN_MIN < 4 ? len - MATCH_LEN_MIN : 3;
    const slot = distSlot(dist);
    bitTree(rc, probs, DIST_SLOT + lenState * 64, 6, slot);
    if (slot >= 4) {
      const footer = (slot >>> 1) - 1;
      const base = (2 | (slot & 1)) << footer;
      const reduced = dist - base;
      if (slot < 14) {
        bitTreeReverse(rc, probs, DIST_SPECIAL + base - slot - 1, footer, reduced);
      } else {
        rc.direct(reduced >>> 4, footer - 4);
        bitTreeReverse(rc, probs, DIST_ALIGN, 4, reduced & 15);
      }
    }
    const r = this.reps;
    r[3] = r[2]!;
    r[2] = r[1]!;
    r[1] = r[0]!;
    r[0] = dist;
    this.state = state < 7 ? 7 : 10;
  }

  /** A repeat of reps[index] (index 0..3) for len bytes; len 1 with index 0 is the short rep. */
  rep(rc: RangeEncoder, pos: number, index: number, len: number): void {
    const probs = this.probs;
    const posState = pos & PB_MASK;
    const state = this.state;
    rc.bit(probs, IS_MATCH + state * POS_STATES + posState, 1);
    rc.bit(probs, IS_REP + state, 1);
    const r = this.reps;
    if (index === 0) {
      rc.bit(probs, IS_REP_G0 + state, 0);
      rc.bit(probs, IS_REP0_LONG + state * POS_STATES + posState, len === 1 ? 0 : 1);
      if (len === 1) {
        this.state = state < 7 ? 9 : 11;
        return;
      }
    } else {
      rc.bit(probs, IS_REP_G0 + state, 1);
      const d = r[index]!;
      if (index === 1) {
        rc.bit(probs, IS_REP_G1 + state, 0);
      } else {
        rc.bit(probs, IS_REP_G1 + state, 1);
        rc.bit(probs, IS_REP_G2 + state, index === 2 ? 0 : 1);
        if (index === 3) r[3] = r[2]!;
        r[2] = r[1]!;
      }
      r[1] = r[0]!;
      r[0] = d;
    }
    encodeLength(rc, probs, REP_LEN, len, posState);
    this.state = state < 7 ? 8 : 11;
  }
}

/** Hash chains over 3-byte sequences of the whole block. */
// Bounds (the `!`s on indexed reads are type-only): positions p + 2 < src.length; head indices are hashes of HASH_LOG bits, prev indices earlier positions.
class MatchFinder {
  private readonly head = new Int32Array(1 << HASH_LOG).fill(-1);
  private readonly prev: Int32Array;
  private inserted = 0;
  dist = 0; // 0-based distance of the last find()

  constructor(
    private readonly src: Uint8Array,
    /** Matches reach back at most this far (the dictionary size the block header declares). */
    private readonly maxDistance = Infinity,
  ) {
    this.prev = new Int32Array(src.length);
  }

  private hash(p: number): number {
    const s = this.src;
    return Math.imul(s[p]! | (s[p + 1]! << 8) | (s[p + 2]! << 16), 0x9e3779b1) >>> (32 - HASH_LOG);
  }

  /** Puts positions up to (not including) end into the chains. */
  insertTo(end: number): void {
    const last = this.src.length - 3;
    for (let p = this.inserted; p < end; p++) {
      if (p > last) break;
      const h = this.hash(p);
      this.prev[p] = this.head[h]!;
      this.head[h] = p;
    }
    if (end > this.inserted) this.inserted = end;
  }

  /** Longest match (>= 3 bytes, else 0) starting at pos, nearest first among equals. */
  find(pos: number): number {
    const src = this.src;
    const avail = Math.min(MATCH_LEN_MAX, src.length - pos);
    if (avail < 3) return 0;
    this.insertTo(pos);
    let cand = this.head[this.hash(pos)]!;
    let best = 2;
    const lowest = pos - this.maxDistance;
    for (let k = 0; k < CHAIN_DEPTH && cand >= lowest && cand >= 0; k++, cand = this.prev[cand]!) {
      if (src[cand + best] !== src[pos + best] || src[cand] !== src[pos]) continue;
      let l = 0;
      while (l < avail && src[cand + l] === src[pos + l]) l++;
      if (l > best) {
        best = l;
        this.dist = pos - cand - 1;
        if (l >= NICE_LEN) break;
      }
    }
    return best >= 3 ? best : 0;
  }
}

function repLength(src: Uint8Array, pos: number, dist: number): number {
  const from = pos - dist - 1;
  if (from < 0) return 0;
  const avail = Math.min(MATCH_LEN_MAX, src.length - pos);
  let l = 0;
  while (l < avail && src[from + l] === src[pos + l]) l++;
  return l;
}

/** The LZMA2 data (chunks and the end byte) for src. */
// Bounds (the `!`s on indexed reads are type-only): positions inside src.
export function lzma2Encode(src: Uint8Array, dictSize = Infinity): Uint8Array {
  const n = src.length;
  const model = new LzmaModel(src);
  const mf = new MatchFinder(src, dictSize);
  const rc = new RangeEncoder(65536 + 64);
  const parts: Uint8Array[] = [];
  let outSize = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    outSize += b.length;
  };
  let pos = 0;
  let first = true; // the next chunk is the first: it must reset the dictionary
  let needProps = true;
  let needStateReset = false;

  while (pos < n) {
    const chunkStart = pos;
    rc.reset();
    // ---- one chunk: symbols until the input ends or the chunk would grow past its limits ----
    while (pos < n && rc.pending() < CHUNK_COMPRESSED_LIMIT && pos - chunkStart < CHUNK_UNCOMPRESSED_LIMIT) {
      // Repeated distances.
      let repBest = 0;
      let repIndex = 0;
      for (let i = 0; i < 4; i++) {
        const l = repLength(src, pos, model.reps[i]!);
        if (l > repBest) {
          repBest = l;
          repIndex = i;
        }
      }
      let mainLen = mf.find(pos);
      let mainDist = mf.dist;
      if (repBest >= NICE_LEN || (repBest >= 2 && (repBest + 1 >= mainLen || (repBest + 2 >= mainLen && mainDist >= 1 << 9) || (repBest + 3 >= mainLen && mainDist >= 1 << 15)))) {
        model.rep(rc, pos, repIndex, repBest);
        pos += repBest;
        continue;
      }
      // A far short match costs about as much as its bytes as literals (measured: dropping these helps).
      if ((mainLen === 3 && mainDist >= 1 << 11) || (mainLen === 4 && mainDist >= 1 << 16)) mainLen = 0;
      if (mainLen === 0) {
        if (pos > model.reps[0]! && src[pos] === src[pos - model.reps[0]! - 1] && model.state >= 7) model.rep(rc, pos, 0, 1);
        else model.literal(rc, pos);
        pos++;
        continue;
      }
      if (mainLen < NICE_LEN && pos + 1 < n) {
        // Lazy step: a clearly better match one byte on makes this byte a literal.
        const nextLen = mf.find(pos + 1);
        const nextDist = mf.dist;
        if ((nextLen >= mainLen && nextDist < mainDist) || nextLen > mainLen + 1 || (nextLen === mainLen + 1 && nextDist >>> 7 <= mainDist)) {
          model.literal(rc, pos);
          pos++;
          continue;
        }
        mf.dist = mainDist;
      }
      model.match(rc, pos, mainDist, mainLen);
      pos += mainLen;
    }
    rc.flush();
    const unc = pos - chunkStart;
    const comp = rc.pos;
    if (comp >= unc) {
      // Not smaller: send the bytes as they are (64 KiB per uncompressed chunk), then start the model anew.
      for (let p = chunkStart; p < pos; p += 65536) {
        const len = Math.min(65536, pos - p);
        const h = new Uint8Array(3);
        h[0] = first ? 1 : 2;
        h[1] = (len - 1) >>> 8;
        h[2] = (len - 1) & 0xff;
        push(h);
        push(src.subarray(p, p + len));
        first = false;
      }
      model.reset();
      needStateReset = true;
      continue;
    }
    const h = new Uint8Array(6);
    const control = first ? 0xe0 : needProps ? 0xc0 : needStateReset ? 0xa0 : 0x80;
    h[0] = control | ((unc - 1) >>> 16);
    h[1] = ((unc - 1) >>> 8) & 0xff;
    h[2] = (unc - 1) & 0xff;
    h[3] = (comp - 1) >>> 8;
    h[4] = (comp - 1) & 0xff;
    h[5] = LZMA_PROPS;
    push(control >= 0xc0 ? h : h.subarray(0, 5));
    push(rc.out.slice(0, comp));
    first = false;
    needProps = false;
    needStateReset = false;
  }
  push(new Uint8Array([0])); // end of LZMA2 data
  const all = new Uint8Array(outSize);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

function varint(v: number, out: number[]): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function u32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** The LZMA2 dictionary size byte for the smallest 2^k (>= 4 KiB) that holds n bytes. */
function dictSizeByte(n: number): number {
  let k = 12;
  while (k < 30 && 2 ** k < n) k++;
  return 2 * (k - 12);
}

/** The LZMA2 dictionary size byte for a size of 2^n or 2^n + 2^(n-1) (xz-settings.ts checks that). */
function exactDictSizeByte(size: number): number {
  for (let b = 0; b < 40; b++) if ((2 | (b & 1)) * 2 ** ((b >>> 1) + 11) === size) return b;
  throw new Error(`dictionary size ${size} cannot be stored in an xz block header`);
}

/** Settings beyond mksquashfs's defaults (-Xdict-size, one -Xbcj filter). */
export interface XzBlockSettings {
  /** Matches reach back at most this far, and the block header says so; default: the block itself. */
  dictSize?: number;
  /** A BCJ filter before LZMA2: its xz filter id and its encoder. */
  bcj?: { id: number; encode: (buf: Uint8Array, start: number) => void };
}

/** One whole xz stream (CRC32 check) holding src; null when it would not be smaller than src. */
export function xzCompress(src: Uint8Array, settings: XzBlockSettings = {}): Uint8Array | null {
  if (src.length === 0) return null;
  let filtered = src;
  if (settings.bcj) {
    filtered = new Uint8Array(src); // a copy (Buffer.prototype.slice would share the bytes)
    settings.bcj.encode(filtered, 0);
  }
  const data = lzma2Encode(filtered, settings.dictSize);
  const STREAM_FLAGS = [0x00, 0x01]; // check type 1: CRC32
  // Stream header.
  const header = new Uint8Array(12);
  header.set([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...STREAM_FLAGS]);
  u32le(header, 8, crc32(header, 6, 8));
  // Block header: size, flags (one filter, no sizes), filter LZMA2 (id 0x21, 1 property byte), padding, CRC32.
  const bh = new Uint8Array(12);
  const dictByte = settings.dictSize !== undefined ? exactDictSizeByte(settings.dictSize) : dictSizeByte(src.length);
  // With a BCJ filter: two filters (flags 0x01), the BCJ one first (its id, no properties).
  bh.set(settings.bcj ? [12 / 4 - 1, 0x01, settings.bcj.id, 0x00, 0x21, 0x01, dictByte] : [12 / 4 - 1, 0x00, 0x21, 0x01, dictByte]);
  u32le(bh, 8, crc32(bh, 0, 8));
  const unpadded = bh.length + data.length + 4;
  const blockPad = (4 - ((bh.length + data.length) % 4)) % 4;
  const check = new Uint8Array(4);
  u32le(check, 0, crc32(src));
  // Index: indicator, record count, (unpadded size, uncompressed size), padding, CRC32.
  const idx: number[] = [0x00];
  varint(1, idx);
  varint(unpadded, idx);
  varint(src.length, idx);
  while (idx.length % 4 !== 0) idx.push(0);
  const index = new Uint8Array(idx.length + 4);
  index.set(idx);
  u32le(index, idx.length, crc32(index, 0, idx.length));
  // Stream footer: CRC32 of (backward size, flags), backward size, flags, magic.
  const footer = new Uint8Array(12);
  u32le(footer, 4, index.length / 4 - 1);
  footer.set(STREAM_FLAGS, 8);
  footer[10] = 0x59;
  footer[11] = 0x5a;
  u32le(footer, 0, crc32(footer, 4, 10));

  const total = header.length + bh.length + data.length + blockPad + check.length + index.length + footer.length;
  if (total >= src.length) return null;
  const out = new Uint8Array(total);
  let o = 0;
  for (const part of [header, bh, data, new Uint8Array(blockPad), check, index, footer]) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}
