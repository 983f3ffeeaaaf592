/**
 * SquashFS "gzip" (id 1) blocks are zlib streams (RFC 1950: 2-byte header, deflate data, Adler-32), not gzip
 * files. node:zlib inflates them natively; measured about 3.5x fflate on this machine (see
 * /work/shared/docs/dependency-evaluation.md). maxOutputLength makes zlib itself stop at the bound, so a
 * block that would inflate past it costs no more than maxOutput bytes of memory.
 *
 * decompressInto (whole-file passes: extract, cat) keeps one inflate context for the process, resets it
 * per block and has it write straight into the caller's buffer. inflateSync builds a zlib stream object,
 * a 32 KiB window and an output buffer for every 128 KiB block: on the Debian rootfs's blocks that was
 * 20-50 % of the CPU time of inflating them (bench/README-extract.md). Node has no public call for
 * "inflate this into that buffer", so this uses the zlib stream's own handle, the way node:zlib's
 * inflateSync drives it (`writeSync` on `_handle`, results in `_writeState`). It is checked once against
 * inflateSync on a real stream before it is trusted, and anything missing or different falls back to
 * inflateSync and a copy, so a Node release that changes these internals costs speed, not correctness.
 */
import * as zlib from 'node:zlib';
import { deflateSync, inflateSync } from 'node:zlib';
import { SquashfsError } from '../errors';
import type { Codec, CompressOptions } from './index';
import { checkArgs, corrupt, optionalModule, wrapForeign } from './util';

function inflateFresh(input: Uint8Array, maxOutput: number): Buffer {
  checkArgs('gzip', input, maxOutput);
  let out: Buffer;
  try {
    // One output chunk when the block inflates to at most maxOutput bytes; zlib's minimum chunk is 64.
    out = inflateSync(input, { chunkSize: Math.max(64, maxOutput + 64), maxOutputLength: Math.max(1, maxOutput) });
  } catch (e) {
    throw wrapForeign('gzip', e);
  }
  if (out.length > maxOutput) throw corrupt('gzip', `block inflates to ${out.length} bytes, more than the limit ${maxOutput}`);
  return out;
}

/** The parts of node:zlib's binding handle that inflateSync uses. */
interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

/** One reusable inflate context: the handle, its result words [avail_out, avail_in], its last error. */
interface Inflater {
  handle: ZlibHandle;
  state: Uint32Array;
  error: string | undefined;
}

function newInflater(): Inflater {
  const z = zlib.createInflate() as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
  const handle = z._handle;
  const state = z._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || !(state instanceof Uint32Array) || state.length < 2) {
    throw new Error('node:zlib internals are not as expected');
  }
  const inf: Inflater = { handle, state, error: undefined };
  // Replaces the stream's handler (which would destroy the stream): errors are recorded and thrown by us.
  handle.onerror = (message: string) => {
    inf.error = message;
  };
  return inf;
}

let inflater: Inflater | undefined;
/** A byte of room past the caller's buffer: does the stream have more to give than the limit? */
const probe = Buffer.alloc(1);

/**
 * Inflates one zlib stream into `out` through the kept context; returns the decoded length. Exported
 * for the tests and the benchmark (gzipCodec.decompressInto picks it only after the self-check).
 */
export function inflateIntoHandle(input: Uint8Array, out: Uint8Array): number {
  checkArgs('gzip', input, out.length);
  const inf = (inflater ??= newInflater());
  const { handle, state } = inf;
  let room: number; // avail_out after the block: the part of `out` left unwritten
  try {
    handle.reset();
    handle.writeSync(zlib.constants.Z_FINISH, input, 0, input.length, out, 0, out.length);
    room = state[0]!;
    if (inf.error === undefined && room === 0) {
      // The buffer is full: the stream must end here. Inflating on with one byte of room gives
      // nothing at the stream's end, and a byte (or an error) when it had more to say.
      handle.writeSync(zlib.constants.Z_FINISH, input, input.length - state[1]!, state[1]!, probe, 0, 1);
      if (inf.error === undefined && state[0] === 0) throw corrupt('gzip', `block inflates to more than the limit ${out.length}`);
    }
  } catch (e) {
    inflater = undefined; // never reuse a context that saw an error
    throw wrapForeign('gzip', e);
  }
  if (inf.error !== undefined) {
    const message = inf.error;
    inflater = undefined;
    try {
      handle.close();
    } catch {
      // already closed
    }
    throw corrupt('gzip', message);
  }
  return out.length - room;
}

/**
 * The self-check's stream: `deflateSync(SAMPLE, { level: 9 })` as zlib made it, kept as bytes so
 * that the check costs one small inflate, not a deflate. Compressing a 50 KiB sample here at first
 * use was 8 ms of a short `distri cat` (a third of its time over Node's own start).
 */
const SAMPLE = () => Array.from({ length: 24 }, (_, i) => `squashfs block ${i % 7} of ${i % 5}\n`).join('');
const SAMPLE_ZLIB = 'eNptzUsKgDAMQMG9p8gRkvRzHxWKoFCkeH8prgxvO5sZ97OOow3Zrr6fotKb6DL+alMtqk/1qGlqipqn5qgFt4qb4ma4OW4Jt4xbwa3iprgZbo5bwi3jVnCruCluhpt/2wujJq2x';

/** inflateIntoHandle where it gives the right bytes on a real stream (checked once), else null. */
const handlePath = optionalModule(() => {
  const sample = Buffer.from(SAMPLE());
  const out = Buffer.alloc(sample.length);
  const n = inflateIntoHandle(Buffer.from(SAMPLE_ZLIB, 'base64'), out);
  if (n !== sample.length || !out.equals(sample)) throw new Error('the zlib handle path gave other bytes');
  return inflateIntoHandle;
});

let intoChoice: 'auto' | 'inflateSync' = 'auto';
/** Forces inflateSync and a copy for decompressInto (tests and benchmarks only). */
export function _setGzipIntoForTest(which: 'auto' | 'inflateSync'): void {
  intoChoice = which;
}
/** What decompressInto uses here: the kept zlib context ("handle") or inflateSync and a copy. */
export function gzipIntoName(): 'handle' | 'inflateSync' {
  return intoChoice === 'auto' && handlePath() ? 'handle' : 'inflateSync';
}

export const gzipCodec: Codec = {
  id: 1,
  name: 'gzip',
  decompress: inflateFresh,
  decompressInto(input: Uint8Array, out: Uint8Array): number {
    const f = intoChoice === 'auto' ? handlePath() : null;
    if (f) return f(input, out);
    const r = inflateFresh(input, out.length);
    out.set(r);
    return r.length;
  },
  compress(input: Uint8Array, options?: CompressOptions): Uint8Array | null {
    const level = options?.level ?? 9;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new SquashfsError('UNSUPPORTED', `gzip compression level ${level} (must be 1..9)`);
    const out = deflateSync(input, { level });
    return out.length < input.length ? out : null;
  },
};
