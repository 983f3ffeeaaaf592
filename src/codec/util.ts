import { SquashfsError } from '../errors';

/** The largest output any caller may ask for: SquashFS blocks are at most 1 MiB, metadata 8 KiB. */
export const MAX_OUTPUT_LIMIT = 64 * 1024 * 1024;

/** The one way a decoder reports a bad block. */
export function corrupt(codec: string, message: string, cause?: unknown): SquashfsError {
  return new SquashfsError('DECOMPRESS_FAILED', `${codec}: ${message}`, `${codec} block`, undefined, cause === undefined ? undefined : { cause });
}

export function checkArgs(codec: string, input: Uint8Array, maxOutput: number): void {
  if (!Number.isSafeInteger(maxOutput) || maxOutput < 0 || maxOutput > MAX_OUTPUT_LIMIT) {
    throw new SquashfsError('OVERFLOW', `${codec}: output limit ${maxOutput} is not an integer in 0..${MAX_OUTPUT_LIMIT}`, `${codec} block`);
  }
  if (!(input instanceof Uint8Array)) throw corrupt(codec, 'input is not a byte array');
  if (input.length === 0) throw corrupt(codec, 'empty compressed block');
}

/**
 * Decoders write into a buffer of maxOutput bytes. Callers keep what we return (it is cached), so a short
 * result is copied out rather than returned as a view that would pin the whole maxOutput allocation.
 */
export function finish(out: Buffer, length: number): Buffer {
  return length === out.length ? out : Buffer.from(out.subarray(0, length));
}

/** Wraps anything thrown by third-party or runtime code (RangeError, TypeError, zlib errors) into our error. */
export function wrapForeign(codec: string, e: unknown): SquashfsError {
  if (e instanceof SquashfsError) return e;
  const msg = e instanceof Error ? `${(e as NodeJS.ErrnoException).code ?? e.name}: ${e.message}` : String(e);
  return corrupt(codec, msg, e);
}

/**
 * An optional native encoder library (lzma-native, zstd-napi, lz4-napi): loaded on the first call,
 * null from then on when it is not installed or does not load here (the codec falls back to ours).
 */
export function optionalModule<T>(load: () => T): () => T | null {
  let m: T | null | undefined;
  return () => {
    if (m === undefined) {
      try {
        m = load();
      } catch {
        m = null;
      }
    }
    return m;
  };
}
