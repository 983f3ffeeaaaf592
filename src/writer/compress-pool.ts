/**
 * A pool of compression workers (worker_threads) fed through shared memory alone: no message per
 * block in either direction. Blocks are compressed out of order; the data writer puts them back in
 * order. Workers start on first use, so an image made of tiny files costs no thread start-up.
 *
 * Blocks travel through slots of one SharedArrayBuffer: the packing thread reads a block straight
 * into a slot's input half and submits the slot's number into a ring of job numbers; an idle worker
 * claims the next job with a compare-and-swap, leaves the compressed bytes in the slot's output
 * half, and marks the slot done (Atomics). The packing thread sees a slot done with a plain load,
 * without going back to its event loop, and blocks (Atomics.waitAsync) only when it needs a slot
 * that is still being compressed.
 *
 * A job may also ask the worker to read its block first (submitRead: a file descriptor and a
 * position): the worker preads the block into the slot, reports an all-zero block as a hole
 * without compressing it, and compresses the rest. With a fast codec (lz4) the workers idle half
 * the time while the packing thread, the critical path, reads every byte: moving the reads of
 * whole blocks to them takes most of the copying off that thread.
 *
 * Why not messages (the design this replaced): a worker's reply is handled only when the packing
 * thread returns to its event loop, and packing is mostly synchronous file reading, so replies and
 * the next jobs waited for it. Measured on the Debian root filesystem with lz4: the packing thread
 * idle 28 % of the time waiting for blocks while each worker idled 50-60 % waiting for jobs, and
 * two messages per block (postMessage ~160 ms on the packing thread, ~70 ms in each worker).
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
  /** A block the worker read and found all zeros: stored as a hole (bytes is empty). */
  hole?: boolean;
}

/**
 * The control words, an Int32Array shared with the workers (the layout compress-worker.ts reads):
 * the counts of jobs submitted and claimed, a stop flag, then a ring of job slot numbers, and per
 * slot its state, its input length, its result (compressed length, -1 not smaller, -2 a hole,
 * <= -3 an error whose message, -3 - result bytes of UTF-8, is in the slot's output half) and the
 * file descriptor to read the block from (-1: the block is in the slot already; READ_FAILED after
 * the read failed). The positions to read at are in a Float64Array of their own (files may be
 * larger than 2^31 bytes).
 */
/** Atomics.waitAsync (Node >= 16; not yet in TypeScript's ES2022 library). */
const waitAsync = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string } }).waitAsync;

export const CTL = { SUBMITTED: 0, TAKEN: 1, STOP: 2, HEADER: 4 } as const;
export const SLOT_QUEUED = 1;
export const SLOT_DONE = 2;
export const RESULT_NOT_SMALLER = -1;
export const RESULT_HOLE = -2;
/** Results at or below this are errors: RESULT_ERROR - (bytes of the message). */
export const RESULT_ERROR = -3;
export const NO_FD = -1;
export const READ_FAILED = -2;
export const ctlLayout = (slots: number) => ({
  ring: CTL.HEADER,
  state: CTL.HEADER + slots,
  len: CTL.HEADER + 2 * slots,
  result: CTL.HEADER + 3 * slots,
  fd: CTL.HEADER + 4 * slots,
  words: CTL.HEADER + 5 * slots,
});

export class CompressPool {
  private readonly workers: Worker[] = [];
  /** One promise per worker started: its exit code once it has exited. */
  private readonly exited: Promise<number>[] = [];
  private failed: Error | undefined;
  private readonly failure: Promise<never>;
  private onFailure!: (e: Error) => void;
  private readonly shared: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  /** Per slot: the file position a read job reads its block from. */
  private readonly positions: Float64Array;
  private readonly layout: ReturnType<typeof ctlLayout>;
  private readonly slots: Slot[] = [];
  private readonly free: Slot[] = [];
  private readonly blockSize: number;
  private submitted = 0;

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
    this.layout = ctlLayout(slots);
    this.ctl = new Int32Array(new SharedArrayBuffer(this.layout.words * 4));
    this.positions = new Float64Array(new SharedArrayBuffer(slots * 8));
    for (let i = 0; i < slots; i++) this.slots.push({ index: i, input: new Uint8Array(this.shared, 2 * i * this.blockSize, this.blockSize) });
    this.free = [...this.slots].reverse();
    this.failure = new Promise<never>((_resolve, reject) => (this.onFailure = reject));
    this.failure.catch(() => {}); // observed by whoever waits; never an unhandled rejection
  }

  /** A free slot, or undefined when all are in use (then write out an earlier block: release). */
  acquire(): Slot | undefined {
    return this.free.pop();
  }

  /** The slot's bytes (input and output) are no longer needed. */
  release(slot: Slot): void {
    this.free.push(slot);
  }

  /** Queues the first `len` bytes of the slot's input for compression (see done and result). */
  submit(slot: Slot, len: number): void {
    this.queue(slot, len, NO_FD);
  }

  /**
   * Queues a block the worker reads itself: `len` bytes of the open file `fd` at `position`, read
   * into the slot's input, then stored as a hole when all zeros, else compressed. The descriptor
   * must stay open until the slot is done.
   */
  submitRead(slot: Slot, len: number, fd: number, position: number): void {
    this.positions[slot.index] = position;
    this.queue(slot, len, fd);
  }

  private queue(slot: Slot, len: number, fd: number): void {
    if (this.failed) throw this.failed;
    if (this.closing) throw new SquashfsError('IO', `${this.codec} compression pool closed`);
    const { ring, state, len: lens } = this.layout;
    const ctl = this.ctl;
    ctl[lens + slot.index] = len;
    ctl[this.layout.fd + slot.index] = fd;
    Atomics.store(ctl, state + slot.index, SLOT_QUEUED);
    // At most one job per slot is ever queued, so the ring (one entry per slot) cannot overrun.
    Atomics.store(ctl, ring + (this.submitted % this.slots.length), slot.index);
    this.submitted++;
    Atomics.store(ctl, CTL.SUBMITTED, this.submitted);
    if (this.workers.length < this.size && this.submitted - Atomics.load(ctl, CTL.TAKEN) > this.workers.length) this.start();
    Atomics.notify(ctl, CTL.SUBMITTED, 1);
  }

  /** Whether the slot's compression is complete (a load of shared memory, no event loop). */
  done(slot: Slot): boolean {
    return Atomics.load(this.ctl, this.layout.state + slot.index) === SLOT_DONE;
  }

  /** Resolves when the slot's compression is complete; rejects if the pool failed. */
  async whenDone(slot: Slot): Promise<void> {
    const at = this.layout.state + slot.index;
    while (Atomics.load(this.ctl, at) !== SLOT_DONE) {
      if (this.failed) throw this.failed;
      if (this.closing) throw new SquashfsError('IO', `${this.codec} compression pool closed while a block was being compressed`);
      const w = waitAsync(this.ctl, at, SLOT_QUEUED);
      if (w.async) await Promise.race([w.value, this.failure]);
    }
  }

  /**
   * The stored form of a slot whose compression is done; valid until release. `origin` names the
   * file of a read job in the message when its read failed.
   */
  result(slot: Slot, origin?: string): Compressed {
    const r = this.ctl[this.layout.result + slot.index]!;
    const out = (2 * slot.index + 1) * this.blockSize;
    if (r >= 0) return { bytes: new Uint8Array(this.shared, out, r), compressed: true };
    if (r === RESULT_NOT_SMALLER) return { bytes: slot.input.subarray(0, this.ctl[this.layout.len + slot.index]), compressed: false };
    if (r === RESULT_HOLE) return { bytes: slot.input.subarray(0, 0), compressed: false, hole: true };
    const message = Buffer.from(this.shared, out, RESULT_ERROR - r).toString('utf8');
    if (this.ctl[this.layout.fd + slot.index] === READ_FAILED) throw new SquashfsError('IO', `${origin ?? 'file'}: ${message}`);
    throw new SquashfsError('IO', `${this.codec} compression failed: ${message}`);
  }

  private start(): void {
    // Named from dist/src, not just __dirname: in the CLI bundle this module's __dirname is
    // dist/src/cli.
    const w = new Worker(path.join(__dirname, '..', 'writer', 'compress-worker.js'), {
      workerData: { codec: this.codec, options: this.options, shared: this.shared, ctl: this.ctl, positions: this.positions, slots: this.slots.length, blockSize: this.blockSize },
    });
    w.on('error', (e) => this.fail(e));
    this.exited.push(new Promise<number>((resolve) => w.once('exit', resolve)));
    w.on('exit', (code) => {
      if (code !== 0 && !this.closing) this.fail(new Error(`compression worker exited with code ${code}`));
    });
    this.workers.push(w);
  }

  private closing = false;

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e instanceof SquashfsError ? e : new SquashfsError('IO', `${this.codec} compression failed: ${e.message}`, undefined, undefined, { cause: e });
    this.onFailure(this.failed);
  }

  /**
   * Stops the workers and waits until they have left. They are asked (STOP, then SUBMITTED changed
   * so that none sleeps on the old count), never terminated: Node aborts the process when a thread
   * is terminated between creating a zlib stream and initialising it, and a worker may be inside
   * deflateSync when a pack fails. A worker in the middle of a block finishes that block first.
   * Resolves to the workers' exit codes (0: left by itself).
   */
  async close(): Promise<number[]> {
    this.closing = true;
    Atomics.store(this.ctl, CTL.STOP, 1);
    Atomics.add(this.ctl, CTL.SUBMITTED, 1);
    Atomics.notify(this.ctl, CTL.SUBMITTED);
    const codes = await Promise.all(this.exited);
    this.workers.length = 0;
    this.exited.length = 0;
    // No wait of this thread stays pending on a slot no worker will finish (whenDone then throws).
    for (let i = 0; i < this.slots.length; i++) Atomics.notify(this.ctl, this.layout.state + i);
    return codes;
  }
}
