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
 *
 * The context comes from Node's zlib binding itself where that is known to take the same arguments
 * (Node 20 to 22), not from node:zlib: loading node:zlib loads Node's ~20 stream modules with it, 4 to
 * 5 ms of every short command on a gzip image (`distri ls`, `stat`, `cat`) and of every worker that
 * inflates. node:zlib is loaded only to compress, and for the fallbacks.
 */
import type * as Zlib from 'node:zlib';
import { SquashfsError } from '../errors';
import type { Codec, CompressOptions } from './index';
import { checkArgs, corrupt, optionalModule, wrapForeign } from './util';

/** node:zlib, loaded on first use (compression and the fallbacks only). */
let zlibModule: typeof Zlib | undefined;
const nodeZlib = (): typeof Zlib => (zlibModule ??= require('node:zlib') as typeof Zlib);

/** zlib.h's flush value for "this is all the input": the same number in every zlib. */
const Z_FINISH = 4;

function inflateFresh(input: Uint8Array, maxOutput: number): Buffer {
  checkArgs('gzip', input, maxOutput);
  let out: Buffer;
  try {
    // One output chunk when the block inflates to at most maxOutput bytes; zlib's minimum chunk is 64.
    out = nodeZlib().inflateSync(input, { chunkSize: Math.max(64, maxOutput + 64), maxOutputLength: Math.max(1, maxOutput) });
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
  /** Made from Node's zlib binding (not from a node:zlib stream). */
  fromBinding: boolean;
}

/** What Node's zlib binding offers (`process.binding('zlib')`, the object node:zlib is built on). */
interface ZlibBinding {
  Zlib: new (mode: number) => ZlibHandle & {
    init(windowBits: number, level: number, memLevel: number, strategy: number, writeState: Uint32Array, onWrite: () => void, dictionary: undefined): void;
  };
}

/**
 * A handle straight from the binding, set up as node:zlib's Inflate sets up its own (zlib's defaults:
 * a 32 KiB window, header and Adler-32 checked), or null where that is not known to be safe. The
 * binding checks its arguments with assertions that end the process, not with exceptions, so this
 * runs only on the Node releases whose `init` is known (20 to 22). process.binding warns under
 * --pending-deprecation; such a process takes node:zlib's way.
 */
function bindingHandle(): { handle: ZlibHandle; state: Uint32Array } | null {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20 || major > 22) return null;
  const flags = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (flags.includes('--pending-deprecation') || process.env.NODE_PENDING_DEPRECATION === '1') return null;
  const bind = (process as unknown as { binding(name: string): unknown }).binding;
  const zlib = bind('zlib') as Partial<ZlibBinding>;
  const modes = (bind('constants') as { zlib?: { INFLATE?: unknown } }).zlib;
  if (typeof zlib.Zlib !== 'function' || typeof modes?.INFLATE !== 'number') return null;
  const handle = new zlib.Zlib(modes.INFLATE);
  const state = new Uint32Array(2);
  // windowBits 15, level and memLevel as node:zlib passes them for inflate (unused by it), default strategy.
  handle.init(15, -1, 8, 0, state, () => {}, undefined);
  return { handle, state };
}

/** The same handle from a node:zlib Inflate stream (any Node release that still has these fields). */
function streamHandle(): { handle?: ZlibHandle; state?: Uint32Array } {
  const z = nodeZlib().createInflate() as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
  return { handle: z._handle, state: z._writeState };
}

function newInflater(): Inflater {
  let made: { handle?: ZlibHandle; state?: Uint32Array } | null = null;
  try {
    made = useBinding ? bindingHandle() : null;
  } catch {
    made = null;
  }
  const { handle, state } = made ?? streamHandle();
  if (!handle || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || !(state instanceof Uint32Array) || state.length < 2) {
    throw new Error('node:zlib internals are not as expected');
  }
  const inf: Inflater = { handle, state, error: undefined, fromBinding: made !== null };
  // Replaces the stream's handler (which would destroy the stream): errors are recorded and thrown by us.
  handle.onerror = (message: string) => {
    inf.error = message;
  };
  return inf;
}

let inflater: Inflater | undefined;
/** Whether new contexts come from the binding (false: from a node:zlib stream; tests only). */
let useBinding = true;
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
    handle.writeSync(Z_FINISH, input, 0, input.length, out, 0, out.length);
    room = state[0]!;
    if (inf.error === undefined && room === 0) {
      // The buffer is full: the stream must end here. Inflating on with one byte of room gives
      // nothing at the stream's end, and a byte (or an error) when it had more to say.
      handle.writeSync(Z_FINISH, input, input.length - state[1]!, state[1]!, probe, 0, 1);
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

/** Inflates the kept sample through a new context; throws unless it gives the sample's bytes. */
function selfCheck(): void {
  inflater = undefined;
  const sample = Buffer.from(SAMPLE());
  const out = Buffer.alloc(sample.length);
  const n = inflateIntoHandle(Buffer.from(SAMPLE_ZLIB, 'base64'), out);
  if (n !== sample.length || !out.equals(sample)) throw new Error('the zlib handle path gave other bytes');
}

/**
 * inflateIntoHandle where it gives the right bytes on a real stream (checked once), else null. A
 * context from the binding that fails the check is given up for one from a node:zlib stream.
 */
const handlePath = optionalModule(() => {
  try {
    selfCheck();
  } catch {
    useBinding = false;
    selfCheck();
  }
  return inflateIntoHandle;
});

let intoChoice: 'auto' | 'inflateSync' | 'stream-handle' = 'auto';
/**
 * Tests and benchmarks only: 'inflateSync' forces inflateSync and a copy for every block;
 * 'stream-handle' takes the kept context from a node:zlib stream instead of the binding.
 */
export function _setGzipIntoForTest(which: 'auto' | 'inflateSync' | 'stream-handle'): void {
  intoChoice = which;
  useBinding = which !== 'stream-handle';
  inflater = undefined;
}
/** What decompressInto uses here: the kept zlib context ("handle") or inflateSync and a copy. */
export function gzipIntoName(): 'handle' | 'inflateSync' {
  return intoChoice !== 'inflateSync' && handlePath() ? 'handle' : 'inflateSync';
}
/** Where the kept context came from: Node's zlib binding, or a node:zlib stream (tests). */
export function gzipHandleSource(): 'binding' | 'stream' | null {
  if (!handlePath()) return null;
  return (inflater ??= newInflater()).fromBinding ? 'binding' : 'stream';
}

/** One block inflated into a buffer of its own, through the kept context; a copy when it is short. */
function inflateOwn(input: Uint8Array, maxOutput: number): Uint8Array {
  const out = new Uint8Array(maxOutput);
  const n = inflateIntoHandle(input, out);
  // A short result (a tail block, a small fragment block) is copied, so that a cache does not keep
  // maxOutput bytes for it.
  return n === maxOutput ? out : out.slice(0, n);
}

export const gzipCodec: Codec = {
  id: 1,
  name: 'gzip',
  decompress(input: Uint8Array, maxOutput: number): Uint8Array {
    if (intoChoice !== 'inflateSync' && handlePath()) return inflateOwn(input, maxOutput);
    return inflateFresh(input, maxOutput);
  },
  decompressInto(input: Uint8Array, out: Uint8Array): number {
    const f = intoChoice !== 'inflateSync' ? handlePath() : null;
    if (f) return f(input, out);
    const r = inflateFresh(input, out.length);
    out.set(r);
    return r.length;
  },
  compress(input: Uint8Array, options?: CompressOptions): Uint8Array | null {
    const level = options?.level ?? 9;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new SquashfsError('UNSUPPORTED', `gzip compression level ${level} (must be 1..9)`);
    const out = nodeZlib().deflateSync(input, { level });
    return out.length < input.length ? out : null;
  },
};
