/**
 * Inode encoders, the mirror of src/format/inode.ts (format: "Inode Table"). Each returns the bytes
 * of one inode: the 16-byte common header and the type's body. The basic or extended form is chosen
 * as mksquashfs chooses it, so that `unsquashfs -lls` and the kernel see the same inode types:
 *
 *   directory  extended when it has xattrs, a directory index, or a listing of 64 KiB or more
 *   file       extended when it has xattrs, more than one link, holes, a size or a start ≥ 2^32
 *   others     extended only when they have xattrs (a hard-linked symlink stays basic)
 *
 * 64-bit fields go through writeU64 (no bitwise operators on values that can exceed 32 bits).
 */
import { writeU16, writeU32, writeU64 } from '../format/bytes';
import { InodeType, NO_INDEX } from '../format/constants';
import { encodeDevice } from '../format/inode';

export interface InodeHeader {
  permissions: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  inodeNumber: number;
}

function header(b: Uint8Array, type: number, h: InodeHeader): void {
  writeU16(b, 0, type);
  writeU16(b, 2, h.permissions & 0o7777);
  writeU16(b, 4, h.uidIndex);
  writeU16(b, 6, h.gidIndex);
  writeU32(b, 8, h.mtime);
  writeU32(b, 12, h.inodeNumber);
}

export interface DirIndexOut {
  /** Offset of the header from the start of the listing. */
  index: number;
  /** Directory-table block of that header, relative to the table start. */
  start: number;
  name: Uint8Array;
}

export interface DirInodeFields {
  nlink: number;
  /** Listing bytes; the inode stores this + 3 (for "." and ".."). */
  listingSize: number;
  dirBlock: number;
  dirOffset: number;
  parentInode: number;
  xattrIndex: number;
  index: DirIndexOut[];
}

export function encodeDirInode(h: InodeHeader, d: DirInodeFields): Uint8Array {
  const fileSize = d.listingSize + 3;
  if (d.xattrIndex === NO_INDEX && d.index.length === 0 && fileSize <= 0xffff) {
    const b = new Uint8Array(32);
    header(b, InodeType.DIR, h);
    writeU32(b, 16, d.dirBlock);
    writeU32(b, 20, d.nlink);
    writeU16(b, 24, fileSize);
    writeU16(b, 26, d.dirOffset);
    writeU32(b, 28, d.parentInode);
    return b;
  }
  const size = 40 + d.index.reduce((n, ix) => n + 12 + ix.name.length, 0);
  const b = new Uint8Array(size);
  header(b, InodeType.LDIR, h);
  writeU32(b, 16, d.nlink);
  writeU32(b, 20, fileSize);
  writeU32(b, 24, d.dirBlock);
  writeU32(b, 28, d.parentInode);
  writeU16(b, 32, d.index.length);
  writeU16(b, 34, d.dirOffset);
  writeU32(b, 36, d.xattrIndex);
  let at = 40;
  for (const ix of d.index) {
    writeU32(b, at, ix.index);
    writeU32(b, at + 4, ix.start);
    writeU32(b, at + 8, ix.name.length - 1);
    b.set(ix.name, at + 12);
    at += 12 + ix.name.length;
  }
  return b;
}

export interface FileInodeFields {
  blocksStart: number;
  fileSize: number;
  /** Bytes of the file stored as holes (0-size blocks). */
  sparse: number;
  nlink: number;
  fragIndex: number;
  fragOffset: number;
  xattrIndex: number;
  blockWords: ArrayLike<number>;
}

const U32_MAX = 0xffffffff;

export function encodeFileInode(h: InodeHeader, f: FileInodeFields): Uint8Array {
  const n = f.blockWords.length;
  const basic = f.xattrIndex === NO_INDEX && f.nlink === 1 && f.sparse === 0 && f.fileSize <= U32_MAX && f.blocksStart <= U32_MAX;
  const fixed = basic ? 32 : 56;
  const b = new Uint8Array(fixed + 4 * n);
  if (basic) {
    header(b, InodeType.FILE, h);
    writeU32(b, 16, f.blocksStart);
    writeU32(b, 20, f.fragIndex);
    writeU32(b, 24, f.fragOffset);
    writeU32(b, 28, f.fileSize);
  } else {
    header(b, InodeType.LFILE, h);
    writeU64(b, 16, f.blocksStart);
    writeU64(b, 24, f.fileSize);
    writeU64(b, 32, f.sparse);
    writeU32(b, 40, f.nlink);
    writeU32(b, 44, f.fragIndex);
    writeU32(b, 48, f.fragOffset);
    writeU32(b, 52, f.xattrIndex);
  }
  for (let i = 0; i < n; i++) writeU32(b, fixed + 4 * i, f.blockWords[i]!);
  return b;
}

export function encodeSymlinkInode(h: InodeHeader, nlink: number, target: Uint8Array, xattrIndex: number): Uint8Array {
  const ext = xattrIndex !== NO_INDEX;
  const b = new Uint8Array(24 + target.length + (ext ? 4 : 0));
  header(b, ext ? InodeType.LSYMLINK : InodeType.SYMLINK, h);
  writeU32(b, 16, nlink);
  writeU32(b, 20, target.length);
  b.set(target, 24);
  if (ext) writeU32(b, 24 + target.length, xattrIndex);
  return b;
}

export function encodeDeviceInode(h: InodeHeader, kind: 'blockdev' | 'chardev', nlink: number, major: number, minor: number, xattrIndex: number): Uint8Array {
  const ext = xattrIndex !== NO_INDEX;
  const b = new Uint8Array(ext ? 28 : 24);
  const type = kind === 'blockdev' ? InodeType.BLKDEV : InodeType.CHRDEV;
  header(b, ext ? type + 7 : type, h);
  writeU32(b, 16, nlink);
  writeU32(b, 20, encodeDevice(major, minor));
  if (ext) writeU32(b, 24, xattrIndex);
  return b;
}

export function encodeIpcInode(h: InodeHeader, kind: 'fifo' | 'socket', nlink: number, xattrIndex: number): Uint8Array {
  const ext = xattrIndex !== NO_INDEX;
  const b = new Uint8Array(ext ? 24 : 20);
  const type = kind === 'fifo' ? InodeType.FIFO : InodeType.SOCKET;
  header(b, ext ? type + 7 : type, h);
  writeU32(b, 16, nlink);
  if (ext) writeU32(b, 20, xattrIndex);
  return b;
}
