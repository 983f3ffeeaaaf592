/**
 * Entries of the lookup tables. Each table is a run of metadata blocks holding fixed-size entries,
 * plus an array of u64 pointers (one per metadata block) that the superblock points at:
 *
 *   fragment table  16-byte entries: u64 start | u32 size word | u32 unused      (512 per block)
 *   id table        u32 uid/gid values                                           (2048 per block)
 *   export table    u64 inode reference, indexed by inode number - 1             (1024 per block)
 *   xattr id table  16-byte entries: u64 xattr ref | u32 count | u32 size         (512 per block)
 *
 * The xattr id table's pointer array is preceded by a 16-byte header: u64 xattr_table_start (where
 * the key/value metadata blocks begin) | u32 xattr_ids | u32 unused.
 */
import { check } from '../errors';
import { u32, u64 } from './bytes';

export interface FragmentEntry {
  /** Absolute position of the fragment block. */
  start: number;
  /** Size word: on-disk length and the uncompressed bit (see data-block.ts). */
  sizeWord: number;
}

export function parseFragmentEntry(b: Uint8Array, at: number, offset: number): FragmentEntry {
  return { start: u64(b, at, 'fragment start', 'fragment table', offset), sizeWord: u32(b, at + 8) };
}

export interface XattrIdEntry {
  /** Reference into the xattr key/value blocks: block position << 16 | offset. */
  ref: number;
  count: number;
  size: number;
}

export function parseXattrIdEntry(b: Uint8Array, at: number, offset: number): XattrIdEntry {
  return { ref: u64(b, at, 'xattr ref', 'xattr id table', offset), count: u32(b, at + 8), size: u32(b, at + 12) };
}

export interface XattrTableHeader {
  xattrTableStart: number;
  xattrIds: number;
}

export function parseXattrTableHeader(b: Uint8Array, offset: number): XattrTableHeader {
  check(b.length >= 16, 'CORRUPT', 'xattr id table header truncated', 'xattr id table', offset);
  return { xattrTableStart: u64(b, 0, 'xattr_table_start', 'xattr id table', offset), xattrIds: u32(b, 8) };
}

/** Number of metadata blocks needed for `count` entries of `perBlock` each. */
export function tableBlocks(count: number, perBlock: number): number {
  return Math.ceil(count / perBlock);
}
