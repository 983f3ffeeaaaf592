/**
 * Compressor options: when the COMPRESSOR_OPTIONS flag is set, one metadata block right after the
 * superblock carries settings the compressor was run with. Decompression never needs them (every
 * stream is self-describing), but `info` shows them and the writer produces them.
 */
import { check } from '../errors';
import { u16, u32 } from './bytes';

export type CompressorOptions =
  | { compression: 'gzip'; compressionLevel: number; windowSize: number; strategies: string[] }
  | { compression: 'xz'; dictionarySize: number; filters: string[] }
  | { compression: 'lz4'; version: number; highCompression: boolean }
  | { compression: 'zstd'; compressionLevel: number }
  | { compression: 'lzo'; algorithm: string; compressionLevel: number }
  | { compression: string; raw: number[] };

const GZIP_STRATEGIES = ['default', 'filtered', 'huffman_only', 'run_length_encoded', 'fixed'];
const XZ_FILTERS = ['x86', 'powerpc', 'ia64', 'arm', 'armthumb', 'sparc'];
const LZO_ALGORITHMS = ['lzo1x_1', 'lzo1x_1_11', 'lzo1x_1_12', 'lzo1x_1_15', 'lzo1x_999'];

function bitNames(bits: number, names: string[]): string[] {
  return names.filter((_, i) => bits & (1 << i));
}

/** Decodes the (already decompressed) body of the options metadata block. */
export function parseCompressorOptions(compression: string, b: Uint8Array, offset: number): CompressorOptions {
  const S = 'compressor options';
  const need = (n: number) => check(b.length >= n, 'CORRUPT', `${compression} options need ${n} bytes, block has ${b.length}`, S, offset);
  switch (compression) {
    case 'gzip':
      need(8);
      return { compression, compressionLevel: u32(b, 0), windowSize: u16(b, 4), strategies: bitNames(u16(b, 6), GZIP_STRATEGIES) };
    case 'xz':
      need(8);
      return { compression, dictionarySize: u32(b, 0), filters: bitNames(u32(b, 4), XZ_FILTERS) };
    case 'lz4':
      need(8);
      return { compression, version: u32(b, 0), highCompression: (u32(b, 4) & 1) !== 0 };
    case 'zstd':
      need(4);
      return { compression, compressionLevel: u32(b, 0) };
    case 'lzo': {
      need(8);
      const alg = u32(b, 0);
      return { compression, algorithm: LZO_ALGORITHMS[alg] ?? `unknown(${alg})`, compressionLevel: u32(b, 4) };
    }
    default:
      return { compression, raw: Array.from(b.subarray(0, 64)) };
  }
}
