/**
 * Size words of data blocks and fragment blocks (format: "Data and Fragment Blocks"). The low 24
 * bits are the on-disk length; bit 24 set means the block is stored uncompressed. A data block whose
 * word is 0 is a hole in a sparse file: nothing is stored and it reads as block_size zero bytes (or
 * the remaining file size for the last block).
 */
import { DATA_BLOCK_SIZE_MASK, DATA_BLOCK_UNCOMPRESSED } from './constants';

export interface BlockWord {
  onDiskSize: number;
  compressed: boolean;
  sparse: boolean;
}

export function decodeBlockWord(word: number): BlockWord {
  const onDiskSize = word & DATA_BLOCK_SIZE_MASK;
  return { onDiskSize, compressed: (word & DATA_BLOCK_UNCOMPRESSED) === 0, sparse: word === 0 };
}

export function encodeBlockWord(onDiskSize: number, compressed: boolean): number {
  return (onDiskSize | (compressed ? 0 : DATA_BLOCK_UNCOMPRESSED)) >>> 0;
}
