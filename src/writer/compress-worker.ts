/**
 * A compression worker: compresses the block in a slot of the pool's shared memory, leaves the
 * result in the slot's output half and answers with its length, or -1 when it is not smaller (the
 * block is then stored as it is). Started by CompressPool; one per CPU so that block compression,
 * the CPU-bound part of packing, runs beside the thread that reads files and writes the image.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { codecByName, type CompressOptions } from '../codec';

const { codec: name, options, shared, blockSize } = workerData as { codec: string; options: CompressOptions; shared: SharedArrayBuffer; blockSize: number };
const codec = codecByName(name);
if (!codec.compress) throw new Error(`codec ${name} cannot compress`);
const compress = codec.compress.bind(codec);
// The codecs get the block in ordinary memory: native bindings are not all known to accept
// shared memory, and one copy of a block costs far less than compressing it.
const scratch = Buffer.allocUnsafeSlow(blockSize);

parentPort!.on('message', (m: { id: number; slot: number; len: number }) => {
  try {
    const input = scratch.subarray(0, m.len);
    input.set(new Uint8Array(shared, 2 * m.slot * blockSize, m.len));
    const out = compress(input, options);
    if (out && out.length < m.len) {
      new Uint8Array(shared, (2 * m.slot + 1) * blockSize, out.length).set(out);
      parentPort!.postMessage({ id: m.id, len: out.length });
    } else parentPort!.postMessage({ id: m.id, len: -1 });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
