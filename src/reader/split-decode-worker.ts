/**
 * The worker of a split pass (./split-decode.ts): for each file it is given, claims groups of data
 * blocks in order while the ring has a free slot, decodes each into its slot with its own copy of
 * the image, and marks it done. Stops at the file's end, at the first failure (written into the
 * shared error text), or when the other thread gave up on the file.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SquashfsError } from '../errors';
import type { FileInode } from '../format/inode';
import { Image } from './image';
import { SPLIT_WORDS as W, imageFile, type SplitError, type SplitInit, type SplitJob, type SplitMessage } from './split-decode';

const init = workerData as SplitInit;
const image = Image.open(init.imagePath, { offset: init.offset });
// The path may name another file by now (an image replaced by a rename): then every job fails.
const opened = imageFile(image);
const replaced = opened?.dev !== init.dev || opened?.ino !== init.ino;

function run(job: SplitJob): void {
  const ctl = new Int32Array(job.control);
  const ring = new Uint8Array(job.ring);
  const slotBytes = job.ring.byteLength / W.RING;
  let inode: FileInode;
  try {
    if (replaced) throw new SquashfsError('IO', `${init.imagePath} was replaced by another file while being read`, 'image');
    const found = image.inode(job.ref);
    if (found.kind !== 'file') throw new SquashfsError('NOT_A_FILE', `inode ${found.inodeNumber} is a ${found.kind}, not a regular file`, 'inode table');
    inode = found;
  } catch (e) {
    return fail(ctl, job.error, e);
  }
  const blocks = inode.blockSizes.length;
  for (;;) {
    if (Atomics.load(ctl, W.STOP)) return;
    const n = Atomics.load(ctl, W.NEXT);
    if (n >= job.groups) return;
    const written = Atomics.load(ctl, W.WRITTEN);
    if (n >= written + W.RING) {
      // The ring is full: wait for the other thread to write a group out.
      Atomics.wait(ctl, W.WRITTEN, written, 200);
      continue;
    }
    if (Atomics.compareExchange(ctl, W.NEXT, n, n + 1) !== n) continue;
    const from = job.first + n * job.groupBlocks;
    const to = Math.min(blocks, from + job.groupBlocks);
    const k = n % W.RING;
    try {
      image.data.blocksInto(inode, from, to, ring.subarray(k * slotBytes, (k + 1) * slotBytes));
    } catch (e) {
      return fail(ctl, job.error, e);
    }
    Atomics.store(ctl, W.DONE + k, n + 1);
    Atomics.notify(ctl, W.DONE + k);
  }
}

function fail(ctl: Int32Array, error: SharedArrayBuffer, e: unknown): void {
  const out: SplitError = { message: e instanceof Error ? e.message.slice(0, 2000) : String(e) };
  if (e instanceof SquashfsError) Object.assign(out, { code: e.code, structure: e.structure, offset: e.offset });
  const bytes = Buffer.from(JSON.stringify(out));
  new Uint8Array(error).set(bytes.subarray(0, W.ERROR_BYTES));
  Atomics.store(ctl, W.ERROR_LENGTH, Math.min(bytes.length, W.ERROR_BYTES));
  Atomics.store(ctl, W.FAILED, 1);
  // Wake the other thread wherever it waits.
  for (let k = 0; k < W.RING; k++) Atomics.notify(ctl, W.DONE + k);
}

parentPort!.on('message', (m: SplitMessage) => {
  if ('stop' in m) {
    image.close();
    parentPort!.close();
    return;
  }
  run(m.job);
});
