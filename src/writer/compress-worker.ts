/**
 * A compression worker: claims the next queued slot of the pool's shared memory, compresses its
 * block into the slot's output half and marks the slot done, all through shared memory (the
 * control words of compress-pool.ts); it sleeps in Atomics.wait while nothing is queued. A job
 * with a file descriptor is read into the slot here first (pread), and an all-zero block is
 * reported as a hole instead of compressed, as the packing thread does for blocks it reads. Started by
 * CompressPool, one per CPU at most, so that block compression, the CPU-bound part of packing, runs
 * beside the thread that reads files and writes the image.
 */
import { workerData } from 'node:worker_threads';
import { codecByName, type CompressOptions } from '../codec';
import { errnoWords } from '../io/errno';
import { preadFully, shrankMessage } from '../io/pread';
import { isAllZero } from '../util/zero';
import { CTL, NO_FD, READ_FAILED, RESULT_ERROR, RESULT_HOLE, RESULT_NOT_SMALLER, SLOT_DONE, ctlLayout } from './compress-pool';

const {
  codec: name,
  options,
  shared,
  ctl,
  positions,
  slots,
  blockSize,
} = workerData as {
  codec: string;
  options: CompressOptions;
  shared: SharedArrayBuffer;
  ctl: Int32Array;
  positions: Float64Array;
  slots: number;
  blockSize: number;
};
const codec = codecByName(name);
if (!codec.compress) throw new Error(`codec ${name} cannot compress`);
const compress = codec.compress.bind(codec);
const compressInto = codec.compressInto?.bind(codec);
const { ring, state, len: lens, result, fd: fds } = ctlLayout(slots);
const zero = new Uint8Array(blockSize);

/** A failed read of a job's block: its words are the message the pool hands on with the file's name. */
class ReadFailure extends Error {}

/** Reads the slot's block from the file; true when it is all zeros (a hole, as the packing thread decides). */
function readSlot(slot: number, len: number, fd: number): boolean {
  const input = new Uint8Array(shared, 2 * slot * blockSize, len);
  const position = positions[slot]!;
  let done: number;
  try {
    done = preadFully(fd, input, position);
  } catch (e) {
    throw new ReadFailure(`cannot read: ${errnoWords(e)}`);
  }
  if (done !== len) throw new ReadFailure(shrankMessage(done, position, len));
  return isAllZero(input, zero);
}
// Codecs without compressInto get the block in ordinary memory: native bindings are not all known
// to accept shared memory, and one copy of a block costs far less than compressing it.
const scratch = Buffer.allocUnsafeSlow(blockSize);

function compressSlot(slot: number, len: number): number {
  const input = Buffer.from(shared, 2 * slot * blockSize, len);
  const output = Buffer.from(shared, (2 * slot + 1) * blockSize, blockSize);
  if (compressInto) return compressInto(input, output, options);
  scratch.set(input);
  const out = compress(scratch.subarray(0, len), options);
  if (!out || out.length >= len) return RESULT_NOT_SMALLER;
  output.set(out);
  return out.length;
}

// The worker leaves by ending this loop, never by being terminated: Node aborts the whole process
// when a thread is terminated between creating a zlib stream and initialising it (deflateSync does
// both per block), which a pack that failed halfway used to hit. CompressPool.close raises STOP and
// then changes SUBMITTED, so STOP is read after SUBMITTED: a worker that saw the change sees STOP.
for (;;) {
  const taken = Atomics.load(ctl, CTL.TAKEN);
  const submitted = Atomics.load(ctl, CTL.SUBMITTED);
  if (Atomics.load(ctl, CTL.STOP)) break;
  if (taken === submitted) {
    Atomics.wait(ctl, CTL.SUBMITTED, submitted);
    continue;
  }
  if (Atomics.compareExchange(ctl, CTL.TAKEN, taken, taken + 1) !== taken) continue; // another worker took it
  const slot = Atomics.load(ctl, ring + (taken % slots));
  const len = ctl[lens + slot]!;
  const fd = ctl[fds + slot]!;
  let r: number;
  try {
    if (fd !== NO_FD && readSlot(slot, len, fd)) r = RESULT_HOLE;
    else {
      r = compressSlot(slot, len);
      if (r >= len) r = RESULT_NOT_SMALLER;
    }
  } catch (e) {
    // The message goes where the output would have gone; the pool turns it into the error.
    if (e instanceof ReadFailure) ctl[fds + slot] = READ_FAILED;
    const text = Buffer.from(e instanceof Error ? e.message : String(e), 'utf8').subarray(0, blockSize);
    text.copy(Buffer.from(shared, (2 * slot + 1) * blockSize, blockSize));
    r = RESULT_ERROR - text.length;
  }
  Atomics.store(ctl, result + slot, r);
  Atomics.store(ctl, state + slot, SLOT_DONE);
  Atomics.notify(ctl, state + slot);
}
