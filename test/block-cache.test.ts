/**
 * The pooled block cache (src/io/block-cache.ts) and the FUSE daemon's read path built on it
 * (slots reused on eviction, whole blocks passed through uncached): every file of fixture images
 * read through caches far smaller than the files, in orders that evict constantly, compares equal
 * to unsquashfs's extraction; in-process and through a real `distri mount -o cache=1`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { BlockCache } from '../src/io/block-cache';
import { LruCache } from '../src/io/lru';
import { Image } from '../src/reader/image';
import { fixtureMatrix, matrixAvailable, type FixtureImage } from './helpers/fixtures';
import { fuseAvailable, spawnMount, type Mount } from './helpers/mount';
import { skipUnless } from './oracle/tools';
import { unsquashfsAvailable, withUnsquashfs } from './oracle/unsquashfs';

/** Regular files under dir, relative paths, sorted. */
function regularFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...regularFiles(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

/** A fixed pseudo-random sequence (no clocks, same every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** (file, offset, length) reads: pieces of every file (a few per block, unaligned), shuffled across files. */
function scatteredReads(files: Array<{ rel: string; size: number }>, piece: number, seed: number): Array<{ rel: string; offset: number; length: number }> {
  const reads: Array<{ rel: string; offset: number; length: number }> = [];
  for (const f of files) for (let o = 0; o < f.size; o += piece) reads.push({ rel: f.rel, offset: o, length: Math.min(piece, f.size - o) });
  const r = rng(seed);
  for (let i = reads.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [reads[i], reads[j]] = [reads[j]!, reads[i]!];
  }
  return reads;
}

function pick(names: string[]): FixtureImage[] {
  const m = fixtureMatrix();
  return names.map((n) => {
    const img = m.images.find((i) => i.name === n);
    if (!img) throw new Error(`fixture image ${n} not in the matrix`);
    return img;
  });
}

describe('LruCache', () => {
  test('evicts the least recently used entries until the bytes fit', () => {
    const c = new LruCache<number, string>(10, (v) => v.length);
    c.set(1, 'aaaa');
    c.set(2, 'bbb');
    c.set(3, 'cc');
    assert.equal(c.get(1), 'aaaa'); // 1 is now the youngest: 2 is the oldest
    c.set(4, 'ddd'); // 12 bytes: 2 goes
    assert.equal(c.get(2), undefined);
    assert.deepEqual([c.get(3), c.get(1), c.get(4)], ['cc', 'aaaa', 'ddd']);
    c.set(3, 'cccccc'); // replacing 3 (now the youngest, 13 bytes): 1, the oldest, goes
    assert.deepEqual([c.get(1), c.get(4), c.get(3)], [undefined, 'ddd', 'cccccc']);
    assert.equal(c.usedBytes, 9);
    assert.equal(c.size, 2);
    c.set(5, 'x'.repeat(11)); // larger than the whole cache: not kept, nothing else lost
    assert.equal(c.get(5), undefined);
    assert.equal(c.get(3), 'cccccc');
    for (let i = 0; i < 100; i++) c.set(100 + i, 'z');
    assert.equal(c.size, 10);
    assert.equal(c.get(189), undefined);
    assert.equal(c.get(190), 'z');
    assert.equal(
      c.getOrLoad(7, () => 'seven'),
      'seven',
    );
    assert.equal(c.usedBytes, 10);
    c.clear();
    assert.equal(c.size, 0);
    c.set(1, 'a');
    assert.equal(c.get(1), 'a');
  });

  test('delete, evictOldest and values keep the recency order and the byte count (what BlockCache uses)', () => {
    const c = new LruCache<number, string>(100, (v) => v.length);
    for (const [k, v] of [
      [1, 'a'],
      [2, 'bb'],
      [3, 'ccc'],
      [4, 'dddd'],
    ] as const)
      c.set(k, v);
    c.get(1); // order now 2, 3, 4, 1
    assert.deepEqual([...c.values()], ['bb', 'ccc', 'dddd', 'a']);
    assert.equal(c.delete(3), 'ccc');
    assert.equal(c.delete(3), undefined);
    assert.deepEqual(c.evictOldest(), [2, 'bb']);
    assert.deepEqual([...c.values()], ['dddd', 'a']);
    assert.equal(c.usedBytes, 5);
    assert.deepEqual([c.evictOldest(), c.evictOldest(), c.evictOldest()], [[4, 'dddd'], [1, 'a'], undefined]);
    assert.equal(c.size, 0);
    assert.equal(c.usedBytes, 0);
  });
});

describe('BlockCache', () => {
  test('keeps the most recently used blocks in a fixed number of reused slots', () => {
    const c = new BlockCache(4, 12); // three 4-byte slots
    const fill = (v: number) => (slot: Buffer) => (slot.fill(v, 0, 3), 3);
    c.put(1, fill(1));
    c.put(2, fill(2));
    c.put(3, fill(3));
    assert.deepEqual([...c.get(1)!], [1, 1, 1]); // 1 is now the youngest: 2 goes first
    c.put(4, fill(4));
    assert.equal(c.get(2), undefined);
    assert.deepEqual([...c.get(3)!], [3, 3, 3]);
    assert.deepEqual([...c.get(4)!], [4, 4, 4]);
    assert.deepEqual([...c.get(1)!], [1, 1, 1]);
    assert.equal(c.allocatedBytes, 12, 'no slot beyond the capacity');
    assert.equal(c.size, 3);
    assert.equal(c.usedBytes, 9);
    assert.equal(c.evictions, 1);
    c.put(3, fill(7)); // the same key again: its old slot is freed and reused, nothing evicted
    assert.deepEqual([...c.get(3)!], [7, 7, 7]);
    assert.equal(c.evictions, 1);
    assert.equal(c.size, 3);
    c.clear();
    assert.equal(c.size, 0);
    assert.equal(c.usedBytes, 0);
    c.put(5, fill(5));
    assert.equal(c.allocatedBytes, 12, 'clear keeps the slots for reuse');
  });

  test('a fill that throws caches nothing and loses no slot', () => {
    const c = new BlockCache(4, 8);
    c.put(1, (s) => (s.fill(1, 0, 4), 4));
    assert.throws(
      () =>
        c.put(2, () => {
          throw new Error('corrupt');
        }),
      /corrupt/,
    );
    assert.equal(c.get(2), undefined);
    assert.deepEqual([...c.get(1)!], [1, 1, 1, 1], 'the cached block was not sacrificed for the failed one');
    c.put(3, (s) => (s.fill(3, 0, 2), 2));
    assert.deepEqual([...c.get(1)!], [1, 1, 1, 1]);
    assert.deepEqual([...c.get(3)!], [3, 3]);
    assert.throws(() => c.put(5, () => 5), /does not fit/);
  });
});

describe('reading through the pooled cache', () => {
  // Compressed (blocks copied into slots), stored (read straight into slots), tiny and large
  // blocks, and a file set with no fragments (every tail is a short data block).
  const names = ['zstd-128k', 'gzip-4k', 'uncompressed-128k', 'gzip-128k-no-fragments', 'xz-1m'];

  for (const name of names) {
    test(`${name}: every file, whole and in scattered pieces, equals unsquashfs's`, { skip: skipUnless('pooled cache against unsquashfs', matrixAvailable(), unsquashfsAvailable()) }, async () => {
      const [fx] = pick([name]);
      await withUnsquashfs(fx!.file, (dir) => {
        const bs = fx!.blockSize;
        // Two data slots and one fragment slot: nearly every read evicts.
        const img = Image.open(fx!.file, { dataCacheBytes: 2 * bs, fragmentCacheBytes: bs, pooledBlocks: true, passWholeBlocks: true });
        try {
          const files = regularFiles(dir).map((rel) => ({ rel, size: fs.statSync(path.join(dir, rel)).size }));
          assert.ok(
            files.some((f) => f.size > 3 * bs),
            `${name} has a file larger than the cache`,
          );
          const want = new Map(files.map((f) => [f.rel, fs.readFileSync(path.join(dir, f.rel))]));
          for (const f of files) {
            const inode = img.resolve(f.rel);
            assert.ok(Buffer.from(img.read(inode)).equals(want.get(f.rel)!), `${f.rel}: read() differs`);
            // Whole blocks (passed through) and the tail, one request a block, as the kernel asks.
            const got = Buffer.alloc(f.size);
            for (let o = 0; o < f.size; o += bs) img.readInto(inode, o, got.subarray(o, Math.min(f.size, o + bs)));
            assert.ok(got.equals(want.get(f.rel)!), `${f.rel}: block-sized readInto differs`);
          }
          for (const r of scatteredReads(files, Math.floor(bs / 3) + 517, 7)) {
            const got = Buffer.alloc(r.length);
            const n = img.readInto(img.resolve(r.rel), r.offset, got);
            assert.equal(n, r.length);
            assert.ok(got.equals(want.get(r.rel)!.subarray(r.offset, r.offset + r.length)), `${r.rel} at ${r.offset}+${r.length} differs`);
          }
          const s = img.cacheStats();
          assert.ok(s.data.bytes <= 2 * bs && s.fragments.bytes <= bs, 'the caches stay within their slots');
        } finally {
          img.close();
        }
      });
    });
  }
});

describe('distri mount with a 1 MiB pooled cache', () => {
  const mounts: Mount[] = [];
  after(async () => {
    for (const m of mounts) await m.cleanup();
  });

  test(
    'every file of zstd-128k, whole and in scattered pieces, equals unsquashfs',
    { skip: skipUnless('pooled cache through a mount', matrixAvailable(), unsquashfsAvailable(), fuseAvailable()) },
    async () => {
      const [fx] = pick(['zstd-128k']);
      await withUnsquashfs(fx!.file, async (dir) => {
        const files = regularFiles(dir).map((rel) => ({ rel, size: fs.statSync(path.join(dir, rel)).size }));
        // Each pass on a fresh mount, so that the kernel's page cache holds nothing of the files yet.
        const whole = await spawnMount(fx!.file, { options: ['cache=1'], env: { DISTRI_TRANSPORT: 'kernel' } });
        mounts.push(whole);
        for (const f of files) {
          const got = await fs.promises.readFile(path.join(whole.dir, f.rel));
          assert.ok(got.equals(fs.readFileSync(path.join(dir, f.rel))), `${f.rel} differs through the mount`);
        }
        // Scattered pieces: the daemon serves partial blocks out of its eight slots, evicting all the time.
        const pieces = await spawnMount(fx!.file, { options: ['cache=1'], env: { DISTRI_TRANSPORT: 'kernel' } });
        mounts.push(pieces);
        const want = new Map(files.map((f) => [f.rel, fs.readFileSync(path.join(dir, f.rel))]));
        const handles = new Map<string, fs.promises.FileHandle>();
        try {
          for (const r of scatteredReads(files, 40_000, 11)) {
            let fh = handles.get(r.rel);
            if (!fh) handles.set(r.rel, (fh = await fs.promises.open(path.join(pieces.dir, r.rel), 'r')));
            const got = Buffer.alloc(r.length);
            const { bytesRead } = await fh.read(got, 0, r.length, r.offset);
            assert.equal(bytesRead, r.length);
            assert.ok(got.equals(want.get(r.rel)!.subarray(r.offset, r.offset + r.length)), `${r.rel} at ${r.offset}+${r.length} differs`);
          }
        } finally {
          for (const fh of handles.values()) await fh.close();
        }
      });
    },
  );
});
