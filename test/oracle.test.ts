/**
 * Tests of the fixtures and the oracles, against each other, before any decoder is compared
 * against them: for every image of the mksquashfs matrix, the kernel mount's listing, the
 * unsquashfs extraction's listing and the source tree's listing (adjusted by `expectedFromSource`
 * for what each option changes, and nothing else) are equal. Plus: the committed images still
 * match their expected listings, the helpers clean up after failures, and nothing is left mounted.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildAvailable, buildFixtures, committedImages, demoImage, expectedFromSource, readExpected, type BuiltFixtures } from './oracle/fixtures';
import { kernelAvailable, kernelLeftovers, kernelSupportsCompressor, withKernelMount } from './oracle/kernel';
import { diffManifests, formatManifest, sortManifest, walkDirectory, type Entry, type Manifest } from './oracle/manifest';
import { isRoot, notApplicable, repoRoot, requireTools, skipUnless } from './oracle/tools';
import { unsquashfsAvailable, unsquashfsLeftovers, withUnsquashfs } from './oracle/unsquashfs';

function assertSame(a: Manifest, b: Manifest, labels: [string, string]): void {
  const d = diffManifests(a, b, { labels, limit: 40 });
  assert.deepEqual(d, [], `${labels[0]} and ${labels[1]} differ:\n  ${d.join('\n  ')}`);
}

// ---- the manifest helpers themselves -------------------------------------------------------------

describe('manifest helpers', () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-manifest-test-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('walkDirectory: types, modes, sizes, targets, nlink, digests, sorting', () => {
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd', 'f'), 'abc');
    fs.linkSync(path.join(dir, 'd', 'f'), path.join(dir, 'd-f'));
    fs.symlinkSync('d/f', path.join(dir, 'link'));
    fs.symlinkSync('/nonexistent/target', path.join(dir, 'dangling'));
    fs.chmodSync(path.join(dir, 'd'), 0o1750);
    fs.utimesSync(path.join(dir, 'd', 'f'), 1234567890, 1234567890);
    const m = walkDirectory(dir, { xattrs: false });
    assert.deepEqual(
      m.map((e) => e.path),
      ['', 'd', 'd-f', 'd/f', 'dangling', 'link'], // byte order: '-' (0x2d) before '/' (0x2f)
    );
    const by = new Map(m.map((e) => [e.path, e]));
    assert.equal(by.get('')?.type, 'dir');
    assert.equal(by.get('d')?.mode, 0o1750);
    assert.equal(by.get('d')?.size, 0);
    const f = by.get('d/f') as Entry;
    assert.equal(f.size, 3);
    assert.equal(f.nlink, 2);
    assert.equal(f.mtime, 1234567890);
    assert.equal(f.sha256, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.deepEqual(by.get('link'), { ...by.get('link'), type: 'symlink', size: 0, target: 'd/f' });
    assert.equal(by.get('dangling')?.target, '/nonexistent/target');
    assert.equal(by.get('link')?.sha256, undefined);
  });

  test('walkDirectory: xattrs (hex, empty values, odd names) and devices', (t) => {
    if (!requireTools(t, 'getfattr', 'setfattr')) return;
    const odd = 'new\nline \\ ☃';
    fs.writeFileSync(path.join(dir, odd), '');
    const set = (name: string, value: string, file: string) => spawnSync('setfattr', ['-n', name, ...(value === '' ? [] : ['-v', value]), '--', file], { encoding: 'utf8' });
    const r = set('user.x', '0x00ff', path.join(dir, odd));
    if (!requireTools(t, r.status === 0 ? { ok: true } : { ok: false, why: `${os.tmpdir()} refuses user xattrs: ${r.stderr.trim()}` })) return;
    assert.equal(set('user.empty', '', path.join(dir, odd)).status, 0);
    const m = walkDirectory(dir);
    const e = m.find((x) => x.path === odd);
    assert.deepEqual(e?.xattrs, { 'user.empty': '', 'user.x': '00ff' });
    assert.equal(m.find((x) => x.path === 'd')?.xattrs, undefined, 'no xattrs means absent, not {}');
    if (!skipUnless('walkDirectory of device nodes', 'mknod', isRoot())) {
      assert.equal(spawnSync('mknod', [path.join(dir, 'cdev'), 'c', '4', '300']).status, 0);
      const c = walkDirectory(dir).find((x) => x.path === 'cdev');
      assert.deepEqual(c?.rdev, { major: 4, minor: 300 });
      assert.equal(c?.type, 'chardev');
    }
  });

  test('diffManifests: names the path, the field and both values; caps its output', () => {
    const a: Manifest = [
      { path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1, nlink: 2 },
      { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1, mtime: 1, nlink: 1, sha256: 'aa', xattrs: { 'user.a': '01' } },
    ];
    assert.deepEqual(diffManifests(a, sortManifest([...a].reverse())), []);
    const b: Manifest = [a[0]!, { ...a[1]!, mode: 0o4644, nlink: 2, xattrs: { 'user.a': '02', 'user.b': '' } }, { path: 'g', type: 'fifo', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1, nlink: 1 }];
    assert.deepEqual(diffManifests(a, b, { labels: ['src', 'img'] }), [
      'f: mode src=0o0644 img=0o4644',
      'f: nlink src=1 img=2',
      'f: xattr user.a src="01" img="02"',
      'f: xattr user.b only in img',
      'only in img: g (fifo)',
    ]);
    assert.deepEqual(diffManifests(a, b, { limit: 2 }).at(-1), '... and 3 more difference(s)');
    assert.deepEqual(diffManifests([a[0]!, { ...a[1]!, rdev: { major: 1, minor: 2 } }], [a[0]!, { ...a[1]!, rdev: { minor: 2, major: 1 } }]), []);
    assert.match(diffManifests([a[0]!, { ...a[1]!, xattrs: {} }], a).join('\n'), /must be absent/);
    assert.equal(JSON.parse(formatManifest(b)).length, 3);
  });
});

// ---- committed images: no tools needed to read, the kernel to re-check ---------------------------

describe('committed images', () => {
  const committed = committedImages();

  test('every committed image and listing is present and well-formed', () => {
    assert.ok(committed.images.length >= 5);
    for (const img of committed.images) {
      const bytes = fs.readFileSync(img.file);
      assert.equal(bytes.readUInt32LE(0), 0x73717368, `${img.name}: SquashFS magic`);
      assert.equal(bytes.readUInt16LE(28), 4, `${img.name}: major version 4`);
      const m = readExpected(img);
      assert.deepEqual(m, sortManifest(m), `${img.name}: listing sorted by path bytes`);
      assert.equal(m[0]!.path, '');
      assert.ok(m.length > 300, `${img.name}: listing has the 300-entry directory`);
    }
    assert.equal(fs.readFileSync(demoImage()).readUInt32LE(0), 0x73717368);
  });

  for (const img of committed.images) {
    test(`${img.name}: the kernel mount still lists exactly ${path.basename(img.expected)}`, { skip: skipUnless('committed image vs kernel', kernelAvailable(), 'getfattr') }, async () => {
      const k = await withKernelMount(img.file, (d) => walkDirectory(d));
      assertSame(readExpected(img), k, ['expected.json', 'kernel']);
    });
  }

  test('rebuilding them from make-tree.sh --small gives the same bytes and listings', { skip: skipUnless('committed image rebuild', buildAvailable()) }, (t) => {
    const version = spawnSync('mksquashfs', ['-version'], { encoding: 'utf8' }).stdout.split('\n')[0];
    fs.mkdirSync(path.join(repoRoot(), 'fixtures', 'build'), { recursive: true });
    const work = fs.mkdtempSync(path.join(repoRoot(), 'fixtures', 'build', 'oracle-test.')); // xattr-capable disk
    try {
      const tree = path.join(work, 'small');
      const mk = spawnSync(path.join(repoRoot(), 'fixtures', 'make-tree.sh'), ['--small', tree], { encoding: 'utf8' });
      assert.equal(mk.status, 0, mk.stderr);
      const source = walkDirectory(tree);
      for (const img of committed.images) {
        const args = img.mksquashfsArgs;
        const expected = expectedFromSource(source, {
          allRoot: args.includes('-all-root'),
          xattrs: !args.includes('-no-xattrs'),
          allTime: null,
          hardlinks: !args.includes('-no-hardlinks'),
        });
        assertSame(expected, readExpected(img), ['small tree', `${img.name}.expected.json`]);
        if (version !== committed.mksquashfsVersion) continue;
        const out = path.join(work, `${img.name}.sqfs`);
        const r = spawnSync('mksquashfs', [tree, out, ...args], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.readFileSync(out).equals(fs.readFileSync(img.file)), `${img.name}: rebuild differs from the committed image`);
      }
      if (version !== committed.mksquashfsVersion) {
        const why = `byte comparison skipped: images made by "${committed.mksquashfsVersion}", this is "${version}"`;
        notApplicable('committed image rebuild (part)', why);
        t.diagnostic(why);
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

// ---- the matrix: source == kernel == unsquashfs ---------------------------------------------------

describe('image matrix: source tree, kernel mount and unsquashfs agree', () => {
  const skip = skipUnless('image matrix', buildAvailable());
  let fixtures: BuiltFixtures | undefined;
  if (!skip) {
    const t0 = Date.now();
    fixtures = buildFixtures();
    console.log(`# fixtures/build.sh: ${fixtures.images.length} images ready in ${Date.now() - t0} ms`);
  }
  let source: Manifest = [];
  const kernelListings = new Map<string, Manifest>();

  test('the source tree holds every edge case it claims', { skip }, () => {
    assert.ok(fixtures);
    source = walkDirectory(fixtures.tree);
    const by = new Map(source.map((e) => [e.path, e]));
    const get = (p: string) => {
      const e = by.get(p);
      assert.ok(e, `source tree lacks ${p}`);
      return e;
    };
    for (const [p, size] of [
      ['files/empty', 0],
      ['blocks/size-4095', 4095],
      ['blocks/size-131073', 131073],
      ['blocks/size-1048576', 1048576],
    ] as const) {
      assert.equal(get(p).size, size);
    }
    assert.ok(get('files/big.txt').size > 4 * 1024 * 1024);
    assert.equal(source.filter((e) => e.path.startsWith('many/') && !e.path.slice(5).includes('/')).length, 301);
    assert.ok(source.some((e) => Buffer.byteLength(e.path.split('/').at(-1) ?? '') === 255 && e.type === 'file'));
    assert.ok(source.some((e) => e.path.includes('\n')));
    assert.ok(source.some((e) => e.path.split('/').length >= 41));
    assert.equal(get('links/three-a').nlink, 3);
    assert.equal(get('links/two-b').nlink, 2);
    assert.equal(get('links/sym-long-4000').target?.length, 4000);
    assert.deepEqual(get('special/block-dev').rdev, { major: 259, minor: 70000 });
    assert.equal(get('special/socket').type, 'socket');
    assert.equal(get('special/fifo').type, 'fifo');
    assert.equal(get('modes/all-bits').mode, 0o7777);
    assert.equal(get('modes/sticky-dir').mode, 0o1777);
    assert.equal(get('owners/file-4000000000-12345').uid, 4000000000);
    assert.equal(get('xattrs/capability').xattrs?.['security.capability'], '0100000200100000000000000000000000000000');
    assert.equal(get('xattrs/trusted').xattrs?.['trusted.overlay.opaque'], '79');
    assert.equal(get('xattrs/big-value-1').xattrs?.['user.big']!.length, 6000);
    assert.equal(get('xattrs/user').xattrs?.['user.empty'], '');
    assert.equal(get('files/hello.txt').mtime, 4102444800);
    assert.equal(get('sparse/holey').size, 5 * 1024 * 1024 + 70000);
    assert.equal(get('dup/a.bin').sha256, get('dup/c.bin').sha256);
  });

  for (const image of fixtures?.images ?? []) {
    const kernelSkip = skip ?? skipUnless(`kernel mount of ${image.name}`, kernelAvailable(), kernelSupportsCompressor(image.compressor), 'getfattr');
    test(`kernel mount of ${image.name} lists the source tree (${image.mksquashfsArgs.join(' ')})`, { skip: kernelSkip }, async () => {
      assert.ok(source.length > 0, 'the source tree test must run first');
      const k = await withKernelMount(image.file, (d) => walkDirectory(d));
      kernelListings.set(image.name, k);
      assertSame(expectedFromSource(source, image), k, ['expected from source', 'kernel']);
    });
  }

  for (const image of fixtures?.images ?? []) {
    const unsquashfsSkip = skip ?? skipUnless(`unsquashfs of ${image.name}`, unsquashfsAvailable(), 'getfattr');
    test(`unsquashfs of ${image.name} equals the kernel mount (or the source, when the kernel cannot mount it)`, { skip: unsquashfsSkip }, async () => {
      const u = await withUnsquashfs(image.file, (d) => walkDirectory(d));
      const k = kernelListings.get(image.name);
      if (k) assertSame(k, u, ['kernel', 'unsquashfs']);
      else assertSame(expectedFromSource(source, image), u, ['expected from source', 'unsquashfs']);
    });
  }
});

// ---- the helpers clean up, whatever happens -------------------------------------------------------

describe('oracle helpers clean up', () => {
  const image = committedImages().images[0]!.file;

  test('withKernelMount: unmounts, detaches and removes its directory when fn throws', { skip: skipUnless('kernel cleanup', kernelAvailable()) }, async () => {
    let seen = '';
    await assert.rejects(
      withKernelMount(image, (d) => {
        seen = d;
        assert.ok(fs.readdirSync(d).length > 0);
        throw new Error('boom inside fn');
      }),
      /boom inside fn/,
    );
    assert.equal(fs.existsSync(seen), false, `${seen} left behind`);
    assert.deepEqual(kernelLeftovers(), []);
    await assert.rejects(
      withKernelMount(path.join(repoRoot(), 'package.json'), () => 1),
      /mount -t squashfs .* failed/,
    );
  });

  test('withUnsquashfs: removes its extraction when fn throws', { skip: skipUnless('unsquashfs cleanup', unsquashfsAvailable()) }, async () => {
    let seen = '';
    await assert.rejects(
      withUnsquashfs(image, (d) => {
        seen = d;
        throw new Error('boom inside fn');
      }),
      /boom inside fn/,
    );
    assert.equal(fs.existsSync(path.dirname(seen)), false);
  });

  test('no mount, loop device or temp directory made by this process is left', () => {
    assert.deepEqual(kernelLeftovers(), []);
    assert.deepEqual(unsquashfsLeftovers(), []);
  });
});
