/**
 * One large file's data blocks decoded by two threads, this one and a worker, for a sequential
 * pass (`distri cat`): unsquashfs decodes on every core, and for zstd, lzo and gzip the decoder
 * binds a one-thread pass (the native decoders cost what unsquashfs's cost per core).
 *
 * The file's blocks are cut into groups of about 1 MiB. A group is decoded into one of a ring of
 * RING slots of shared memory by whichever thread claims it first: the worker claims groups in
 * order as far as the ring allows; this thread, which writes the groups out in order, claims one
 * itself whenever the group it has to write next is not ready yet, and waits only when every slot
 * is taken. No block crosses a message: the worker reopens the image by its path, parses the inode
 * by its reference, reads and decodes with its own DataReader (blocksInto: the same checks as a
 * one-thread pass) straight into the slot. Completion is a word per slot (the group's number + 1),
 * so this thread sees it without turning its event loop. A failed block stops both: its error
 * (code, structure, offset, message) comes back through shared memory and is thrown here, as the
 * one-thread pass would throw it.
 *
 * The worker takes ~70 ms to decode its first group (a new V8 isolate, the reader's modules, the
 * image opened again), so this thread decodes the first groups alone and starts it only when the
 * rest of the file would take well longer than that here (START_PAYS_MS): the same size decodes
 * two or three times faster or slower depending on the data. Until the worker answers, this
 * thread goes on decoding every group itself (bench/README-extract.md, "cat").
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { SquashfsError, type ErrorCode } from '../errors';
import type { FileInode, InodeRef } from '../format/inode';
import { FileSource, OffsetSource } from '../io/source';
import { splitMode } from './decompress-pool';
import type { Image } from './image';

/** Groups of the one-thread pass (after its first) timed before deciding whether a worker joins. */
const PROBE_GROUPS = 4;
/** A new worker joins only when the rest of the file would take this long on this thread alone. */
const START_PAYS_MS = 250;
/** Groups decoded ahead of the one being written, at most (the ring's slots). */
const RING = 8;
/** Bytes of decoded data per group (whole blocks; one block when blocks are larger). */
const GROUP_BYTES = 1 << 20;

/** Words of the control array. */
const NEXT = 0; // the next group nobody has claimed
const WRITTEN = 1; // groups written out (their slots are free again)
const FAILED = 2; // 1: a group failed; the error is in the error text
const ERROR_LENGTH = 3;
const STOP = 4; // 1: this thread gave up on the file (an error here, or the reader left)
const DONE = 5; // DONE + k: the group in slot k, plus one, once decoded (0: not yet)
const ERROR_BYTES = 4096;

/** One file's pass, as the worker gets it. */
export interface SplitJob {
  ref: InodeRef;
  /** The first block of the first group. */
  first: number;
  /** Blocks per group, groups in all. */
  groupBlocks: number;
  groups: number;
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

export interface SplitInit {
  imagePath: string;
  offset: number;
  /** The file this thread reads: the worker checks that the path still names it. */
  dev: number;
  ino: number;
}

export type SplitMessage = { job: SplitJob } | { stop: true };

/** The worker's side of the words (./split-decode-worker.ts). */
export const SPLIT_WORDS = { NEXT, WRITTEN, FAILED, ERROR_LENGTH, STOP, DONE, RING, ERROR_BYTES };

/**
 * The file an image was opened from (its path, the image's offset in it, and which file that was:
 * device and inode number), if it was opened from a file.
 */
export function imageFile(image: Image): SplitInit | undefined {
  let src = image.source;
  let offset = 0;
  if (src instanceof OffsetSource) {
    offset = src.base;
    src = src.inner;
  }
  return src instanceof FileSource ? { imagePath: src.path, offset, ...src.identity() } : undefined;
}

export class SplitDecoder {
  private worker: Worker | undefined;
  private exited: Promise<number> | undefined;
  private workerError: Error | undefined;
  /** close() has asked the worker to leave. */
  private closing = false;

  /** A decoder for `image`, or undefined when it was not opened from a file (the worker reopens it). */
  static for(image: Image): SplitDecoder | undefined {
    const file = imageFile(image);
    return file ? new SplitDecoder(image, file) : undefined;
  }

  private constructor(
    private readonly image: Image,
    private readonly init: SplitInit,
  ) {}

  /** The worker, started on first use (and kept for the next files). */
  private start(): Worker {
    if (this.worker) return this.worker;
    // Named from dist/src, not __dirname alone: the same file whether or not this module is bundled.
    const w = (this.worker = new Worker(path.join(__dirname, '..', 'reader', 'split-decode-worker.js'), { workerData: this.init }));
    this.exited = new Promise((resolve) => w.once('exit', resolve));
    w.on('error', (e) => (this.workerError ??= e));
    // It leaves only when close() asks; leaving earlier is a failure (a group it claimed would never come).
    w.once('exit', (code) => {
      if (!this.closing) this.workerError ??= new Error(`exited with status ${code}`);
    });
    return w;
  }

  /**
   * The file's bytes in order, as views valid until the next one is asked for. This thread starts
   * alone, with the one-thread pass (DataReader.stream); after its first groups it knows how fast
   * this file decodes, and only where the rest would take well over a worker's start does the
   * worker join, for the blocks not yet read (a worker already running joins at once).
   */
  async *file(inode: FileInode): AsyncGenerator<Uint8Array> {
    const blocks = inode.blockSizes.length;
    let from = 0;
    if (!this.worker && splitMode() === 'auto') {
      // The clock starts after the first group: that one also pays for loading the codec.
      let seen = 0;
      let began = 0n;
      let startBlocks = 0;
      let join = false;
      for (const group of this.image.data.stream(inode)) {
        for (const view of group) yield view;
        if (from >= blocks) continue; // (the tail, from its fragment)
        from = Math.min(blocks, from + group.length);
        seen++;
        if (seen === 1) {
          began = process.hrtime.bigint();
          startBlocks = from;
        } else if (seen === PROBE_GROUPS + 1) {
          const perBlock = Number(process.hrtime.bigint() - began) / 1e6 / (from - startBlocks);
          if ((blocks - from) * perBlock > START_PAYS_MS && from < blocks) {
            join = true;
            break;
          }
        }
      }
      if (!join) return;
    }
    yield* this.shared(inode, from);
  }

  /** Blocks [first, end) and the tail, decoded by both threads into the ring. */
  private async *shared(inode: FileInode, first: number): AsyncGenerator<Uint8Array> {
    const img = this.image;
    const bs = img.superblock.blockSize;
    const blocks = inode.blockSizes.length;
    const groupBlocks = Math.max(1, Math.floor(GROUP_BYTES / bs));
    const groups = Math.ceil((blocks - first) / groupBlocks);
    const slotBytes = groupBlocks * bs;
    const job: SplitJob = {
      ref: inode.ref,
      first,
      groupBlocks,
      groups,
      ring: new SharedArrayBuffer(RING * slotBytes),
      control: new SharedArrayBuffer(4 * (DONE + RING)),
      error: new SharedArrayBuffer(ERROR_BYTES),
    };
    const ring = new Uint8Array(job.ring);
    const ctl = new Int32Array(job.control);
    if (groups > 0) this.start().postMessage({ job } satisfies SplitMessage);
    const workerOnly = splitMode() === 'worker';
    let finished = false;
    try {
      for (let w = 0; w < groups;) {
        const k = w % RING;
        if (Atomics.load(ctl, DONE + k) === w + 1) {
          const from = first + w * groupBlocks;
          const to = Math.min(blocks, from + groupBlocks);
          yield ring.subarray(k * slotBytes, k * slotBytes + Math.min(inode.fileSize, to * bs) - from * bs);
          Atomics.store(ctl, DONE + k, 0);
          Atomics.store(ctl, WRITTEN, ++w);
          Atomics.notify(ctl, WRITTEN);
          continue;
        }
        if (Atomics.load(ctl, FAILED)) throw this.failure(ctl, job.error);
        // Not ready: claim the next group ourselves if its slot is free, else wait for group w.
        const n = Atomics.load(ctl, NEXT);
        if (!workerOnly && n < groups && n < w + RING && Atomics.compareExchange(ctl, NEXT, n, n + 1) === n) {
          const from = first + n * groupBlocks;
          const m = n % RING;
          img.data.blocksInto(inode, from, Math.min(blocks, from + groupBlocks), ring.subarray(m * slotBytes, (m + 1) * slotBytes));
          Atomics.store(ctl, DONE + m, n + 1);
          continue;
        }
        if (this.workerError) throw new SquashfsError('IO', `the decoding thread failed: ${this.workerError.message}`, 'data block');
        // Bounded: after a long wait the event loop turns once, so that a worker that died
        // (its 'error' or 'exit' event, workerError) is noticed rather than waited for forever.
        if (Atomics.wait(ctl, DONE + k, 0, 200) === 'timed-out') await new Promise((resolve) => setImmediate(resolve));
      }
      finished = true;
    } finally {
      // Stopped early (an error, or the consumer left): the worker drops the rest of the file.
      if (!finished) {
        Atomics.store(ctl, STOP, 1);
        Atomics.notify(ctl, WRITTEN);
      }
    }
    if (inode.fileSize > blocks * bs) yield* img.data.chunks(inode, blocks * bs);
  }

  /** Lets the worker (if one started) finish what it was given and leave; resolves when it has exited. */
  async close(): Promise<void> {
    if (!this.worker) return;
    this.closing = true;
    this.worker.postMessage({ stop: true } satisfies SplitMessage);
    await this.exited;
  }

  private failure(ctl: Int32Array, error: SharedArrayBuffer): Error {
    const n = Atomics.load(ctl, ERROR_LENGTH);
    const e = JSON.parse(Buffer.from(new Uint8Array(error, 0, n)).toString('utf8')) as SplitError;
    return e.code ? new SquashfsError(e.code as ErrorCode, e.message, e.structure, e.offset) : new Error(e.message);
  }
}

/** A failed group, as the worker writes it into the error text (JSON). */
export interface SplitError {
  /** A SquashfsError's code, structure and offset; no code for any other error. */
  code?: string;
  structure?: string;
  offset?: number;
  message: string;
}
