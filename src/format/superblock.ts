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
import { encodeFields, layout } from './layout';

/** The superblock's fields in disk order (format: "Superblock"); 96 bytes. */
export const SUPERBLOCK = layout('superblock', [
  ['magic', 'u32'],
  ['inodeCount', 'u32'],
  ['modificationTime', 'u32'],
  ['blockSize', 'u32'],
  ['fragmentCount', 'u32'],
  ['compressionId', 'u16'],
  ['blockLog', 'u16'],
  ['flags', 'u16'],
  ['idCount', 'u16'],
  ['versionMajor', 'u16'],
  ['versionMinor', 'u16'],
  ['rootInodeRef', 'u64'],
  ['bytesUsed', 'u64'],
  ['idTableStart', 'u64'],
  ['xattrIdTableStart', 'u64'],
  ['inodeTableStart', 'u64'],
  ['directoryTableStart', 'u64'],
  ['fragmentTableStart', 'u64'],
  ['exportTableStart', 'u64'],
] as const);
const F = SUPERBLOCK.at;

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
  const magic = u32(b, F.magic);
  check(magic === SQUASHFS_MAGIC, 'BAD_MAGIC', `magic 0x${magic.toString(16).padStart(8, '0')} is not "hsqs" (0x73717368)`, S, F.magic);
  const versionMajor = u16(b, F.versionMajor);
  const versionMinor = u16(b, F.versionMinor);
  check(versionMajor === 4 && versionMinor === 0, 'UNSUPPORTED', `version ${versionMajor}.${versionMinor} (only 4.0 is SquashFS 4)`, S, F.versionMajor);

  const blockSize = u32(b, F.blockSize);
  const blockLog = u16(b, F.blockLog);
  check(
    blockSize >= MIN_BLOCK_SIZE && blockSize <= MAX_BLOCK_SIZE && (blockSize & (blockSize - 1)) === 0,
    'CORRUPT',
    `block size ${blockSize} is not a power of two between 4 KiB and 1 MiB`,
    S,
    F.blockSize,
  );
  check(2 ** blockLog === blockSize, 'CORRUPT', `block_log ${blockLog} disagrees with block size ${blockSize}`, S, F.blockLog);

  const compressionId = u16(b, F.compressionId);
  const compression = COMPRESSOR_NAMES[compressionId];
  if (!compression) throw new SquashfsError('UNSUPPORTED', `compressor id ${compressionId}`, S, F.compressionId);

  const flags = u16(b, F.flags);
  const rootRef = u64big(b, F.rootInodeRef);
  // An inode reference is 48 bits: a 32-bit block position and a 16-bit offset.
  check(rootRef < 1n << 48n, 'CORRUPT', `root inode reference 0x${rootRef.toString(16)} exceeds 48 bits`, S, F.rootInodeRef);

  const bytesUsedBig = u64big(b, F.bytesUsed);
  check(bytesUsedBig <= BigInt(imageSize), 'OUT_OF_BOUNDS', `bytes_used ${bytesUsedBig} exceeds the image size ${imageSize} (truncated image?)`, S, F.bytesUsed);
  const bytesUsed = Number(bytesUsedBig);

  const sb: Superblock = {
    inodeCount: u32(b, F.inodeCount),
    modificationTime: u32(b, F.modificationTime),
    blockSize,
    fragmentCount: u32(b, F.fragmentCount),
    compressionId,
    compression,
    blockLog,
    flags,
    idCount: u16(b, F.idCount),
    versionMajor,
    versionMinor,
    rootInodeRef: Number(rootRef),
    bytesUsed,
    idTableStart: tableStart(b, F.idTableStart, 'id_table_start', false)!,
    xattrIdTableStart: tableStart(b, F.xattrIdTableStart, 'xattr_id_table_start', true),
    inodeTableStart: tableStart(b, F.inodeTableStart, 'inode_table_start', false)!,
    directoryTableStart: tableStart(b, F.directoryTableStart, 'directory_table_start', false)!,
    fragmentTableStart: tableStart(b, F.fragmentTableStart, 'fragment_table_start', true),
    exportTableStart: tableStart(b, F.exportTableStart, 'export_table_start', true),
  };

  check(sb.inodeCount > 0, 'CORRUPT', 'inode_count is 0 (there is always a root directory)', S, F.inodeCount);
  check(sb.idCount > 0, 'CORRUPT', 'id_count is 0 (every inode names an owner)', S, F.idCount);
  const starts: Array<[string, number | undefined, number]> = [
    ['inode_table_start', sb.inodeTableStart, F.inodeTableStart],
    ['directory_table_start', sb.directoryTableStart, F.directoryTableStart],
    ['fragment_table_start', sb.fragmentTableStart, F.fragmentTableStart],
    ['export_table_start', sb.exportTableStart, F.exportTableStart],
    ['id_table_start', sb.idTableStart, F.idTableStart],
    ['xattr_id_table_start', sb.xattrIdTableStart, F.xattrIdTableStart],
  ];
  for (const [name, v, at] of starts) {
    if (v === undefined) continue;
    check(v >= SUPERBLOCK_SIZE && v < bytesUsed, 'OUT_OF_BOUNDS', `${name} ${v} is outside the image (superblock..${bytesUsed})`, S, at);
  }
  check(sb.inodeTableStart < sb.directoryTableStart, 'CORRUPT', `inode table (${sb.inodeTableStart}) must come before the directory table (${sb.directoryTableStart})`, S, F.inodeTableStart);
  if (sb.fragmentTableStart === undefined) {
    check(sb.fragmentCount === 0, 'CORRUPT', `fragment table absent but fragment_count is ${sb.fragmentCount}`, S, F.fragmentCount);
  }
  return sb;
}

/** What an encoder needs: every field but the constants (magic, version 4.0) and block_log. */
export type SuperblockFields = Pick<
  Superblock,
  | 'inodeCount'
  | 'modificationTime'
  | 'blockSize'
  | 'fragmentCount'
  | 'compressionId'
  | 'flags'
  | 'idCount'
  | 'rootInodeRef'
  | 'bytesUsed'
  | 'idTableStart'
  | 'xattrIdTableStart'
  | 'inodeTableStart'
  | 'directoryTableStart'
  | 'fragmentTableStart'
  | 'exportTableStart'
>;

/** The 96 bytes of a superblock; absent optional tables are written as 0xFFFF_FFFF_FFFF_FFFF. */
export function encodeSuperblock(s: SuperblockFields): Uint8Array {
  const b = new Uint8Array(SUPERBLOCK_SIZE);
  encodeFields(SUPERBLOCK, { ...s, magic: SQUASHFS_MAGIC, blockLog: Math.log2(s.blockSize), versionMajor: 4, versionMinor: 0 }, b);
  return b;
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
