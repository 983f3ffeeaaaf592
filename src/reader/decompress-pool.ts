/**
 * Parallel decompression for sequential bulk reads (cat, extract): data blocks are independent,
 * so while the main thread writes block N, workers inflate blocks N+1 … N+window. The main thread
 * keeps the I/O (positional reads) and the ordering; workers only run the codec. Used where
 * throughput matters: cat and extract. (The FUSE mount's read-ahead, which put blocks into the
 * image's data cache through it, was removed: see bench/README-fuse.md.)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { decodesSlowly } from '../codec';
import { SquashfsError, type ErrorCode } from '../errors';
import { decodeBlockWord } from '../format/data-block';
import { Flag } from '../format/constants';
import type { FileInode } from '../format/inode';
import { blockError } from './data';
import type { Image } from './image';
import type { DecompressReply, DecompressStop } from './decompress-worker';

/**
 * Whether a whole-file pass over this image should decode its large files ahead in the pool: only
 * where decoding a block costs milliseconds (xz, legacy lzma, and lzo where liblzo's decoder did not
 * build and ours in JavaScript decodes it, ~1.3 ms a block). For gzip, lz4, zstd and liblzo's lzo,
 * posting a block to a worker and back costs more than decoding it on this thread into a reused
 * buffer (DataReader.stream with the codec's decompressInto): `distri cat` of a 64 MiB file took
 * 10x the CPU time through the pool for lz4, 5x for zstd, 2x for gzip, and more wall time too
 * (bench/README-extract.md). `only`: the codecs a caller has measured the pool to pay for (extract:
 * xz and lzma); by default every codec that decodes slowly here (decodesSlowly).
 */
export function decodesAhead(img: Image, only?: readonly string[]): boolean {
  return !(img.superblock.flags & Flag.UNCOMPRESSED_DATA) && (only?.includes(img.codec.name) ?? true) && decodesSlowly(img.codec.name);
}

/**
 * DISTRI_SPLIT: how a whole-file pass uses a second decoding thread (./split-decode.ts). Unset:
 * `auto`, by the file's size and the speed of its first blocks. `off`: never (benchmarks compare).
 * `always`: from the first block, whatever the size. `worker`: as always, and this thread decodes
 * nothing itself, so that every group comes from the worker (tests).
 */
export function splitMode(): 'auto' | 'off' | 'always' | 'worker' {
  const v = process.env.DISTRI_SPLIT;
  return v === 'off' || v === 'always' || v === 'worker' ? v : 'auto';
}

/**
 * From what file size a whole-file pass over this image may take a second thread decoding beside
 * this one (./split-decode.ts, which then decides by the speed of the file's first blocks), or
 * undefined where it never does: uncompressed data, codecs the pool takes (decodesAhead), one
 * core, DISTRI_SPLIT=off.
 */
export function splitFrom(img: Image): number | undefined {
  const mode = splitMode();
  if (mode === 'off' || img.superblock.flags & Flag.UNCOMPRESSED_DATA || decodesSlowly(img.codec.name)) return undefined;
  if (mode !== 'auto') return 0;
  return os.availableParallelism() > 1 ? 16 << 20 : undefined;
}

export class DecompressPool {
  private readonly workers: Worker[] = [];
  /** One promise per worker: its exit code once it has exited. */
  private readonly exited: Promise<number>[] = [];
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private rr = 0;
  /** Set when a worker failed or left: every request is refused from then on (never left hanging). */
  private broken: Error | undefined;
  /** Called when the last pending request is settled (close waits for it). */
  private drained: (() => void) | undefined;

  /**
   * `unref`: the workers do not keep the process alive (a FUSE daemon's read-ahead pool, which
   * lives as long as the mount and is never awaited on exit).
   */
  constructor(threads = Math.max(1, os.availableParallelism()), opts: { unref?: boolean } = {}) {
    const failAll = (e: Error) => {
      this.broken ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      this.drained?.();
    };
    for (let i = 0; i < threads; i++) {
      // Named from dist/src, not just __dirname: in the CLI bundle this module's __dirname is
      // dist/src/cli, and the worker is always the unbundled dist/src/reader one.
      const w = new Worker(path.join(__dirname, '..', 'reader', 'decompress-worker.js'));
      if (opts.unref) w.unref();
      this.exited.push(new Promise<number>((resolve) => w.once('exit', resolve)));
      w.on('exit', (code) => failAll(new SquashfsError('IO', `decompression worker exited (status ${code})`, 'data block')));
      w.on('message', (m: DecompressReply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if ('output' in m) p.resolve(m.output);
        else p.reject(new SquashfsError(m.code as ErrorCode, m.message, 'data block'));
        if (this.pending.size === 0) this.drained?.();
      });
      w.on('error', failAll);
      this.workers.push(w);
    }
  }

  decompress(codec: number, input: Uint8Array, maxOutput: number): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    const w = this.workers[this.rr++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // The input is a fresh buffer from a positional read: hand its memory to the worker.
      const own = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? input : Uint8Array.from(input);
      w.postMessage({ id, codec, input: own, maxOutput }, [own.buffer as ArrayBuffer]);
    });
  }

  /** Requests answered by neither result nor error yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Refuses new requests, waits for the answers to those already sent, then asks each worker to
   * leave (never terminated: see decompress-worker.ts) and resolves to their exit codes (0: left
   * by itself). A worker that leaves closes its port, and answers it had not yet delivered would
   * be lost with it: hence the wait first.
   */
  close(): Promise<number[]> {
    return (this.closed ??= this.stop());
  }
  private closed: Promise<number[]> | undefined;

  private async stop(): Promise<number[]> {
    this.broken ??= new SquashfsError('IO', 'decompression pool closed', 'data block');
    if (this.pending.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    for (const w of this.workers) w.postMessage({ stop: true } satisfies DecompressStop);
    return Promise.all(this.exited);
  }
}

/**
 * The whole file as an ordered sequence of chunks, decompressing up to `window` blocks ahead in
 * the pool. Uncompressed and sparse blocks, and the fragment tail, are served by the image's own
 * (synchronous, cached) path; every length is checked exactly as there.
 */
export async function* parallelChunks(img: Image, inode: FileInode, pool: DecompressPool, window = 8): AsyncGenerator<Uint8Array> {
  const bs = img.superblock.blockSize;
  const n = inode.blockSizes.length;
  const positions: number[] = [];
  let pos = inode.blocksStart;
  for (let i = 0; i < n; i++) {
    positions.push(pos);
    pos += decodeBlockWord(inode.blockSizes[i]!).onDiskSize;
  }
  const inflight: Array<Promise<Uint8Array>> = [];
  const start = (i: number): Promise<Uint8Array> => {
    const w = decodeBlockWord(inode.blockSizes[i]!);
    const expected = Math.min(bs, inode.fileSize - i * bs);
    if (w.sparse || !w.compressed) return Promise.resolve(img.data.block(inode, i));
    if (w.onDiskSize > bs || positions[i]! + w.onDiskSize > img.superblock.inodeTableStart) {
      return Promise.resolve().then(() => img.data.block(inode, i)); // let the checked path raise the error
    }
    const raw = img.source.readAt(positions[i]!, w.onDiskSize);
    return pool.decompress(img.superblock.compressionId, raw, expected).then(
      (out) => {
        if (out.length !== expected)
          throw new SquashfsError('CORRUPT', `block ${i} of inode ${inode.inodeNumber} decompressed to ${out.length} bytes, expected ${expected}`, 'data block', positions[i]);
        return out;
      },
      (e: unknown) => {
        // The worker's error, with the block's position, as the one-thread path reports it.
        throw blockError(e, 'data block', positions[i]!);
      },
    );
  };
  let next = 0;
  for (let i = 0; i < n; i++) {
    while (next < n && next < i + window) {
      const p = start(next++);
      p.catch(() => {}); // a later block's failure surfaces when its turn comes, not as an unhandled rejection
      inflight.push(p);
    }
    yield await inflight.shift()!;
  }
  if (inode.fileSize > n * bs) yield* img.data.chunks(inode, n * bs);
}
