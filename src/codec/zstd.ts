import { decompress as fzstdDecompress } from 'fzstd';
import type { Codec } from './index';
import { checkArgs, corrupt, wrapForeign } from './util';

export function zstdDecompress(input: Uint8Array, maxOutput: number): Uint8Array {
  checkArgs('zstd', input, maxOutput);
  let out: Uint8Array;
  try {
    out = fzstdDecompress(input);
  } catch (e) {
    throw wrapForeign('zstd', e);
  }
  if (out.length > maxOutput) throw corrupt('zstd', `block decompresses to ${out.length} bytes, more than the limit ${maxOutput}`);
  return out;
}

export const zstdCodec: Codec = { id: 6, name: 'zstd', decompress: zstdDecompress };
