/**
 * A pool worker (started by CompressPool, one per CPU) so that the CPU-bound part of packing runs
 * beside the thread that orders and writes the image. Two kinds of job:
 *   - a block: answered with its compressed form, or null when that is not smaller;
 *   - a load job (load-job.ts): file ranges to read, zero-check and compress here.
 * With codec "none" the worker only reads.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { codecByName } from '../codec';
import { runLoadJob, type LoadJob } from './load-job';

const { codec: name, level } = workerData as { codec: string; level?: number };
let compress: ((block: Uint8Array) => Uint8Array | null) | undefined;
if (name !== 'none') {
  const codec = codecByName(name);
  if (!codec.compress) throw new Error(`codec ${name} cannot compress`);
  const opts = level === undefined ? undefined : { level };
  compress = (block) => codec.compress!(block, opts);
}

parentPort!.on('message', (m: { id: number; data?: Uint8Array; load?: LoadJob }) => {
  try {
    if (m.load) {
      const r = runLoadJob(m.load, compress);
      parentPort!.postMessage({ id: m.id, load: r }, r.packed.length > 0 ? [r.input.buffer as ArrayBuffer, r.packed.buffer as ArrayBuffer] : [r.input.buffer as ArrayBuffer]);
      return;
    }
    const out = compress ? compress(m.data!) : null;
    parentPort!.postMessage({ id: m.id, out: out && out.length < m.data!.length ? out : null });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
