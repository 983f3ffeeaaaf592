/**
 * The LZMA symbol decoder shared by legacy lzma (id 2) and xz's LZMA2 (id 4). Written for SquashFS's
 * situation: a whole block is decoded in one call into one output buffer, so the output buffer *is* the
 * dictionary (no circular window), and every back-reference is checked against the start of the current
 * dictionary (LZMA2 can reset it mid-block).
 *
 * LZMA in one paragraph: an adaptive binary range coder decodes bits, each with its own 11-bit probability
 * that adapts after every use. Symbols are a literal (8 bits, coded with the previous byte's top lc bits
 * and lp bits of position as context; after a match the literal is coded against the byte at rep0, the
 * "matched literal"), a match (length + distance), or a repeat of one of the four most recent distances
 * (rep0..rep3, plus the 1-byte "short rep"). A 12-value state machine over the kinds of the last symbols
 * selects which probabilities are used.
 */
import { corrupt } from './util';

const CODEC = 'lzma';

// Layout of the probability array (one Uint16Array, offsets fixed; literal coders at the end), and the
// range coder's constants. A const enum, so that tsc writes the numbers into the code: a module-level
// `const` would be a context-slot load with a TDZ check at every use in the hot loop.
const enum K {
  NUM_STATES = 12,
  POS_STATES_MAX = 16, // 1 << pb, pb <= 4
  IS_MATCH = 0, // [state][posState]
  IS_REP = IS_MATCH + NUM_STATES * POS_STATES_MAX,
  IS_REP_G0 = IS_REP + NUM_STATES,
  IS_REP_G1 = IS_REP_G0 + NUM_STATES,
  IS_REP_G2 = IS_REP_G1 + NUM_STATES,
  IS_REP0_LONG = IS_REP_G2 + NUM_STATES, // [state][posState]
  POS_SLOT = IS_REP0_LONG + NUM_STATES * POS_STATES_MAX, // [min(len,3)][64]
  SPEC_POS = POS_SLOT + 4 * 64, // distance bits for slots 4..13 (114 probabilities)
  ALIGN = SPEC_POS + 114, // low 4 bits of distances with slot >= 14
  // A length coder: choice, choice2, low[16 posStates][8], mid[16][8], high[256].
  LEN_CHOICE = 0,
  LEN_CHOICE2 = 1,
  LEN_LOW = 2,
  LEN_MID = LEN_LOW + POS_STATES_MAX * 8,
  LEN_HIGH = LEN_MID + POS_STATES_MAX * 8,
  LEN_CODER_SIZE = LEN_HIGH + 256,
  MATCH_LEN = ALIGN + 16,
  REP_LEN = MATCH_LEN + LEN_CODER_SIZE,
  LITERAL = REP_LEN + LEN_CODER_SIZE,

  PROB_INIT = 1024, // probability 0.5 in 11 bits
  TOP = 1 << 24,
  END = 0xffffffff, // distance of the end marker (END_MARKER)
}

export interface LzmaProps {
  lc: number;
  lp: number;
  pb: number;
}

/** The props byte: (pb * 5 + lp) * 9 + lc. */
export function parsePropsByte(b: number, codec: string): LzmaProps {
  if (b >= 9 * 5 * 5) throw corrupt(codec, `LZMA properties byte 0x${b.toString(16)} is out of range`);
  const lc = b % 9;
  const rest = (b - lc) / 9;
  const lp = rest % 5;
  return { lc, lp, pb: (rest - lp) / 5 };
}

export const END_MARKER = 0xffffffff;

export class LzmaDecoder {
  // Range coder.
  private range = 0;
  private code = 0;
  ip = 0;
  private inEnd = 0;
  private input: Uint8Array = new Uint8Array(0);
  // Model.
  private probs: Uint16Array = new Uint16Array(0);
  private lc = 0;
  private lpMask = 0;
  private pbMask = 0;
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  /** Bytes of a match still to copy when the previous LZMA2 chunk ended inside it. */
  private pending = 0;
  // Output, which is also the dictionary.
  op = 0;
  dictStart = 0;

  constructor(
    readonly out: Uint8Array,
    private readonly codec = CODEC,
  ) {}

  setProps(p: LzmaProps): void {
    const size = K.LITERAL + (0x300 << (p.lc + p.lp));
    if (this.probs.length !== size) this.probs = new Uint16Array(size);
    this.lc = p.lc;
    this.lpMask = (1 << p.lp) - 1;
    this.pbMask = (1 << p.pb) - 1;
  }

  /** Forget everything learnt: probabilities, state machine, recent distances. */
  resetState(): void {
    this.probs.fill(K.PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    this.pending = 0;
  }

  resetDict(): void {
    this.dictStart = this.op;
    this.pending = 0;
  }

  /** Starts the range coder on input[start..end): 5 bytes, the first of which is always 0. */
  initRangeCoder(input: Uint8Array, start: number, end: number): void {
    if (end - start < 5) throw corrupt(this.codec, `range coder needs 5 bytes at input offset ${start}, have ${end - start}`);
    if (input[start] !== 0) throw corrupt(this.codec, `range coder first byte is 0x${input[start]!.toString(16)}, must be 0`);
    this.input = input;
    this.inEnd = end;
    this.range = 0xffffffff;
    this.code = ((input[start + 1]! << 24) | (input[start + 2]! << 16) | (input[start + 3]! << 8) | input[start + 4]!) >>> 0;
    this.ip = start + 5;
    if (this.code === this.range) throw corrupt(this.codec, 'range coder starts with an impossible code');
  }

  /** The encoder flushes so that a finished stream leaves code at 0. */
  rangeCoderFinished(): boolean {
    return this.code === 0;
  }

  private bit(i: number): number {
    const probs = this.probs;
    const p = probs[i]!;
    // range < 2^32 and p < 2^11, so bound < 2^32: plain double arithmetic, no 32-bit overflow.
    const bound = (this.range >>> 11) * p;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = p - (p >>> 5);
      b = 1;
    }
    if (this.range < K.TOP) {
      if (this.ip >= this.inEnd) throw corrupt(this.codec, `compressed data ends early at input offset ${this.ip}`);
      this.range = (this.range * 256) >>> 0;
      this.code = (this.code * 256 + this.input[this.ip++]!) >>> 0;
    }
    return b;
  }

  /** Bits with probability exactly 1/2 (the middle bits of large distances). Result < 2^26. */
  private direct(count: number): number {
    let r = 0;
    for (let i = 0; i < count; i++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      r = r * 2 + b;
      if (this.range < K.TOP) {
        if (this.ip >= this.inEnd) throw corrupt(this.codec, `compressed data ends early at input offset ${this.ip}`);
        this.range = (this.range * 256) >>> 0;
        this.code = (this.code * 256 + this.input[this.ip++]!) >>> 0;
      }
    }
    return r;
  }

  private tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << bits);
  }

  private reverseTree(base: number, bits: number): number {
    let m = 1;
    let r = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(base + m);
      m = (m << 1) | b;
      r |= b << i;
    }
    return r;
  }

  /** Match length minus 2: 0..271. */
  private length(base: number, posState: number): number {
    if (this.bit(base + K.LEN_CHOICE) === 0) return this.tree(base + K.LEN_LOW + posState * 8, 3);
    if (this.bit(base + K.LEN_CHOICE2) === 0) return 8 + this.tree(base + K.LEN_MID + posState * 8, 3);
    return 16 + this.tree(base + K.LEN_HIGH, 8);
  }

  /** Distance minus 1 (0 .. 2^32-1; 2^32-1 is the end marker). */
  private distance(len: number): number {
    const slot = this.tree(K.POS_SLOT + (len < 3 ? len : 3) * 64, 6);
    if (slot < 4) return slot;
    const bits = (slot >>> 1) - 1;
    // Up to 3 * 2^30 + ...: use multiplication, not shifts, above 2^31.
    let dist = (2 + (slot & 1)) * 2 ** bits;
    if (slot < 14) return dist + this.reverseTree(K.SPEC_POS + dist - slot - 1, bits);
    dist += this.direct(bits - 4) * 16;
    return dist + this.reverseTree(K.ALIGN - 1, 4);
  }

  /**
   * Decodes symbols until the output reaches `limit` or an end marker is read. Returns true on an end
   * marker. A match that runs past `limit` is cut there and its remainder kept for the next call (LZMA2
   * chunks may split a match); the caller decides whether that is allowed.
   *
   * This is the hot loop, and it is shaped for V8 rather than for reading:
   * - The range coder (range, code, input position), the output position, the state and the four recent
   *   distances live in local variables for the whole call and go back to the object only when it returns.
   *   Object fields holding values >= 2^31 are boxed doubles in V8, and a per-bit method call that reads and
   *   writes them costs more than the arithmetic itself.
   * - Every binary decision is the same few lines written out in place ("decode one bit with probs[i]"):
   *     bound = (range >>> 11) * p;  code < bound ? (bit 0: range = bound, p grows)
   *                                               : (bit 1: range -= bound, code -= bound, p shrinks)
   *     then, if range < 2^24, shift one more input byte into code ("normalise").
   *   Bit-tree decoders (literals, lengths, distance slots) are loops over that block.
   * - range and code are unsigned 32-bit values. Every expression that produces one ends in `>>> 0`, so
   *   V8 can keep them in 32-bit registers (its type for them stays "Unsigned32") and compare them as
   *   unsigned integers, instead of falling back to doubles. The arithmetic is the same modulo 2^32 as
   *   the plain-number form in bit() and direct() below, which readEndMarker() still uses.
   * - The bounds checks are all still here: input overrun at every normalisation, output capped at
   *   `limit` (<= the output buffer) on every copy, and every match distance checked against the bytes
   *   written since the dictionary start before anything is copied.
   */
  // Bounds (the `!`s on indexed reads are type-only): probs indices are sums of the const-enum offsets and tree positions inside the probability array; input reads at ip < end (checked at each normalisation); out reads at op - distance >= the dictionary start (checked before each match).
  run(limit: number): boolean {
    const out = this.out;
    const input = this.input;
    const inEnd = this.inEnd;
    const probs = this.probs;
    const lc = this.lc;
    const lpMask = this.lpMask;
    const pbMask = this.pbMask;
    const dictStart = this.dictStart;
    let range = this.range;
    let code = this.code;
    let ip = this.ip;
    let op = this.op;
    let state = this.state;
    let rep0 = this.rep0;
    let rep1 = this.rep1;
    let rep2 = this.rep2;
    let rep3 = this.rep3;
    let pending = this.pending;
    // Scratch for the inlined bit decoder: probability index, probability, bound.
    let i = 0;
    let p = 0;
    let bound = 0;

    if (pending > 0) {
      // The rest of a match that the previous LZMA2 chunk cut off (its distance was checked then).
      const n = pending < limit - op ? pending : limit - op;
      let from = op - rep0 - 1;
      for (let k = 0; k < n; k++) out[op++] = out[from++]!;
      pending -= n;
    }

    while (op < limit) {
      const pos = op - dictStart;
      const posState = pos & pbMask;

      // is_match[state][posState]: 0 = literal, 1 = some kind of match.
      i = K.IS_MATCH + (state << 4) + posState;
      p = probs[i]!;
      bound = ((range >>> 11) * p) >>> 0;
      if (code < bound) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        if (range < K.TOP) {
          if (ip >= inEnd) throw this.inputEnded(ip);
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[ip++]!) >>> 0;
        }

        // Literal: 8 bits through a 256-leaf bit tree (sym carries a leading 1), one tree of 0x300
        // probabilities per context (the previous byte's top lc bits, the position's low lp bits).
        const prev = pos > 0 ? out[op - 1]! : 0;
        const base = K.LITERAL + 0x300 * (((pos & lpMask) << lc) + (prev >>> (8 - lc)));
        let sym = 1;
        if (state >= 7) {
          // Right after a match the byte at rep0 predicts this one: while the decoded bits equal its
          // bits, a second and third set of 256 probabilities (chosen by the match byte's bit) is used;
          // from the first difference on, the plain tree. `follow` is 0x100 while they agree, else 0,
          // which folds both cases into one index: base + follow + matchBit + sym.
          let matchByte = out[op - rep0 - 1]!;
          let follow = 0x100;
          do {
            matchByte <<= 1;
            const matchBit = matchByte & follow; // the match byte's next bit, as 0x100 or 0 (0 once not following)
            i = base + follow + matchBit + sym;
            p = probs[i]!;
            bound = ((range >>> 11) * p) >>> 0;
            if (code < bound) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              sym <<= 1;
              follow &= ~matchBit; // decoded 0: still following only if the match bit was 0
            } else {
              range = (range - bound) >>> 0;
              code = (code - bound) >>> 0;
              probs[i] = p - (p >>> 5);
              sym = (sym << 1) | 1;
              follow &= matchBit; // decoded 1: still following only if the match bit was 1
            }
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
          } while (sym < 0x100);
        } else {
          do {
            i = base + sym;
            p = probs[i]!;
            bound = ((range >>> 11) * p) >>> 0;
            if (code < bound) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              sym <<= 1;
            } else {
              range = (range - bound) >>> 0;
              code = (code - bound) >>> 0;
              probs[i] = p - (p >>> 5);
              sym = (sym << 1) | 1;
            }
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
          } while (sym < 0x100);
        }
        out[op++] = sym & 0xff;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      range = (range - bound) >>> 0;
      code = (code - bound) >>> 0;
      probs[i] = p - (p >>> 5);
      if (range < K.TOP) {
        if (ip >= inEnd) throw this.inputEnded(ip);
        range = (range << 8) >>> 0;
        code = ((code << 8) | input[ip++]!) >>> 0;
      }

      // is_rep[state]: 0 = a new match (length, then distance), 1 = reuse one of rep0..rep3.
      let lenBase: number;
      let isNew: boolean;
      i = K.IS_REP + state;
      p = probs[i]!;
      bound = ((range >>> 11) * p) >>> 0;
      if (code < bound) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        if (range < K.TOP) {
          if (ip >= inEnd) throw this.inputEnded(ip);
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[ip++]!) >>> 0;
        }
        lenBase = K.MATCH_LEN;
        isNew = true;
      } else {
        range = (range - bound) >>> 0;
        code = (code - bound) >>> 0;
        probs[i] = p - (p >>> 5);
        if (range < K.TOP) {
          if (ip >= inEnd) throw this.inputEnded(ip);
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[ip++]!) >>> 0;
        }
        if (pos === 0) throw corrupt(this.codec, `repeated match at output offset ${op} with an empty dictionary`);
        lenBase = K.REP_LEN;
        isNew = false;

        // is_rep_g0[state]: 0 = rep0 (then is_rep0_long: 0 = one byte only, the "short rep").
        i = K.IS_REP_G0 + state;
        p = probs[i]!;
        bound = ((range >>> 11) * p) >>> 0;
        if (code < bound) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          if (range < K.TOP) {
            if (ip >= inEnd) throw this.inputEnded(ip);
            range = (range << 8) >>> 0;
            code = ((code << 8) | input[ip++]!) >>> 0;
          }
          i = K.IS_REP0_LONG + (state << 4) + posState;
          p = probs[i]!;
          bound = ((range >>> 11) * p) >>> 0;
          if (code < bound) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
            // Short rep: one byte from rep0 (rep0 is always one that was checked: 0 after a state reset,
            // pos > 0 here, or a distance that passed the check below).
            state = state < 7 ? 9 : 11;
            out[op] = out[op - rep0 - 1]!;
            op++;
            continue;
          }
          range = (range - bound) >>> 0;
          code = (code - bound) >>> 0;
          probs[i] = p - (p >>> 5);
          if (range < K.TOP) {
            if (ip >= inEnd) throw this.inputEnded(ip);
            range = (range << 8) >>> 0;
            code = ((code << 8) | input[ip++]!) >>> 0;
          }
        } else {
          range = (range - bound) >>> 0;
          code = (code - bound) >>> 0;
          probs[i] = p - (p >>> 5);
          if (range < K.TOP) {
            if (ip >= inEnd) throw this.inputEnded(ip);
            range = (range << 8) >>> 0;
            code = ((code << 8) | input[ip++]!) >>> 0;
          }
          // is_rep_g1[state]: 0 = rep1; else is_rep_g2[state]: 0 = rep2, 1 = rep3. The chosen one moves
          // to the front.
          let dist: number;
          i = K.IS_REP_G1 + state;
          p = probs[i]!;
          bound = ((range >>> 11) * p) >>> 0;
          if (code < bound) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
            dist = rep1;
          } else {
            range = (range - bound) >>> 0;
            code = (code - bound) >>> 0;
            probs[i] = p - (p >>> 5);
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
            i = K.IS_REP_G2 + state;
            p = probs[i]!;
            bound = ((range >>> 11) * p) >>> 0;
            if (code < bound) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              dist = rep2;
            } else {
              range = (range - bound) >>> 0;
              code = (code - bound) >>> 0;
              probs[i] = p - (p >>> 5);
              dist = rep3;
              rep3 = rep2;
            }
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
      }

      // Length minus 2 (0..271): choice 0 -> 3-bit tree low[posState] (0..7); choice2 0 -> 3-bit tree
      // mid[posState] (8..15); else the 8-bit tree high (16..271).
      let treeBase: number;
      let treeBits: number;
      let len: number;
      i = lenBase + K.LEN_CHOICE;
      p = probs[i]!;
      bound = ((range >>> 11) * p) >>> 0;
      if (code < bound) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        treeBase = lenBase + K.LEN_LOW + (posState << 3);
        treeBits = 3;
        len = 0;
      } else {
        range = (range - bound) >>> 0;
        code = (code - bound) >>> 0;
        probs[i] = p - (p >>> 5);
        if (range < K.TOP) {
          if (ip >= inEnd) throw this.inputEnded(ip);
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[ip++]!) >>> 0;
        }
        i = lenBase + K.LEN_CHOICE2;
        p = probs[i]!;
        bound = ((range >>> 11) * p) >>> 0;
        if (code < bound) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          treeBase = lenBase + K.LEN_MID + (posState << 3);
          treeBits = 3;
          len = 8;
        } else {
          range = (range - bound) >>> 0;
          code = (code - bound) >>> 0;
          probs[i] = p - (p >>> 5);
          treeBase = lenBase + K.LEN_HIGH;
          treeBits = 8;
          len = 16;
        }
      }
      if (range < K.TOP) {
        if (ip >= inEnd) throw this.inputEnded(ip);
        range = (range << 8) >>> 0;
        code = ((code << 8) | input[ip++]!) >>> 0;
      }
      let m = 1;
      for (let k = 0; k < treeBits; k++) {
        i = treeBase + m;
        p = probs[i]!;
        bound = ((range >>> 11) * p) >>> 0;
        if (code < bound) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          m <<= 1;
        } else {
          range = (range - bound) >>> 0;
          code = (code - bound) >>> 0;
          probs[i] = p - (p >>> 5);
          m = (m << 1) | 1;
        }
        if (range < K.TOP) {
          if (ip >= inEnd) throw this.inputEnded(ip);
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[ip++]!) >>> 0;
        }
      }
      len += m - (1 << treeBits);

      if (isNew) {
        state = state < 7 ? 7 : 10;
        // Distance minus 1: a 6-bit slot (tree chosen by min(len, 3)); slots 0..3 are the distance
        // itself; above, the slot gives the top two bits and the bit count, and the low bits come from
        // a reverse bit tree (slots 4..13), or from direct bits plus a 4-bit reverse tree "align".
        const slotBase = K.POS_SLOT + (len < 3 ? len : 3) * 64;
        m = 1;
        do {
          i = slotBase + m;
          p = probs[i]!;
          bound = ((range >>> 11) * p) >>> 0;
          if (code < bound) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            m <<= 1;
          } else {
            range = (range - bound) >>> 0;
            code = (code - bound) >>> 0;
            probs[i] = p - (p >>> 5);
            m = (m << 1) | 1;
          }
          if (range < K.TOP) {
            if (ip >= inEnd) throw this.inputEnded(ip);
            range = (range << 8) >>> 0;
            code = ((code << 8) | input[ip++]!) >>> 0;
          }
        } while (m < 64);
        const slot = m - 64;
        let dist: number;
        if (slot < 4) {
          dist = slot;
        } else {
          const bits = (slot >>> 1) - 1; // 1..30
          dist = ((2 | (slot & 1)) << bits) >>> 0; // up to 3 * 2^30: unsigned
          let revBase: number;
          let revBits: number;
          if (slot < 14) {
            revBase = K.SPEC_POS + dist - slot - 1;
            revBits = bits;
          } else {
            // bits - 4 bits with probability exactly 1/2: range halves, no model.
            let direct = 0;
            for (let k = bits - 4; k > 0; k--) {
              range = range >>> 1;
              if (code >= range) {
                code = (code - range) >>> 0;
                direct = (direct << 1) | 1;
              } else {
                direct <<= 1;
              }
              if (range < K.TOP) {
                if (ip >= inEnd) throw this.inputEnded(ip);
                range = (range << 8) >>> 0;
                code = ((code << 8) | input[ip++]!) >>> 0;
              }
            }
            dist = (dist + (direct << 4)) >>> 0; // direct < 2^26
            revBase = K.ALIGN - 1;
            revBits = 4;
          }
          m = 1;
          let low = 0;
          for (let k = 0; k < revBits; k++) {
            i = revBase + m;
            p = probs[i]!;
            bound = ((range >>> 11) * p) >>> 0;
            if (code < bound) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              m <<= 1;
            } else {
              range = (range - bound) >>> 0;
              code = (code - bound) >>> 0;
              probs[i] = p - (p >>> 5);
              m = (m << 1) | 1;
              low |= 1 << k;
            }
            if (range < K.TOP) {
              if (ip >= inEnd) throw this.inputEnded(ip);
              range = (range << 8) >>> 0;
              code = ((code << 8) | input[ip++]!) >>> 0;
            }
          }
          dist = (dist + low) >>> 0; // the low bits of dist were zero, so no carry: at most 2^32 - 1
        }
        if (dist === K.END) {
          this.range = range;
          this.code = code;
          this.ip = ip;
          this.op = op;
          this.state = state;
          this.rep0 = rep0;
          this.rep1 = rep1;
          this.rep2 = rep2;
          this.rep3 = rep3;
          this.pending = pending;
          return true;
        }
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        rep0 = dist;
      } else {
        state = state < 7 ? 8 : 11;
      }

      // The one place corrupt input could reach outside the output: every distance is checked against
      // the bytes decoded since the last dictionary reset before anything is copied.
      if (rep0 >= pos) throw corrupt(this.codec, `match distance ${rep0 + 1} at output offset ${op} reaches before the dictionary start (${dictStart})`);
      len += 2;
      const n = len < limit - op ? len : limit - op;
      pending = len - n;
      let from = op - rep0 - 1;
      const end = op + n;
      while (op < end) out[op++] = out[from++]!;
    }
    this.range = range;
    this.code = code;
    this.ip = ip;
    this.op = op;
    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
    this.pending = pending;
    return false;
  }

  private inputEnded(ip: number): Error {
    return corrupt(this.codec, `compressed data ends early at input offset ${ip}`);
  }

  get pendingMatch(): number {
    return this.pending;
  }

  /** After the known output size was reached: the stream may still carry an end marker (and nothing else). */
  readEndMarker(): void {
    const posState = (this.op - this.dictStart) & this.pbMask;
    if (this.bit(K.IS_MATCH + this.state * 16 + posState) === 0 || this.bit(K.IS_REP + this.state) !== 0) {
      throw corrupt(this.codec, `data continues past the declared size at output offset ${this.op}`);
    }
    const len = this.length(K.MATCH_LEN, posState);
    if (this.distance(len) !== END_MARKER) throw corrupt(this.codec, `data continues past the declared size at output offset ${this.op}`);
  }
}
