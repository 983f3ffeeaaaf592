/**
 * SquashFS "gzip" (id 1) blocks are zlib streams (RFC 1950: 2-byte header, deflate data, Adler-32), not gzip
 * files. node:zlib inflates them natively; measured about 3.5x fflate on this machine (see
 * /work/shared/docs/dependency-evaluation.md). maxOutputLength makes zlib itself stop at the bound, so a
 * block that would inflate past it costs no more than maxOutput bytes of memory.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { SquashfsError } from '../errors';
import type { Codec, CompressOptions } from './index';
import { checkArgs, corrupt, wrapForeign } from './util';

export const gzipCodec: Codec = {
  id: 1,
  name: 'gzip',
  decompress(input: Uint8Array, maxOutput: number): Uint8Array {
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
  },
  compress(input: Uint8Array, options?: CompressOptions): Uint8Array | null {
    const level = options?.level ?? 9;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new SquashfsError('UNSUPPORTED', `gzip compression level ${level} (must be 1..9)`);
    const out = deflateSync(input, { level });
    return out.length < input.length ? out : null;
  },
};
