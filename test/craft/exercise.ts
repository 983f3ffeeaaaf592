/**
 * What a robustness or fuzz case does with an image: everything a reader can do with it. Open it,
 * walk the whole tree, stat every inode, read every file to the end, read every symlink and every
 * xattr, and look every inode number up through the export table (bounded). A pass is either no
 * error at all or a SquashfsError; anything else (RangeError, TypeError, stack overflow) is a bug.
 */
import assert from 'node:assert/strict';
import { SquashfsError, type ErrorCode } from '../../src/errors';
import { Image } from '../../src/reader/image';
import { walk } from '../../src/reader/walk';

export interface ExerciseResult {
  entries: number;
  bytes: number;
  xattrs: number;
}

export function exercise(buf: Uint8Array): ExerciseResult {
  const img = Image.fromBuffer(buf);
  const r = { entries: 0, bytes: 0, xattrs: 0 };
  try {
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
    img.close();
  }
}

/** The outcome of exercising an image: ok, a SquashfsError, or something else (a bug). */
export function outcome(buf: Uint8Array): { ok: true; result: ExerciseResult } | { ok: false; error: unknown } {
  try {
    return { ok: true, result: exercise(buf) };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * robustness.md's bound is ~250 ms per bad image. The check is a hang and blow-up detector, not a
 * benchmark: it allows 4× that so a loaded 2-core CI machine (GC pauses, other jobs) does not flake,
 * which is still far below what a loop, a quadratic walk or a huge allocation costs.
 */
export const TIME_LIMIT_MS = 1000;
/** Resident memory may not grow by more than this while one bad image is exercised. */
export const MEMORY_LIMIT = 64 << 20;

/**
 * Exercises `buf` and asserts a SquashfsError with `code` (or one of several), within `ms` and
 * without resident memory growing past `memory` (default MEMORY_LIMIT). Returns the error for further checks.
 */
export function expectError(buf: Uint8Array, code: ErrorCode | ErrorCode[], ms = TIME_LIMIT_MS, memory = MEMORY_LIMIT): SquashfsError {
  const codes = Array.isArray(code) ? code : [code];
  const rss = process.memoryUsage().rss;
  const t0 = performance.now();
  const o = outcome(buf);
  const took = performance.now() - t0;
  const grew = process.memoryUsage().rss - rss;
  if (o.ok) assert.fail(`expected a SquashfsError ${codes.join('|')}, but the image read fine (${JSON.stringify(o.result)})`);
  const e = o.error;
  if (!(e instanceof SquashfsError)) {
    assert.fail(`expected a SquashfsError ${codes.join('|')}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
  }
  assert.ok(codes.includes(e.code), `expected ${codes.join('|')}, got ${e.describe()}`);
  assert.ok(took < ms, `took ${took.toFixed(0)} ms (limit ${ms}): ${e.describe()}`);
  assert.ok(grew < memory, `resident memory grew by ${(grew / 1048576).toFixed(0)} MiB: ${e.describe()}`);
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
