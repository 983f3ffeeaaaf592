/**
 * Mutations of seed images for fuzzing: bit flips and byte writes anywhere, integers with
 * interesting values (0, 1, boundaries of u8/u16/u32, 2^48, 2^53, 2^63, all ones) spliced into the
 * table regions where they hit structure, and truncations. A mutation list is plain JSON, so a
 * failing case can be printed, stored and replayed with applyMutations.
 */
import fc from 'fast-check';
import { Image } from '../../src/reader/image';

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'int'; at: number; width: 2 | 4 | 8; value: string } // value as a decimal BigInt string
  | { kind: 'truncate'; length: number };

export interface FuzzSeed {
  name: string;
  bytes: Uint8Array;
  /** [lo, hi) byte ranges of the superblock and tables, where integer splices go. */
  regions: Array<[number, number]>;
}

/** The superblock and every table of a seed, by reading it. */
export function seedOf(name: string, bytes: Uint8Array): FuzzSeed {
  const img = Image.fromBuffer(bytes);
  try {
    const sb = img.superblock;
    const starts = [sb.inodeTableStart, sb.directoryTableStart, sb.fragmentTableStart, sb.exportTableStart, sb.idTableStart, sb.xattrIdTableStart]
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    const regions: Array<[number, number]> = [[0, 96]];
    // Everything from the inode table to bytes_used is metadata (tables and their pointer arrays).
    regions.push([starts[0]!, sb.bytesUsed]);
    return { name, bytes, regions };
  } finally {
    img.close();
  }
}

const INTERESTING = [
  0n,
  1n,
  2n,
  3n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x10000n,
  0x2000n,
  0x1fffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  1n << 48n,
  (1n << 53n) + 1n,
  1n << 63n,
  0xffffffffffffffffn,
];

export function mutationsArb(seed: FuzzSeed): fc.Arbitrary<Mutation[]> {
  const len = seed.bytes.length;
  const anywhere = fc.nat({ max: len - 1 });
  const inRegion = fc.constantFrom(...seed.regions).chain(([lo, hi]) => fc.integer({ min: lo, max: Math.max(lo, hi - 1) }));
  const at = fc.oneof({ arbitrary: inRegion, weight: 4 }, { arbitrary: anywhere, weight: 1 });
  const value = fc.oneof(fc.constantFrom(...INTERESTING), fc.bigInt({ min: 0n, max: 0xffffffffffffffffn })).map((v) => v.toString());
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('byte' as const), at, value: fc.integer({ min: 0, max: 255 }) }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('int' as const), at, width: fc.constantFrom(2 as const, 4 as const, 8 as const), value }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('truncate' as const), length: fc.nat({ max: len }) }), weight: 1 },
  );
  return fc.array(mutation, { minLength: 1, maxLength: 6 });
}

export function applyMutations(seed: Uint8Array, muts: Mutation[]): Buffer {
  let b = Buffer.from(seed);
  for (const m of muts) {
    switch (m.kind) {
      case 'flip':
        if (m.at < b.length) b[m.at]! ^= 1 << m.bit;
        break;
      case 'byte':
        if (m.at < b.length) b[m.at] = m.value;
        break;
      case 'int': {
        let v = BigInt(m.value);
        for (let i = 0; i < m.width && m.at + i < b.length; i++) {
          b[m.at + i] = Number(v & 0xffn);
          v >>= 8n;
        }
        break;
      }
      case 'truncate':
        b = b.subarray(0, m.length);
        break;
    }
  }
  return b;
}
