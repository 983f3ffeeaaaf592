/**
 * Directory listings, the writing side (format: "Directory Table"); the decoder is
 * src/format/directory.ts. Entries are sorted by name bytes (lookups binary-search and the index
 * relies on it) and grouped into runs under a 12-byte header. A new run starts, as in mksquashfs,
 * when the current one
 *   - already has 256 entries,
 *   - has its inodes in another inode-table block than this entry's,
 *   - cannot express this entry's inode number as a signed 16-bit delta from its base, or
 *   - would make the listing since the last index point longer than one 8 KiB metadata block;
 *     that last case also adds a directory index entry (offset of the new header, its first name),
 *     so a lookup in a large directory can skip to the right 8 KiB of listing.
 * The index entries' block positions are filled in once the listing is in the directory table.
 */
import { DIR_MAX_ENTRIES_PER_HEADER, METADATA_SIZE } from '../format/constants';
import { DIR_ENTRY, DIR_HEADER, compareBytes, encodeDirEntry, encodeDirHeader } from '../format/directory';
import type { DirIndexOut } from './encode-inode';
import type { MetadataWriter } from './metadata-writer';

export interface ListingEntry {
  name: Uint8Array;
  /** Where the entry's inode is: inode-table block (relative) and offset. */
  inodeBlock: number;
  inodeOffset: number;
  inodeNumber: number;
  /** Basic inode type 1..7. */
  basicType: number;
}

export interface Listing {
  bytes: Uint8Array;
  /** Index points: listing offset of a header and its first name (start filled in later). */
  index: Array<{ index: number; name: Uint8Array }>;
}

export function sortEntries<T extends { name: Uint8Array }>(entries: T[]): T[] {
  return entries.slice().sort((a, b) => compareBytes(a.name, b.name));
}

/** Encodes a listing of entries that are already sorted by name. */
export function buildListing(entries: ListingEntry[]): Listing {
  const size = entries.reduce((n, e) => n + DIR_ENTRY.size + e.name.length, 0) + DIR_HEADER.size * entries.length;
  const buf = new Uint8Array(size);
  const index: Listing['index'] = [];
  let p = 0;
  let countAt = -1; // position of the current header, -1 before the first
  let count = DIR_MAX_ENTRIES_PER_HEADER;
  let start = 0;
  let base = 0;
  let indexPoint = 0;
  const closeHeader = () => {
    if (countAt >= 0) encodeDirHeader(count, start, base, buf, countAt);
  };
  for (const e of entries) {
    const delta = e.inodeNumber - base;
    const overflows = countAt >= 0 && p + DIR_ENTRY.size + e.name.length - indexPoint > METADATA_SIZE;
    if (count === DIR_MAX_ENTRIES_PER_HEADER || e.inodeBlock !== start || delta > 32767 || delta < -32768 || overflows) {
      if (countAt >= 0 && overflows) {
        index.push({ index: p, name: e.name });
        indexPoint = p;
      }
      closeHeader();
      countAt = p;
      start = e.inodeBlock;
      base = e.inodeNumber;
      count = 0;
      p += DIR_HEADER.size;
    }
    p += encodeDirEntry(e.inodeOffset, e.inodeNumber, base, e.basicType, e.name, buf, p);
    count++;
  }
  closeHeader();
  return { bytes: buf.subarray(0, p), index };
}

/**
 * Appends a listing to the directory table; returns where it starts and its index with each
 * header's directory-table block.
 */
export function writeListing(table: MetadataWriter, listing: Listing): { block: number; offset: number; index: DirIndexOut[] } {
  const at = table.position();
  const streamStart = table.length;
  table.append(listing.bytes);
  const index = listing.index.map((ix) => ({ index: ix.index, start: table.blockStartOf(streamStart + ix.index), name: ix.name }));
  return { block: at.block, offset: at.offset, index };
}
