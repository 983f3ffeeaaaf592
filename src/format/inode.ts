/**
 * Inodes (format: "Inode Table"). Every inode starts with a 16-byte header
 *
 *   u16 type | u16 permissions | u16 uid index | u16 gid index | u32 mtime | u32 inode number
 *
 * followed by a body that depends on the type. Types 1..7 are the basic forms (32-bit sizes, no
 * xattrs); 8..14 the extended forms of the same kinds. Inodes are packed back to back in the inode
 * table's metadata blocks and may straddle a block boundary, so the decoder reads through a
 * ByteCursor rather than a single buffer.
 *
 * Three identifiers must not be confused (one comment for the hardest spot of the format):
 *  - an inode *reference* (InodeRef) says where the inode is stored: the position of its metadata
 *    block relative to the inode table start, shifted left 16 bits, plus the byte offset inside the
 *    decompressed block. 48 bits in all, so it is kept as a number and split with division, never
 *    with bitwise operators.
 *  - an inode *number* (1..inode_count) is what stat() shows; the export table maps it back to a
 *    reference. Hard links share one inode, so one number.
 *  - a FUSE node id or handle is the FUSE layer's business and appears nowhere in the format code.
 */
import { SquashfsError } from '../errors';
import { ByteCursor, u16, u32, u64 } from './bytes';
import { InodeType, KIND_BY_BASIC_TYPE, MAX_NAME_SIZE, MAX_SYMLINK_SIZE, METADATA_SIZE, NO_INDEX, type FileKind } from './constants';

export type InodeRef = number & { readonly __brand: 'InodeRef' };

export function makeInodeRef(blockPosition: number, offset: number): InodeRef {
  return (blockPosition * 0x10000 + offset) as InodeRef;
}
/** Position of the inode's metadata block, relative to the inode table start. */
export function refBlock(ref: InodeRef): number {
  return Math.floor(ref / 0x10000);
}
/** Byte offset of the inode inside its decompressed metadata block. */
export function refOffset(ref: InodeRef): number {
  return ref % 0x10000;
}

interface InodeCommon {
  ref: InodeRef;
  /** The on-disk type, 1..14. */
  type: number;
  kind: FileKind;
  /** The 12 permission bits (rwx for owner/group/other, setuid, setgid, sticky). */
  permissions: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  inodeNumber: number;
  nlink: number;
  /** Index into the xattr id table, or NO_INDEX. Only extended inodes can carry xattrs. */
  xattrIndex: number;
}

/** One entry of an extended directory's index: where each run of directory headers starts. */
export interface DirIndexEntry {
  /** Byte offset of the header from the start of the directory's listing. */
  index: number;
  /** Metadata block of that header, relative to the directory table start. */
  start: number;
  /** The first name under that header. */
  name: Uint8Array;
}

export interface DirInode extends InodeCommon {
  kind: 'dir';
  /** Metadata block holding the listing, relative to the directory table start. */
  dirBlock: number;
  /** Byte offset of the listing inside that decompressed block. */
  dirOffset: number;
  /** Bytes of listing (the on-disk file_size minus the 3 bytes mksquashfs adds for "." and ".."). */
  listingSize: number;
  parentInode: number;
  index: DirIndexEntry[];
}

export interface FileInode extends InodeCommon {
  kind: 'file';
  /** Absolute position (from the start of the SquashFS) of the first data block. */
  blocksStart: number;
  fileSize: number;
  /** Bytes of the file that are holes (extended inodes only; informational). */
  sparse: number;
  /** Index into the fragment table of the block holding the tail, or NO_INDEX. */
  fragIndex: number;
  /** Byte offset of the tail in the decompressed fragment block. */
  fragOffset: number;
  /** One size word per full block (see data-block.ts): on-disk length plus the uncompressed bit. */
  blockSizes: Uint32Array;
}

export interface SymlinkInode extends InodeCommon {
  kind: 'symlink';
  target: Uint8Array;
}

export interface DeviceInode extends InodeCommon {
  kind: 'blockdev' | 'chardev';
  /** The device number as the kernel encodes it (new_encode_dev). */
  rdev: number;
  major: number;
  minor: number;
}

export interface IpcInode extends InodeCommon {
  kind: 'fifo' | 'socket';
}

export type Inode = DirInode | FileInode | SymlinkInode | DeviceInode | IpcInode;

/** What the inode decoder needs to know about the image to reject impossible values. */
export interface InodeContext {
  blockSize: number;
  inodeCount: number;
  bytesUsed: number;
  /** Largest block list (in bytes) that could possibly fit in the decompressed inode table. */
  maxBlockListBytes: number;
}

const S = 'inode table';

export function decodeDevice(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

export function encodeDevice(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

/**
 * Decodes the inode at `ref`; the cursor is positioned at its first byte.
 *
 * Each kind's object is written out as one literal with its fields always in the same order (no
 * spreads of a shared header): V8 then gives every inode of a kind the same hidden class, and a
 * walk over thousands of inodes (extraction, a store scan) stays on its fast paths.
 */
export function parseInode(cur: ByteCursor, ref: InodeRef, ctx: InodeContext): Inode {
  const at = cur.position();
  const h = cur.bytes(16);
  const type = u16(h, 0);
  if (!(type >= 1 && type <= 14)) throw new SquashfsError('CORRUPT', `inode type ${type} (valid: 1..14)`, S, at);
  const inodeNumber = u32(h, 12);
  if (!(inodeNumber >= 1 && inodeNumber <= ctx.inodeCount)) throw new SquashfsError('CORRUPT', `inode number ${inodeNumber} outside 1..${ctx.inodeCount}`, S, at + 12);
  const permissions = u16(h, 2) & 0o7777;
  const uidIndex = u16(h, 4);
  const gidIndex = u16(h, 6);
  const mtime = u32(h, 8);

  switch (type) {
    case InodeType.DIR: {
      const b = cur.bytes(16);
      const fileSize = u16(b, 8);
      if (fileSize < 3) throw new SquashfsError('CORRUPT', `directory file_size ${fileSize} < 3`, S, at + 24);
      const dirOffset = u16(b, 10);
      if (dirOffset >= METADATA_SIZE) throw new SquashfsError('CORRUPT', `directory block offset ${dirOffset} ≥ 8192`, S, at + 26);
      return {
        ref,
        type,
        kind: 'dir',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: u32(b, 4),
        xattrIndex: NO_INDEX,
        dirBlock: u32(b, 0),
        dirOffset,
        listingSize: fileSize - 3,
        parentInode: u32(b, 12),
        index: NO_DIR_INDEX,
      };
    }
    case InodeType.LDIR: {
      const b = cur.bytes(24);
      const fileSize = u32(b, 4);
      if (fileSize < 3) throw new SquashfsError('CORRUPT', `directory file_size ${fileSize} < 3`, S, at + 20);
      const indexCount = u16(b, 16);
      const dirOffset = u16(b, 18);
      if (dirOffset >= METADATA_SIZE) throw new SquashfsError('CORRUPT', `directory block offset ${dirOffset} ≥ 8192`, S, at + 34);
      // Each index entry is at least 13 bytes and describes at least one 8 KiB metadata block of
      // listing, so a count larger than the listing allows is corrupt (and must not drive a loop).
      if (!(indexCount <= Math.ceil(fileSize / 12) + 1)) throw new SquashfsError('CORRUPT', `directory index count ${indexCount} too large for a ${fileSize}-byte listing`, S, at + 32);
      const index: DirIndexEntry[] = indexCount === 0 ? NO_DIR_INDEX : [];
      for (let i = 0; i < indexCount; i++) {
        const e = cur.bytes(12);
        const nameSize = u32(e, 8) + 1;
        if (nameSize > MAX_NAME_SIZE) throw new SquashfsError('CORRUPT', `directory index name size ${nameSize} > 256`, S, cur.position() - 4);
        index.push({ index: u32(e, 0), start: u32(e, 4), name: Uint8Array.from(cur.bytes(nameSize)) });
      }
      return {
        ref,
        type,
        kind: 'dir',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: u32(b, 0),
        xattrIndex: u32(b, 20),
        dirBlock: u32(b, 8),
        dirOffset,
        listingSize: fileSize - 3,
        parentInode: u32(b, 12),
        index,
      };
    }
    case InodeType.FILE: {
      const b = cur.bytes(16);
      const fragIndex = u32(b, 4);
      const fileSize = u32(b, 12);
      return {
        ref,
        type,
        kind: 'file',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: 1,
        xattrIndex: NO_INDEX,
        blocksStart: u32(b, 0),
        fileSize,
        sparse: 0,
        fragIndex,
        fragOffset: u32(b, 8),
        blockSizes: readBlockList(cur, fileSize, fragIndex, ctx, at),
      };
    }
    case InodeType.LFILE: {
      // u64 blocks_start | u64 file_size | u64 sparse | u32 nlink | u32 frag_index | u32 block_offset | u32 xattr
      const b = cur.bytes(40);
      const fileSize = u64(b, 8, 'file_size', S, at + 24);
      const fragIndex = u32(b, 28);
      return {
        ref,
        type,
        kind: 'file',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: u32(b, 24),
        xattrIndex: u32(b, 36),
        blocksStart: u64(b, 0, 'blocks_start', S, at + 16),
        fileSize,
        sparse: u64(b, 16, 'sparse', S, at + 32),
        fragIndex,
        fragOffset: u32(b, 32),
        blockSizes: readBlockList(cur, fileSize, fragIndex, ctx, at),
      };
    }
    case InodeType.SYMLINK:
    case InodeType.LSYMLINK: {
      const b = cur.bytes(8);
      const size = u32(b, 4);
      if (!(size >= 1 && size <= MAX_SYMLINK_SIZE)) throw new SquashfsError('CORRUPT', `symlink target size ${size} (valid: 1..${MAX_SYMLINK_SIZE})`, S, at + 20);
      const target = Uint8Array.from(cur.bytes(size));
      const xattrIndex = type === InodeType.LSYMLINK ? u32(cur.bytes(4), 0) : NO_INDEX;
      return { ref, type, kind: 'symlink', permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, 0), xattrIndex, target };
    }
    case InodeType.BLKDEV:
    case InodeType.CHRDEV:
    case InodeType.LBLKDEV:
    case InodeType.LCHRDEV: {
      const ext = type > 7;
      const b = cur.bytes(ext ? 12 : 8);
      const rdev = u32(b, 4);
      const { major, minor } = decodeDevice(rdev);
      const kind = type === InodeType.BLKDEV || type === InodeType.LBLKDEV ? 'blockdev' : 'chardev';
      return { ref, type, kind, permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, 0), xattrIndex: ext ? u32(b, 8) : NO_INDEX, rdev, major, minor };
    }
    default: {
      // FIFO, SOCKET and their extended forms: a link count and, extended, an xattr index.
      const ext = type > 7;
      const b = cur.bytes(ext ? 8 : 4);
      const kind = KIND_BY_BASIC_TYPE[ext ? type - 7 : type] as 'fifo' | 'socket';
      return { ref, type, kind, permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, 0), xattrIndex: ext ? u32(b, 4) : NO_INDEX };
    }
  }
}

/** The index of every directory that has none (most): one shared empty array, never mutated. */
const NO_DIR_INDEX: DirIndexEntry[] = Object.freeze([]) as unknown as DirIndexEntry[];
/** The block list of every file that has no full block (small files): shared, zero-length. */
const NO_BLOCKS = new Uint32Array(0);

/**
 * The block list: one u32 size word per data block. A file whose tail lives in a fragment has
 * floor(size / block_size) blocks; one without a fragment has ceil(size / block_size). The count
 * comes from an untrusted 64-bit size: it is checked against the most the inode table could hold
 * once decompressed, and the list is then read in slices, so memory grows only with bytes that are
 * really there (a lying size runs out of inode table and fails OUT_OF_BOUNDS, having allocated
 * little).
 */
function readBlockList(cur: ByteCursor, fileSize: number, fragIndex: number, ctx: InodeContext, at: number): Uint32Array {
  const count = fragIndex === NO_INDEX ? Math.ceil(fileSize / ctx.blockSize) : Math.floor(fileSize / ctx.blockSize);
  if (count * 4 > ctx.maxBlockListBytes) {
    throw new SquashfsError('CORRUPT', `file_size ${fileSize} needs ${count} block sizes, more than the inode table can hold`, S, at);
  }
  if (count === 0) return NO_BLOCKS;
  const SLICE = 2048;
  const slices: Uint32Array[] = [];
  for (let done = 0; done < count; done += SLICE) {
    const n = Math.min(SLICE, count - done);
    const raw = cur.bytes(n * 4);
    const words = new Uint32Array(n);
    for (let i = 0; i < n; i++) words[i] = u32(raw, i * 4);
    slices.push(words);
  }
  if (slices.length === 1) return slices[0]!;
  const out = new Uint32Array(count);
  slices.forEach((w, i) => out.set(w, i * SLICE));
  return out;
}
