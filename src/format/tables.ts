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
import { encodeFields, layout } from './layout';

export const FRAGMENT_ENTRY = layout('fragment entry', [
  ['start', 'u64'],
  ['sizeWord', 'u32'],
  ['unused', 'u32'],
] as const);
export const XATTR_ID_ENTRY = layout('xattr id entry', [
  ['ref', 'u64'],
  ['count', 'u32'],
  ['size', 'u32'],
] as const);
export const XATTR_TABLE_HEADER = layout('xattr id table header', [
  ['xattrTableStart', 'u64'],
  ['xattrIds', 'u32'],
  ['unused', 'u32'],
] as const);
const FE = FRAGMENT_ENTRY.at;
const XE = XATTR_ID_ENTRY.at;
const XH = XATTR_TABLE_HEADER.at;

export interface FragmentEntry {
  /** Absolute position of the fragment block. */
  start: number;
  /** Size word: on-disk length and the uncompressed bit (see data-block.ts). */
  sizeWord: number;
}

export function parseFragmentEntry(b: Uint8Array, at: number, offset: number): FragmentEntry {
  return { start: u64(b, at + FE.start, 'fragment start', 'fragment table', offset), sizeWord: u32(b, at + FE.sizeWord) };
}

export function encodeFragmentEntry(e: FragmentEntry, b: Uint8Array, at: number): void {
  encodeFields(FRAGMENT_ENTRY, { ...e, unused: 0 }, b, at);
}

export interface XattrIdEntry {
  /** Reference into the xattr key/value blocks, packed as an inode reference (inodeRef). */
  ref: number;
  count: number;
  size: number;
}

export function parseXattrIdEntry(b: Uint8Array, at: number, offset: number): XattrIdEntry {
  return { ref: u64(b, at + XE.ref, 'xattr ref', 'xattr id table', offset), count: u32(b, at + XE.count), size: u32(b, at + XE.size) };
}

export function encodeXattrIdEntry(e: XattrIdEntry, b: Uint8Array, at: number): void {
  encodeFields(XATTR_ID_ENTRY, e, b, at);
}

export interface XattrTableHeader {
  xattrTableStart: number;
  xattrIds: number;
}

export function parseXattrTableHeader(b: Uint8Array, offset: number): XattrTableHeader {
  check(b.length >= XATTR_TABLE_HEADER.size, 'CORRUPT', 'xattr id table header truncated', 'xattr id table', offset);
  return { xattrTableStart: u64(b, XH.xattrTableStart, 'xattr_table_start', 'xattr id table', offset), xattrIds: u32(b, XH.xattrIds) };
}

export function encodeXattrTableHeader(h: XattrTableHeader, b: Uint8Array, at: number): void {
  encodeFields(XATTR_TABLE_HEADER, { ...h, unused: 0 }, b, at);
}

/** Number of metadata blocks needed for `count` entries of `perBlock` each. */
export function tableBlocks(count: number, perBlock: number): number {
  return Math.ceil(count / perBlock);
}
