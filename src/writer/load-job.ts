/**
 * Reading file data off the main thread: a load job names byte ranges of files on disk; a worker
 * (compress-worker.ts) opens and reads them, finds all-zero blocks, compresses the rest, and sends
 * back one buffer with every piece in it, so that the thread that orders and writes the image does
 * no per-file system call for these files (mksquashfs has a reader thread for the same reason).
 *
 * Ranges follow the file's layout (data-writer.ts fileLayout): a range starts on a block boundary;
 * bytes before `tailFrom` are cut into full blocks, bytes from `tailFrom` on are the fragment tail.
 */
import * as fs from 'node:fs';
import { isZero, sha256 } from './data-writer';

export interface LoadItem {
  /**
   * The file: its path's bytes as a latin1 string, so that names that are not UTF-8 survive, and
   * cheap to post (a Buffer would carry its whole 8 KiB pool slab with it).
   */
  path: string;
  /** The file's size as scanned; reading stops there even if the file grew. */
  size: number;
  /** Byte range of this item: start is a multiple of the block size, end ≤ size. */
  start: number;
  end: number;
  /** Where the fragment tail starts (size when the file has none). */
  tailFrom: number;
  /** Hash the whole file (only for an item that covers it all). */
  hash: boolean;
}

export interface LoadJob {
  blockSize: number;
  items: LoadItem[];
}

/** Piece kinds in a LoadResult. */
export const PieceKind = {
  RAW_BLOCK: 0,
  COMPRESSED_BLOCK: 1,
  ZERO_BLOCK: 2,
  TAIL: 3,
  ZERO_TAIL: 4,
} as const;

export interface LoadedItem {
  /** Quadruples (kind, offset in buf, stored length, file bytes it stands for); zero pieces store nothing. */
  pieces: number[];
  hash?: string;
}

export interface LoadResult {
  /** The bytes read, every item back to back (raw pieces point in here: nothing is copied). */
  input: Uint8Array;
  /** Compressed blocks, back to back. */
  packed: Uint8Array;
  items: LoadedItem[];
}

/** Runs one load job; `compress` returns null when a block does not get smaller (or there is no codec). */
export function runLoadJob(job: LoadJob, compress: ((block: Uint8Array) => Uint8Array | null) | undefined): LoadResult {
  let inputLen = 0;
  for (const it of job.items) inputLen += it.end - it.start;
  const input = Buffer.allocUnsafeSlow(inputLen);
  const packed: Uint8Array[] = [];
  let packedLen = 0;
  const items: LoadedItem[] = [];
  let at = 0;
  for (const it of job.items) {
    const base = at;
    const data = input.subarray(base, base + it.end - it.start);
    readRange(it, data);
    at += data.length;
    const pieces: number[] = [];
    const loaded: LoadedItem = { pieces };
    if (it.hash) loaded.hash = sha256(data);
    const blocksEnd = Math.min(it.end, it.tailFrom);
    for (let p = it.start; p < blocksEnd; p += job.blockSize) {
      const from = p - it.start;
      const block = data.subarray(from, Math.min(blocksEnd, p + job.blockSize) - it.start);
      if (isZero(block)) {
        pieces.push(PieceKind.ZERO_BLOCK, 0, 0, block.length);
        continue;
      }
      const out = compress?.(block);
      if (out && out.length < block.length) {
        pieces.push(PieceKind.COMPRESSED_BLOCK, packedLen, out.length, block.length);
        packed.push(out);
        packedLen += out.length;
      } else {
        pieces.push(PieceKind.RAW_BLOCK, base + from, block.length, block.length);
      }
    }
    if (it.end > it.tailFrom) {
      const from = it.tailFrom - it.start;
      const tail = data.subarray(from);
      if (isZero(tail)) pieces.push(PieceKind.ZERO_TAIL, 0, 0, tail.length);
      else pieces.push(PieceKind.TAIL, base + from, tail.length, tail.length);
    }
    items.push(loaded);
  }
  return { input, packed: Buffer.concat(packed, packedLen), items };
}

function readRange(it: LoadItem, buf: Uint8Array): void {
  const path = Buffer.from(it.path, 'latin1');
  const want = buf.length;
  const fd = fs.openSync(path, 'r');
  let done = 0;
  try {
    while (done < want) {
      const n = fs.readSync(fd, buf, done, want - done, it.start + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  if (done !== want) throw new Error(`${path.toString()}: read ${done} bytes at ${it.start}, expected ${want} (did the file shrink while packing?)`);
}
