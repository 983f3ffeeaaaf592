/**
 * LZO1X blocks decoded by liblzo's own safe decoder, lzo1x_decompress_safe (minilzo 2.09), through
 * the `lzo` npm package (0.4.11: an MIT binding around the minilzo it bundles, which is
 * GPL-2.0-or-later; built with node-gyp at install, like lz4 and zstd-napi). An optional
 * dependency: where it did not build, lzo blocks are decoded by our own decoder (lzo.ts), which
 * gives the same bytes and the same verdicts at about half the speed (bench/README-codecs.md).
 *
 * lzo1x_decompress_safe checks every read of the input and every write and back-reference of the
 * output against the lengths it is given, as our decoder does, so hostile blocks are safe to hand
 * it. Only the addon itself is loaded: the package's index allocates a buffer of three times the
 * input when no length is given, which is of no use here.
 */
import { optionalModule } from './util';

/** The addon's decoder: lzo1x_decompress_safe(input, output); err is LZO's code (0 = LZO_E_OK). */
type DecodeBlock = (input: Uint8Array, output: Uint8Array) => { err: number; len: number };

const decodeBlock = optionalModule<DecodeBlock>(() => {
  const f = (require('lzo/build/Release/node_lzo.node') as { decompress?: DecodeBlock }).decompress;
  if (typeof f !== 'function') throw new Error('the lzo addon has no decompress');
  return f;
});

/** Whether liblzo's decoder loaded here. */
export function liblzoAvailable(): boolean {
  return decodeBlock() !== null;
}

/** LZO's error codes (lzoconf.h), for messages. */
const LZO_ERRORS: Record<number, string> = {
  [-1]: 'LZO_E_ERROR',
  [-4]: 'input overrun',
  [-5]: 'output overrun',
  [-6]: 'back-reference before the start of the output',
  [-7]: 'end-of-stream marker missing',
  [-8]: 'bytes after the end-of-stream marker',
};

/**
 * One LZO1X block into `output` (its length is the limit): the decoded length, or an error message
 * for a malformed block (one that would read or write past either buffer included).
 */
export function liblzoDecodeInto(input: Uint8Array, output: Uint8Array): number | string {
  const f = decodeBlock();
  if (!f) throw new Error('liblzo (the lzo package) is not available');
  const r = f(input, output);
  if (r.err !== 0) return LZO_ERRORS[r.err] ?? `LZO error ${r.err}`;
  if (!(r.len >= 0 && r.len <= output.length)) return `decoded length ${r.len} out of range`;
  return r.len;
}
