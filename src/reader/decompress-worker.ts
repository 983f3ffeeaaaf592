/**
 * Worker side of the decompression pool: receives (id, codec id, compressed bytes, bound), answers
 * (id, decompressed bytes) or (id, error code and message). Buffers are transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { codecById } from '../codec';
import { SquashfsError } from '../errors';

export interface DecompressRequest {
  id: number;
  codec: number;
  input: Uint8Array;
  maxOutput: number;
}
export type DecompressReply = { id: number; output: Uint8Array } | { id: number; code: string; message: string };

export interface DecompressStop {
  stop: true;
}

parentPort?.on('message', (req: DecompressRequest | DecompressStop) => {
  // The pool asks the worker to leave rather than terminating it: Node aborts the process when a
  // thread is terminated between creating a zlib stream and initialising it (inflateSync does both).
  // Requests posted before the stop are answered first.
  if ('stop' in req) return parentPort!.close();
  try {
    const out = codecById(req.codec).decompress(req.input, req.maxOutput);
    // Transfer only when the result owns its whole ArrayBuffer (else copy once into one that does).
    const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : Uint8Array.from(out);
    parentPort!.postMessage({ id: req.id, output: own } satisfies DecompressReply, [own.buffer as ArrayBuffer]);
  } catch (e) {
    const code = e instanceof SquashfsError ? e.code : 'DECOMPRESS_FAILED';
    parentPort!.postMessage({ id: req.id, code, message: (e as Error).message } satisfies DecompressReply);
  }
});
