/**
 * A pool of compression workers (worker_threads). Blocks are queued and handed to whichever worker
 * has room (two jobs each, so none idles between a reply and its next job); results come back as
 * promises, in any order: the data writer puts them back in order. Workers start on first use, so
 * an image made of tiny files costs no thread start-up.
 *
 * Blocks travel through slots of one SharedArrayBuffer, not in messages: the packing thread reads
 * a block straight into a slot's input half, posts the slot's number, and the worker leaves the
 * compressed bytes in the slot's output half and posts their length. A slot is reused once the
 * packing thread has written its result out (release). Measured on the Debian root filesystem
 * with lz4, the design it replaced (a fresh ArrayBuffer per block, transferred to the worker and
 * back) spent a third of the packing thread in page faults on the fresh buffers, transfers and
 * the garbage collections that the external memory set off.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { SquashfsError } from '../errors';
import type { CompressOptions } from '../codec';

/** A block's place in the shared memory: `input` is blockSize bytes to read the block into. */
export interface Slot {
  readonly index: number;
  readonly input: Uint8Array;
}

/** A block's stored form: compressed, or (not smaller that way) the block itself; a view of its slot. */
export interface Compressed {
  bytes: Uint8Array;
  compressed: boolean;
}

interface Job {
  id: number;
  slot: Slot;
  len: number;
  resolve(r: Compressed): void;
  reject(e: Error): void;
}

const PER_WORKER = 2;

export class CompressPool {
  private readonly workers: Array<{ w: Worker; busy: number }> = [];
  private readonly queue: Job[] = [];
  private readonly pending = new Map<number, Job>();
  private nextId = 0;
  private failed: Error | undefined;
  private readonly shared: SharedArrayBuffer;
  private readonly slots: Slot[] = [];
  private readonly free: Slot[] = [];
  private readonly waiting: Array<() => void> = [];
  private readonly blockSize: number;

  /** `slots`: blocks that may be between reading and writing at once (the writer's in-flight bound). */
  constructor(
    private readonly codec: string,
    private readonly options: CompressOptions & { blockSize: number },
    readonly size: number = Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    slots = Math.max(8, size * 8) + 2,
  ) {
    this.blockSize = options.blockSize;
    // At most 256 MiB of shared memory (many CPUs, 1 MiB blocks), but two jobs per worker and room
    // for the writer's ordering. Pages of slots never used are never touched.
    slots = Math.max(2 * size + 2, Math.min(slots, Math.floor((256 << 20) / (2 * this.blockSize))));
    // Each slot: the block (input) then room for its compressed form (output, never larger).
    this.shared = new SharedArrayBuffer(slots * 2 * this.blockSize);
    for (let i = 0; i < slots; i++) this.slots.push({ index: i, input: new Uint8Array(this.shared, 2 * i * this.blockSize, this.blockSize) });
    this.free = [...this.slots].reverse();
  }

  /** A free slot, or undefined when all are in use (then wait with whenFree). */
  acquire(): Slot | undefined {
    return this.free.pop();
  }

  /** Resolves when a slot has been released (or at once if one is free). */
  whenFree(): Promise<void> {
    if (this.free.length > 0 || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The slot's bytes (input and output) are no longer needed. */
  release(slot: Slot): void {
    this.free.push(slot);
    this.waiting.shift()?.();
  }

  /** Compresses the first `len` bytes of the slot's input; the result stays valid until release. */
  compress(slot: Slot, len: number): Promise<Compressed> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, slot, len, resolve, reject });
      this.pump();
    });
  }

  private start(): void {
    const w = new Worker(path.join(__dirname, 'compress-worker.js'), {
      workerData: { codec: this.codec, options: this.options, shared: this.shared, blockSize: this.blockSize },
    });
    const slot = { w, busy: 0 };
    w.on('message', (m: { id: number; len?: number; error?: string }) => {
      const job = this.pending.get(m.id);
      if (!job) return;
      this.pending.delete(m.id);
      slot.busy--;
      if (m.error !== undefined) job.reject(new SquashfsError('IO', `${this.codec} compression failed: ${m.error}`));
      else if (m.len! >= 0) job.resolve({ bytes: new Uint8Array(this.shared, (2 * job.slot.index + 1) * this.blockSize, m.len!), compressed: true });
      else job.resolve({ bytes: job.slot.input.subarray(0, job.len), compressed: false });
      this.pump();
    });
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => {
      if (code !== 0 && this.pending.size > 0) this.fail(new Error(`compression worker exited with code ${code}`));
    });
    this.workers.push(slot);
  }

  private fail(e: Error): void {
    this.failed = e;
    for (const j of [...this.pending.values(), ...this.queue]) j.reject(e);
    this.pending.clear();
    this.queue.length = 0;
    for (const wake of this.waiting.splice(0)) wake();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.workers.find((s) => s.busy < PER_WORKER);
      if (!slot && this.workers.length < this.size) {
        this.start();
        slot = this.workers[this.workers.length - 1];
      }
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.busy++;
      this.pending.set(job.id, job);
      slot.w.postMessage({ id: job.id, slot: job.slot.index, len: job.len });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    this.workers.length = 0;
  }
}
