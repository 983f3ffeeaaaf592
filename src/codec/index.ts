/**
 * The block codecs of SquashFS 4.0. The superblock's compression id selects one codec for the whole image;
 * every data block, fragment block and metadata block is compressed (or stored) independently, so a codec
 * only ever sees one self-contained block and the size it must not exceed.
 */
import { SquashfsError } from '../errors';
import { gzipCodec } from './gzip';
import { lzmaCodec } from './lzma';
import { lzoCodec } from './lzo';
import { xzCodec } from './xz';
import { lz4Codec } from './lz4';
import { zstdCodec } from './zstd';

export type CodecName = 'gzip' | 'lzma' | 'lzo' | 'xz' | 'lz4' | 'zstd';

export interface CompressOptions {
  /** Codec-specific level; gzip 1..9 (default 9), zstd 1..22 (default 15), as mksquashfs. Ignored by codecs without levels (lz4, lzo, xz). */
  level?: number;
  /** The image's block size: xz's dictionary size, as mksquashfs sets it (default: the input's length). */
  blockSize?: number;
}

export interface Codec {
  /** Superblock compression id: 1 gzip (zlib), 2 lzma (legacy), 3 lzo, 4 xz, 5 lz4, 6 zstd. */
  readonly id: number;
  readonly name: CodecName;
  /**
   * Decompress one block. The result is at most maxOutput bytes; anything that would inflate past maxOutput,
   * or is malformed, throws SquashfsError('DECOMPRESS_FAILED'). Returns a fresh buffer the caller may keep.
   */
  decompress(input: Uint8Array, maxOutput: number): Uint8Array;
  /** For the writer: compress one block; null when the output would not be smaller than the input. */
  compress?(input: Uint8Array, options?: CompressOptions): Uint8Array | null;
}

const byId: ReadonlyMap<number, Codec> = new Map([gzipCodec, lzmaCodec, lzoCodec, xzCodec, lz4Codec, zstdCodec].map((c) => [c.id, c]));

export function codecById(id: number): Codec {
  const c = byId.get(id);
  if (!c) throw new SquashfsError('UNSUPPORTED', `compressor id ${id} (known: 1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd)`, 'superblock');
  return c;
}

export function codecByName(name: string): Codec {
  for (const c of byId.values()) if (c.name === name) return c;
  throw new SquashfsError('UNSUPPORTED', `compressor ${JSON.stringify(name)} (known: gzip, lzma, lzo, xz, lz4, zstd)`);
}

export const allCodecs: readonly Codec[] = [...byId.values()];
