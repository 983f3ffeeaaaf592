/**
 * The reader thread of read-ahead.ts: reads the files, in order, into the shared ring, and waits
 * for the main thread to release space when the ring is full.
 */
import * as fs from 'node:fs';
import { workerData } from 'node:worker_threads';
import { READY, SKIPPED } from './read-ahead';

const { files, ring, ctrl, records, maxFile } = workerData as {
  files: Array<{ path: string; size: number }>;
  ring: SharedArrayBuffer;
  ctrl: Int32Array;
  records: Float64Array;
  maxFile: number;
};
const R = ring.byteLength;
const bytes = new Uint8Array(ring);
/** Running byte position where each file ends (its start + size), to find what is released. */
const ends = new Float64Array(files.length);
let pos = 0;

for (let k = 0; k < files.length; k++) {
  const { path, size } = files[k]!;
  let state = SKIPPED;
  if (size > 0 && size <= maxFile) {
    if ((pos % R) + size > R) pos += R - (pos % R); // never wrap inside a file
    // Wait until the files the main thread released free enough of the ring.
    for (;;) {
      const released = Atomics.load(ctrl, 1);
      const freeFrom = released > 0 ? ends[released - 1]! : 0;
      // Everything before file `released` is free; the ring holds [freeFrom, freeFrom + R).
      if (pos + size <= freeFrom + R || released >= k) break;
      Atomics.wait(ctrl, 1, released, 1000);
    }
    const at = pos % R;
    try {
      const fd = fs.openSync(Buffer.from(path, 'latin1'), 'r');
      try {
        let done = 0;
        while (done < size) {
          const n = fs.readSync(fd, bytes, at + done, size - done, done);
          if (n === 0) break;
          done += n;
        }
        if (done === size) state = READY;
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // The main thread reads it again and reports the error in its own words.
    }
    records[2 * k] = pos;
    if (state === READY) pos += size;
  }
  ends[k] = pos;
  records[2 * k + 1] = state;
  Atomics.store(ctrl, 0, k + 1);
  Atomics.notify(ctrl, 0);
}
