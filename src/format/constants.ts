/**
 * Numbers fixed by the SquashFS 4.0 on-disk format (little-endian throughout). Vocabulary follows the
 * format description: superblock, metadata block, inode table, directory table, fragment table, id
 * table, export table, xattr table.
 */

/** "hsqs" read as a little-endian u32. */
export const SQUASHFS_MAGIC = 0x73717368;
export const SUPERBLOCK_SIZE = 96;

/** Metadata blocks (inode, directory, lookup tables) hold at most 8 KiB once decompressed. */
export const METADATA_SIZE = 8192;
/** Bit 15 of a metadata block's 2-byte header: the block is stored uncompressed. */
export const METADATA_UNCOMPRESSED = 0x8000;

/** Bit 24 of a data block or fragment size word: the block is stored uncompressed. */
export const DATA_BLOCK_UNCOMPRESSED = 0x1000000;
/** The low 24 bits of a size word are the on-disk length. */
export const DATA_BLOCK_SIZE_MASK = 0xffffff;

/** A 32-bit index meaning "none" (fragment index of a file without tail, xattr index). */
export const NO_INDEX = 0xffffffff;

export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1024 * 1024;

/** A directory header describes at most 256 entries; names are at most 256 bytes. */
export const DIR_MAX_ENTRIES_PER_HEADER = 256;
export const MAX_NAME_SIZE = 256;
/** Symlink targets: PATH_MAX (4096) is the most a kernel will accept. */
export const MAX_SYMLINK_SIZE = 4096;

/** Entries per 8 KiB metadata block in the lookup tables. */
export const FRAGMENT_ENTRY_SIZE = 16;
export const FRAGMENTS_PER_BLOCK = METADATA_SIZE / FRAGMENT_ENTRY_SIZE; // 512
export const ID_ENTRY_SIZE = 4;
export const IDS_PER_BLOCK = METADATA_SIZE / ID_ENTRY_SIZE; // 2048
export const EXPORT_ENTRY_SIZE = 8;
export const EXPORTS_PER_BLOCK = METADATA_SIZE / EXPORT_ENTRY_SIZE; // 1024
export const XATTR_ID_ENTRY_SIZE = 16;
export const XATTR_IDS_PER_BLOCK = METADATA_SIZE / XATTR_ID_ENTRY_SIZE; // 512

/** Superblock flags. */
export const Flag = {
  UNCOMPRESSED_INODES: 0x0001,
  UNCOMPRESSED_DATA: 0x0002,
  CHECK: 0x0004,
  UNCOMPRESSED_FRAGMENTS: 0x0008,
  NO_FRAGMENTS: 0x0010,
  ALWAYS_FRAGMENTS: 0x0020,
  DUPLICATES: 0x0040,
  EXPORTABLE: 0x0080,
  UNCOMPRESSED_XATTRS: 0x0100,
  NO_XATTRS: 0x0200,
  COMPRESSOR_OPTIONS: 0x0400,
  UNCOMPRESSED_IDS: 0x0800,
} as const;

export const FLAG_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Flag).map(([k, v]) => [v, k.toLowerCase()]));

/** Compressor ids in the superblock. */
export const Compressor = { GZIP: 1, LZMA: 2, LZO: 3, XZ: 4, LZ4: 5, ZSTD: 6 } as const;
export const COMPRESSOR_NAMES: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

/**
 * Inode types. Basic types 1..7 are what directory entries record; the extended types 8..14 are
 * the same kinds with more fields (64-bit sizes, xattrs, sparse counts, directory index). A
 * directory entry of basic type T may point at an inode of type T or T + 7.
 */
export const InodeType = {
  DIR: 1,
  FILE: 2,
  SYMLINK: 3,
  BLKDEV: 4,
  CHRDEV: 5,
  FIFO: 6,
  SOCKET: 7,
  LDIR: 8,
  LFILE: 9,
  LSYMLINK: 10,
  LBLKDEV: 11,
  LCHRDEV: 12,
  LFIFO: 13,
  LSOCKET: 14,
} as const;

export type FileKind = 'dir' | 'file' | 'symlink' | 'blockdev' | 'chardev' | 'fifo' | 'socket';
export const KIND_BY_BASIC_TYPE: Record<number, FileKind> = {
  1: 'dir',
  2: 'file',
  3: 'symlink',
  4: 'blockdev',
  5: 'chardev',
  6: 'fifo',
  7: 'socket',
};
/** POSIX S_IFMT bits for each kind, to build a full st_mode from the 12 permission bits on disk. */
export const S_IFMT_BY_KIND: Record<FileKind, number> = {
  dir: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  blockdev: 0o060000,
  chardev: 0o020000,
  fifo: 0o010000,
  socket: 0o140000,
};
