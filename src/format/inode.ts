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
import { ByteCursor, u16, u32, u64, writeU32 } from './bytes';
import { InodeType, KIND_BY_BASIC_TYPE, MAX_NAME_SIZE, MAX_SYMLINK_SIZE, METADATA_SIZE, NO_INDEX, type FileKind } from './constants';
import { encodeFields, layout } from './layout';

export type InodeRef = number & { readonly __brand: 'InodeRef' };

/**
 * The one place a (metadata block position, offset) pair becomes a 48-bit reference and back. The
 * same packing serves the root inode, directory entries (via their header's start), the export
 * table and the xattr tables' references into their key/value blocks.
 */
export function inodeRef(blockPosition: number, offset: number): InodeRef {
  return (blockPosition * 0x10000 + offset) as InodeRef;
}
/** The (block position, offset) pair of a reference: inodeRef's inverse. */
export function splitInodeRef(ref: number): { block: number; offset: number } {
  return { block: Math.floor(ref / 0x10000), offset: ref % 0x10000 };
}
/** Position of the inode's metadata block, relative to the inode table start. */
export function refBlock(ref: number): number {
  return Math.floor(ref / 0x10000);
}
/** Byte offset of the inode inside its decompressed metadata block. */
export function refOffset(ref: number): number {
  return ref % 0x10000;
}

/*
 * Layouts (format: "Inode Table"). The common header, then one body per inode type; body offsets
 * count from the end of the header, because the decoder reads the two separately (an inode may
 * straddle metadata blocks). Variable parts follow the fixed part: a directory's index entries, a
 * file's block size words, a symlink's target (and, extended, the xattr index after it).
 */
export const INODE_HEADER = layout('inode header', [
  ['type', 'u16'],
  ['permissions', 'u16'],
  ['uidIndex', 'u16'],
  ['gidIndex', 'u16'],
  ['mtime', 'u32'],
  ['inodeNumber', 'u32'],
] as const);
/** file_size counts 3 bytes more than the listing (mksquashfs's "." and ".."). */
export const DIR_INODE = layout('basic directory inode', [
  ['dirBlock', 'u32'],
  ['nlink', 'u32'],
  ['fileSize', 'u16'],
  ['dirOffset', 'u16'],
  ['parentInode', 'u32'],
] as const);
export const LDIR_INODE = layout('extended directory inode', [
  ['nlink', 'u32'],
  ['fileSize', 'u32'],
  ['dirBlock', 'u32'],
  ['parentInode', 'u32'],
  ['indexCount', 'u16'],
  ['dirOffset', 'u16'],
  ['xattrIndex', 'u32'],
] as const);
/** One directory index entry, followed by its name; nameSize is stored minus one. */
export const DIR_INDEX_ENTRY = layout('directory index entry', [
  ['index', 'u32'],
  ['start', 'u32'],
  ['nameSize', 'u32'],
] as const);
export const FILE_INODE = layout('basic file inode', [
  ['blocksStart', 'u32'],
  ['fragIndex', 'u32'],
  ['fragOffset', 'u32'],
  ['fileSize', 'u32'],
] as const);
export const LFILE_INODE = layout('extended file inode', [
  ['blocksStart', 'u64'],
  ['fileSize', 'u64'],
  ['sparse', 'u64'],
  ['nlink', 'u32'],
  ['fragIndex', 'u32'],
  ['fragOffset', 'u32'],
  ['xattrIndex', 'u32'],
] as const);
/** Basic and extended alike; the extended form adds a u32 xattr index after the target. */
export const SYMLINK_INODE = layout('symlink inode', [
  ['nlink', 'u32'],
  ['targetSize', 'u32'],
] as const);
export const DEV_INODE = layout('basic device inode', [
  ['nlink', 'u32'],
  ['rdev', 'u32'],
] as const);
export const LDEV_INODE = layout('extended device inode', [
  ['nlink', 'u32'],
  ['rdev', 'u32'],
  ['xattrIndex', 'u32'],
] as const);
export const IPC_INODE = layout('basic ipc inode', [['nlink', 'u32']] as const);
export const LIPC_INODE = layout('extended ipc inode', [
  ['nlink', 'u32'],
  ['xattrIndex', 'u32'],
] as const);
/** The 3 bytes a directory's file_size counts beyond its listing. */
export const DIR_SIZE_BIAS = 3;

const H = INODE_HEADER.at;
const HS = INODE_HEADER.size;
const D = DIR_INODE.at;
const LD = LDIR_INODE.at;
const DX = DIR_INDEX_ENTRY.at;
const F = FILE_INODE.at;
const LF = LFILE_INODE.at;
const SL = SYMLINK_INODE.at;
const DV = LDEV_INODE.at;
const IP = LIPC_INODE.at;

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
  const h = cur.bytes(HS);
  const type = u16(h, H.type);
  if (!(type >= 1 && type <= 14)) throw new SquashfsError('CORRUPT', `inode type ${type} (valid: 1..14)`, S, at + H.type);
  const inodeNumber = u32(h, H.inodeNumber);
  if (!(inodeNumber >= 1 && inodeNumber <= ctx.inodeCount)) throw new SquashfsError('CORRUPT', `inode number ${inodeNumber} outside 1..${ctx.inodeCount}`, S, at + H.inodeNumber);
  const permissions = u16(h, H.permissions) & 0o7777;
  const uidIndex = u16(h, H.uidIndex);
  const gidIndex = u16(h, H.gidIndex);
  const mtime = u32(h, H.mtime);
  const body = at + HS; // image/metadata position of the body, for error messages

  switch (type) {
    case InodeType.DIR: {
      const b = cur.bytes(DIR_INODE.size);
      const fileSize = u16(b, D.fileSize);
      if (fileSize < DIR_SIZE_BIAS) throw new SquashfsError('CORRUPT', `directory file_size ${fileSize} < 3`, S, body + D.fileSize);
      const dirOffset = u16(b, D.dirOffset);
      if (dirOffset >= METADATA_SIZE) throw new SquashfsError('CORRUPT', `directory block offset ${dirOffset} ≥ 8192`, S, body + D.dirOffset);
      return {
        ref,
        type,
        kind: 'dir',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: u32(b, D.nlink),
        xattrIndex: NO_INDEX,
        dirBlock: u32(b, D.dirBlock),
        dirOffset,
        listingSize: fileSize - DIR_SIZE_BIAS,
        parentInode: u32(b, D.parentInode),
        index: NO_DIR_INDEX,
      };
    }
    case InodeType.LDIR: {
      const b = cur.bytes(LDIR_INODE.size);
      const fileSize = u32(b, LD.fileSize);
      if (fileSize < DIR_SIZE_BIAS) throw new SquashfsError('CORRUPT', `directory file_size ${fileSize} < 3`, S, body + LD.fileSize);
      const indexCount = u16(b, LD.indexCount);
      const dirOffset = u16(b, LD.dirOffset);
      if (dirOffset >= METADATA_SIZE) throw new SquashfsError('CORRUPT', `directory block offset ${dirOffset} ≥ 8192`, S, body + LD.dirOffset);
      // Each index entry is at least 13 bytes and describes at least one 8 KiB metadata block of
      // listing, so a count larger than the listing allows is corrupt (and must not drive a loop).
      if (!(indexCount <= Math.ceil(fileSize / 12) + 1)) throw new SquashfsError('CORRUPT', `directory index count ${indexCount} too large for a ${fileSize}-byte listing`, S, body + LD.indexCount);
      const index: DirIndexEntry[] = indexCount === 0 ? NO_DIR_INDEX : [];
      for (let i = 0; i < indexCount; i++) {
        const eat = cur.position();
        const e = cur.bytes(DIR_INDEX_ENTRY.size);
        const nameSize = u32(e, DX.nameSize) + 1;
        if (nameSize > MAX_NAME_SIZE) throw new SquashfsError('CORRUPT', `directory index name size ${nameSize} > 256`, S, eat + DX.nameSize);
        index.push({ index: u32(e, DX.index), start: u32(e, DX.start), name: Uint8Array.from(cur.bytes(nameSize)) });
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
        nlink: u32(b, LD.nlink),
        xattrIndex: u32(b, LD.xattrIndex),
        dirBlock: u32(b, LD.dirBlock),
        dirOffset,
        listingSize: fileSize - DIR_SIZE_BIAS,
        parentInode: u32(b, LD.parentInode),
        index,
      };
    }
    case InodeType.FILE: {
      const b = cur.bytes(FILE_INODE.size);
      const fragIndex = u32(b, F.fragIndex);
      const fileSize = u32(b, F.fileSize);
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
        blocksStart: u32(b, F.blocksStart),
        fileSize,
        sparse: 0,
        fragIndex,
        fragOffset: u32(b, F.fragOffset),
        blockSizes: readBlockList(cur, fileSize, fragIndex, ctx, at),
      };
    }
    case InodeType.LFILE: {
      const b = cur.bytes(LFILE_INODE.size);
      const fileSize = u64(b, LF.fileSize, 'file_size', S, body + LF.fileSize);
      const fragIndex = u32(b, LF.fragIndex);
      return {
        ref,
        type,
        kind: 'file',
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        inodeNumber,
        nlink: u32(b, LF.nlink),
        xattrIndex: u32(b, LF.xattrIndex),
        blocksStart: u64(b, LF.blocksStart, 'blocks_start', S, body + LF.blocksStart),
        fileSize,
        sparse: u64(b, LF.sparse, 'sparse', S, body + LF.sparse),
        fragIndex,
        fragOffset: u32(b, LF.fragOffset),
        blockSizes: readBlockList(cur, fileSize, fragIndex, ctx, at),
      };
    }
    case InodeType.SYMLINK:
    case InodeType.LSYMLINK: {
      const b = cur.bytes(SYMLINK_INODE.size);
      const size = u32(b, SL.targetSize);
      if (!(size >= 1 && size <= MAX_SYMLINK_SIZE)) throw new SquashfsError('CORRUPT', `symlink target size ${size} (valid: 1..${MAX_SYMLINK_SIZE})`, S, body + SL.targetSize);
      const target = Uint8Array.from(cur.bytes(size));
      const xattrIndex = type === InodeType.LSYMLINK ? u32(cur.bytes(4), 0) : NO_INDEX;
      return { ref, type, kind: 'symlink', permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, SL.nlink), xattrIndex, target };
    }
    case InodeType.BLKDEV:
    case InodeType.CHRDEV:
    case InodeType.LBLKDEV:
    case InodeType.LCHRDEV: {
      // The extended form is the basic one plus a trailing xattr index (checked by the layout test).
      const ext = type > 7;
      const b = cur.bytes(ext ? LDEV_INODE.size : DEV_INODE.size);
      const rdev = u32(b, DV.rdev);
      const { major, minor } = decodeDevice(rdev);
      const kind = type === InodeType.BLKDEV || type === InodeType.LBLKDEV ? 'blockdev' : 'chardev';
      return { ref, type, kind, permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, DV.nlink), xattrIndex: ext ? u32(b, DV.xattrIndex) : NO_INDEX, rdev, major, minor };
    }
    default: {
      // FIFO, SOCKET and their extended forms: a link count and, extended, an xattr index.
      const ext = type > 7;
      const b = cur.bytes(ext ? LIPC_INODE.size : IPC_INODE.size);
      const kind = KIND_BY_BASIC_TYPE[ext ? type - 7 : type] as 'fifo' | 'socket';
      return { ref, type, kind, permissions, uidIndex, gidIndex, mtime, inodeNumber, nlink: u32(b, IP.nlink), xattrIndex: ext ? u32(b, IP.xattrIndex) : NO_INDEX };
    }
  }
}

/** An inode as the encoder takes it: the decoded form without what the decoder derives. */
export type InodeFields =
  | Omit<DirInode, 'ref' | 'kind'>
  | (Omit<FileInode, 'ref' | 'kind' | 'blockSizes'> & { blockSizes: ArrayLike<number> })
  | Omit<SymlinkInode, 'ref' | 'kind'>
  | Omit<DeviceInode, 'ref' | 'kind' | 'major' | 'minor'>
  | Omit<IpcInode, 'ref' | 'kind'>;

/**
 * The bytes of one inode of type `i.type`: header, fixed body, variable part. Fields the type has
 * no room for (an xattr index in a basic inode, a basic file's link count) are not written; which
 * form to use is the caller's choice (the writer chooses as mksquashfs does, see
 * src/writer/encode-inode.ts). The inverse of parseInode.
 */
export function encodeInode(i: InodeFields): Uint8Array {
  let out: Uint8Array;
  switch (i.type) {
    case InodeType.DIR: {
      const d = i as Omit<DirInode, 'ref' | 'kind'>;
      out = new Uint8Array(HS + DIR_INODE.size);
      encodeFields(DIR_INODE, { ...d, fileSize: d.listingSize + DIR_SIZE_BIAS }, out, HS);
      break;
    }
    case InodeType.LDIR: {
      const d = i as Omit<DirInode, 'ref' | 'kind'>;
      const size = HS + LDIR_INODE.size + d.index.reduce((n, ix) => n + DIR_INDEX_ENTRY.size + ix.name.length, 0);
      out = new Uint8Array(size);
      encodeFields(LDIR_INODE, { ...d, fileSize: d.listingSize + DIR_SIZE_BIAS, indexCount: d.index.length }, out, HS);
      let at = HS + LDIR_INODE.size;
      for (const ix of d.index) {
        encodeFields(DIR_INDEX_ENTRY, { index: ix.index, start: ix.start, nameSize: ix.name.length - 1 }, out, at);
        out.set(ix.name, at + DIR_INDEX_ENTRY.size);
        at += DIR_INDEX_ENTRY.size + ix.name.length;
      }
      break;
    }
    case InodeType.FILE:
    case InodeType.LFILE: {
      const f = i as Omit<FileInode, 'ref' | 'kind' | 'blockSizes'> & { blockSizes: ArrayLike<number> };
      const l = i.type === InodeType.FILE ? FILE_INODE : LFILE_INODE;
      const fixed = HS + l.size;
      out = new Uint8Array(fixed + 4 * f.blockSizes.length);
      encodeFields<string>(l, f as never, out, HS);
      for (let k = 0; k < f.blockSizes.length; k++) writeU32(out, fixed + 4 * k, f.blockSizes[k]!);
      break;
    }
    case InodeType.SYMLINK:
    case InodeType.LSYMLINK: {
      const s = i as Omit<SymlinkInode, 'ref' | 'kind'>;
      const ext = i.type === InodeType.LSYMLINK;
      const fixed = HS + SYMLINK_INODE.size;
      out = new Uint8Array(fixed + s.target.length + (ext ? 4 : 0));
      encodeFields(SYMLINK_INODE, { nlink: s.nlink, targetSize: s.target.length }, out, HS);
      out.set(s.target, fixed);
      if (ext) writeU32(out, fixed + s.target.length, s.xattrIndex);
      break;
    }
    case InodeType.BLKDEV:
    case InodeType.CHRDEV:
    case InodeType.LBLKDEV:
    case InodeType.LCHRDEV: {
      const l = i.type > 7 ? LDEV_INODE : DEV_INODE;
      out = new Uint8Array(HS + l.size);
      encodeFields<string>(l, i as never, out, HS);
      break;
    }
    default: {
      const l = i.type > 7 ? LIPC_INODE : IPC_INODE;
      out = new Uint8Array(HS + l.size);
      encodeFields<string>(l, i as never, out, HS);
    }
  }
  // One literal of a fixed shape (no spread): this runs once per inode of a pack.
  encodeFields(INODE_HEADER, { type: i.type, permissions: i.permissions & 0o7777, uidIndex: i.uidIndex, gidIndex: i.gidIndex, mtime: i.mtime, inodeNumber: i.inodeNumber }, out, 0);
  return out;
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
