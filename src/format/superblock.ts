/**
 * The superblock: the first 96 bytes of an image. It names the compressor and block size and
 * points at every table. Table order as mksquashfs writes it:
 *
 *   superblock | compressor options | data blocks and fragment blocks | inode table |
 *   directory table | fragment table | export table | id table | xattr table   (… bytes_used)
 *
 * Each of the last four is a run of metadata blocks followed by a lookup array of u64 block
 * pointers; the superblock points at the lookup array, not at the blocks. Validation here is what
 * the format itself implies (magic, version 4.0, block size a power of two between 4 KiB and 1 MiB
 * that agrees with block_log, known compressor, every table start inside the image and after the
 * superblock, inode < directory table). The "absent" marker 0xFFFF_FFFF_FFFF_FFFF is valid for the
 * fragment, export and xattr tables.
 */
import { SquashfsError, check } from '../errors';
import { u16, u32, u64big, U64_ABSENT } from './bytes';
import { COMPRESSOR_NAMES, FLAG_NAMES, Flag, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, SQUASHFS_MAGIC, SUPERBLOCK_SIZE } from './constants';

export interface Superblock {
  inodeCount: number;
  modificationTime: number;
  blockSize: number;
  fragmentCount: number;
  compressionId: number;
  compression: string;
  blockLog: number;
  flags: number;
  idCount: number;
  versionMajor: number;
  versionMinor: number;
  /** Inode reference of the root directory (see InodeRef). */
  rootInodeRef: number;
  bytesUsed: number;
  idTableStart: number;
  /** undefined: the table is absent. */
  xattrIdTableStart: number | undefined;
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number | undefined;
  exportTableStart: number | undefined;
}

const S = 'superblock';

function tableStart(b: Uint8Array, at: number, name: string, optional: boolean): number | undefined {
  const v = u64big(b, at);
  if (v === U64_ABSENT) {
    if (optional) return undefined;
    throw new SquashfsError('CORRUPT', `${name} is marked absent but is required`, S, at);
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SquashfsError('OVERFLOW', `${name} = 0x${v.toString(16)} exceeds 2^53`, S, at);
  }
  return Number(v);
}

/**
 * Decodes and validates a superblock. `imageSize` is the number of bytes available from the start
 * of the SquashFS (host file size minus any offset): every table must start before bytes_used and
 * bytes_used must not exceed it.
 */
export function parseSuperblock(b: Uint8Array, imageSize: number): Superblock {
  check(b.length >= SUPERBLOCK_SIZE, 'BAD_MAGIC', `image too small for a superblock: ${b.length} bytes`, S, 0);
  const magic = u32(b, 0);
  check(magic === SQUASHFS_MAGIC, 'BAD_MAGIC', `magic 0x${magic.toString(16).padStart(8, '0')} is not "hsqs" (0x73717368)`, S, 0);
  const versionMajor = u16(b, 28);
  const versionMinor = u16(b, 30);
  check(versionMajor === 4 && versionMinor === 0, 'UNSUPPORTED', `version ${versionMajor}.${versionMinor} (only 4.0 is SquashFS 4)`, S, 28);

  const blockSize = u32(b, 12);
  const blockLog = u16(b, 22);
  check(blockSize >= MIN_BLOCK_SIZE && blockSize <= MAX_BLOCK_SIZE && (blockSize & (blockSize - 1)) === 0, 'CORRUPT', `block size ${blockSize} is not a power of two between 4 KiB and 1 MiB`, S, 12);
  check(2 ** blockLog === blockSize, 'CORRUPT', `block_log ${blockLog} disagrees with block size ${blockSize}`, S, 22);

  const compressionId = u16(b, 20);
  const compression = COMPRESSOR_NAMES[compressionId];
  if (!compression) throw new SquashfsError('UNSUPPORTED', `compressor id ${compressionId}`, S, 20);

  const flags = u16(b, 24);
  const rootRef = u64big(b, 32);
  // An inode reference is 48 bits: a 32-bit block position and a 16-bit offset.
  check(rootRef < 1n << 48n, 'CORRUPT', `root inode reference 0x${rootRef.toString(16)} exceeds 48 bits`, S, 32);

  const bytesUsedBig = u64big(b, 40);
  check(bytesUsedBig <= BigInt(imageSize), 'OUT_OF_BOUNDS', `bytes_used ${bytesUsedBig} exceeds the image size ${imageSize} (truncated image?)`, S, 40);
  const bytesUsed = Number(bytesUsedBig);

  const sb: Superblock = {
    inodeCount: u32(b, 4),
    modificationTime: u32(b, 8),
    blockSize,
    fragmentCount: u32(b, 16),
    compressionId,
    compression,
    blockLog,
    flags,
    idCount: u16(b, 26),
    versionMajor,
    versionMinor,
    rootInodeRef: Number(rootRef),
    bytesUsed,
    idTableStart: tableStart(b, 48, 'id_table_start', false)!,
    xattrIdTableStart: tableStart(b, 56, 'xattr_id_table_start', true),
    inodeTableStart: tableStart(b, 64, 'inode_table_start', false)!,
    directoryTableStart: tableStart(b, 72, 'directory_table_start', false)!,
    fragmentTableStart: tableStart(b, 80, 'fragment_table_start', true),
    exportTableStart: tableStart(b, 88, 'export_table_start', true),
  };

  check(sb.inodeCount > 0, 'CORRUPT', 'inode_count is 0 (there is always a root directory)', S, 4);
  check(sb.idCount > 0, 'CORRUPT', 'id_count is 0 (every inode names an owner)', S, 26);
  const starts: Array<[string, number | undefined, number]> = [
    ['inode_table_start', sb.inodeTableStart, 64],
    ['directory_table_start', sb.directoryTableStart, 72],
    ['fragment_table_start', sb.fragmentTableStart, 80],
    ['export_table_start', sb.exportTableStart, 88],
    ['id_table_start', sb.idTableStart, 48],
    ['xattr_id_table_start', sb.xattrIdTableStart, 56],
  ];
  for (const [name, v, at] of starts) {
    if (v === undefined) continue;
    check(v >= SUPERBLOCK_SIZE && v < bytesUsed, 'OUT_OF_BOUNDS', `${name} ${v} is outside the image (superblock..${bytesUsed})`, S, at);
  }
  check(sb.inodeTableStart < sb.directoryTableStart, 'CORRUPT', `inode table (${sb.inodeTableStart}) must come before the directory table (${sb.directoryTableStart})`, S, 64);
  if (sb.fragmentTableStart === undefined) {
    check(sb.fragmentCount === 0, 'CORRUPT', `fragment table absent but fragment_count is ${sb.fragmentCount}`, S, 16);
  }
  return sb;
}

export function hasFlag(sb: Superblock, flag: number): boolean {
  return (sb.flags & flag) !== 0;
}

export function flagNames(flags: number): string[] {
  const out: string[] = [];
  for (let bit = 1; bit <= 0x8000; bit <<= 1) {
    if (flags & bit) out.push(FLAG_NAMES[bit] ?? `0x${bit.toString(16)}`);
  }
  return out;
}

export { Flag };
