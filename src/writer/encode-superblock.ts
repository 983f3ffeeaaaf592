/**
 * The superblock and the compressor options block, as the writer produces them. The superblock's
 * layout and encoder live with its decoder in src/format/superblock.ts; they are re-exported here
 * for the writer's call sites.
 */
import { writeU16, writeU32 } from '../format/bytes';
import type { CompressOptions } from '../codec';
import { XZ_BCJ_FILTERS } from '../codec/bcj';

export { encodeSuperblock, type SuperblockFields } from '../format/superblock';

/**
 * The compressor options block (format: "Compression Options"): an uncompressed metadata block.
 * Written where mksquashfs 4.5.1 writes one (checked with its images at offset 96):
 *   - lz4 always (it records the lz4 format version and the HC flag);
 *   - lzo whenever the algorithm is not lzo1x_999 at its default level: our compressor is a greedy
 *     LZO1X-1, so we record algorithm 0 (lzo1x_1), level 0, exactly as `mksquashfs -Xalgorithm lzo1x_1`;
 *   - zstd when the level is not 15 (u32 level);
 *   - gzip when the level is not 9 (u32 level, u16 window bits 15, u16 strategies 0);
 *   - xz when the dictionary is not the block size or BCJ filters were tried (u32 dictionary size,
 *     u32 one bit per filter: x86, powerpc, ia64, arm, armthumb, sparc); never with the defaults.
 */
export function encodeCompressorOptions(compression: string, level?: number, codec?: CompressOptions): Uint8Array | undefined {
  if (compression === 'lz4') {
    const b = new Uint8Array(10);
    writeU16(b, 0, 8 | 0x8000);
    writeU32(b, 2, 1); // LZ4_LEGACY, the only version the kernel reads
    writeU32(b, 6, codec?.lz4HighCompression ? 1 : 0); // flags: LZ4_HC
    return b;
  }
  if (compression === 'xz' && codec?.blockSize !== undefined && ((codec.xzDictSize ?? codec.blockSize) !== codec.blockSize || codec.xzFilters?.length)) {
    const b = new Uint8Array(10);
    writeU16(b, 0, 8 | 0x8000);
    writeU32(b, 2, codec.xzDictSize ?? codec.blockSize);
    writeU32(
      b,
      6,
      XZ_BCJ_FILTERS.reduce((bits, f, i) => (codec.xzFilters?.includes(f.name) ? bits | (1 << i) : bits), 0),
    );
    return b;
  }
  if (compression === 'lzo') {
    const b = new Uint8Array(10);
    writeU16(b, 0, 8 | 0x8000);
    writeU32(b, 2, 0); // SQUASHFS_LZO1X_1
    writeU32(b, 6, 0); // level: only meaningful for lzo1x_999
    return b;
  }
  if (compression === 'gzip' && level !== undefined && level !== 9) {
    const b = new Uint8Array(10);
    writeU16(b, 0, 8 | 0x8000);
    writeU32(b, 2, level);
    writeU16(b, 6, 15); // window bits
    writeU16(b, 8, 0); // strategies: default
    return b;
  }
  if (compression === 'zstd' && level !== undefined && level !== 15) {
    const b = new Uint8Array(6);
    writeU16(b, 0, 4 | 0x8000);
    writeU32(b, 2, level);
    return b;
  }
  return undefined;
}
