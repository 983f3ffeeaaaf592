/**
 * Data and fragment blocks, the writing side (format: "Data and Fragment Blocks"). Files are cut
 * into block_size blocks, compressed (in the worker pool) and written back to back in file order;
 * each file's inode later records where its first block is and one size word per block.
 *
 *   - A block that is all zeros is not stored: its size word is 0 (a hole), as mksquashfs does.
 *   - A block whose compressed form is not smaller is stored as is, with bit 24 of its word set.
 *   - A file smaller than a block (and, with always-use-fragments, the tail of any file) goes into
 *     the current fragment block at the next free offset; when a tail does not fit, the fragment
 *     block is sealed into the output stream right there and a new one started.
 *   - Duplicate files (same size and SHA-256) are stored once: the second
 *     file gets the first one's block list and fragment.
 *
 * With readInWorkers, the whole blocks of a file on disk are read by the compression workers
 * themselves (CompressPool.submitRead): the packing thread only opens the file and queues the
 * blocks, and the file is closed once its last block is written. Tails, small files and files
 * read into memory to be hashed are still read here.
 *
 * Blocks are compressed out of order but written strictly in order: every block takes its place in
 * a queue, and learns its position only when all earlier ones are written. So the image is
 * identical whatever the number of workers, and at most the pool's slots are in memory at once. Nothing here holds the image: blocks go to the file with positional writes.
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { SquashfsError } from '../errors';
import { errnoWords } from '../io/errno';
import { shrankMessage } from '../io/pread';
import { DATA_BLOCK_UNCOMPRESSED, NO_INDEX } from '../format/constants';
import type { CompressPool, Slot } from './compress-pool';
import type { FileContent } from './tree';
import { isAllZero } from '../util/zero';

export interface FileData {
  /** Absolute position of the first block (0 for a file without blocks). */
  blocksStart: number;
  blockWords: number[];
  fragIndex: number;
  fragOffset: number;
  /** Bytes of this file stored as holes. */
  sparse: number;
}

export interface DataWriterOptions {
  blockSize: number;
  fragments: 'default' | 'none' | 'always';
  duplicates: boolean;
  /** Undefined: store everything uncompressed. */
  pool: CompressPool | undefined;
  maxInFlight?: number;
  /** Called with the number of bytes of file content consumed so far. */
  progress?: (bytes: number) => void;
  /**
   * Whole blocks of files on disk are read by the pool's workers (pack.ts turns this on where the
   * codec is fast enough that the workers wait for the reading thread, i.e. lz4).
   */
  readInWorkers?: boolean;
}

/** A staging buffer: what one write system call writes. */
const STAGE_SIZE = 1 << 20;
/** Staged writes allowed under way before the reader waits for one to complete. */
const MAX_WRITING = 4;

/** Files up to this size that may be duplicates are read once, into memory. */
const IN_MEMORY_HASH_LIMIT = 8 << 20;

/**
 * One output item, in image order: a block being compressed in a pool slot, or bytes (null: a
 * hole) ready now. `onWritten` learns its position and stored length once it is written.
 */
type Item = {
  slot: Slot | null;
  data: Uint8Array | null;
  /** The file a worker read the slot's block from (for a failed read's message). */
  origin?: string;
  /** `hole`: a block a worker read and found all zeros; nothing was written. */
  onWritten: (pos: number, stored: number, compressed: boolean, hole?: boolean) => void;
};

export class DataWriter {
  /** Next free byte of the image (data starts after the superblock and compressor options). */
  pos: number;
  readonly fragmentTable: Array<{ start: number; sizeWord: number }> = [];
  /** Items not yet written, oldest first from `head` (only ever non-empty with a pool). */
  private queue: Item[] = [];
  private head = 0;
  private readonly maxInFlight: number;
  private readonly frag: Uint8Array;
  private fragFill = 0;
  /** A tail that does not fit the fragment block is read here while that block is sealed. */
  private tailBuf: Buffer | undefined;
  private readonly zero: Uint8Array;
  /** Stored files that may have duplicates, by size and SHA-256. */
  private readonly done = new Map<string, FileData>();
  private consumed = 0;
  private error: unknown;
  /** Files whose blocks workers may still be reading (closed after their last block, or by closeFiles). */
  private readonly reading = new Set<FileContent>();

  constructor(
    private readonly fd: number,
    start: number,
    private readonly opts: DataWriterOptions,
  ) {
    this.pos = start;
    this.frag = Buffer.allocUnsafe(opts.blockSize);
    this.zero = new Uint8Array(opts.blockSize);
    this.maxInFlight = opts.maxInFlight ?? Math.max(8, (opts.pool?.size ?? 1) * 8);
  }

  /**
   * Queues one output item and writes out every item at the head of the queue that is ready:
   * blocks are compressed out of order but written in order, so the image does not depend on the
   * number of workers. Synchronous: a finished compression is seen in shared memory (pool.done).
   */
  private enqueue(item: Item): void {
    if (this.head === this.queue.length && item.slot === null) {
      this.writeItem(item); // nothing waits to be written (always so without compression)
      return;
    }
    this.queue.push(item);
    this.writeReady();
  }

  /** Writes the items at the head of the queue whose bytes are ready. */
  private writeReady(): void {
    const pool = this.opts.pool;
    while (this.head < this.queue.length) {
      const item = this.queue[this.head]!;
      if (item.slot && !pool!.done(item.slot)) break;
      this.head++;
      this.writeItem(item);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }

  private writeItem(item: Item): void {
    const pos = this.pos;
    if (item.slot) {
      const pool = this.opts.pool!;
      let r;
      try {
        r = pool.result(item.slot, item.origin);
        if (!r.hole) this.write(r.bytes);
      } finally {
        pool.release(item.slot);
      }
      item.onWritten(pos, r.bytes.length, r.compressed, r.hole);
    } else {
      if (item.data) this.write(item.data);
      item.onWritten(pos, item.data ? item.data.length : 0, false);
    }
  }

  /** Waits until the oldest queued item is written (its compression complete). */
  private async writeOldest(): Promise<void> {
    const item = this.queue[this.head];
    if (!item) return;
    if (item.slot) await this.opts.pool!.whenDone(item.slot);
    this.writeReady();
  }

  /** A slot of the pool's shared memory for one block: while none is free, the oldest is written out. */
  private async slot(pool: CompressPool): Promise<Slot> {
    for (;;) {
      const slot = pool.acquire();
      if (slot) return slot;
      // Every slot in use is in the queue, so the queue's oldest item frees one once written.
      await this.writeOldest();
    }
  }

  /** Items queued but not written, holes included, stay bounded. */
  private async queueBelow(limit: number): Promise<void> {
    while (this.queue.length - this.head > limit) await this.writeOldest();
  }

  /**
   * Appends at this.pos through a staging buffer, so that runs of small blocks and fragments
   * become one write system call per 1 MiB.
   */
  private write(data: Uint8Array): void {
    if (this.stageFill + data.length > this.stage.length) this.flush();
    if (data.length >= this.stage.length) {
      writeAll(this.fd, data, this.pos);
    } else {
      this.stage.set(data, this.stageFill);
      this.stageFill += data.length;
    }
    this.pos += data.length;
  }

  /**
   * Hands the filled staging buffer to libuv's thread pool (an asynchronous positional write) and
   * goes on with another one: copying the bytes into the page cache then happens on another
   * core while this thread reads the next files (mksquashfs has a writer thread for the same
   * reason). Writes are positional, so their completion order does not matter.
   */
  private flush(): void {
    if (this.stageFill === 0) return;
    const buf = this.stage;
    const len = this.stageFill;
    const at = this.pos - len;
    this.stage = this.spare.pop() ?? Buffer.allocUnsafe(STAGE_SIZE);
    this.stageFill = 0;
    this.writing++;
    let off = 0;
    const next = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (!err && n > 0 && (off += n) < len) {
        fs.write(this.fd, buf, off, len - off, at + off, next);
        return;
      }
      if (err || n <= 0)
        this.error ??= err
          ? new SquashfsError('IO', `cannot write the image: ${errnoWords(err)}`, undefined, undefined, { cause: err })
          : new SquashfsError('IO', 'cannot write the image: no progress');
      this.writing--;
      this.spare.push(buf);
      for (const wake of this.waiting.splice(0)) wake();
    };
    fs.write(this.fd, buf, 0, len, at, next);
  }

  /**
   * Resolves once no write is under way, without throwing: the caller may close the image's file
   * descriptor then (a write still queued in the thread pool would otherwise go to whatever file
   * reuses the number).
   */
  async settled(): Promise<void> {
    while (this.writing > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Waits while more than `limit` staged writes are under way (memory stays bounded). */
  private async writesBelow(limit: number): Promise<void> {
    while (this.writing > limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.error) throw this.error;
  }
  private stage: Buffer = Buffer.allocUnsafe(STAGE_SIZE);
  /** Staging buffers whose writes are complete. */
  private readonly spare: Buffer[] = [];
  /** Staged writes under way, and who waits for one to complete. */
  private writing = 0;
  private readonly waiting: Array<() => void> = [];
  /** Small files that may be duplicates are read whole into this, hashed and stored from it. */
  private hashBuf: Buffer = Buffer.alloc(0);
  private stageFill = 0;

  private isZero(b: Uint8Array): boolean {
    return isAllZero(b, this.zero);
  }

  /** Stores one file's contents; the result's fields are final once finish() has resolved. */
  async addFile(source: FileContent, mayDuplicate: boolean): Promise<FileData> {
    if (this.writing > MAX_WRITING) await this.writesBelow(MAX_WRITING);
    let content = source;
    const size = content.size;
    const bs = this.opts.blockSize;
    if (size === 0) return { blocksStart: 0, blockWords: [], fragIndex: NO_INDEX, fragOffset: 0, sparse: 0 };
    let hash: string | undefined;
    if (mayDuplicate && this.opts.duplicates) {
      // Another file has this size. A small file is read once into memory, hashed, and stored
      // from there; a large one is hashed in a first read (the data is read again to store it).
      if (size <= IN_MEMORY_HASH_LIMIT) {
        // One buffer reused from file to file (addFile calls never overlap, and nothing read from
        // it outlives this call): a fresh one per file cost page faults and garbage collection.
        // Grown by doubling: every new buffer costs page faults as it is first read into.
        if (this.hashBuf.length < size) this.hashBuf = Buffer.allocUnsafe(Math.max(size, 2 * this.hashBuf.length, 1 << 16));
        const all = this.hashBuf.subarray(0, size);
        try {
          readFully(content, 0, all);
        } finally {
          content.close?.();
        }
        hash = sha256(all);
        content = { size, origin: source.origin, read: (p, buf) => (buf.set(all.subarray(p, p + buf.length)), Math.min(buf.length, size - p)) };
      } else {
        hash = hashContent(content);
      }
      // Equal SHA-256 is taken as equal bytes, as content-addressed stores do (no collision is
      // known); mksquashfs's checksum is weak, so it reads both files back to compare them.
      const same = this.done.get(`${size}:${hash}`);
      if (same) {
        this.consumed += size;
        this.opts.progress?.(this.consumed);
        return same;
      }
    }
    const tailInFragment = this.opts.fragments !== 'none' && (size < bs || this.opts.fragments === 'always') && size % bs !== 0;
    const fullBlocks = tailInFragment ? Math.floor(size / bs) : Math.ceil(size / bs);
    const data: FileData = { blocksStart: 0, blockWords: new Array(fullBlocks).fill(0), fragIndex: NO_INDEX, fragOffset: 0, sparse: 0 };
    const file = content;
    // Whole blocks read by the workers: only from a file on disk read here from its start (a file
    // read into memory to be hashed has no descriptor any more).
    const workerFd = this.opts.pool && this.opts.readInWorkers && fullBlocks > 0 ? file.fd : undefined;
    // This call holds the file open, and so does every block a worker is to read from it: the last
    // to let go closes it and settles the file's sparse count (holes found by workers come late).
    let held = 1;
    let handedOver = false;
    const letGo = () => {
      if (--held > 0) return;
      if (handedOver) this.reading.delete(file);
      file.close?.();
      // mksquashfs never records a file as entirely sparse (the kernel treats sparse == size oddly
      // in old versions): one byte less.
      if (data.sparse >= size) data.sparse = size - 1;
    };
    try {
      for (let i = 0; i < fullBlocks; i++) {
        const len = Math.min(bs, size - i * bs);
        if (this.writing > MAX_WRITING) await this.writesBelow(MAX_WRITING);
        const pool = this.opts.pool;
        if (!pool) {
          // Uncompressed: read straight into the staging buffer, where the block is stored.
          this.storeInPlace(content, i * bs, len, data, i);
        } else {
          if (this.queue.length - this.head > this.maxInFlight) await this.queueBelow(this.maxInFlight);
          const slot = pool.acquire() ?? (await this.slot(pool));
          const first = i === 0;
          /** Where the block went: its position, and its size word (or a hole a worker found). */
          const placed = (pos: number, stored: number, compressed: boolean, hole?: boolean) => {
            if (first) data.blocksStart = pos;
            if (hole) data.sparse += len;
            else data.blockWords[i] = (stored | (compressed ? 0 : DATA_BLOCK_UNCOMPRESSED)) >>> 0;
          };
          if (workerFd) {
            // A worker reads the block into the slot (and tells a hole from data) itself.
            if (!handedOver) this.reading.add(file);
            handedOver = true;
            held++;
            pool.submitRead(slot, len, workerFd.call(file), i * bs);
            this.enqueue({
              slot,
              data: null,
              origin: file.origin,
              onWritten: (pos, stored, compressed, hole) => {
                placed(pos, stored, compressed, hole);
                letGo();
              },
            });
          } else {
            // Read here into the slot of the pool's shared memory, where a worker compresses it.
            const buf = slot.input.subarray(0, len);
            readFully(content, i * bs, buf);
            if (this.isZero(buf)) {
              pool.release(slot);
              data.sparse += len;
              this.enqueue({
                slot: null,
                data: null,
                onWritten: (pos) => {
                  if (first) data.blocksStart = pos;
                },
              });
            } else {
              pool.submit(slot, len);
              this.enqueue({ slot, data: null, onWritten: placed });
            }
          }
        }
        this.consumed += len;
        this.opts.progress?.(this.consumed);
      }
      if (tailInFragment) {
        const len = size - fullBlocks * bs;
        // Read the tail where it goes, at the fill point of the fragment block, when it fits.
        const fits = this.fragFill + len <= bs;
        // (Else into a buffer kept for that: it is copied into the next fragment block at once.)
        const tail = fits ? this.frag.subarray(this.fragFill, this.fragFill + len) : (this.tailBuf ??= Buffer.allocUnsafe(bs)).subarray(0, len);
        readFully(content, fullBlocks * bs, tail);
        if (this.isZero(tail)) {
          // As mksquashfs: an all-zero tail is a hole block, not fragment bytes.
          data.blockWords.push(0);
          data.sparse += len;
          if (fullBlocks === 0) this.enqueue({ slot: null, data: null, onWritten: (pos) => (data.blocksStart = pos) });
        } else {
          if (!fits) {
            await this.sealFragment();
            this.frag.set(tail, 0);
          }
          data.fragIndex = this.fragmentTable.length;
          data.fragOffset = this.fragFill;
          this.fragFill += len;
        }
        this.consumed += len;
        this.opts.progress?.(this.consumed);
      }
    } catch (e) {
      // A file a worker may still be reading stays open until the pool has stopped (closeFiles).
      if (!handedOver) file.close?.();
      throw e;
    }
    letGo();
    if (hash !== undefined && this.opts.duplicates) this.done.set(`${size}:${hash}`, data);
    return data;
  }

  /**
   * Closes the files whose blocks workers were to read, after a failure: call it once the pool has
   * stopped (no worker reads a descriptor any more, and none may be reused under one).
   */
  closeFiles(): void {
    for (const f of this.reading) f.close?.();
    this.reading.clear();
  }

  /** Block i of a file, uncompressed, read into the staging buffer and stored there (or a hole). */
  private storeInPlace(content: FileContent, position: number, len: number, data: FileData, i: number): void {
    if (this.stageFill + len > this.stage.length) this.flush();
    const at = this.stage.subarray(this.stageFill, this.stageFill + len);
    readFully(content, position, at);
    if (i === 0) data.blocksStart = this.pos;
    if (this.isZero(at)) {
      data.sparse += len;
      return;
    }
    this.stageFill += len;
    this.pos += len;
    data.blockWords[i] = (len | DATA_BLOCK_UNCOMPRESSED) >>> 0;
  }

  private async sealFragment(): Promise<void> {
    if (this.fragFill === 0) return;
    const index = this.fragmentTable.length;
    this.fragmentTable.push({ start: 0, sizeWord: 0 });
    const len = this.fragFill;
    const pool = this.opts.pool;
    const onWritten = (pos: number, stored: number, compressed: boolean) => {
      this.fragmentTable[index] = { start: pos, sizeWord: (stored | (compressed ? 0 : DATA_BLOCK_UNCOMPRESSED)) >>> 0 };
    };
    this.fragFill = 0;
    if (pool) {
      // Copied into a slot, so that the fragment buffer is free again at once.
      const slot = pool.acquire() ?? (await this.slot(pool));
      slot.input.set(this.frag.subarray(0, len));
      pool.submit(slot, len);
      this.enqueue({ slot, data: null, onWritten });
    } else {
      this.enqueue({ slot: null, data: this.frag.subarray(0, len), onWritten }); // written (copied) right away
    }
  }

  /** Seals the last fragment block and waits for every block to be written. */
  async finish(): Promise<void> {
    await this.sealFragment();
    await this.queueBelow(0);
    this.flush();
    await this.writesBelow(0);
  }
}

function writeAll(fd: number, data: Uint8Array, pos: number): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, pos + off);
}

function readFully(content: FileContent, position: number, buf: Uint8Array): void {
  const n = content.read(position, buf);
  if (n !== buf.length) {
    throw new SquashfsError('IO', `${content.origin ?? 'file'}: ${shrankMessage(n, position, buf.length)}`);
  }
}

/** One-shot SHA-256 (crypto.hash where Node has it: no Hash object per small file). */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'hex') => string }).hash;
function sha256(data: Uint8Array): string {
  return oneShot ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a content, read in 1 MiB chunks (for the duplicate pre-pass). */
export function hashContent(content: FileContent): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(1, content.size)));
  try {
    for (let p = 0; p < content.size; p += buf.length) {
      const n = Math.min(buf.length, content.size - p);
      readFully(content, p, buf.subarray(0, n));
      h.update(buf.subarray(0, n));
    }
  } finally {
    content.close?.();
  }
  return h.digest('hex');
}
