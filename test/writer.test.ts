/**
 * The writer against real oracles: every image we pack is mounted by the Linux kernel, extracted
 * by unsquashfs and read by our own reader, and each view must equal the source tree; packing
 * twice must give the same bytes; `unsquashfs -s` must report what we meant to write; images must
 * be no larger than mksquashfs's at the same settings (× 1.01).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { Image } from '../src/reader/image';
import { pack, type PackOptions } from '../src/writer/pack';
import { generatedContent, scanDirectory, tree, type DirNode, type TreeNode } from '../src/writer/tree';
import { SquashfsError } from '../src/errors';
import { xzEncoderName } from '../src/codec/xz';
import { kernelAvailable, withKernelMount } from './oracle/kernel';
import { diffManifests, walkDirectory, type Manifest } from './oracle/manifest';
import { skipUnless, repoRoot, isRoot } from './oracle/tools';
import { unsquashfsAvailable, withUnsquashfs } from './oracle/unsquashfs';
import { fixtureMatrix, matrixAvailable } from './helpers/fixtures';
import { imageManifest } from './helpers/image-manifest';
import { treeManifest, withoutXattrs } from './writer/tree-manifest';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-writer-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const out = (name: string) => path.join(tmp, `${++seq}-${name}.sqfs`);

function noDiff(a: Manifest, b: Manifest, labels: [string, string]): void {
  const d = diffManifests(a, b, { labels });
  assert.deepEqual(d, [], d.join('\n'));
}

function readerManifest(image: string, xattrs = true): Manifest {
  const img = Image.open(image);
  try {
    return imageManifest(img, { xattrs });
  } finally {
    img.close();
  }
}

function unsquashfsStat(image: string): string {
  const r = spawnSync('unsquashfs', ['-s', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

// ---- the fixture edge-case tree × compressors × block sizes × fragment options ----------------

const MATRIX: Array<{ name: string; o: PackOptions }> = [
  { name: 'none-128k', o: { compression: 'none' } },
  { name: 'gzip-128k', o: { compression: 'gzip' } },
  { name: 'lz4-128k', o: { compression: 'lz4' } },
  { name: 'gzip-4k-always-fragments', o: { compression: 'gzip', blockSize: 4096, fragments: 'always' } },
  { name: 'none-1m-no-fragments', o: { compression: 'none', blockSize: 1 << 20, fragments: 'none' } },
  { name: 'lz4-4k-no-fragments', o: { compression: 'lz4', blockSize: 4096, fragments: 'none' } },
  { name: 'gzip-1m-no-xattrs-all-root', o: { compression: 'gzip', blockSize: 1 << 20, xattrs: false, allRoot: true } },
  { name: 'none-128k-no-exports-no-duplicates', o: { compression: 'none', exports: false, duplicates: false } },
];

describe('pack the fixture tree', { skip: skipUnless('writer fixture matrix', matrixAvailable(), unsquashfsAvailable(), kernelAvailable()) }, () => {
  let source: Manifest | undefined;
  let treeDir = '';
  const sourceManifest = () => {
    if (!source) {
      treeDir = fixtureMatrix().tree;
      source = walkDirectory(treeDir);
    }
    return source;
  };

  for (const { name, o } of MATRIX) {
    test(`${name}: kernel, unsquashfs and our reader see the source tree; packing twice gives the same bytes`, async () => {
      const src = sourceManifest();
      const expected = (o.xattrs === false ? withoutXattrs(src) : src).map((e) => (o.allRoot ? { ...e, uid: 0, gid: 0 } : e));
      const image = out(name);
      const opts: PackOptions = { ...o, reproducible: true, warn: () => {} };
      await pack(treeDir, image, opts);
      noDiff(expected, readerManifest(image, o.xattrs !== false), ['source', 'reader']);
      await withKernelMount(image, (dir) =>
        noDiff(
          expected,
          walkDirectory(dir, { xattrs: o.xattrs !== false }).map((e) => (o.xattrs === false ? withoutXattrs([e])[0]! : e)),
          ['source', 'kernel'],
        ),
      );
      await withUnsquashfs(image, (dir) => noDiff(expected, o.xattrs === false ? withoutXattrs(walkDirectory(dir)) : walkDirectory(dir), ['source', 'unsquashfs']));

      const s = unsquashfsStat(image);
      const bs = o.blockSize ?? 131072;
      assert.match(s, new RegExp(`Block size ${bs}\\b`));
      assert.match(s, new RegExp(`Compression ${o.compression === 'none' ? 'gzip' : o.compression}\\b`));
      assert.match(s, o.compression === 'none' ? /Data is uncompressed/ : /Data is compressed/);
      assert.match(s, o.exports === false ? /not exportable/ : /is exportable via NFS/);
      assert.match(s, o.fragments === 'none' ? /Fragments are not stored/ : o.fragments === 'always' ? /Always-use-fragments option is specified/ : /Always-use-fragments option is not specified/);
      assert.match(s, o.xattrs === false ? /Xattrs are not stored/ : /Xattrs are (un)?compressed/);
      assert.match(s, o.duplicates === false ? /Duplicates are not removed/ : /Duplicates are removed/);

      const again = out(`${name}-again`);
      await pack(treeDir, again, { ...opts, workers: 1 });
      assert.ok(fs.readFileSync(image).equals(fs.readFileSync(again)), 'second pack (one worker) differs from the first');
    });
  }

  test('no larger than mksquashfs at the same settings, same superblock counts', { skip: skipUnless('mksquashfs comparison', 'mksquashfs') }, async () => {
    sourceManifest();
    for (const [comp, args] of [
      ['none', ['-noI', '-noD', '-noF', '-noX']],
      ['gzip', ['-comp', 'gzip']],
      ['lz4', ['-comp', 'lz4']],
      ['zstd', ['-comp', 'zstd']],
      ['xz', ['-comp', 'xz']],
      ['lzo', ['-comp', 'lzo']],
    ] as const) {
      const mine = out(`vs-mk-${comp}`);
      const theirs = out(`mk-${comp}`);
      await pack(treeDir, mine, { compression: comp, mkfsTime: 0, warn: () => {} });
      const r = spawnSync('mksquashfs', [treeDir, theirs, ...args, '-noappend', '-mkfs-time', '0', '-no-progress', '-quiet'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const a = Image.open(mine);
      const b = Image.open(theirs);
      try {
        const ratio = a.superblock.bytesUsed / b.superblock.bytesUsed;
        // KNOWN GAP: our lzo encoder is lzo1x_1-style where mksquashfs's default is lzo1x_999, and
        // our own xz encoder (used only where lzma-native is not installed) chooses matches by
        // simple rules where liblzma prices every choice: ~6-8 % larger (bench/README-codecs.md).
        // 1.01 everywhere else, xz through liblzma included.
        const bound = comp === 'lzo' || (comp === 'xz' && xzEncoderName() === 'builtin') ? 1.1 : 1.01;
        if (ratio > 1.01) console.warn(`# ${comp}: image is ${ratio.toFixed(4)} × mksquashfs's (target 1.01)`);
        assert.ok(ratio <= bound, `${comp}: ours ${a.superblock.bytesUsed} bytes, mksquashfs ${b.superblock.bytesUsed} (× ${ratio.toFixed(4)})`);
        for (const k of ['inodeCount', 'fragmentCount', 'idCount', 'blockSize', 'compressionId'] as const) {
          assert.equal(a.superblock[k], b.superblock[k], `${comp}: superblock ${k}`);
        }
        // Our lzo encoder is lzo1x_1-style, so it records that in a compressor options block, where
        // mksquashfs's default (lzo1x_999) writes none: that one flag may differ, and only for lzo.
        const optionsFlag = comp === 'lzo' ? 0x400 : 0;
        assert.equal(a.superblock.flags & ~optionsFlag, b.superblock.flags & ~optionsFlag, `${comp}: superblock flags`);
        // Uncompressed, the data areas are the same size (same blocks, holes, fragments); compressed,
        // ours may only be smaller.
        if (comp === 'none') assert.equal(a.superblock.inodeTableStart, b.superblock.inodeTableStart, 'data area size');
        else assert.ok(a.superblock.inodeTableStart <= b.superblock.inodeTableStart * bound, `${comp}: data area ${a.superblock.inodeTableStart} vs ${b.superblock.inodeTableStart}`);
      } finally {
        a.close();
        b.close();
      }
    }
  });
});

// ---- a tree described in code: every inode type, hard links, xattrs, big directories ---------

function everyKind(): DirNode {
  const shared = tree.file('two names\n', { uid: 1000, gid: 1000, mtime: 1_600_000_000 });
  const sym = tree.symlink('../files/one');
  const bigValue = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
  const many: Record<string, TreeNode> = {};
  for (let i = 0; i < 700; i++) many[`entry-${String(i).padStart(4, '0')}-${'x'.repeat(i % 60)}`] = tree.file(i % 5 === 0 ? `content ${i}\n` : '', { mtime: 1_000_000 + i });
  many['sub'] = tree.dir({});
  const bs = 4096;
  const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + (i >> 8) * 13) & 0xff));
  return tree.dir(
    {
      files: tree.dir({
        empty: tree.file(''),
        one: tree.file('x'),
        'block-minus-1': tree.file(pattern(bs - 1, 1)),
        block: tree.file(pattern(bs, 2)),
        'block-plus-1': tree.file(pattern(bs + 1, 3)),
        'three-blocks-and-tail': tree.file(pattern(3 * bs + 100, 4)),
        'dup-a': tree.file(pattern(10000, 5)),
        'dup-b': tree.file(pattern(10000, 5)),
        'same-size-not-dup': tree.file(pattern(10000, 6)),
        holey: tree.file(
          generatedContent(6 * bs + 10, (pos, buf) => {
            buf.fill(0);
            for (let i = 0; i < buf.length; i++) if (pos + i < 100 || pos + i >= 5 * bs) buf[i] = (pos + i) & 0xff || 1;
          }),
        ),
        zeros: tree.file(new Uint8Array(2 * bs + 50)),
        'small-zeros': tree.file(new Uint8Array(100)),
        setuid: tree.file('s', { mode: 0o4755 }),
        'all-bits': tree.file('a', { mode: 0o7777 }),
        'no-perms': tree.file('n', { mode: 0 }),
        owners: tree.file('o', { uid: 4_000_000_000, gid: 65534, mtime: 0xffffffff }),
      }),
      links: tree.dir({ 'two-a': shared, 'two-b': shared, 'sym-a': sym, 'sym-b': sym, 'sym-long': tree.symlink('seg/'.repeat(1000)), 'sym-unicode': tree.symlink('héllo ☃') }),
      other: tree.dir({ 'two-c': shared }),
      special: tree.dir({
        'char-dev': tree.device('chardev', 4, 300, { mode: 0o666 }),
        'block-dev': tree.device('blockdev', 259, 70000),
        fifo: tree.fifo({ uid: 100000, gid: 100000 }),
        socket: tree.socket(),
      }),
      xattrs: tree.dir(
        {
          user: tree.file('u', { xattrs: { 'user.foo': 'bar', 'user.empty': '' } }),
          big1: tree.file('b1', { xattrs: { 'user.big': bigValue } }),
          big2: tree.file('b2', { xattrs: { 'user.big': bigValue, 'user.small': 'shared' } }),
          cap: tree.file('c', { xattrs: { 'security.capability': Buffer.from('0100000200100000000000000000000000000000', 'hex') } }),
          trusted: tree.file('t', { xattrs: { 'trusted.overlay.opaque': 'y' } }),
          'on-symlink': tree.symlink('target', { xattrs: { 'trusted.sym': 'yes' } }),
          'on-fifo': tree.fifo({ xattrs: { 'trusted.f': '1' } }),
          'on-dev': tree.device('chardev', 1, 3, { xattrs: { 'trusted.d': '2' } }),
        },
        { xattrs: { 'user.on-dir': 'dir' } },
      ),
      many: tree.dir(many),
      ['n'.repeat(255)]: tree.file('long name'),
      'héllo-wörld 日本語 🚀': tree.file('unicode'),
      'new\nline': tree.file('nl'),
    },
    { mode: 0o755, mtime: 1_700_000_000, xattrs: { 'user.root': 'r' } },
  ) as DirNode;
}

describe('pack a tree described in code', () => {
  for (const [name, o] of [
    ['none-4k', { compression: 'none', blockSize: 4096 }],
    ['gzip-4k-always-fragments', { compression: 'gzip', blockSize: 4096, fragments: 'always' }],
    ['lz4-8k-no-fragments', { compression: 'lz4', blockSize: 8192, fragments: 'none' }],
  ] as Array<[string, PackOptions]>) {
    test(`${name}: every inode type, hard links, xattrs, 700-entry directory (index)`, async (t) => {
      const root = everyKind();
      const expected = treeManifest(root);
      const image = out(`code-${name}`);
      const r = await pack(root, image, { ...o, mkfsTime: 0 });
      assert.equal(r.fileSize % 4096, 0, 'padded to 4 KiB');
      noDiff(expected, readerManifest(image), ['tree', 'reader']);
      const img = Image.open(image);
      try {
        const many = img.resolve('many');
        assert.equal(many.kind === 'dir' && many.index.length > 0, true, 'a directory with > 8 KiB of listing has an index');
        for (const e of img.readdir(many).filter((_, i) => i % 97 === 0)) assert.equal(img.lookup(many, e.nameBytes)?.inodeNumber, e.inodeNumber, `indexed lookup of ${e.name}`);
        assert.equal(img.exportable, true);
        for (let n = 1; n <= img.superblock.inodeCount; n++) assert.equal(img.inodeByNumber(n).inodeNumber, n);
      } finally {
        img.close();
      }
      if (!skipUnless('kernel mount of written image', kernelAvailable())) {
        await withKernelMount(image, (dir) => noDiff(expected, walkDirectory(dir), ['tree', 'kernel']));
      } else t.diagnostic('kernel oracle skipped');
      if (!skipUnless('unsquashfs of written image', unsquashfsAvailable())) {
        await withUnsquashfs(image, (dir) => noDiff(expected, walkDirectory(dir), ['tree', 'unsquashfs']));
      }
      const again = out(`code-${name}-again`);
      await pack(everyKind(), again, { ...o, mkfsTime: 0, workers: 3 });
      assert.ok(fs.readFileSync(image).equals(fs.readFileSync(again)), 'same tree, same options, same bytes');
    });
  }

  test('a file over 4 GiB (holes in the middle): extended inode, 64-bit size, kernel reads its end', async () => {
    const size = 4 * 1024 ** 3 + 123457;
    const marker = (p: number) => (p * 2654435761) >>> 24 || 1;
    const content = generatedContent(size, (pos, buf) => {
      buf.fill(0);
      for (let i = 0; i < buf.length; i++) {
        const p = pos + i;
        if (p < 70000 || p >= size - 200000) buf[i] = marker(p);
      }
    });
    const root = tree.dir({ big: tree.file(content), small: tree.file('after the big one') }) as DirNode;
    const image = out('over-4g');
    await pack(root, image, { compression: 'gzip', blockSize: 1 << 20, mkfsTime: 0 });
    assert.ok(fs.statSync(image).size < 4 << 20, 'holes are not stored');
    const expectTail = Buffer.alloc(5000);
    content.read(size - 5000, expectTail);
    const img = Image.open(image);
    try {
      const big = img.resolve('big');
      assert.equal(big.type, 9);
      assert.equal(img.stat(big).size, size);
      assert.ok(Buffer.from(img.read(big, size - 5000, 5000)).equals(expectTail));
      assert.equal(Buffer.from(img.read(img.resolve('small'))).toString(), 'after the big one');
    } finally {
      img.close();
    }
    if (!skipUnless('kernel read of a > 4 GiB file', kernelAvailable())) {
      await withKernelMount(image, (dir) => {
        const f = path.join(dir, 'big');
        assert.equal(fs.statSync(f).size, size);
        const fd = fs.openSync(f, 'r');
        try {
          const got = Buffer.alloc(5000);
          fs.readSync(fd, got, 0, 5000, size - 5000);
          assert.ok(got.equals(expectTail), 'kernel reads the same last 5000 bytes');
        } finally {
          fs.closeSync(fd);
        }
      });
    }
  });

  test('rejects what SquashFS cannot hold, with the bad value in the message', async () => {
    await assert.rejects(pack(tree.dir({ 'a/b': tree.file('x') }) as DirNode, out('bad-name')), /contains \//);
    await assert.rejects(pack(tree.dir({ x: tree.file('x', { xattrs: { 'system.posix_acl_access': 'x' } }) }) as DirNode, out('bad-xattr')), /system\.posix_acl_access/);
    await assert.rejects(pack(tree.dir({}) as DirNode, out('bad-bs'), { blockSize: 3000 }), /block size 3000/);
    const d = tree.dir({}) as DirNode;
    d.entries.push({ name: Buffer.from('self'), node: d });
    await assert.rejects(pack(d, out('cycle')), /cannot appear twice/);
    // Each bad name, named with the path of its directory.
    const nested = (name: Uint8Array) => tree.dir({ usr: tree.dir({ lib: tree.dir([{ name, node: tree.file('x') }]) }) }) as DirNode;
    for (const [name, why] of [
      [Buffer.from('a\0b'), 'contains NUL'],
      [Buffer.from('.'), 'is . or ..'],
      [Buffer.from('..'), 'is . or ..'],
      [Buffer.alloc(0), 'is empty'],
      [Buffer.alloc(300, 0x61), 'is longer than 256 bytes'],
    ] as const) {
      await assert.rejects(pack(nested(name), out('bad-name2')), (e: Error) => e.message.includes(`/usr/lib/: name `) && e.message.includes(why), `${why}`);
    }
    await assert.doesNotReject(pack(nested(Buffer.from('...')), out('dots')));
    const twice = tree.dir({
      usr: tree.dir([
        { name: Buffer.from('x'), node: tree.file('1') },
        { name: Buffer.from('x'), node: tree.file('2') },
      ]),
    }) as DirNode;
    await assert.rejects(pack(twice, out('twice')), /\/usr\/: name "x" appears twice/);
    const longLink = tree.dir({ usr: tree.dir({ l: tree.symlink('x'.repeat(70000)) }) }) as DirNode;
    await assert.rejects(pack(longLink, out('long-link')), /\/usr\/l: symlink target of 70000 bytes/);
  });

  test('a file that shrinks or vanishes after the scan fails the pack with its name, and leaves no file open', async () => {
    // gzip: 'b' is read by the packing thread; lz4: its whole blocks are read by the workers, and
    // the failed pack still has blocks of it queued: its descriptor is closed once they stopped.
    const openFds = () => fs.readdirSync('/proc/self/fd').length;
    // Warm up: the first pack with workers leaves the process's lasting descriptors (thread pool).
    await pack(tree.dir({ f: tree.file(Buffer.alloc(300000, 3)) }) as DirNode, out('warm-up'), { compression: 'lz4' });
    for (const [compression, size] of [
      ['gzip', 70000],
      ['lz4', 300000],
    ] as const) {
      for (const change of ['shrink', 'vanish'] as const) {
        const dir = fs.mkdtempSync(path.join(tmp, 'changing-'));
        fs.writeFileSync(path.join(dir, 'a'), Buffer.alloc(3 << 20, 1));
        fs.writeFileSync(path.join(dir, 'b'), Buffer.alloc(size, 2));
        const root = scanDirectory(dir, { xattrs: false });
        if (change === 'shrink') fs.truncateSync(path.join(dir, 'b'), 1000);
        else fs.rmSync(path.join(dir, 'b'));
        const fdsBefore = openFds();
        const expected = change === 'shrink' ? new RegExp(`/b: read 1000 bytes at 0, expected ${Math.min(size, 131072)} \\(did the file shrink`) : /\/b: cannot open: no such file$/;
        await assert.rejects(pack(root, out(`changing-${compression}-${change}`), { compression }), (e: Error) => {
          assert.ok(e instanceof SquashfsError, `${compression} ${change}: ${e}`);
          assert.match(e.message, expected, `${compression} ${change}`);
          return true;
        });
        assert.equal(openFds(), fdsBefore, `${compression} ${change}: descriptors left open`);
      }
    }
  });

  test('lz4: blocks the workers read from disk make the same image as blocks the packing thread reads', async () => {
    // The workers read the whole blocks of files on disk themselves and find the all-zero ones
    // (holes); the packing thread does both for contents without a descriptor. Same bytes either way.
    const bs = 131072;
    const dir = fs.mkdtempSync(path.join(tmp, 'worker-reads-'));
    const noise = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => ((i * 2654435761 + seed) >>> 13) & 0xff));
    const text = (n: number) => Buffer.from('the packing thread and the workers must agree, block for block\n'.repeat(Math.ceil(n / 64))).subarray(0, n);
    const holes = Buffer.concat([Buffer.alloc(bs), text(bs), Buffer.alloc(2 * bs), noise(bs, 1), Buffer.alloc(500)]);
    fs.writeFileSync(path.join(dir, 'holes'), holes); // a hole first, holes inside, a zero tail
    fs.writeFileSync(path.join(dir, 'all-zero'), Buffer.alloc(3 * bs)); // sparse = size - 1
    fs.writeFileSync(path.join(dir, 'big'), Buffer.concat([text(20 * bs), noise(5 * bs + 77, 2)])); // more blocks than slots
    fs.writeFileSync(path.join(dir, 'dup-1'), text(2 * bs + 9)); // same size: hashed in memory
    fs.writeFileSync(path.join(dir, 'dup-2'), text(2 * bs + 9));
    fs.writeFileSync(path.join(dir, 'exact'), noise(bs, 3));
    fs.writeFileSync(path.join(dir, 'small'), text(1000));
    const viaWorkers = out('worker-reads');
    const viaThread = out('thread-reads');
    await pack(dir, viaWorkers, { compression: 'lz4', mkfsTime: 0, xattrs: false });
    // The same tree with every file's contents behind a plain positional read (no descriptor).
    const root = scanDirectory(dir, { xattrs: false });
    for (const e of root.entries) {
      if (e.node.kind !== 'file') continue;
      const c = e.node.content;
      e.node.content = { size: c.size, origin: c.origin, read: (p, b) => c.read(p, b), close: () => c.close?.() };
    }
    await pack(root, viaThread, { compression: 'lz4', mkfsTime: 0, xattrs: false });
    assert.ok(fs.readFileSync(viaWorkers).equals(fs.readFileSync(viaThread)), 'the image from worker reads differs');
    assert.equal(fs.readdirSync(path.dirname(viaWorkers)).filter((f) => f.endsWith('.tmp')).length, 0);
  });

  test('an image that cannot be written (a full device) fails the pack with the reason, written in place or through the workers', async () => {
    // The data is written in the thread pool, beside the reading: a failed write must still
    // reach the caller (not be lost, not hang the pack) for both paths the bytes take.
    const big = generatedContent(5 << 20, (p, b) => {
      for (let i = 0; i < b.length; i++) b[i] = ((p + i) * 2654435761) >>> 24 || 1;
    });
    const root = tree.dir({ big: tree.file(big), small: tree.file('a few bytes') }) as DirNode;
    for (const compression of ['none', 'lz4'] as const) {
      await assert.rejects(pack(root, '/dev/full', { compression }), (e: Error) => {
        assert.ok(e instanceof SquashfsError, `${compression}: ${e}`);
        assert.match(e.message, /cannot write the image: no space left on the device/, compression);
        return true;
      });
    }
  });
});

// ---- property: random trees → pack → read back ------------------------------------------------

describe('property', () => {
  test('random trees read back identically (our reader), any block size and compressor', async () => {
    const nameArb = fc
      .uint8Array({ minLength: 1, maxLength: 40 })
      .map((b) => Buffer.from(b.map((x) => (x === 0x2f || x === 0 ? 0x61 : x))).toString('latin1'))
      .map((s) =>
        Buffer.from(s, 'latin1')
          .toString('utf8')
          .replace(/[\u0000/\ufffd]/g, 'r'),
      )
      .filter((s) => s !== '.' && s !== '..' && s.length > 0 && Buffer.byteLength(s) <= 255);
    const attrArb = fc.record({
      mode: fc.integer({ min: 0, max: 0o7777 }),
      uid: fc.integer({ min: 0, max: 70000 }),
      gid: fc.constantFrom(0, 1, 65534, 4_000_000_000),
      mtime: fc.integer({ min: 0, max: 0xffffffff }),
    });
    const contentArb = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 20000 }), fc.constant(new Uint8Array(9000)));
    const leafArb: fc.Arbitrary<TreeNode> = fc.oneof(
      fc.tuple(contentArb, attrArb).map(([c, a]) => tree.file(c, a)),
      fc.tuple(nameArb, attrArb).map(([t, a]) => tree.symlink(t, a)),
      attrArb.map((a) => tree.fifo(a)),
      fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 0xfffff }), attrArb).map(([ma, mi, a]) => tree.device('chardev', ma, mi, a)),
    );
    const { node: nodeArb } = fc.letrec<{ node: TreeNode }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leafArb,
        fc.tuple(fc.uniqueArray(fc.tuple(nameArb, tie('node')), { selector: ([n]) => n, maxLength: 12 }), attrArb).map(([es, a]) => tree.dir(Object.fromEntries(es), a)),
      ),
    }));
    const rootArb = fc.tuple(fc.uniqueArray(fc.tuple(nameArb, nodeArb), { selector: ([n]) => n, maxLength: 15 }), attrArb).map(([es, a]) => tree.dir(Object.fromEntries(es), a) as DirNode);
    const optsArb = fc.record({
      compression: fc.constantFrom('none', 'gzip', 'lz4') as fc.Arbitrary<PackOptions['compression']>,
      blockSize: fc.constantFrom(4096, 8192, 65536),
      fragments: fc.constantFrom('default', 'none', 'always') as fc.Arbitrary<PackOptions['fragments']>,
    });
    await fc.assert(
      fc.asyncProperty(rootArb, optsArb, async (root, o) => {
        const image = out('prop');
        await pack(root, image, { ...o, mkfsTime: 0, workers: 1 });
        try {
          noDiff(treeManifest(root), readerManifest(image), ['tree', 'reader']);
        } finally {
          fs.rmSync(image, { force: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});

// ---- the command ---------------------------------------------------------------------------------

/** Every inode's mtime by path ('' the root) and the superblock time as '<superblock>', read back. */
function imageTimes(file: string): Map<string, number> {
  const img = Image.open(file);
  try {
    const times = new Map<string, number>([['<superblock>', img.superblock.modificationTime]]);
    for (const e of imageManifest(img)) times.set(e.path, e.mtime);
    return times;
  } finally {
    img.close();
  }
}

describe('distri pack', () => {
  const cli = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  test('--reproducible twice gives the same bytes; bad options fail with a message', { skip: skipUnless('distri pack CLI', isRoot()) }, () => {
    const src = fs.mkdtempSync(path.join(tmp, 'src-'));
    fs.mkdirSync(path.join(src, 'd'));
    fs.writeFileSync(path.join(src, 'd', 'f'), 'hello\n');
    fs.symlinkSync('d/f', path.join(src, 'link'));
    const a = out('cli-a');
    const b = out('cli-b');
    for (const img of [a, b]) {
      const r = spawnSync(process.execPath, [cli, 'pack', src, img, '--comp', 'none', '--reproducible', '--quiet'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)));
    const mtImage = out('cli-mtime');
    const mt = spawnSync(process.execPath, [cli, 'pack', src, mtImage, '--mtime', '1000', '--block-size', '4K', '--quiet'], { encoding: 'utf8' });
    assert.equal(mt.status, 0, mt.stderr);
    assert.deepEqual(new Set(imageTimes(mtImage).values()), new Set([1000]), '--mtime sets the image time and every inode time');
    const bad = spawnSync(process.execPath, [cli, 'pack', src, out('cli-bad'), '--block-size', '3000'], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /block-size must be a power of two/);
    const nodir = spawnSync(process.execPath, [cli, 'pack', src, path.join(tmp, 'no-such-dir', 'x.sqfs')], { encoding: 'utf8' });
    assert.equal(nodir.status, 1);
    assert.match(nodir.stderr, /cannot write .*no-such-dir\/x\.sqfs: directory .*no-such-dir does not exist/);
    assert.doesNotMatch(nodir.stderr, /\.tmp/, 'the message names the image, not the temporary file');
    const help = spawnSync(process.execPath, [cli, 'pack', '--help'], { encoding: 'utf8' });
    assert.match(help.stdout, /Examples:/);
  });

  test('--reproducible: the image time is the newest file time, or SOURCE_DATE_EPOCH clamping newer files, whenever it runs', { skip: skipUnless('distri pack CLI', isRoot()) }, () => {
    // File times are set far from now, so an image time taken from the clock (the flag ignored)
    // cannot pass; the second pack runs after the sources were touched, as a rebuild would.
    const src = fs.mkdtempSync(path.join(tmp, 'repro-'));
    fs.mkdirSync(path.join(src, 'd'));
    fs.writeFileSync(path.join(src, 'd', 'old'), 'old\n');
    fs.writeFileSync(path.join(src, 'new'), 'new\n');
    const setTimes = (newest: number) => {
      fs.utimesSync(path.join(src, 'd', 'old'), 1_000_000_000, 1_000_000_000);
      fs.utimesSync(path.join(src, 'new'), newest, newest);
      fs.utimesSync(path.join(src, 'd'), 1_100_000_000, 1_100_000_000);
      fs.utimesSync(src, 1_100_000_000, 1_100_000_000);
    };
    const packIt = (img: string, env: NodeJS.ProcessEnv = {}) => {
      const r = spawnSync(process.execPath, [cli, 'pack', src, img, '--comp', 'none', '--reproducible', '--quiet'], {
        encoding: 'utf8',
        env: { ...process.env, SOURCE_DATE_EPOCH: undefined, ...env },
      });
      assert.equal(r.status, 0, r.stderr);
      return imageTimes(img);
    };
    const [one, two] = [out('repro-1'), out('repro-2')];
    setTimes(1_200_000_000);
    const first = packIt(one);
    assert.equal(first.get('<superblock>'), 1_200_000_000, 'the image time is the newest file time');
    assert.equal(first.get('new'), 1_200_000_000);
    assert.equal(first.get('d/old'), 1_000_000_000, 'file times are kept');
    // Touched (the content rewritten, as a rebuild does), then set back: the same bytes.
    fs.writeFileSync(path.join(src, 'new'), 'new\n');
    setTimes(1_200_000_000);
    packIt(two);
    assert.ok(fs.readFileSync(one).equals(fs.readFileSync(two)), 'the same tree and times give the same bytes');
    // A newer file moves the image time with it.
    setTimes(1_300_000_000);
    assert.equal(packIt(out('repro-3')).get('<superblock>'), 1_300_000_000);
    // SOURCE_DATE_EPOCH: the image time, and files newer than it are clamped to it; older ones kept.
    const sde = packIt(out('repro-sde'), { SOURCE_DATE_EPOCH: '1250000000' });
    assert.equal(sde.get('<superblock>'), 1_250_000_000);
    assert.equal(sde.get('new'), 1_250_000_000, 'a newer file is clamped');
    assert.equal(sde.get('d/old'), 1_000_000_000, 'an older file keeps its time');
    assert.equal(sde.get('d'), 1_100_000_000);
  });

  test('an image inside its source is left out, a rerun replaces it, a failed run keeps it; --json; /dev/null', { skip: skipUnless('distri pack CLI', isRoot()) }, async (t) => {
    const src = fs.mkdtempSync(path.join(tmp, 'inside-'));
    fs.mkdirSync(path.join(src, 'd'));
    fs.writeFileSync(path.join(src, 'd', 'f'), 'hello\n'.repeat(1000));
    const image = path.join(src, 'self.sqfs');
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'pack', ...args], { encoding: 'utf8' });
    const first = run(src, image, '--comp', 'none', '--quiet');
    assert.equal(first.status, 0, first.stderr);
    fs.chmodSync(image, 0o600);
    // The rerun scans a tree that holds the first image: it must neither pack it nor read it while
    // it is being replaced.
    const expected = walkDirectory(src).filter((e) => e.path !== 'self.sqfs');
    const second = run(src, image, '--json');
    assert.equal(second.status, 0, second.stderr);
    const summary = JSON.parse(second.stdout) as Record<string, unknown>;
    assert.equal(summary.image, image);
    assert.equal(summary.compression, 'gzip');
    assert.equal(summary.fileSize, fs.statSync(image).size);
    assert.equal(summary.inodeCount, expected.length);
    assert.deepEqual(summary.flags, ['duplicates', 'exportable']);
    assert.equal(second.stderr, '', 'with --json no summary line');
    assert.equal(fs.statSync(image).mode & 0o777, 0o600, 'the replaced image keeps its permission bits');
    noDiff(expected, readerManifest(image), ['source', 'reader']);
    if (!skipUnless('kernel mount of written image', kernelAvailable())) {
      await withKernelMount(image, (dir) => noDiff(expected, walkDirectory(dir), ['source', 'kernel']));
    } else t.diagnostic('kernel oracle skipped');
    assert.deepEqual(fs.readdirSync(src).sort(), ['d', 'self.sqfs'], 'no temporary file left behind');

    // A run that fails (here: the source vanished) leaves the previous image as it was.
    const before = fs.readFileSync(image);
    const failed = run(path.join(src, 'missing'), image);
    assert.equal(failed.status, 2);
    assert.match(failed.stderr, /: [^ ]*missing does not exist\n$/);
    assert.ok(fs.readFileSync(image).equals(before), 'the old image is intact');
    assert.deepEqual(fs.readdirSync(src).sort(), ['d', 'self.sqfs']);

    // A path that is not a regular file is written in place, and not cut to size.
    const devnull = run(src, '/dev/null', '--quiet');
    assert.equal(devnull.status, 0, devnull.stderr);
    assert.equal(fs.statSync('/dev/null').isCharacterDevice(), true);
  });

  test('a source named through a symlink packs the directory it names', { skip: skipUnless('distri pack CLI', isRoot()) }, () => {
    const base = fs.mkdtempSync(path.join(tmp, 'via-link-'));
    const real = path.join(base, 'real');
    fs.mkdirSync(path.join(real, 'd'), { recursive: true });
    fs.writeFileSync(path.join(real, 'd', 'f'), 'x\n');
    fs.symlinkSync('real', path.join(base, 'link'));
    fs.symlinkSync('nowhere', path.join(base, 'dangling'));
    const images = ['real', 'link', 'link/'].map((name) => {
      const img = out(`via-${name.replace('/', 'slash')}`);
      const r = spawnSync(process.execPath, [cli, 'pack', path.join(base, name), img, '--mtime', '0', '--quiet'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return fs.readFileSync(img);
    });
    assert.ok(images[1]!.equals(images[0]!) && images[2]!.equals(images[0]!), 'link and link/ give the image of the directory itself');
    const dangling = spawnSync(process.execPath, [cli, 'pack', path.join(base, 'dangling'), out('via-dangling')], { encoding: 'utf8' });
    assert.equal(dangling.status, 2, 'a path problem, as NOT_FOUND');
    assert.match(dangling.stderr, /dangling is a symbolic link to nowhere, which cannot be followed/);
  });

  test('scanProgress counts the entries found, then progress counts the bytes packed', async () => {
    const src = fs.mkdtempSync(path.join(tmp, 'progress-'));
    for (let d = 0; d < 3; d++) {
      fs.mkdirSync(path.join(src, `d${d}`));
      for (let f = 0; f < 5; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), 'y'.repeat(1000 * (f + 1)));
    }
    const scanned: number[] = [];
    const packed: Array<[number, number]> = [];
    await pack(src, out('progress'), { compression: 'none', scanProgress: (n) => scanned.push(n), progress: (done, total) => packed.push([done, total]) });
    assert.deepEqual(
      scanned,
      [...scanned].sort((a, b) => a - b),
      'never goes back',
    );
    assert.equal(scanned.at(-1), 3 + 15, 'every entry below the root');
    assert.equal(packed.at(-1)![0], 3 * (1000 + 2000 + 3000 + 4000 + 5000));
    assert.equal(packed.at(-1)![1], packed.at(-1)![0]);
  });

  test('interrupted (SIGINT), it removes its partial image and dies of the signal', { skip: skipUnless('distri pack CLI', isRoot()) }, async () => {
    const src = fs.mkdtempSync(path.join(tmp, 'sigint-src-'));
    fs.writeFileSync(path.join(src, 'noise'), crypto.randomBytes(24 << 20)); // xz takes seconds on this
    const dest = fs.mkdtempSync(path.join(tmp, 'sigint-out-'));
    const child = spawn(process.execPath, [cli, 'pack', src, path.join(dest, 'i.sqfs'), '--comp', 'xz', '--quiet'], { stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      let sawPartial = false;
      for (let i = 0; i < 400 && !sawPartial && child.exitCode === null; i++) {
        sawPartial = fs.readdirSync(dest).some((f) => f.endsWith('.tmp'));
        if (!sawPartial) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(sawPartial, 'the partial image appears beside the image while packing');
      child.kill('SIGINT');
      const { signal } = await exited;
      assert.equal(signal, 'SIGINT');
      assert.deepEqual(fs.readdirSync(dest), [], 'neither a partial nor a finished image is left');
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL'); // a failed assertion must not leave the pack running
        await exited;
      }
    }
  });
});
