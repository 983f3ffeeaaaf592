/**
 * Legacy lzma (id 2): each block is an "LZMA-alone" stream, as old mksquashfs wrote it with the LZMA SDK:
 *   byte 0      properties (lc, lp, pb)
 *   bytes 1..4  dictionary size (LE32; irrelevant here, the output buffer is the dictionary)
 *   bytes 5..12 uncompressed size (LE64; all ones = unknown, then an end marker is required)
 *   then the range-coded data, which may end with an end marker even when the size is known.
 */
import type { Codec } from './index';
import { LzmaDecoder, parsePropsByte } from './lzma-core';
import { checkArgs, corrupt, finish } from './util';

const HEADER = 13;

// Bounds (the `!`s on indexed reads are type-only): header bytes 0..12 are read after the length check against HEADER.
export function lzmaAloneDecompress(input: Uint8Array, maxOutput: number): Buffer {
  checkArgs('lzma', input, maxOutput);
  if (input.length < HEADER + 5) throw corrupt('lzma', `block of ${input.length} bytes is shorter than the 13-byte header plus range coder start`);
  const props = parsePropsByte(input[0]!, 'lzma');
  const lo = (input[5]! | (input[6]! << 8) | (input[7]! << 16) | (input[8]! << 24)) >>> 0;
  const hi = (input[9]! | (input[10]! << 8) | (input[11]! << 16) | (input[12]! << 24)) >>> 0;
  const known = !(lo === 0xffffffff && hi === 0xffffffff);
  const size = hi * 2 ** 32 + lo; // a double: exact up to 2^53, and anything that large is rejected next
  if (known && size > maxOutput) throw corrupt('lzma', `header declares ${size} uncompressed bytes, more than the limit ${maxOutput}`);
  const limit = known ? size : maxOutput;
  const out = Buffer.allocUnsafe(limit);
  const dec = new LzmaDecoder(out, 'lzma');
  dec.setProps(props);
  dec.resetState();
  dec.initRangeCoder(input, HEADER, input.length);
  let marker = dec.run(limit);
  if (marker && known && dec.op !== size) throw corrupt('lzma', `end marker after ${dec.op} bytes, header declares ${size}`);
  if (!marker) {
    if (dec.pendingMatch > 0) throw corrupt('lzma', `a match runs past the end of the output (${limit} bytes)`);
    // Output is complete; an end marker may still follow (the SquashFS writer emits one even with a known size).
    if (!(known && dec.rangeCoderFinished() && dec.ip === input.length)) {
      dec.readEndMarker();
      marker = true;
    }
  }
  if (!dec.rangeCoderFinished()) throw corrupt('lzma', 'range coder did not finish cleanly after the last symbol');
  return finish(out, dec.op);
}

export const lzmaCodec: Codec = {
  id: 2,
  name: 'lzma',
  decompress: lzmaAloneDecompress,
};
