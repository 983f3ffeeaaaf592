/**
 * An inflate context straight from Node's zlib binding (`process.binding('zlib')`, the object
 * node:zlib is built on), without node:zlib: loading node:zlib loads Node's ~20 stream modules
 * with it. The gzip codec (./gzip.ts) inflates SquashFS blocks through it, and the CLI's start-up
 * checks its code cache with it (../cli/code-cache.ts): zlib verifies a stream's checksum natively.
 */

/** The parts of node:zlib's binding handle that inflateSync uses. */
export interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

/** What Node's zlib binding offers. */
interface ZlibBinding {
  Zlib: new (mode: number) => ZlibHandle & {
    init(windowBits: number, level: number, memLevel: number, strategy: number, writeState: Uint32Array, onWrite: () => void, dictionary: undefined): void;
  };
}

/** zlib.h's flush value for "this is all the input": the same number in every zlib. */
export const Z_FINISH = 4;

/**
 * A handle straight from the binding, set up as node:zlib's Inflate sets up its own (zlib's defaults:
 * a 32 KiB window, header and Adler-32 checked), with its result words [avail_out, avail_in], or
 * null where that is not known to be safe. The binding checks its arguments with assertions that
 * end the process, not with exceptions, so this runs only on the Node releases whose `init` is
 * known (20 to 22). process.binding warns under --pending-deprecation; such a process gets null.
 */
export function bindingInflateHandle(): { handle: ZlibHandle; state: Uint32Array } | null {
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
