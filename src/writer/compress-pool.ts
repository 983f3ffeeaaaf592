/**
 * A pool of compression workers (worker_threads). Blocks are queued and handed to whichever worker
 * has room (two jobs each, so none idles between a reply and its next job); results come back as
 * promises, in any order: the data writer puts them back in order. Workers start on first use, so
 * an image made of tiny files costs no thread start-up.
 *
 * A caller that owns a block's whole ArrayBuffer may hand it over (`transfer`): it is moved to the
 * worker instead of copied, and comes back the same way when it is to be stored uncompressed.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { SquashfsError } from '../errors';
import type { CompressOptions } from '../codec';

interface Job {
  id: number;
  data: Uint8Array;
  transfer: boolean;
  resolve(r: Compressed): void;
  reject(e: Error): void;
}

/** A block's stored form: compressed, or (not smaller that way) the block itself. */
export interface Compressed {
  bytes: Uint8Array;
  compressed: boolean;
}

const PER_WORKER = 2;

export class CompressPool {
  private readonly workers: Array<{ w: Worker; busy: number }> = [];
  private readonly queue: Job[] = [];
  private readonly pending = new Map<number, Job>();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(
    private readonly codec: string,
    private readonly options: CompressOptions,
    readonly size: number = Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
  ) {}

  /** `transfer`: data is the whole of an ArrayBuffer the caller gives up (allocUnsafeSlow). */
  compress(data: Uint8Array, transfer = false): Promise<Compressed> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, data, transfer, resolve, reject });
      this.pump();
    });
  }

  private start(): void {
    const w = new Worker(path.join(__dirname, 'compress-worker.js'), { workerData: { codec: this.codec, options: this.options } });
    const slot = { w, busy: 0 };
    w.on('message', (m: { id: number; out?: Uint8Array | null; input?: Uint8Array; error?: string }) => {
      const job = this.pending.get(m.id);
      if (!job) return;
      this.pending.delete(m.id);
      slot.busy--;
      if (m.error !== undefined) job.reject(new SquashfsError('IO', `${this.codec} compression failed: ${m.error}`));
      else if (m.out) job.resolve({ bytes: Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength), compressed: true });
      else if (m.input) job.resolve({ bytes: Buffer.from(m.input.buffer, m.input.byteOffset, m.input.byteLength), compressed: false });
      else job.resolve({ bytes: job.data, compressed: false });
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
      if (job.transfer)
        slot.w.postMessage({ id: job.id, data: job.data, back: true }, [job.data.buffer as ArrayBuffer]); // data is detached from here on
      else slot.w.postMessage({ id: job.id, data: job.data });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    this.workers.length = 0;
  }
}
