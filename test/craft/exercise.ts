/**
 * What a robustness or fuzz case does with an image: everything a reader can do with it. Open it,
 * walk the whole tree, stat every inode, read every file to the end, read every symlink and every
 * xattr, and look every inode number up through the export table (bounded). A pass is either no
 * error at all or a SquashfsError; anything else (RangeError, TypeError, stack overflow) is a bug.
 */
import assert from 'node:assert/strict';
import { SquashfsError, type ErrorCode } from '../../src/errors';
import { MAX_BLOCK_SIZE } from '../../src/format/constants';
import { BufferSource, type ByteSource } from '../../src/io/source';
import { Image } from '../../src/reader/image';
import { walk } from '../../src/reader/walk';

export interface ExerciseResult {
  entries: number;
  bytes: number;
  xattrs: number;
}

/**
 * The work a read did, counted rather than timed so that a check on it gives the same answer on a
 * loaded machine: reads from the image and bytes they returned, metadata-block and inode lookups
 * (cache hits plus misses: every decode goes through one), and bytes of file content produced.
 */
export interface Work {
  sourceReads: number;
  sourceBytes: number;
  metadataLookups: number;
  inodeLookups: number;
  contentBytes: number;
}

/** A byte source that forwards to another and counts what is asked of it. */
class CountingSource implements ByteSource {
  reads = 0;
  bytes = 0;
  constructor(private readonly inner: ByteSource) {}
  get size(): number {
    return this.inner.size;
  }
  readAt(offset: number, length: number): Uint8Array {
    this.reads++;
    this.bytes += length;
    return this.inner.readAt(offset, length);
  }
  readInto(offset: number, target: Uint8Array): void {
    this.reads++;
    this.bytes += target.length;
    this.inner.readInto(offset, target);
  }
  close(): void {
    this.inner.close();
  }
}

export function exercise(buf: Uint8Array, work?: Work): ExerciseResult {
  const src = new CountingSource(new BufferSource(buf));
  const r = { entries: 0, bytes: 0, xattrs: 0 };
  let img: Image | undefined;
  try {
    img = new Image(src);
    for (const it of walk(img)) {
      r.entries++;
      img.stat(it.inode);
      r.xattrs += img.xattrs(it.inode).length;
      if (it.inode.kind === 'file') for (const c of img.chunks(it.inode)) r.bytes += c.length;
      if (it.inode.kind === 'symlink') img.readlink(it.inode);
    }
    if (img.exportable) {
      const n = Math.min(img.superblock.inodeCount, 4096);
      for (let i = 1; i <= n; i++) img.inodeByNumber(i);
    }
    return r;
  } finally {
    if (work) {
      const c = img?.cacheStats();
      work.sourceReads = src.reads;
      work.sourceBytes = src.bytes;
      work.metadataLookups = c ? c.metadata.hits + c.metadata.misses : 0;
      work.inodeLookups = c ? c.inodes.hits + c.inodes.misses : 0;
      work.contentBytes = r.bytes;
    }
    img?.close();
  }
}

export function noWork(): Work {
  return { sourceReads: 0, sourceBytes: 0, metadataLookups: 0, inodeLookups: 0, contentBytes: 0 };
}

/** The outcome of exercising an image: ok, a SquashfsError, or something else (a bug). */
export function outcome(buf: Uint8Array, work?: Work): { ok: true; result: ExerciseResult } | { ok: false; error: unknown } {
  try {
    return { ok: true, result: exercise(buf, work) };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * The most work a bad image may cost, derived from the image: what reading it once to the end
 * could need, with room for re-reads (the cases here use at most 1.94 × its size in source bytes,
 * 1.0 × in content, under 0.01 lookups per byte). robustness.md's bound (~250 ms, no memory blow-up) is about
 * loops, quadratic walks, decompression bombs and allocations driven by lying counts; each shows
 * up here as work far beyond the image's size, whatever the machine's load. The times and memory
 * themselves are printed by bench/robustness.ts, never asserted.
 *  - source reads and bytes: every byte of the image a few times over (metadata is read once per
 *    cache miss, data once per read), plus a constant for the fixed tables;
 *  - metadata and inode lookups: a few per byte of metadata is already far more than a walk needs;
 *  - content produced: a few times the image (compressed data expands) plus one largest block (a
 *    bomb must be cut off at the block it claims).
 */
export function workBudget(buf: Uint8Array): Work {
  const n = buf.length;
  return {
    sourceReads: 64 + Math.ceil(n / 64),
    sourceBytes: 4 * n + (64 << 10),
    metadataLookups: 256 + Math.ceil(n / 16),
    inodeLookups: 256 + Math.ceil(n / 32),
    contentBytes: 4 * n + MAX_BLOCK_SIZE,
  };
}

/** Asserts every count of `work` is within `budget`, naming the first that is not. */
export function assertWithin(work: Work, budget: Work, what: string): void {
  for (const k of Object.keys(budget) as Array<keyof Work>) {
    assert.ok(work[k] <= budget[k], `${what}: ${k} ${work[k]} exceeds the budget ${budget[k]} derived from the image`);
  }
}

/**
 * Exercises `buf` and asserts a SquashfsError with `code` (or one of several), having done no
 * more work than `budget` (default: workBudget(buf)). Returns the error for further checks.
 */
export function expectError(buf: Uint8Array, code: ErrorCode | ErrorCode[], budget: Work = workBudget(buf)): SquashfsError {
  const codes = Array.isArray(code) ? code : [code];
  const work = noWork();
  const o = outcome(buf, work);
  if (o.ok) assert.fail(`expected a SquashfsError ${codes.join('|')}, but the image read fine (${JSON.stringify(o.result)})`);
  const e = o.error;
  if (!(e instanceof SquashfsError)) {
    assert.fail(`expected a SquashfsError ${codes.join('|')}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
  }
  assert.ok(codes.includes(e.code), `expected ${codes.join('|')}, got ${e.describe()}`);
  assertWithin(work, budget, e.describe());
  return e;
}

/** Asserts that the image reads without error (the "must still read" side of every check). */
export function expectReads(buf: Uint8Array): ExerciseResult {
  const o = outcome(buf);
  if (!o.ok) {
    const e = o.error;
    assert.fail(`expected the image to read, got ${e instanceof SquashfsError ? e.describe() : (e as Error)?.stack}`);
  }
  return o.result;
}
