/**
 * Read-ahead of small files for the packer: a worker thread opens, reads and closes the files in
 * the order the packer will want them, into a ring buffer shared with the main thread, so that the
 * main thread's per-file system calls (three per small file, the bulk of `--comp none`) run on the
 * other core. mksquashfs has a reader thread for the same reason.
 *
 * Shared memory and Atomics, no messages: an earlier try that posted a buffer per batch of files
 * cost the main thread more in messages and garbage than it saved.
 *
 *   ring     RING bytes; file k occupies [start_k, start_k + size_k) modulo RING, never wrapping
 *            (the worker skips to the ring's start when a file would cross its end)
 *   records  per file: its start (a running byte count) and its state: READY, or SKIPPED (empty,
 *            larger than MAX_FILE, or unreadable: the packer then reads it itself and reports any
 *            error with its own message)
 *   ctrl[0]  files the worker has finished (it notifies on every change)
 *   ctrl[1]  files the main thread has released: the ring space before them may be reused
 *
 * The main thread takes files strictly in order: asking for file k releases every file before k.
 * A read of a released file (the duplicate check re-reads earlier files) goes to the disk.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FileContent } from './tree';

/** Files up to this size are read ahead (larger ones are few, and bound by copying, not calls). */
export const MAX_FILE = 1 << 20;
const RING = 16 << 20;
export const READY = 1;
export const SKIPPED = 2;

export class ReadAhead {
  private readonly ring = new SharedArrayBuffer(RING);
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(8));
  private readonly records: Float64Array;
  private readonly worker: Worker;
  private readonly sizes: number[];
  private released = 0;

  /** `files`: the paths (bytes as latin1) and sizes, in the order contents will be asked for. */
  constructor(files: Array<{ path: string; size: number }>) {
    this.sizes = files.map((f) => f.size);
    this.records = new Float64Array(new SharedArrayBuffer(16 * Math.max(1, files.length)));
    this.worker = new Worker(path.join(__dirname, 'read-ahead-worker.js'), {
      workerData: { files, ring: this.ring, ctrl: this.ctrl, records: this.records, maxFile: MAX_FILE },
    });
    this.worker.unref();
  }

  /** File k's bytes (a view into the ring, valid until a later file is asked for), or null. */
  private view(k: number): Uint8Array | null {
    if (k < this.released) return null;
    if (k > this.released) {
      this.released = k;
      Atomics.store(this.ctrl, 1, k);
      Atomics.notify(this.ctrl, 1);
    }
    for (;;) {
      const done = Atomics.load(this.ctrl, 0);
      if (done > k) break;
      Atomics.wait(this.ctrl, 0, done, 1000);
    }
    if (this.records[2 * k + 1] !== READY) return null;
    const start = this.records[2 * k]! % RING;
    return new Uint8Array(this.ring, start, this.sizes[k]);
  }

  /** Contents that read file k from the ring while it is there, and from `disk` otherwise. */
  wrap(k: number, disk: FileContent): FileContent {
    return {
      size: disk.size,
      origin: disk.origin,
      path: disk.path,
      read: (position, buf) => {
        const v = this.view(k);
        if (!v) return disk.read(position, buf);
        const n = Math.max(0, Math.min(buf.length, v.length - position));
        buf.set(v.subarray(position, position + n));
        return n;
      },
      close: () => disk.close?.(),
    };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
