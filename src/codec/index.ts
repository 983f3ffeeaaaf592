/**
 * The block codecs of SquashFS 4.0. The superblock's compression id selects one codec for the whole image;
 * every data block, fragment block and metadata block is compressed (or stored) independently, so a codec
 * only ever sees one self-contained block and the size it must not exceed.
 */
import { SquashfsError } from '../errors';

export type CodecName = 'gzip' | 'lzma' | 'lzo' | 'xz' | 'lz4' | 'zstd';

export interface CompressOptions {
  /** Codec-specific level; gzip 1..9 (default 9), zstd 1..22 (default 15), as mksquashfs. Ignored by codecs without levels (lz4, lzo, xz). */
  level?: number;
  /** The image's block size: xz's dictionary size, as mksquashfs sets it (default: the input's length). */
  blockSize?: number;
  /** xz: BCJ filters to try on each block besides none, the smallest result kept (mksquashfs -Xbcj). */
  xzFilters?: string[];
  /** xz: the dictionary size, 2^n or 2^n + 2^(n-1), at most the block size (mksquashfs -Xdict-size). */
  xzDictSize?: number;
  /** lz4: high compression, a deeper match search (mksquashfs -Xhc). */
  lz4HighCompression?: boolean;
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
  /**
   * Optional: decompress one block into `out`, whose length is the output limit, and return the
   * decoded length; the same errors as decompress. For readers that reuse their output buffers
   * (DataReader.stream): no allocation per block, and where the native decoder writes into the
   * buffer it is given, no copy either.
   */
  decompressInto?(input: Uint8Array, out: Uint8Array): number;
  /** For the writer: compress one block; null when the output would not be smaller than the input. */
  compress?(input: Uint8Array, options?: CompressOptions): Uint8Array | null;
  /**
   * For the writer, where a codec can: compress one block straight into `output` (at least as long
   * as the input; either may lie in shared memory) and return the compressed length, or -1 when it
   * would not be smaller. Saves the copies in and out of the codec's own buffers.
   */
  compressInto?(input: Buffer, output: Buffer, options?: CompressOptions): number;
}

/**
 * The codecs by superblock id. Each module is loaded on first use: an image has one compressor, so
 * a process that reads or writes it never loads the other five (~15 ms of start-up for every
 * command, `distri pack --comp none` and both processes of a mount included).
 */
const table: ReadonlyArray<{ id: number; name: CodecName; load: () => Codec; into: boolean }> = [
  // into: the codec has decompressInto (lazyCodecById must say so before the module is loaded).
  { id: 1, name: 'gzip', load: () => (require('./gzip') as typeof import('./gzip')).gzipCodec, into: true },
  { id: 2, name: 'lzma', load: () => (require('./lzma') as typeof import('./lzma')).lzmaCodec, into: false },
  { id: 3, name: 'lzo', load: () => (require('./lzo') as typeof import('./lzo')).lzoCodec, into: true },
  { id: 4, name: 'xz', load: () => (require('./xz') as typeof import('./xz')).xzCodec, into: false },
  { id: 5, name: 'lz4', load: () => (require('./lz4') as typeof import('./lz4')).lz4Codec, into: true },
  { id: 6, name: 'zstd', load: () => (require('./zstd') as typeof import('./zstd')).zstdCodec, into: true },
];
const loaded = new Map<number, Codec>();
function load(e: (typeof table)[number]): Codec {
  let c = loaded.get(e.id);
  if (!c) loaded.set(e.id, (c = e.load()));
  return c;
}

export function codecById(id: number): Codec {
  const e = table.find((t) => t.id === id);
  if (!e) throw new SquashfsError('UNSUPPORTED', `compressor id ${id} (known: 1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd)`, 'superblock');
  return load(e);
}

/**
 * The codec of an image, loaded when its first block is decompressed: an image stored
 * uncompressed (mksquashfs -noI -noD -noF, `distri pack --comp none`) names gzip in its superblock
 * but never needs it, and loading node:zlib brings Node's streams with it, some milliseconds of
 * every short command's start-up.
 */
export function lazyCodecById(id: number): Codec {
  const e = table.find((t) => t.id === id);
  if (!e) return codecById(id); // the error
  let codec: Codec | undefined;
  const lazy: Codec = {
    id: e.id,
    name: e.name,
    decompress: (input, maxOutput) => (codec ??= load(e)).decompress(input, maxOutput),
  };
  if (e.into) lazy.decompressInto = (input, out) => (codec ??= load(e)).decompressInto!(input, out);
  return lazy;
}

/**
 * Whether this codec's blocks take a millisecond or more to decode here (decompress-pool.ts's
 * decodesAhead): xz and legacy lzma always, lzo only where liblzo's decoder did not build.
 */
export function decodesSlowly(name: CodecName): boolean {
  if (name === 'xz' || name === 'lzma') return true;
  if (name === 'lzo') return (require('./lzo') as typeof import('./lzo')).lzoDecoderName() === 'builtin';
  return false;
}

export function codecByName(name: string): Codec {
  const e = table.find((t) => t.name === name);
  if (!e) throw new SquashfsError('UNSUPPORTED', `compressor ${JSON.stringify(name)} (known: gzip, lzma, lzo, xz, lz4, zstd)`);
  return load(e);
}

/** Every codec (loads them all: tests and benchmarks). */
export function allCodecs(): readonly Codec[] {
  return table.map(load);
}
