/**
 * Directory listings (format: "Directory Table"). A directory inode points at a byte range of the
 * directory table; that range is a sequence of runs, each a 12-byte header
 *
 *   u32 count-1 | u32 start (inode-table block of the run's inodes) | u32 base inode number
 *
 * followed by count entries of
 *
 *   u16 offset (in that inode block) | i16 inode number delta | u16 basic type | u16 name_size-1 | name
 *
 * A run holds at most 256 entries, all of whose inodes share one metadata block. Names are sorted
 * by byte value (strcmp) across the whole listing; lookups rely on it (the directory index is a
 * sample of the first name of runs), so an unsorted or duplicated name is rejected as corrupt.
 */
import { SquashfsError } from '../errors';
import { ByteCursor, i16, u16, u32 } from './bytes';
import { DIR_MAX_ENTRIES_PER_HEADER, KIND_BY_BASIC_TYPE, MAX_NAME_SIZE, METADATA_SIZE, type FileKind } from './constants';
import { InodeRef, inodeRef } from './inode';
import { encodeFields, layout } from './layout';

/** A run's header; count is stored minus one. */
export const DIR_HEADER = layout('directory header', [
  ['count', 'u32'],
  ['start', 'u32'],
  ['inodeNumber', 'u32'],
] as const);
/** An entry, followed by its name; inodeNumber is a signed delta from the header's, nameSize is stored minus one. */
export const DIR_ENTRY = layout('directory entry', [
  ['offset', 'u16'],
  ['inodeNumber', 'i16'],
  ['type', 'u16'],
  ['nameSize', 'u16'],
] as const);
const DH = DIR_HEADER.at;
const DE = DIR_ENTRY.at;

/** Writes a run header for `count` entries (1..256) whose inodes are in inode-table block `start`. */
export function encodeDirHeader(count: number, start: number, baseInodeNumber: number, b: Uint8Array, at: number): void {
  encodeFields(DIR_HEADER, { count: count - 1, start, inodeNumber: baseInodeNumber }, b, at);
}

/**
 * Writes one entry and its name at `b[at..]`; returns the bytes written. `inodeNumber` is the
 * entry's own, `baseInodeNumber` its run header's (the delta must fit in 16 signed bits).
 */
export function encodeDirEntry(offset: number, inodeNumber: number, baseInodeNumber: number, type: number, name: Uint8Array, b: Uint8Array, at: number): number {
  encodeFields(DIR_ENTRY, { offset, inodeNumber: inodeNumber - baseInodeNumber, type, nameSize: name.length - 1 }, b, at);
  b.set(name, at + DIR_ENTRY.size);
  return DIR_ENTRY.size + name.length;
}

export interface DirEntry {
  readonly name: string;
  /** The name's bytes as stored (names need not be UTF-8; extraction uses these). */
  nameBytes: Uint8Array;
  /** Basic inode type recorded in the entry (1..7). */
  type: number;
  kind: FileKind;
  inodeRef: InodeRef;
  inodeNumber: number;
}

const S = 'directory table';
const utf8 = new TextDecoder('utf-8');

/**
 * An entry as parseListing decodes it. The name is made a string only when first asked for: an
 * extraction or a walk by inode never needs it (it writes the bytes), and decoding every name of a
 * large tree was a share of the walk.
 */
class ListedEntry implements DirEntry {
  private text: string | undefined;
  readonly kind: FileKind;
  constructor(
    readonly nameBytes: Uint8Array,
    readonly type: number,
    readonly inodeRef: InodeRef,
    readonly inodeNumber: number,
  ) {
    this.kind = KIND_BY_BASIC_TYPE[type]!;
  }
  get name(): string {
    return (this.text ??= utf8.decode(this.nameBytes));
  }
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/** A directory entry name must be a single path component: non-empty, not . or .., no / or NUL. */
export function validateName(name: Uint8Array, structure: string, offset: number): void {
  if (name.length === 0) throw new SquashfsError('CORRUPT', 'empty name', structure, offset);
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) {
    throw new SquashfsError('CORRUPT', `name "${utf8.decode(name)}" is . or ..`, structure, offset);
  }
  if (name.indexOf(0x2f) >= 0) throw new SquashfsError('CORRUPT', `name "${utf8.decode(name)}" contains /`, structure, offset);
  if (name.indexOf(0) >= 0) throw new SquashfsError('CORRUPT', `name "${utf8.decode(name).replace(/\0/g, '\\0')}" contains NUL`, structure, offset);
}

export interface ListingContext {
  inodeCount: number;
}

/**
 * Decodes `size` bytes of directory listing from the cursor, calling `visit` for each entry in
 * order; `visit` returns false to stop early (lookups stop once past the wanted name). `after`
 * is the name that precedes the first entry (for sortedness when starting from an index point).
 */
export function parseListing(cur: ByteCursor, size: number, ctx: ListingContext, visit: (e: DirEntry) => boolean | void, after?: Uint8Array): void {
  let remaining = size;
  let prev = after;
  while (remaining > 0) {
    const at = cur.position();
    if (remaining < DIR_HEADER.size) throw new SquashfsError('CORRUPT', `${remaining} trailing bytes in a directory listing, less than a header`, S, at);
    const h = cur.bytes(DIR_HEADER.size);
    remaining -= DIR_HEADER.size;
    const count = u32(h, DH.count) + 1;
    if (count > DIR_MAX_ENTRIES_PER_HEADER) throw new SquashfsError('CORRUPT', `directory header count ${count} > 256`, S, at);
    const start = u32(h, DH.start);
    const base = u32(h, DH.inodeNumber);
    for (let i = 0; i < count; i++) {
      const eat = cur.position();
      if (remaining < DIR_ENTRY.size) throw new SquashfsError('CORRUPT', `directory listing ends inside an entry (${remaining} bytes left)`, S, eat);
      const e = cur.bytes(DIR_ENTRY.size);
      const offset = u16(e, DE.offset);
      const delta = i16(e, DE.inodeNumber);
      const type = u16(e, DE.type);
      const nameSize = u16(e, DE.nameSize) + 1;
      remaining -= DIR_ENTRY.size;
      if (offset >= METADATA_SIZE) throw new SquashfsError('CORRUPT', `entry inode offset ${offset} ≥ 8192`, S, eat);
      if (!(type >= 1 && type <= 7)) throw new SquashfsError('CORRUPT', `entry type ${type} (valid basic types: 1..7)`, S, eat + DE.type);
      if (nameSize > MAX_NAME_SIZE) throw new SquashfsError('CORRUPT', `name size ${nameSize} > 256`, S, eat + DE.nameSize);
      if (remaining < nameSize) throw new SquashfsError('CORRUPT', `name of ${nameSize} bytes runs past the listing (${remaining} left)`, S, eat + DIR_ENTRY.size);
      const nameBytes = Uint8Array.from(cur.bytes(nameSize));
      remaining -= nameSize;
      validateName(nameBytes, S, eat + DIR_ENTRY.size);
      const inodeNumber = base + delta;
      if (!(inodeNumber >= 1 && inodeNumber <= ctx.inodeCount))
        throw new SquashfsError('CORRUPT', `entry "${utf8.decode(nameBytes)}" has inode number ${inodeNumber} outside 1..${ctx.inodeCount}`, S, eat + DE.inodeNumber);
      if (prev) {
        const c = compareBytes(prev, nameBytes);
        if (c >= 0)
          throw new SquashfsError(
            'CORRUPT',
            c === 0 ? `duplicate name "${utf8.decode(nameBytes)}"` : `names out of order: "${utf8.decode(prev)}" before "${utf8.decode(nameBytes)}"`,
            S,
            eat + DIR_ENTRY.size,
          );
      }
      prev = nameBytes;
      if (visit(new ListedEntry(nameBytes, type, inodeRef(start, offset), inodeNumber)) === false) return;
    }
  }
}
