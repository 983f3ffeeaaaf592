/**
 * Block decoders side by side on the blocks of a real image: every candidate implementation of the
 * image's codec decodes every compressed data and fragment block, checked against our default
 * decoder's output first, then timed over alternating rounds (median). Prints MB/s (decoded bytes,
 * 10^6 per second) and µs per block, wall and CPU (user+sys of this process, which is less disturbed
 * by other tenants of the machine than wall time).
 *
 *   mksquashfs fixtures/build/rootfs /dev/shm/lz4.sqfs -comp lz4   # once per compressor
 *   npx tsc -p . && node dist/bench/decoders.js /dev/shm/lz4.sqfs [--rounds 7]
 *
 * Candidates per codec: ours (the decoder the image's codec uses by default), and whatever optional
 * backend each codec module exposes for benchmarks (see the `decoders` table below).
 */
import { decodeBlockWord } from '../src/format/data-block';
import { NO_INDEX } from '../src/format/constants';
import { Image } from '../src/reader/image';
import { walk } from '../src/reader/walk';
import { arg, median } from './lib';
import { lz4DecompressBlock, lz4DecompressLiblz4, lz4DecompressNative, lz4NativeDecoder } from '../src/codec/lz4';
import { liblz4DecodeInto, liblz4DecoderAvailable } from '../src/codec/lz4-liblz4';
import { zstdDecoders, zstdDecompressInto } from '../src/codec/zstd';
import { gzipCodec, gzipIntoName, inflateIntoHandle } from '../src/codec/gzip';
import { xzDecoders } from '../src/codec/xz';

type Decoder = (input: Uint8Array, maxOutput: number) => Uint8Array;

/** One reused output buffer: what DataReader.stream() gives a codec's decompressInto. */
const reused = Buffer.allocUnsafeSlow(1 << 20);
function into(f: (input: Uint8Array, out: Uint8Array) => number): Decoder {
  return (input, maxOutput) => reused.subarray(0, f(input, reused.subarray(0, maxOutput)));
}

function candidates(codec: string): [string, Decoder][] {
  switch (codec) {
    case 'lz4': {
      const r: [string, Decoder][] = [['ours (JS)', lz4DecompressBlock]];
      if (lz4NativeDecoder()) r.push(['lz4-napi (native)', lz4DecompressNative]);
      if (liblz4DecoderAvailable()) r.push(['liblz4 (native)', lz4DecompressLiblz4], ['liblz4, reused out', into(liblz4DecodeInto)]);
      return r;
    }
    case 'zstd':
      return [...Object.entries(zstdDecoders()), ['default, reused out', into(zstdDecompressInto)]];
    case 'gzip': {
      const r: [string, Decoder][] = [['inflateSync', gzipCodec.decompress]];
      if (gzipIntoName() === 'handle') r.push(['zlib context, reused out', into(inflateIntoHandle)]);
      return r;
    }
    case 'xz':
      return Object.entries(xzDecoders());
    default:
      throw new Error(`no candidates for ${codec}`);
  }
}

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: decoders.js IMAGE [--rounds N]');
  const rounds = Number(arg('rounds', '7'));
  const img = Image.open(file);
  const bs = img.superblock.blockSize;
  const blocks: { raw: Uint8Array; max: number }[] = [];
  const seenFrag = new Set<number>();
  for (const item of walk(img)) {
    const inode = item.inode;
    if (inode.kind !== 'file') continue;
    let pos = inode.blocksStart;
    for (let i = 0; i < inode.blockSizes.length; i++) {
      const w = decodeBlockWord(inode.blockSizes[i]!);
      if (w.compressed && !w.sparse) blocks.push({ raw: img.source.readAt(pos, w.onDiskSize), max: Math.min(bs, inode.fileSize - i * bs) });
      pos += w.onDiskSize;
    }
    if (inode.fragIndex !== NO_INDEX && !seenFrag.has(inode.fragIndex)) {
      seenFrag.add(inode.fragIndex);
      const e = img.data.fragmentEntry(inode.fragIndex);
      const w = decodeBlockWord(e.sizeWord);
      if (w.compressed) blocks.push({ raw: img.source.readAt(e.start, w.onDiskSize), max: bs });
    }
  }
  const cands = candidates(img.codec.name);
  let total = 0;
  for (const b of blocks) {
    const want = img.codec.decompress(b.raw, b.max);
    total += want.length;
    for (const [name, dec] of cands) if (!Buffer.from(dec(b.raw, b.max)).equals(want)) throw new Error(`${name}: wrong output`);
  }
  console.log(`${file}: ${img.codec.name}, ${blocks.length} blocks (${seenFrag.size} fragment blocks), ${(total / 1e6).toFixed(1)} MB decoded; ${rounds} rounds; node ${process.version}`);
  const wall = new Map<string, number[]>(cands.map(([n]) => [n, []]));
  const cpu = new Map<string, number[]>(cands.map(([n]) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, dec] of cands) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (const b of blocks) dec(b.raw, b.max);
      const t = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      wall.get(name)!.push(t);
      cpu.get(name)!.push((c.user + c.system) / 1e6);
    }
  }
  console.log('decoder                 MB/s wall  MB/s CPU  µs/block wall');
  for (const [name] of cands) {
    const w = median(wall.get(name)!);
    const c = median(cpu.get(name)!);
    console.log(`${name.padEnd(22)} ${(total / w / 1e6).toFixed(0).padStart(10)} ${(total / c / 1e6).toFixed(0).padStart(9)} ${((w / blocks.length) * 1e6).toFixed(1).padStart(14)}`);
  }
}

main();
