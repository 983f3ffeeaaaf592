/**
 * The main thread's side of reading files in the pool (load-job.ts): cuts the files that live on
 * disk into load jobs (small files batched, large files in 1 MiB ranges), keeps a bounded window of
 * jobs running ahead, and hands each file's pieces to the data writer in file order.
 *
 * The image does not depend on how files are batched or which worker reads what: pieces are
 * consumed strictly in order, and a piece's bytes are what the synchronous path would have read.
 */
import { fileLayout, hashContent, type Piece } from './data-writer';
import type { CompressPool } from './compress-pool';
import { PieceKind, type LoadJob, type LoadResult } from './load-job';
import type { FileContent } from './tree';

export interface LoadableFile {
  content: FileContent;
  /** The path's bytes as latin1 (see LoadItem.path). */
  path: string;
  /** Another file has this size: the writer needs its hash. */
  mayDuplicate: boolean;
}

/** Input bytes per job: small files are batched up to this, large files cut into ranges of it. */
const JOB_BYTES = 1 << 20;
const JOB_FILES = 256;

export class FileLoader {
  private readonly jobs: LoadJob[] = [];
  /** Per file: the (job, item) pairs that hold it, in order. */
  private readonly where: Array<Array<[number, number]>> = [];
  private readonly results: Array<Promise<LoadResult> | undefined> = [];
  private launched = 0;
  /** Jobs below this are consumed and released. */
  private released = 0;
  /** How many jobs run beyond the one being consumed (bounds memory: ~1 MiB each). */
  private readonly ahead: number;

  constructor(
    private readonly pool: CompressPool,
    private readonly files: LoadableFile[],
    blockSize: number,
    fragments: 'default' | 'none' | 'always',
  ) {
    this.ahead = Math.max(8, pool.size * 4);
    const chunk = Math.max(blockSize, JOB_BYTES); // both powers of two: ranges start on block boundaries
    let batch = -1;
    let batchBytes = 0;
    const put = (job: number, item: LoadJob['items'][number], file: number) => {
      this.where[file]!.push([job, this.jobs[job]!.items.length]);
      this.jobs[job]!.items.push(item);
    };
    files.forEach((f, i) => {
      this.where.push([]);
      const size = f.content.size;
      if (size === 0) return;
      const { tailFrom } = fileLayout(size, blockSize, fragments);
      if (size <= chunk) {
        if (batch < 0 || batchBytes + size > chunk || this.jobs[batch]!.items.length >= JOB_FILES) {
          batch = this.jobs.push({ blockSize, items: [] }) - 1;
          batchBytes = 0;
        }
        put(batch, { path: f.path, size, start: 0, end: size, tailFrom, hash: f.mayDuplicate }, i);
        batchBytes += size;
        return;
      }
      // A large file: one job per range. Its hash, if wanted, is taken on this thread.
      batch = -1;
      for (let start = 0; start < size; start += chunk) {
        put(this.jobs.push({ blockSize, items: [] }) - 1, { path: f.path, size, start, end: Math.min(size, start + chunk), tailFrom, hash: false }, i);
      }
    });
  }

  /** Job j's result; starts the jobs up to `ahead` beyond it. */
  private result(j: number): Promise<LoadResult> {
    while (this.launched < this.jobs.length && this.launched <= j + this.ahead) {
      const k = this.launched++;
      const p = this.pool.load(this.jobs[k]!);
      p.catch(() => {}); // the rejection is seen when the job is consumed
      this.results[k] = p;
    }
    return this.results[j]!;
  }

  /** File i's hash (when it may be a duplicate) and its pieces, to pass to DataWriter.addPieces. */
  async file(i: number): Promise<{ hash: string | undefined; pieces: AsyncIterable<Piece> }> {
    const f = this.files[i]!;
    const where = this.where[i]!;
    let hash: string | undefined;
    if (f.mayDuplicate && where.length > 0) {
      const [j, k] = where[0]!;
      hash = (await this.result(j)).items[k]!.hash ?? hashContent(f.content);
    }
    return { hash, pieces: this.pieces(i) };
  }

  private async *pieces(i: number): AsyncGenerator<Piece> {
    for (const [j, k] of this.where[i]!) {
      const r = await this.result(j);
      // Files are consumed in order, so every job before this one is through.
      for (; this.released < j; this.released++) this.results[this.released] = undefined;
      const p = r.items[k]!.pieces;
      for (let n = 0; n < p.length; n += 4) {
        const kind = p[n]!;
        const len = p[n + 3]!;
        const bytes = (kind === PieceKind.COMPRESSED_BLOCK ? r.packed : r.input).subarray(p[n + 1]!, p[n + 1]! + p[n + 2]!);
        switch (kind) {
          case PieceKind.ZERO_BLOCK:
            yield { kind: 'block', len, data: null };
            break;
          case PieceKind.RAW_BLOCK:
          case PieceKind.COMPRESSED_BLOCK:
            yield { kind: 'block', len, data: { data: bytes, compressed: kind === PieceKind.COMPRESSED_BLOCK } };
            break;
          case PieceKind.ZERO_TAIL:
            yield { kind: 'tail', len, bytes: null };
            break;
          default:
            yield { kind: 'tail', len, bytes };
        }
      }
    }
  }
}
