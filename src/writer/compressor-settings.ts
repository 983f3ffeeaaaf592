/**
 * The compressor settings beyond a level, as mksquashfs's -X options spell them: xz's BCJ filters
 * (-Xbcj) and dictionary size (-Xdict-size), lz4's high compression (-Xhc). Parsed and checked
 * here, for the command line and for pack() alike; the codecs (xz-settings.ts, lz4-hc.ts) use them
 * and the compressor options block (encode-superblock.ts) records them, so that `unsquashfs -s`
 * and the kernel see what the blocks were made with.
 */
import { SquashfsError } from '../errors';
import type { CompressOptions } from '../codec';
import { XZ_BCJ_FILTERS } from '../codec/bcj';

export interface CompressorSettings {
  /** xz: BCJ filters to try on every block besides none; the smallest stream is kept. */
  xzFilters?: string[];
  /** xz: dictionary size in bytes (default: the block size). */
  xzDictSize?: number;
  /** lz4: the high-compression search. */
  lz4HighCompression?: boolean;
}

const bad = (message: string) => new SquashfsError('INVALID_ARGUMENT', message);

/** "x86", "x86,arm": the filter names, each known, none twice. */
export function parseXzFilters(spec: string): string[] {
  const known = XZ_BCJ_FILTERS.map((f) => f.name);
  const names = spec.split(',').map((s) => s.trim().toLowerCase());
  for (const n of names) {
    if (!known.includes(n)) throw bad(`--xz-bcj: unknown filter ${JSON.stringify(n)} (known: ${known.join(', ')})`);
  }
  return [...new Set(names)];
}

/**
 * "65536", "64K", "1M", or a percentage of the block size ("50%", "37.5%"), as mksquashfs reads
 * -Xdict-size. The result must be 2^n or 2^n + 2^(n-1) (the only sizes an xz block header can
 * state), at least 8 KiB and at most the block size.
 */
export function parseXzDictSize(spec: string, blockSize: number): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM%]?)$/.exec(spec.trim());
  if (!m) throw bad(`--xz-dict-size must be bytes, a size like 64K or 1M, or a percentage of the block size like 50%, got ${JSON.stringify(spec)}`);
  const v = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  if (unit !== '%' && !Number.isInteger(v)) throw bad(`--xz-dict-size ${spec}: only a percentage may have a fraction`);
  const size = unit === '%' ? (blockSize * v) / 100 : v * (unit === 'k' ? 1024 : unit === 'm' ? 1048576 : 1);
  return checkXzDictSize(size, blockSize, spec);
}

function checkXzDictSize(size: number, blockSize: number, spelled: string | number = size): number {
  const what = `--xz-dict-size ${spelled}${String(spelled) === String(size) ? '' : ` (${size} bytes)`}`;
  if (!Number.isInteger(size)) throw bad(`${what}: not a whole number of bytes`);
  if (size > blockSize) throw bad(`${what}: larger than the block size (${blockSize}); the dictionary may be at most one block`);
  if (size < 8192) throw bad(`${what}: must be 8K or more`);
  const low = size & -size; // the lowest set bit: size is low, or low + 2·low
  if (size !== low && size !== 3 * low) throw bad(`${what}: an xz header can only state 2^n or 2^n + 2^(n-1) bytes (e.g. 64K, 96K, 128K, 50%, 75%)`);
  return size;
}

/** Checks settings against the compressor and block size; the codec options that carry them. */
export function codecSettings(compression: string, blockSize: number, s: CompressorSettings): Partial<CompressOptions> {
  const xzOnly = s.xzFilters?.length ? '--xz-bcj' : s.xzDictSize !== undefined ? '--xz-dict-size' : undefined;
  if (xzOnly && compression !== 'xz') throw bad(`${xzOnly} applies to --comp xz only, not ${compression}`);
  if (s.lz4HighCompression && compression !== 'lz4') throw bad(`--lz4-hc applies to --comp lz4 only, not ${compression}`);
  const out: Partial<CompressOptions> = {};
  if (s.xzFilters?.length) out.xzFilters = parseXzFilters(s.xzFilters.join(','));
  if (s.xzDictSize !== undefined) out.xzDictSize = checkXzDictSize(s.xzDictSize, blockSize);
  if (s.lz4HighCompression) out.lz4HighCompression = true;
  return out;
}
