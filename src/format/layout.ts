/**
 * One definition per on-disk structure. A layout lists a structure's fields in disk order with
 * their widths, under the names the format description gives them; offsets follow from the order
 * (every SquashFS 4.0 structure is packed, little-endian, without padding). Each structure's
 * encoder and decoder sit side by side in its src/format module and address fields through the
 * layout's `at` offsets, so the reader, the writer and the test image crafter cannot disagree
 * about where a field is.
 *
 * The encoders are table-driven (`encodeFields`). The hot decoders (inodes, directory entries) stay
 * hand-written, one object literal per kind (see inode.ts for why), but read each field at
 * `layout.at.field`; test/format-layout.test.ts round-trips every field of every layout through
 * encode → decode and checks that each field occupies exactly the bytes the layout gives it.
 *
 * Fields whose stored value is biased (a count or name size stored minus one, a directory size
 * stored plus three) are stored raw here; the structure's own encode/decode functions apply the
 * bias, in one place each.
 */
import { u16, u32, u64big, writeU16, writeU32, writeU64, U64_ABSENT } from './bytes';

/** u16, u32 and u64 unsigned; i16 is the signed inode-number delta of a directory entry. */
export type FieldType = 'u16' | 'i16' | 'u32' | 'u64';

export interface Field {
  readonly name: string;
  readonly type: FieldType;
  readonly at: number;
  readonly width: 2 | 4 | 8;
}

export interface Layout<K extends string> {
  /** The structure's name as error messages and the format description call it. */
  readonly structure: string;
  /** Bytes of the fixed part (variable parts, e.g. names, follow it). */
  readonly size: number;
  readonly fields: readonly Field[];
  /** Offset of each field from the start of the structure. */
  readonly at: { readonly [k in K]: number };
}

const WIDTH: Record<FieldType, 2 | 4 | 8> = { u16: 2, i16: 2, u32: 4, u64: 8 };

/** Builds a layout from its fields in disk order. */
export function layout<K extends string>(structure: string, spec: ReadonlyArray<readonly [K, FieldType]>): Layout<K> {
  const fields: Field[] = [];
  const at = {} as Record<K, number>;
  let size = 0;
  for (const [name, type] of spec) {
    if (name in at) throw new Error(`layout ${structure}: field ${name} twice`);
    fields.push(Object.freeze({ name, type, at: size, width: WIDTH[type] }));
    at[name] = size;
    size += WIDTH[type];
  }
  return Object.freeze({ structure, size, fields: Object.freeze(fields), at: Object.freeze(at) });
}

/** A value per field: numbers (u64 up to 2^53), a bigint for any u64, undefined for an absent u64. */
export type FieldValues<K extends string> = { readonly [k in K]: number | bigint | undefined };

/**
 * Writes every field of `l` from `v` at `b[off..]`. An undefined u64 is written as the "absent"
 * marker 0xFFFF_FFFF_FFFF_FFFF; an undefined narrower field is a programming error.
 */
export function encodeFields<K extends string>(l: Layout<K>, v: FieldValues<K>, b: Uint8Array, off = 0): void {
  for (const f of l.fields) {
    const x = v[f.name as K];
    const at = off + f.at;
    if (f.type === 'u64') {
      writeU64(b, at, x === undefined ? U64_ABSENT : x);
      continue;
    }
    if (x === undefined) throw new Error(`${l.structure}: field ${f.name} has no value`);
    const n = Number(x);
    if (f.type === 'u32') writeU32(b, at, n);
    else writeU16(b, at, f.type === 'i16' ? n & 0xffff : n);
  }
}

/**
 * Reads every field of `l` at `b[off..]` without validation: the generic decoder, used where speed
 * does not matter (tests, crafting images) and to check the hand-written decoders. u64 fields come
 * back as bigint (no precision lost, the absent marker visible).
 */
export function decodeFields<K extends string>(l: Layout<K>, b: Uint8Array, off = 0): { [k in K]: number | bigint } {
  const out = {} as { [k in K]: number | bigint };
  for (const f of l.fields) {
    const at = off + f.at;
    out[f.name as K] = f.type === 'u64' ? u64big(b, at) : f.type === 'u32' ? u32(b, at) : f.type === 'u16' ? u16(b, at) : (u16(b, at) << 16) >> 16;
  }
  return out;
}
