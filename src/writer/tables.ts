/**
 * The lookup tables and the xattr table, the writing side (format: "Fragment Table", "Export
 * Table", "Id Table", "Extended Attributes"; decoders in src/format/tables.ts and src/reader).
 *
 * A lookup table is fixed-size entries in metadata blocks followed by one u64 pointer per block;
 * the superblock points at the pointer array. The xattr table is the key/value metadata blocks, the
 * xattr id metadata blocks, then a 16-byte header (xattr_table_start, id count) and the pointers;
 * the superblock points at that header.
 */
import { writeU32, writeU64 } from '../format/bytes';
import { inodeRef } from '../format/inode';
import { FRAGMENT_ENTRY, XATTR_ID_ENTRY, XATTR_TABLE_HEADER, encodeFragmentEntry, encodeXattrIdEntry, encodeXattrTableHeader } from '../format/tables';
import { encodeXattrKey, encodeXattrOolValue, encodeXattrValue, splitXattrName } from '../format/xattr';
import { SquashfsError } from '../errors';
import { MetadataWriter, type BlockCompressor } from './metadata-writer';
import type { Xattr } from './tree';

/** A table as bytes to place at `at`, and where the superblock must point. */
export interface PlacedTable {
  bytes: Uint8Array;
  /** Position (absolute) the superblock field gets. */
  pointer: number;
}

/** Entries (already encoded, concatenated) → metadata blocks + pointer array, placed at `at`. */
export function lookupTable(entries: Uint8Array, at: number, compress: BlockCompressor): PlacedTable {
  const mw = new MetadataWriter(compress);
  mw.append(entries);
  const { bytes, blockStarts } = mw.finish();
  const ptrs = new Uint8Array(8 * blockStarts.length);
  blockStarts.forEach((s, i) => writeU64(ptrs, 8 * i, at + s));
  return { bytes: Buffer.concat([bytes, ptrs]), pointer: at + bytes.length };
}

export function encodeFragmentEntries(frags: Array<{ start: number; sizeWord: number }>): Uint8Array {
  const b = new Uint8Array(FRAGMENT_ENTRY.size * frags.length);
  frags.forEach((f, i) => encodeFragmentEntry(f, b, FRAGMENT_ENTRY.size * i));
  return b;
}

export function encodeU32s(values: number[]): Uint8Array {
  const b = new Uint8Array(4 * values.length);
  values.forEach((v, i) => writeU32(b, 4 * i, v));
  return b;
}

export function encodeU64s(values: number[]): Uint8Array {
  const b = new Uint8Array(8 * values.length);
  values.forEach((v, i) => writeU64(b, 8 * i, v));
  return b;
}

/** The id table: distinct uid/gid values in order of first use, each referred to by index. */
export class IdTable {
  readonly values: number[] = [];
  private readonly index = new Map<number, number>();
  get(id: number): number {
    let i = this.index.get(id);
    if (i === undefined) {
      if (this.values.length === 65536) throw new SquashfsError('OVERFLOW', 'more than 65536 distinct uids and gids (the id index is 16 bits)', 'id table');
      i = this.values.length;
      this.values.push(id);
      this.index.set(id, i);
    }
    return i;
  }
}

/**
 * Xattr sets, deduplicated: identical sets (same names and values) share one xattr id, as
 * mksquashfs does. A value already written once and longer than a reference is written out of line
 * (a u64 reference to its first copy) in later sets.
 */
export class XattrTableWriter {
  private readonly kv: MetadataWriter;
  private readonly ids: Array<{ ref: number; count: number; size: number }> = [];
  private readonly setIndex = new Map<string, number>();
  private readonly valueRefs = new Map<string, number>();

  constructor(private readonly compress: BlockCompressor) {
    this.kv = new MetadataWriter(compress);
  }

  get count(): number {
    return this.ids.length;
  }

  private readonly shared = new Set<string>();

  /**
   * Declares every set that will be added, so that values shared by two or more distinct sets (and
   * longer than the 8-byte reference) are stored once, out of line, as mksquashfs stores them.
   */
  prepare(sets: Xattr[][]): void {
    const seen = new Set<string>();
    const uses = new Map<string, number>();
    for (const s of sets) {
      const key = setKey(sortSet(s));
      if (s.length === 0 || seen.has(key)) continue;
      seen.add(key);
      for (const v of new Set(s.filter((x) => x.value.length > 8).map((x) => valueKey(x.value)))) uses.set(v, (uses.get(v) ?? 0) + 1);
    }
    for (const [v, n] of uses) if (n > 1) this.shared.add(v);
  }

  /** The xattr id of a set (sorted by name for reproducibility), or undefined for an empty set. */
  add(xattrs: Xattr[]): number | undefined {
    if (xattrs.length === 0) return undefined;
    const sorted = sortSet(xattrs);
    const key = setKey(sorted);
    const hit = this.setIndex.get(key);
    if (hit !== undefined) return hit;
    // Shared values first, each stored once as (u32 size, bytes) before the first set using it.
    for (const x of sorted) {
      const vkey = valueKey(x.value);
      if (!this.shared.has(vkey) || this.valueRefs.has(vkey)) continue;
      const at = this.kv.position();
      this.kv.append(encodeXattrValue(x.value));
      this.valueRefs.set(vkey, inodeRef(at.block, at.offset));
    }
    const pos = this.kv.position();
    let size = 0;
    for (const x of sorted) {
      const p = splitXattrName(x.name);
      if (!p) throw new SquashfsError('UNSUPPORTED', `xattr ${x.name}: SquashFS stores only user.*, trusted.* and security.*`, 'xattr table');
      const name = Buffer.from(p.suffix, 'utf8');
      if (name.length === 0 || x.name.length > 255) throw new SquashfsError('UNSUPPORTED', `xattr name ${JSON.stringify(x.name)} is empty or longer than 255 bytes`, 'xattr table');
      if (x.value.length > 65536) throw new SquashfsError('UNSUPPORTED', `xattr ${x.name} value of ${x.value.length} bytes (max 65536)`, 'xattr table');
      const ool = this.valueRefs.get(valueKey(x.value));
      this.kv.append(encodeXattrKey(p.id, ool !== undefined, name));
      this.kv.append(ool !== undefined ? encodeXattrOolValue(ool) : encodeXattrValue(x.value));
      // The size mksquashfs records: full name, NUL and value length, summed over the set.
      size += Buffer.byteLength(x.name) + 1 + x.value.length;
    }
    const id = this.ids.length;
    this.ids.push({ ref: inodeRef(pos.block, pos.offset), count: sorted.length, size });
    this.setIndex.set(key, id);
    return id;
  }

  /** The whole xattr table placed at `at`; the pointer is the id table header's position. */
  finish(at: number): PlacedTable {
    const kv = this.kv.finish().bytes;
    const entries = new Uint8Array(XATTR_ID_ENTRY.size * this.ids.length);
    this.ids.forEach((e, i) => encodeXattrIdEntry(e, entries, XATTR_ID_ENTRY.size * i));
    const idBlocks = new MetadataWriter(this.compress);
    idBlocks.append(entries);
    const { bytes: idBytes, blockStarts } = idBlocks.finish();
    const idStart = at + kv.length;
    const hdr = new Uint8Array(XATTR_TABLE_HEADER.size + 8 * blockStarts.length);
    encodeXattrTableHeader({ xattrTableStart: at, xattrIds: this.ids.length }, hdr, 0);
    blockStarts.forEach((s, i) => writeU64(hdr, XATTR_TABLE_HEADER.size + 8 * i, idStart + s));
    return { bytes: Buffer.concat([kv, idBytes, hdr]), pointer: idStart + idBytes.length };
  }
}

function sortSet(xs: Xattr[]): Xattr[] {
  return xs.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
function valueKey(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
}
function setKey(sorted: Xattr[]): string {
  return sorted.map((x) => `${x.name}\0${x.value.length}\0${valueKey(x.value)}`).join('\0');
}
