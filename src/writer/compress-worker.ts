/**
 * A compression worker: receives blocks, answers each with its compressed form or null (not
 * smaller). Started by CompressPool; one per CPU so that block compression, the CPU-bound part of
 * packing, runs beside the thread that reads files and writes the image.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { codecByName, type CompressOptions } from '../codec';

const { codec: name, options } = workerData as { codec: string; options: CompressOptions };
const codec = codecByName(name);
if (!codec.compress) throw new Error(`codec ${name} cannot compress`);
const compress = codec.compress.bind(codec);

parentPort!.on('message', (m: { id: number; data: Uint8Array; back?: boolean }) => {
  try {
    const out = compress(m.data, options);
    if (out && out.length < m.data.length) {
      // Copied here into a buffer of its own and moved, so that the copy is not made on the
      // packing thread when the message arrives (the codec's buffer may be shared or external).
      const own = Buffer.allocUnsafeSlow(out.length);
      own.set(out);
      parentPort!.postMessage({ id: m.id, out: own }, [own.buffer as ArrayBuffer]);
    }
    // A block handed over (transferred) goes back the same way when it is stored as it is.
    else if (m.back) parentPort!.postMessage({ id: m.id, out: null, input: m.data }, [m.data.buffer as ArrayBuffer]);
    else parentPort!.postMessage({ id: m.id, out: null });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
