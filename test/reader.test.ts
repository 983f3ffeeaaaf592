/**
 * The decoder against real images: committed images against their expected listings (no tools
 * needed), and every image of the mksquashfs matrix against the Linux kernel's own SquashFS
 * driver. Plus the behaviours a listing does not show: directory-index lookups, files past 4 GiB,
 * images embedded at an offset, the export table, block caching and zero-copy views.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Image } from '../src/reader/image';
import { walk } from '../src/reader/walk';
import { SquashfsError } from '../src/errors';
import { imageManifest } from './helpers/image-manifest';
import { fixtureMatrix, matrixAvailable } from './helpers/fixtures';
import { withKernelMount, kernelAvailable } from './oracle/kernel';
import { diffManifests, readManifestFile, walkDirectory } from './oracle/manifest';
import { repoRoot, requireTools, skipUnless } from './oracle/tools';

const root = repoRoot();

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'reader-test-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function mksquashfs(src: string, out: string, ...args: string[]): void {
  const r = spawnSync('mksquashfs', [src, out, '-noappend', '-no-progress', '-quiet', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mksquashfs failed: ${r.stderr}`);
}

test('committed images read exactly as their expected listings (no tools needed)', () => {
  const dir = path.join(root, 'fixtures/images');
  const images = fs.readdirSync(dir).filter((f) => f.endsWith('.sqfs') && fs.existsSync(path.join(dir, f.replace(/\.sqfs$/, '.expected.json'))));
  assert.ok(images.length >= 1, 'fixtures/images has no image with an expected listing');
  for (const f of images) {
    const img = Image.open(path.join(dir, f));
    try {
      const want = readManifestFile(path.join(dir, f.replace(/\.sqfs$/, '.expected.json')));
      const diff = diffManifests(imageManifest(img), want, { labels: ['reader', 'expected'] });
      assert.deepEqual(diff, [], `${f}:\n${diff.join('\n')}`);
    } finally {
      img.close();
    }
  }
});

test('every mksquashfs matrix image reads like the kernel mounts it', { skip: skipUnless('kernel comparison', matrixAvailable(), kernelAvailable()) }, async (t) => {
  const { images } = fixtureMatrix();
  assert.ok(images.length >= 20, `only ${images.length} images in the matrix`);
  const gzip = images.find((i) => i.name === 'gzip-128k')!;
  for (const fx of images) {
    await t.test(fx.name, async () => {
      const img = Image.open(fx.file);
      try {
        const mine = imageManifest(img);
        // Mainline Linux has no legacy-lzma SquashFS support: compare those images with the gzip
        // image of the same tree and options, itself checked against the kernel in this loop.
        const kernel = fx.compressor === 'lzma' ? imageManifest(Image.open(gzip.file)) : await withKernelMount(fx.file, (dir) => walkDirectory(dir));
        const diff = diffManifests(mine, kernel, { labels: ['reader', 'kernel'] });
        assert.deepEqual(diff, [], diff.join('\n'));
        assert.ok(mine.length > 100, `suspiciously small walk: ${mine.length} entries`);
      } finally {
        img.close();
      }
    });
  }
});

test('lookups in a 5000-entry directory use the directory index and find every name', { skip: skipUnless('index test', 'mksquashfs') }, (t) => {
  const d = tmpdir(t);
  fs.mkdirSync(path.join(d, 'src/big'), { recursive: true });
  for (let i = 0; i < 5000; i++) fs.writeFileSync(path.join(d, 'src/big', `entry-with-a-long-name-${i}`), `${i}\n`);
  mksquashfs(path.join(d, 'src'), path.join(d, 'big.sqfs'));
  // No listing cache: every lookup must go through the index.
  const img = Image.open(path.join(d, 'big.sqfs'), { dirCacheBytes: 0 });
  const big = img.resolve('big');
  assert.equal(big.kind, 'dir');
  assert.ok(big.kind === 'dir' && big.index.length > 10, 'expected a directory index with many entries');
  for (let i = 0; i < 5000; i += 7) {
    const f = img.resolve(`big/entry-with-a-long-name-${i}`);
    assert.equal(Buffer.from(img.read(f)).toString(), `${i}\n`);
  }
  for (const miss of ['', 'a', 'entry-with-a-long-name-', 'entry-with-a-long-name-99999', 'zzzz']) {
    if (miss) assert.equal(img.lookup(big, miss), undefined, `found ${miss}`);
  }
  img.close();
  // On a cold image (nothing cached but the root and the directory's own inode), a lookup reads the
  // metadata blocks of one indexed run, not the whole listing: counted as metadata cache misses,
  // each one block read and decompressed. A lookup that ignored the index would read them all.
  assert.ok(big.kind === 'dir');
  const listingBlocks = Math.ceil(big.listingSize / 8192);
  assert.ok(listingBlocks >= 10, `the listing spans only ${listingBlocks} metadata blocks`);
  for (const name of ['entry-with-a-long-name-4999', 'entry-with-a-long-name-0', 'entry-with-a-long-name-5', 'zzzz']) {
    const cold = Image.open(path.join(d, 'big.sqfs'), { dirCacheBytes: 0 });
    try {
      const dir = cold.resolve('big');
      const before = cold.cacheStats().metadata.misses;
      const hit = cold.lookup(dir, name);
      assert.equal(hit === undefined, name === 'zzzz', name);
      const read = cold.cacheStats().metadata.misses - before;
      assert.ok(read <= 2, `lookup of ${name} read ${read} of the listing's ${listingBlocks} metadata blocks`);
    } finally {
      cold.close();
    }
  }
});

test('a sparse file larger than 4 GiB: extended inode, 64-bit size, reads past 4 GiB', { skip: skipUnless('large file test', 'mksquashfs') }, (t) => {
  const d = tmpdir(t);
  fs.mkdirSync(path.join(d, 'src'));
  const big = path.join(d, 'src/huge');
  const size = 5 * 2 ** 30 + 12345;
  const fd = fs.openSync(big, 'w');
  fs.writeSync(fd, Buffer.from('head'), 0, 4, 0);
  fs.writeSync(fd, Buffer.from('middle-past-4GiB'), 0, 16, 2 ** 32 + 100);
  fs.writeSync(fd, Buffer.from('tail'), 0, 4, size - 4);
  fs.closeSync(fd);
  mksquashfs(path.join(d, 'src'), path.join(d, 'huge.sqfs'), '-comp', 'lz4');
  const img = Image.open(path.join(d, 'huge.sqfs'));
  const f = img.resolve('huge');
  assert.equal(f.kind, 'file');
  assert.equal(img.stat(f).size, size);
  assert.equal(Buffer.from(img.read(f, 0, 4)).toString(), 'head');
  assert.equal(Buffer.from(img.read(f, 2 ** 32 + 100, 16)).toString(), 'middle-past-4GiB');
  assert.equal(Buffer.from(img.read(f, size - 4, 100)).toString(), 'tail');
  assert.deepEqual([...img.read(f, 3 * 2 ** 30, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(img.read(f, size, 10).length, 0);
});

test('an image embedded at an offset opens with --offset semantics', { skip: skipUnless('offset test', 'mksquashfs') }, (t) => {
  const d = tmpdir(t);
  fs.mkdirSync(path.join(d, 'src'));
  fs.writeFileSync(path.join(d, 'src/hello'), 'hello\n');
  mksquashfs(path.join(d, 'src'), path.join(d, 'a.sqfs'));
  const prefix = Buffer.alloc(12345, 0x7f);
  fs.writeFileSync(path.join(d, 'embedded'), Buffer.concat([prefix, fs.readFileSync(path.join(d, 'a.sqfs'))]));
  const img = Image.open(path.join(d, 'embedded'), { offset: prefix.length });
  assert.equal(Buffer.from(img.read(img.resolve('hello'))).toString(), 'hello\n');
  assert.throws(
    () => Image.open(path.join(d, 'embedded')),
    (e: unknown) => e instanceof SquashfsError && e.code === 'BAD_MAGIC',
  );
});

test('export table maps every inode number back to its inode; hard links share one', { skip: skipUnless('export test', matrixAvailable()) }, () => {
  const { images } = fixtureMatrix();
  const fx = images.find((i) => i.name === 'gzip-128k')!;
  const img = Image.open(fx.file);
  assert.ok(img.exportable);
  const byNumber = new Map<number, string[]>();
  for (const it of walk(img)) {
    const viaExport = img.inodeByNumber(it.inode.inodeNumber);
    assert.equal(viaExport.ref, it.inode.ref, it.path);
    byNumber.set(it.inode.inodeNumber, [...(byNumber.get(it.inode.inodeNumber) ?? []), it.path]);
  }
  const linked = [...byNumber.values()].filter((names) => names.length > 1);
  assert.ok(linked.length >= 2, 'the fixture tree has hard links');
  for (const names of linked) assert.equal(img.stat(img.resolve(names[0]!)).nlink, names.length, names.join(' '));
  const noExports = Image.open(images.find((i) => !i.exports)!.file);
  assert.throws(
    () => noExports.inodeByNumber(1),
    (e: unknown) => e instanceof SquashfsError && e.code === 'UNSUPPORTED',
  );
});

test('a hot block is decompressed once; reads hand out views, not copies', { skip: skipUnless('cache test', 'mksquashfs') }, (t) => {
  const d = tmpdir(t);
  fs.mkdirSync(path.join(d, 'src'));
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  fs.writeFileSync(path.join(d, 'src/f'), data);
  mksquashfs(path.join(d, 'src'), path.join(d, 'gz.sqfs'), '-comp', 'gzip');
  const img = Image.open(path.join(d, 'gz.sqfs'));
  const f = img.resolve('f');
  const buf = new Uint8Array(4096);
  img.readInto(f, 200_000, buf);
  const misses = img.cacheStats().data.misses;
  for (let off = 131072; off < 262144; off += 4096) {
    img.readInto(f, off, buf);
    assert.deepEqual(Buffer.from(buf), data.subarray(off, off + 4096));
  }
  assert.equal(img.cacheStats().data.misses, misses, '32 reads inside one hot block decompressed it again');
  // Two views of the same cached block share its memory.
  const [a] = [...img.chunks(f, 131072, 10)];
  const [b] = [...img.chunks(f, 131082, 10)];
  assert.equal(a!.buffer, b!.buffer);
  // An uncompressed image in memory is served straight from the caller's buffer.
  mksquashfs(path.join(d, 'src'), path.join(d, 'plain.sqfs'), '-noI', '-noD', '-noF', '-noX');
  const mem = fs.readFileSync(path.join(d, 'plain.sqfs'));
  const memImg = Image.fromBuffer(mem);
  const [v] = [...memImg.chunks(memImg.resolve('f'), 0, 100)];
  assert.equal(v!.buffer, mem.buffer, 'uncompressed block was copied');
});

test('kernel-mount helper leaves nothing behind', { skip: skipUnless('leftovers', kernelAvailable()) }, (t) => {
  if (!requireTools(t, 'findmnt')) return;
  const r = spawnSync('findmnt', ['-rn', '-t', 'squashfs', '-o', 'TARGET'], { encoding: 'utf8' });
  const ours = r.stdout.split('\n').filter((l) => l.includes('sqfs-kmount-'));
  assert.deepEqual(ours, []);
});
