/**
 * Inode encoders, the mirror of src/format/inode.ts (format: "Inode Table"). Each returns the bytes
 * of one inode: the 16-byte common header and the type's body. The basic or extended form is chosen
 * as mksquashfs chooses it, so that `unsquashfs -lls` and the kernel see the same inode types:
 *
 *   directory  extended when it has xattrs, a directory index, or a listing of 64 KiB or more
 *   file       extended when it has xattrs, more than one link, holes, a size or a start ≥ 2^32
 *   others     extended only when they have xattrs (a hard-linked symlink stays basic)
 *
 * The bytes themselves come from the format's encoder (src/format/inode.ts, beside the decoder and
 * driven by the same layouts); this module only decides the form.
 */
import { InodeType, NO_INDEX } from '../format/constants';
import { DIR_SIZE_BIAS, encodeDevice, encodeInode } from '../format/inode';

export interface InodeHeader {
  permissions: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  inodeNumber: number;
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
  const basic = d.xattrIndex === NO_INDEX && d.index.length === 0 && d.listingSize + DIR_SIZE_BIAS <= 0xffff;
  const { nlink, listingSize, dirBlock, dirOffset, parentInode, xattrIndex, index } = d;
  return encodeInode({
    permissions: h.permissions,
    uidIndex: h.uidIndex,
    gidIndex: h.gidIndex,
    mtime: h.mtime,
    inodeNumber: h.inodeNumber,
    type: basic ? InodeType.DIR : InodeType.LDIR,
    nlink,
    xattrIndex,
    dirBlock,
    dirOffset,
    listingSize,
    parentInode,
    index,
  });
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

// One literal of a fixed shape per inode, the header spelled out: spreading `h` into it cost pack
// 0.2 s on a Debian rootfs (measured), most of it garbage.
export function encodeFileInode(h: InodeHeader, f: FileInodeFields): Uint8Array {
  const basic = f.xattrIndex === NO_INDEX && f.nlink === 1 && f.sparse === 0 && f.fileSize <= U32_MAX && f.blocksStart <= U32_MAX;
  const { nlink, xattrIndex, blocksStart, fileSize, sparse, fragIndex, fragOffset } = f;
  return encodeInode({
    permissions: h.permissions,
    uidIndex: h.uidIndex,
    gidIndex: h.gidIndex,
    mtime: h.mtime,
    inodeNumber: h.inodeNumber,
    type: basic ? InodeType.FILE : InodeType.LFILE,
    nlink,
    xattrIndex,
    blocksStart,
    fileSize,
    sparse,
    fragIndex,
    fragOffset,
    blockSizes: f.blockWords,
  });
}

export function encodeSymlinkInode(h: InodeHeader, nlink: number, target: Uint8Array, xattrIndex: number): Uint8Array {
  const type = xattrIndex !== NO_INDEX ? InodeType.LSYMLINK : InodeType.SYMLINK;
  return encodeInode({ permissions: h.permissions, uidIndex: h.uidIndex, gidIndex: h.gidIndex, mtime: h.mtime, inodeNumber: h.inodeNumber, type, nlink, xattrIndex, target });
}

export function encodeDeviceInode(h: InodeHeader, kind: 'blockdev' | 'chardev', nlink: number, major: number, minor: number, xattrIndex: number): Uint8Array {
  const basic = kind === 'blockdev' ? InodeType.BLKDEV : InodeType.CHRDEV;
  // Rare kinds: the header is spread in (files, directories and symlinks spell it out, see encodeFileInode).
  return encodeInode({ ...h, type: xattrIndex !== NO_INDEX ? basic + 7 : basic, nlink, xattrIndex, rdev: encodeDevice(major, minor) });
}

export function encodeIpcInode(h: InodeHeader, kind: 'fifo' | 'socket', nlink: number, xattrIndex: number): Uint8Array {
  const basic = kind === 'fifo' ? InodeType.FIFO : InodeType.SOCKET;
  return encodeInode({ ...h, type: xattrIndex !== NO_INDEX ? basic + 7 : basic, nlink, xattrIndex });
}
