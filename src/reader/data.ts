/**
 * File contents (format: "Data and Fragment Blocks"). A regular file is a run of data blocks
 * stored back to back from blocks_start (each block_size bytes once decompressed, the last one
 * shorter when the file has no fragment) and optionally a tail: the last size % block_size bytes,
 * packed with the tails of other files into a shared fragment block.
 *
 * Hot blocks live decompressed in two byte-bounded LRU caches (data, fragments), so a 4 KiB read
 * in the middle of a compressed 128 KiB block decompresses it once while it is hot. Reads hand out
 * subarray views of cached blocks. For each file, the position of block i is a prefix sum of the
 * on-disk sizes; it is computed once per inode (the "block index") so reading at offset X of a large
 * file does not walk its block list.
 */
import { SquashfsError } from '../errors';
import { decodeBlockWord } from '../format/data-block';
import { NO_INDEX } from '../format/constants';
import type { FileInode } from '../format/inode';
import { parseFragmentEntry, type FragmentEntry } from '../format/tables';
import type { Codec } from '../codec';
import type { ByteSource } from '../io/source';
import { LruCache } from '../io/lru';
import { BlockCache } from '../io/block-cache';
import type { LookupTable } from './lookup-table';

/** How many on-disk bytes of consecutive data blocks stream() reads at once. */
const STREAM_BATCH = 1 << 20;
/** How many decoded fragment blocks stream() keeps (see streamFragment). */
const STREAM_FRAGMENT_SLOTS = 4;
const EMPTY = new Uint8Array(0);

export interface DataReaderOptions {
  blockSize: number;
  /** Data and fragment blocks lie between the superblock and the inode table. */
  dataEnd: number;
  dataCacheBytes: number;
  fragmentCacheBytes: number;
  /**
   * Keep decompressed blocks in reused slots (BlockCache) instead of fresh buffers: no allocation
   * per block, but a view from chunks()/block()/tail() is valid only until the next block is read.
   * For servers that copy each read out at once (the FUSE daemon's readInto).
   */
  pooled?: boolean;
  /**
   * readInto() does not cache a block the caller takes whole. For the FUSE daemon: a READ that
   * covers a whole block hands all its pages to the kernel, whose page cache keeps them (the
   * files are opened keep-cache), so a copy of ours would only be read again if the kernel dropped
   * its own. Caching them made a single pass over a large file fill (and page-fault in) the whole
   * data cache for nothing; partial reads (4 KiB random reads, a block split between two requests)
   * still go through the cache.
   */
  passWholeBlocks?: boolean;
}

export class DataReader {
  readonly dataCache: LruCache<number, Uint8Array> | BlockCache;
  readonly fragmentCache: LruCache<number, Uint8Array> | BlockCache;
  readonly pooled: boolean;
  private readonly blockIndex = new WeakMap<FileInode, Float64Array>();
  private readonly zeros: Uint8Array;
  /** stream()'s read buffer, reused from batch to batch. */
  private streamBuf: Buffer = Buffer.alloc(0);
  /**
   * stream()'s decoded blocks, one per place in a group, reused from group to group where the codec
   * decodes into a given buffer (decompressInto): a fresh 128 KiB buffer per block cost page faults
   * and garbage collection that, for lz4 and zstd, came to more than the decoding itself.
   */
  private streamOut: Buffer[] = [];
  /** stream()'s compressed fragment blocks, most recently used first (streamFragment). */
  private readonly streamFrags: { start: number; buf: Buffer; data: Uint8Array }[] = [];
  /** Compressed bytes on their way to the codec, reused from block to block. */
  private scratch: Buffer = Buffer.alloc(0);
  /** A stored block read whole by readInto() without caching (passWholeBlocks). */
  private passBuf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly source: ByteSource,
    private readonly codec: Codec,
    private readonly fragments: LookupTable | undefined,
    private readonly opts: DataReaderOptions,
  ) {
    this.pooled = opts.pooled === true;
    if (opts.pooled) {
      this.dataCache = new BlockCache(opts.blockSize, opts.dataCacheBytes);
      this.fragmentCache = new BlockCache(opts.blockSize, opts.fragmentCacheBytes);
    } else {
      this.dataCache = new LruCache(opts.dataCacheBytes, (b) => b.length + 64);
      this.fragmentCache = new LruCache(opts.fragmentCacheBytes, (b) => b.length + 64);
    }
    this.zeros = new Uint8Array(opts.blockSize);
  }

  /** Byte offset of each data block from blocks_start; entry n is the end of the last block. */
  private positions(inode: FileInode): Float64Array {
    let idx = this.blockIndex.get(inode);
    if (!idx) {
      const n = inode.blockSizes.length;
      idx = new Float64Array(n + 1);
      let pos = 0;
      for (let i = 0; i < n; i++) {
        idx[i] = pos;
        pos += decodeBlockWord(inode.blockSizes[i]!).onDiskSize;
      }
      idx[n] = pos;
      if (inode.blocksStart + pos > this.opts.dataEnd)
        throw new SquashfsError(
          'OUT_OF_BOUNDS',
          `data blocks of inode ${inode.inodeNumber} (${inode.blocksStart}+${pos}) run past the data area (${this.opts.dataEnd})`,
          'data block',
          inode.blocksStart,
        );
      this.blockIndex.set(inode, idx);
    }
    return idx;
  }

  /** Decompressed length of data block i: a full block, except a fragment-less file's last one. */
  private blockLength(inode: FileInode, i: number): number {
    return Math.min(this.opts.blockSize, inode.fileSize - i * this.opts.blockSize);
  }

  /**
   * Data block i of the file, decompressed (a cached buffer or a view; never mutate it). With
   * `keep` false a miss is not cached, and the result is valid only until the next call.
   */
  block(inode: FileInode, i: number, keep = true): Uint8Array {
    const expected = this.blockLength(inode, i);
    const word = decodeBlockWord(inode.blockSizes[i]!);
    if (word.sparse) return this.zeros.subarray(0, expected);
    const pos = inode.blocksStart + this.positions(inode)[i]!;
    const hit = this.dataCache.get(pos);
    if (hit) {
      // The same on-disk block may serve two files (duplicates) but always with the same length.
      if (hit.length !== expected) throw new SquashfsError('CORRUPT', `block at ${pos} is ${hit.length} bytes, inode ${inode.inodeNumber} expects ${expected}`, 'data block', pos);
      return hit;
    }
    const cache = this.dataCache;
    const check = (n: number): number => {
      if (n !== expected) throw new SquashfsError('CORRUPT', `block ${i} of inode ${inode.inodeNumber} decompressed to ${n} bytes, expected ${expected}`, 'data block', pos);
      return n;
    };
    if (!keep) {
      if (!word.compressed) {
        // A stored block passing through: into one reused buffer, not a fresh one per block.
        if (this.passBuf.length < this.opts.blockSize) this.passBuf = Buffer.allocUnsafeSlow(this.opts.blockSize);
        return this.passBuf.subarray(0, check(this.loadInto(this.passBuf, pos, word.onDiskSize, false, expected, 'data block')));
      }
      const data = this.load(pos, word.onDiskSize, true, expected, 'data block');
      check(data.length);
      return data;
    }
    if (cache instanceof BlockCache) return cache.put(pos, (slot) => check(this.loadInto(slot, pos, word.onDiskSize, word.compressed, expected, 'data block')));
    const data = this.load(pos, word.onDiskSize, word.compressed, expected, 'data block');
    check(data.length);
    cache.set(pos, data);
    return data;
  }

  /**
   * load() into a cache slot: a stored block is read straight into it; a compressed one is decoded
   * into it where the codec can (decompressInto), else copied there from the codec's own buffer.
   */
  private loadInto(slot: Buffer, pos: number, onDisk: number, compressed: boolean, maxOut: number, structure: string): number {
    if (!compressed) {
      this.checkBlock(pos, onDisk, structure);
      this.source.readInto(pos, slot.subarray(0, onDisk));
      return onDisk;
    }
    if (this.codec.decompressInto) {
      this.checkBlock(pos, onDisk, structure);
      return this.decodeInto(this.readRaw(pos, onDisk), slot.subarray(0, maxOut), structure, pos);
    }
    const out = this.load(pos, onDisk, compressed, maxOut, structure);
    slot.set(out);
    return out.length;
  }

  private checkBlock(pos: number, onDisk: number, structure: string): void {
    if (onDisk > this.opts.blockSize) throw new SquashfsError('CORRUPT', `on-disk length ${onDisk} exceeds the block size ${this.opts.blockSize}`, structure, pos);
    if (pos + onDisk > this.opts.dataEnd) throw new SquashfsError('OUT_OF_BOUNDS', `block at ${pos} (${onDisk} bytes) runs past the data area (${this.opts.dataEnd})`, structure, pos);
  }

  private load(pos: number, onDisk: number, compressed: boolean, maxOut: number, structure: string): Uint8Array {
    this.checkBlock(pos, onDisk, structure);
    if (!compressed) return this.source.readAt(pos, onDisk); // kept by the cache: its own buffer
    const raw = this.readRaw(pos, onDisk);
    try {
      return this.codec.decompress(raw, maxOut);
    } catch (e) {
      throw blockError(e, structure, pos);
    }
  }

  /**
   * A compressed block's bytes, read into one reused buffer: they only live until they are
   * decompressed (a fresh 128 KiB buffer per read costs page faults and garbage collection).
   */
  private readRaw(pos: number, onDisk: number): Buffer {
    if (this.scratch.length < onDisk) this.scratch = Buffer.allocUnsafe(Math.max(onDisk, this.opts.blockSize));
    const raw = this.scratch.subarray(0, onDisk);
    this.source.readInto(pos, raw);
    return raw;
  }

  /** One compressed block decoded into `out` (at most out.length bytes) by the codec's decompressInto. */
  private decodeInto(raw: Uint8Array, out: Uint8Array, structure: string, pos: number): number {
    try {
      return this.codec.decompressInto!(raw, out);
    } catch (e) {
      throw blockError(e, structure, pos);
    }
  }

  fragmentEntry(index: number): FragmentEntry {
    if (!this.fragments) throw new SquashfsError('CORRUPT', `fragment index ${index} but the image has no fragment table`, 'fragment table');
    return parseFragmentEntry(this.fragments.entry(index), 0, this.fragments.start);
  }

  /**
   * The file's tail (bytes after its last full block) as a view into its fragment block. With
   * `streaming` (stream()'s own calls), a tail read straight from a stored fragment lands in a
   * reused buffer: valid only until the next read.
   */
  tail(inode: FileInode, streaming = false): Uint8Array {
    const tailLength = inode.fileSize - inode.blockSizes.length * this.opts.blockSize;
    const entry = this.fragmentEntry(inode.fragIndex);
    let frag = this.fragmentCache.get(entry.start) ?? (streaming ? this.streamFragment(entry.start, entry.sizeWord) : undefined);
    if (!frag) {
      const word = decodeBlockWord(entry.sizeWord);
      if (word.sparse) throw new SquashfsError('CORRUPT', `fragment ${inode.fragIndex} has size 0`, 'fragment table');
      if (!word.compressed) {
        // A stored fragment block: read just this tail, not the whole block (small files of an
        // uncompressed image would otherwise read and cache 128 KiB each for a few bytes).
        if (word.onDiskSize > this.opts.blockSize) throw new SquashfsError('CORRUPT', `on-disk length ${word.onDiskSize} exceeds the block size ${this.opts.blockSize}`, 'fragment block', entry.start);
        if (inode.fragOffset + tailLength > word.onDiskSize)
          throw new SquashfsError(
            'OUT_OF_BOUNDS',
            `tail of inode ${inode.inodeNumber} (${tailLength} bytes at ${inode.fragOffset}) runs past its ${word.onDiskSize}-byte fragment`,
            'fragment block',
            entry.start,
          );
        if (entry.start + word.onDiskSize > this.opts.dataEnd)
          throw new SquashfsError('OUT_OF_BOUNDS', `block at ${entry.start} (${word.onDiskSize} bytes) runs past the data area (${this.opts.dataEnd})`, 'fragment block', entry.start);
        if (!streaming) return this.source.readAt(entry.start + inode.fragOffset, tailLength);
        if (this.scratch.length < tailLength) this.scratch = Buffer.allocUnsafe(Math.max(tailLength, this.opts.blockSize));
        const view = this.scratch.subarray(0, tailLength);
        this.source.readInto(entry.start + inode.fragOffset, view);
        return view;
      }
      const cache = this.fragmentCache;
      if (cache instanceof BlockCache) frag = cache.put(entry.start, (slot) => this.loadInto(slot, entry.start, word.onDiskSize, word.compressed, this.opts.blockSize, 'fragment block'));
      else {
        frag = this.load(entry.start, word.onDiskSize, word.compressed, this.opts.blockSize, 'fragment block');
        cache.set(entry.start, frag);
      }
    }
    if (inode.fragOffset + tailLength > frag.length)
      throw new SquashfsError(
        'OUT_OF_BOUNDS',
        `tail of inode ${inode.inodeNumber} (${tailLength} bytes at ${inode.fragOffset}) runs past its ${frag.length}-byte fragment`,
        'fragment block',
        entry.start,
      );
    return frag.subarray(inode.fragOffset, inode.fragOffset + tailLength);
  }

  /**
   * A compressed fragment block for stream(): decoded into one of a few reused slots (the most
   * recently used ones kept) instead of a fresh buffer in the fragment cache. mksquashfs packs the
   * tails of files in the order it reads them, which is the order a whole-image pass meets them,
   * so a pass decodes each fragment block about once even with this small a ring; a third of the
   * Debian rootfs's lz4 blocks are fragment blocks. undefined: a stored (or sparse) fragment, or a
   * codec without decompressInto; tail() does what it always did then.
   */
  private streamFragment(start: number, sizeWord: number): Uint8Array | undefined {
    const word = decodeBlockWord(sizeWord);
    if (!this.codec.decompressInto || !word.compressed || word.sparse) return undefined;
    const ring = this.streamFrags;
    for (let k = 0; k < ring.length; k++) {
      const r = ring[k]!;
      if (r.start !== start) continue;
      if (k > 0) ring.unshift(...ring.splice(k, 1)); // most recently used first
      return r.data;
    }
    this.checkBlock(start, word.onDiskSize, 'fragment block');
    const slot = ring.length < STREAM_FRAGMENT_SLOTS ? { start: -1, buf: Buffer.allocUnsafeSlow(this.opts.blockSize), data: EMPTY } : ring.pop()!;
    slot.start = -1; // not valid until decoded: a corrupt block must not leave a stale entry
    ring.unshift(slot);
    const n = this.decodeInto(this.readRaw(start, word.onDiskSize), slot.buf, 'fragment block', start);
    slot.data = slot.buf.subarray(0, n);
    slot.start = start;
    return slot.data;
  }

  /**
   * The bytes [offset, offset + length) of the file as a sequence of views, clipped to the file size.
   * Nothing is copied: each view points into a cached block (or the source's memory).
   */
  *chunks(inode: FileInode, offset = 0, length = Infinity, passWhole = false): Generator<Uint8Array> {
    const bs = this.opts.blockSize;
    const end = Math.min(inode.fileSize, offset + length);
    let pos = Math.max(0, offset);
    const fullBlocks = inode.blockSizes.length;
    while (pos < end) {
      const i = Math.floor(pos / bs);
      let blk: Uint8Array;
      let blkStart: number;
      if (i < fullBlocks) {
        blkStart = i * bs;
        // Taken whole (from its first byte to its last): see passWholeBlocks.
        const whole = passWhole && pos === blkStart && end >= blkStart + this.blockLength(inode, i);
        blk = this.block(inode, i, !whole);
      } else {
        if (inode.fragIndex === NO_INDEX) throw new SquashfsError('CORRUPT', `inode ${inode.inodeNumber} has ${inode.fileSize} bytes but only ${fullBlocks} blocks and no fragment`, 'inode table');
        blk = this.tail(inode);
        blkStart = fullBlocks * bs;
      }
      const from = pos - blkStart;
      const to = Math.min(blk.length, end - blkStart);
      if (to <= from) throw new SquashfsError('CORRUPT', `block ${i} of inode ${inode.inodeNumber} is shorter than the file size implies`, 'data block');
      yield blk.subarray(from, to);
      pos = blkStart + to;
    }
  }

  /**
   * The whole file for one sequential pass (extraction): groups of views that together are the
   * file's bytes in order. Consecutive data blocks are read with one positional read per batch
   * (up to STREAM_BATCH bytes on disk) into a buffer reused from batch to batch, and bypass the
   * data cache (a pass touches each block once; caching would only evict what others need). A
   * group's views are valid until the next group is requested: write them out, do not keep them.
   * Each view is one block (or the tail), so the caller can still see which blocks are all zeros.
   */
  *stream(inode: FileInode): Generator<Uint8Array[]> {
    const bs = this.opts.blockSize;
    const n = inode.blockSizes.length;
    const into = this.codec.decompressInto !== undefined;
    if (n > 0) {
      const positions = this.positions(inode);
      let i = 0;
      while (i < n) {
        // The batch: blocks i..j-1, at most STREAM_BATCH bytes on disk (at least one block).
        // Also at most STREAM_BATCH bytes decoded: a run of well-compressed blocks would otherwise
        // hold hundreds of decoded blocks at once.
        const maxBlocks = Math.max(1, Math.floor(STREAM_BATCH / bs));
        let j = i + 1;
        while (j < n && j - i < maxBlocks && positions[j + 1]! - positions[i]! <= STREAM_BATCH) j++;
        const raw = this.readRun(inode, positions, i, j);
        // A compressed block goes into the slot of its place in the group (valid until the next group).
        const slot = into ? (k: number) => (this.streamOut[k - i] ??= Buffer.allocUnsafeSlow(bs)) : undefined;
        const group: Uint8Array[] = [];
        for (let k = i; k < j; k++) group.push(this.runBlock(inode, positions, raw, i, k, slot));
        yield group;
        i = j;
      }
    }
    if (n * bs < inode.fileSize) {
      if (inode.fragIndex === NO_INDEX) throw new SquashfsError('CORRUPT', `inode ${inode.inodeNumber} has ${inode.fileSize} bytes but only ${n} blocks and no fragment`, 'inode table');
      yield [this.tail(inode, true)];
    }
  }

  /**
   * Data blocks [from, to) of the file decoded into `out` back to back, each at its full length
   * (a hole as zeros), with stream()'s checks; returns the bytes written. One positional read for
   * the run. For a pass split between threads (./split-decode.ts), where `out` is shared memory.
   */
  blocksInto(inode: FileInode, from: number, to: number, out: Uint8Array): number {
    const positions = this.positions(inode);
    const raw = this.readRun(inode, positions, from, to);
    let off = 0;
    for (let k = from; k < to; k++) {
      const expected = this.blockLength(inode, k);
      const place = out.subarray(off, off + expected);
      if (place.length !== expected) throw new RangeError(`blocksInto: ${out.length} bytes are too few for blocks ${from}..${to - 1}`);
      const data = this.runBlock(inode, positions, raw, from, k, () => place);
      if (data.buffer !== place.buffer || data.byteOffset !== place.byteOffset) place.set(data); // a hole, a stored block
      off += expected;
    }
    return off;
  }

  /**
   * Data blocks [i, j) of the file as they lie on disk, with one positional read into a buffer
   * reused from run to run (valid until the next run is read), their extent checked first.
   */
  private readRun(inode: FileInode, positions: Float64Array, i: number, j: number): Buffer {
    const start = inode.blocksStart + positions[i]!;
    const bytes = positions[j]! - positions[i]!;
    if (bytes > this.opts.blockSize * (j - i))
      throw new SquashfsError('CORRUPT', `data blocks ${i}..${j - 1} of inode ${inode.inodeNumber} are larger on disk than the block size allows`, 'data block', start);
    if (start + bytes > this.opts.dataEnd) throw new SquashfsError('OUT_OF_BOUNDS', `block at ${start} (${bytes} bytes) runs past the data area (${this.opts.dataEnd})`, 'data block', start);
    if (this.streamBuf.length < bytes) this.streamBuf = Buffer.allocUnsafe(Math.max(bytes, STREAM_BATCH));
    const raw = this.streamBuf.subarray(0, bytes);
    this.source.readInto(start, raw);
    return raw;
  }

  /**
   * Block k of a run that readRun read from block i: a hole as zeros, a stored block as a view of
   * the run, a compressed one decoded into slot(k) where the codec can (else into its own
   * buffer); its length checked.
   */
  private runBlock(inode: FileInode, positions: Float64Array, raw: Buffer, i: number, k: number, slot: ((k: number) => Uint8Array) | undefined): Uint8Array {
    const bs = this.opts.blockSize;
    const expected = this.blockLength(inode, k);
    const word = decodeBlockWord(inode.blockSizes[k]!);
    const at = inode.blocksStart + positions[k]!;
    if (word.sparse) return this.zeros.subarray(0, expected);
    if (word.onDiskSize > bs) throw new SquashfsError('CORRUPT', `on-disk length ${word.onDiskSize} exceeds the block size ${bs}`, 'data block', at);
    const disk = raw.subarray(positions[k]! - positions[i]!, positions[k + 1]! - positions[i]!);
    let data: Uint8Array;
    if (!word.compressed) data = disk;
    else if (slot && this.codec.decompressInto) {
      const into = slot(k);
      data = into.subarray(0, this.decodeInto(disk, into.subarray(0, expected), 'data block', at));
    } else {
      try {
        data = this.codec.decompress(disk, expected);
      } catch (e) {
        throw blockError(e, 'data block', at);
      }
    }
    if (data.length !== expected) throw new SquashfsError('CORRUPT', `block ${k} of inode ${inode.inodeNumber} decompressed to ${data.length} bytes, expected ${expected}`, 'data block', at);
    return data;
  }

  /** Copies up to target.length bytes at `offset` into target; returns the count (0 at EOF). */
  readInto(inode: FileInode, offset: number, target: Uint8Array): number {
    let n = 0;
    for (const c of this.chunks(inode, offset, target.length, this.opts.passWholeBlocks === true)) {
      target.set(c, n);
      n += c.length;
    }
    return n;
  }
}

/** A codec's failure on one block, with the structure and position it was read from. */
export function blockError(e: unknown, structure: string, pos: number): unknown {
  return e instanceof SquashfsError ? new SquashfsError(e.code, e.message, structure, pos, { cause: e }) : e;
}
