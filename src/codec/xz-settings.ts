/**
 * xz blocks with mksquashfs's -Xbcj and -Xdict-size. A BCJ filter helps only on machine code of its
 * architecture and costs a little elsewhere, and one image mixes both; so, as mksquashfs does, every
 * block is compressed once without a filter and once with each filter asked for, and the smallest
 * stream is kept (its block header names the filter chain, so any decoder undoes the right one).
 * The dictionary size (default: the image's block size) bounds how far back a match may reach; the
 * block header declares it, and the kernel refuses a block declaring more than the options block.
 */
import type { CompressOptions } from './index';
import { XZ_BCJ_FILTERS } from './bcj';
import { xzCompress } from './xz-encoder';
import { xzCompressLiblzma } from './xz-liblzma';

/** The smallest xz stream for input under these options; null when none is smaller than input. */
export function xzCompressBest(input: Uint8Array, options: CompressOptions | undefined, native: boolean): Uint8Array | null {
  const dictSize = options?.xzDictSize;
  const once = (bcj?: (typeof XZ_BCJ_FILTERS)[number]) => (native ? xzCompressLiblzma(input, dictSize ?? options?.blockSize ?? input.length, bcj?.name) : xzCompress(input, { dictSize, bcj }));
  let best = once();
  for (const name of options?.xzFilters ?? []) {
    const filter = XZ_BCJ_FILTERS.find((f) => f.name === name);
    if (!filter) throw new Error(`unknown BCJ filter ${JSON.stringify(name)}`);
    const r = once(filter);
    if (r && (!best || r.length < best.length)) best = r;
  }
  return best;
}
