/**
 * `distri extract`: the extracted tree equals what the kernel shows when it mounts the image, and
 * nothing is ever written outside the destination (robustness.md, "Extraction"): every traversal
 * case runs next to a canary directory that must stay byte-for-byte and attribute-for-attribute
 * untouched. Malicious images are the real mksquashfs output of a small tree with one name patched
 * in the uncompressed directory table (test/craft/image.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SquashfsError } from '../src/errors';
import { extract } from '../src/extract/extract';
import { SafeTree } from '../src/extract/safe-tree';
import type { DirEntry } from '../src/format/directory';
import { Image } from '../src/reader/image';
import { kernelAvailable, withKernelMount } from './oracle/kernel';
import { diffManifests, readManifestFile, walkDirectory, type Manifest } from './oracle/manifest';
import { isRoot, repoRoot, requireTools, skipUnless } from './oracle/tools';
import { runCliAsNobody } from './helpers/as-user';
import { UNCOMPRESSED, mksquashfs, renameEntry, sh, tempDir } from './craft/image';

const ROOT = repoRoot();
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

function runCli(args: string[], asNobody = false): { status: number | null; stderr: string; stdout: string } {
  const cmd = asNobody ? 'setpriv' : process.execPath;
  const full = asNobody ? ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, CLI, ...args] : [CLI, ...args];
  const r = spawnSync(cmd, full, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** The images to compare with the kernel: the committed small ones, plus a few of the big matrix when built. */
function fixtureImages(): Array<{ name: string; file: string; expected?: string }> {
  const out: Array<{ name: string; file: string; expected?: string }> = [];
  const committed = path.join(ROOT, 'fixtures', 'images');
  if (fs.existsSync(committed)) {
    for (const f of fs.readdirSync(committed).sort()) {
      if (!f.endsWith('.sqfs')) continue;
      const expected = path.join(committed, f.replace(/\.sqfs$/, '.expected.json'));
      out.push({ name: f, file: path.join(committed, f), expected: fs.existsSync(expected) ? expected : undefined });
    }
  }
  const built = path.join(ROOT, 'fixtures', 'build', 'images');
  for (const n of ['uncompressed-4k', 'gzip-128k', 'gzip-128k-no-hardlinks', 'gzip-128k-all-root']) {
    const f = path.join(built, `${n}.sqfs`);
    if (fs.existsSync(f)) out.push({ name: `build/${n}`, file: f });
  }
  return out;
}

async function extractTo(image: string, dest: string, options: Parameters<typeof extract>[2] = {}) {
  const img = Image.open(image);
  try {
    return await extract(img, dest, options);
  } finally {
    img.close();
  }
}

describe('extract: the result equals the kernel mount', () => {
  const images = fixtureImages();
  if (images.length === 0) {
    test('fixture images', { skip: skipUnless('extract vs kernel', { ok: false, why: 'no images in fixtures/images or fixtures/build/images (run fixtures/build.sh)' }) }, () => {});
  }
  for (const im of images) {
    test(im.name, { skip: skipUnless(`extract ${im.name} vs kernel`, isRoot(), kernelAvailable(), 'getfattr', 'setfattr', 'mknod') }, async () => {
      const tmp = tempDir('distri-extract-');
      try {
        const dest = path.join(tmp.dir, 'root');
        const report = await extractTo(im.file, dest);
        assert.deepEqual(report.xattrErrors, []);
        const mine = walkDirectory(dest);
        const kernel = await withKernelMount(im.file, (m) => walkDirectory(m));
        assert.deepEqual(diffManifests(kernel, mine, { labels: ['kernel', 'extract'] }), []);
        if (im.expected) assert.deepEqual(diffManifests(readManifestFile(im.expected), mine, { labels: ['expected', 'extract'] }), []);
      } finally {
        tmp.cleanup();
      }
    });
  }

  // Device nodes and fifos are made by a shell beside the walk (not awaited one by one), and files
  // are created with their final mode where open() can give it: a hard link to a node still being
  // made, a node in a directory the walk has left, and modes the umask or setuid would spoil.
  test(
    'hard-linked fifos and device nodes, and every kind of file mode, as the kernel shows them',
    { skip: skipUnless('extract nodes vs kernel', isRoot(), kernelAvailable(), 'mksquashfs', 'mknod', 'mkfifo') },
    async () => {
      const tmp = tempDir('distri-extract-');
      try {
        const src = path.join(tmp.dir, 'src');
        fs.mkdirSync(path.join(src, 'a', 'deeper'), { recursive: true });
        fs.mkdirSync(path.join(src, 'b'));
        sh(`mkfifo a/fifo && mknod a/deeper/null c 1 3`, src);
        fs.linkSync(path.join(src, 'a', 'fifo'), path.join(src, 'b', 'fifo-link'));
        fs.linkSync(path.join(src, 'a', 'deeper', 'null'), path.join(src, 'b', 'null-link'));
        for (const [name, mode] of [
          ['f666', 0o666],
          ['f400', 0o400],
          ['f4755', 0o4755],
          ['f2711', 0o2711],
          ['f1777', 0o1777],
          ['f000', 0o000],
        ] as const) {
          fs.writeFileSync(path.join(src, 'b', name), `${name}\n`);
          fs.chmodSync(path.join(src, 'b', name), mode);
        }
        const image = path.join(tmp.dir, 'nodes.sqfs');
        mksquashfs(src, image);
        const dest = path.join(tmp.dir, 'root');
        const old = process.umask(0o022);
        try {
          await extractTo(image, dest);
        } finally {
          process.umask(old);
        }
        const mine = walkDirectory(dest);
        const kernel = await withKernelMount(image, (m) => walkDirectory(m));
        assert.deepEqual(diffManifests(kernel, mine, { labels: ['kernel', 'extract'] }), []);
        assert.equal(fs.statSync(path.join(dest, 'b', 'fifo-link')).ino, fs.statSync(path.join(dest, 'a', 'fifo')).ino);
        assert.equal(fs.statSync(path.join(dest, 'b', 'f666')).mode & 0o7777, 0o666);
      } finally {
        tmp.cleanup();
      }
    },
  );

  test('PATH arguments extract only those subtrees and the directories leading to them', { skip: skipUnless('extract PATH', isRoot(), 'setfattr') }, async () => {
    const im = images.find((i) => i.expected);
    assert.ok(im, 'fixtures/images holds no image with an expected listing (they are committed)');
    const tmp = tempDir('distri-extract-');
    try {
      const dest = path.join(tmp.dir, 'root');
      const r = runCli(['extract', im.file, '-d', dest, 'links', 'files/hello.txt', 'links/two-a', '/deep/level-01/']);
      assert.equal(r.status, 0, r.stderr);
      const mine = walkDirectory(dest);
      const want = readManifestFile(im.expected!);
      const selected = (p: string) => p === 'links' || p.startsWith('links/') || p === 'files/hello.txt' || p === 'deep/level-01' || p.startsWith('deep/level-01/');
      const ancestors = new Set(['', 'files', 'deep']);
      const strip = (m: Manifest) => m.filter((e) => selected(e.path) || ancestors.has(e.path)).map((e) => (ancestors.has(e.path) ? { ...e, nlink: 0 } : e));
      // Hard links whose other names were not selected have fewer names here.
      const noNlink = (m: Manifest) => m.map((e) => (e.type === 'dir' ? e : { ...e, nlink: 0 }));
      assert.deepEqual(diffManifests(noNlink(strip(want)), noNlink(strip(mine)), { labels: ['expected', 'extract'] }), []);
      assert.deepEqual(
        mine.map((e) => e.path).filter((p) => !selected(p) && !ancestors.has(p)),
        [],
      );
    } finally {
      tmp.cleanup();
    }
  });

  test('a PATH that is not in the image exits 2', () => {
    const im = images[0];
    assert.ok(im, 'fixtures/images holds no image (they are committed)');
    const tmp = tempDir('distri-extract-');
    try {
      const r = runCli(['extract', im.file, '-d', path.join(tmp.dir, 'd'), 'no/such/path']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /: no such file or directory in the image: no\n$/);
    } finally {
      tmp.cleanup();
    }
  });
});

// ---- never outside DEST -----------------------------------------------------------------------

/**
 * The malicious seed. Once patched, each name below attacks from inside the image:
 *   aa/pwn      → "../pwn"            (aa becomes "..")
 *   ..Xcn/pwn   → "../cn/pwn"         (..Xcn becomes "../cn": the canary directory)
 *   evil        → a symlink to the canary; evim/pwn becomes a second "evil" with "evil/pwn" inside
 *   nXl         → "n\0l"
 * DEST is <tmp>/dest and the canary <tmp>/cn.
 */
describe('extract: nothing is written outside DEST', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seed: Buffer;
  let canary: string;
  let canarySnapshot: Manifest;
  const ready = skipUnless('extract traversal cases', 'mksquashfs', isRoot());

  before(() => {
    if (ready) return;
    tmp = tempDir('distri-evil-');
    canary = path.join(tmp.dir, 'cn');
    fs.mkdirSync(canary);
    fs.writeFileSync(path.join(canary, 'keep'), 'canary\n');
    fs.mkdirSync(path.join(canary, 'sub'));
    const src = path.join(tmp.dir, 'src');
    fs.mkdirSync(src);
    sh(
      `mkdir aa ..Xcn evim && echo pwned > aa/pwn && echo pwned > ..Xcn/pwn && echo pwned > evim/pwn && echo x > nXl
       ln -s ${JSON.stringify(canary)} evil && ln -s ${JSON.stringify(path.join(canary, 'keep'))} lnk-keep
       mkdir sub && echo inside > sub/file`,
      src,
    );
    seed = mksquashfs(src, path.join(tmp.dir, 'seed.sqfs'), [...UNCOMPRESSED, '-b', '4096']);
    fs.rmSync(src, { recursive: true });
    canarySnapshot = walkDirectory(canary);
  });
  after(() => tmp?.cleanup());

  /** The canary and everything beside DEST are as before; returns the names in <tmp>. */
  function assertUntouched(allowed: string[] = []): void {
    assert.deepEqual(diffManifests(canarySnapshot, walkDirectory(canary), { labels: ['before', 'after'] }), []);
    const beside = fs.readdirSync(tmp.dir).filter((n) => !['cn', 'seed.sqfs', 'dest', ...allowed].includes(n));
    assert.deepEqual(beside, [], 'something was written beside DEST');
  }

  function freshDest(): string {
    const dest = path.join(tmp.dir, 'dest');
    fs.rmSync(dest, { recursive: true, force: true });
    return dest;
  }

  function writeImage(name: string, buf: Buffer): string {
    const f = path.join(tmp.dir, name);
    fs.writeFileSync(f, buf);
    return f;
  }

  test('the unpatched seed extracts, with its symlinks as links (never followed)', { skip: ready }, async () => {
    const dest = freshDest();
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      const r = runCli(['extract', f, '-d', dest]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(fs.readlinkSync(path.join(dest, 'evil')), canary);
      assert.equal(fs.readFileSync(path.join(dest, 'evim', 'pwn'), 'utf8'), 'pwned\n');
      // Again with --force over the same tree: replaces links, merges directories, follows nothing.
      const again = runCli(['extract', f, '-d', dest, '--force']);
      assert.equal(again.status, 0, again.stderr);
      assertUntouched(['seed-ok.sqfs']);
    } finally {
      fs.rmSync(f);
    }
  });

  const patched: Array<[string, string, string, Buffer | string, RegExp]> = [
    ['a directory named ..', '', 'aa', '..', /CORRUPT.*\.\./],
    ['a name containing / (../cn)', '', '..Xcn', '../cn', /CORRUPT.*contains \//],
    ['a name containing NUL', '', 'nXl', Buffer.from('n\0l', 'latin1'), /CORRUPT.*NUL/],
    ['a duplicate name: evil -> canary, then evil/pwn', '', 'evim', 'evil', /CORRUPT.*duplicate/],
  ];
  for (const [what, dir, name, to, message] of patched) {
    test(`image with ${what}: refused by the decoder, exit 1, canary untouched`, { skip: ready }, () => {
      const dest = freshDest();
      const f = writeImage('bad.sqfs', renameEntry(seed, dir, name, to));
      try {
        const r = runCli(['extract', f, '-d', dest]);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, message);
        assertUntouched(['bad.sqfs']);
      } finally {
        fs.rmSync(f);
      }
    });
  }

  /** The same attacks with the decoder's name checks bypassed: the extractor must refuse by itself. */
  const bypass: Array<[string, string, Buffer]> = [
    ['..', 'aa', Buffer.from('..')],
    ['../cn', '..Xcn', Buffer.from('../cn')],
    ['n\\0l', 'nXl', Buffer.from('n\0l', 'latin1')],
    ['a second "evil" (a directory, after the symlink evil -> canary)', 'evim', Buffer.from('evil')],
  ];
  for (const [what, name, to] of bypass) {
    test(`decoder bypassed, an entry named ${what}: the extractor refuses with UNSAFE_PATH`, { skip: ready }, async () => {
      const dest = freshDest();
      const img = Image.fromBuffer(seed);
      const readdir = img.readdir.bind(img);
      // A listing the decoder would never return: the entry renamed after validation.
      (img as { readdir: typeof img.readdir }).readdir = (d) =>
        readdir(d).map((e): DirEntry => (Buffer.from(e.nameBytes).toString('latin1') === name ? { ...e, nameBytes: to, name: to.toString('latin1') } : e));
      await assert.rejects(extract(img, dest), (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH');
      img.close();
      assertUntouched();
    });
  }

  test('SafeTree never writes through a symlink it meets inside DEST', { skip: ready }, () => {
    const dest = freshDest();
    const tree = SafeTree.open(dest);
    try {
      tree.symlink([Buffer.from('evil')], Buffer.from(canary));
      assert.throws(
        () => tree.createFile([Buffer.from('evil'), Buffer.from('pwn')]),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH',
      );
      assert.throws(
        () => tree.mkdir([Buffer.from('evil'), Buffer.from('sub2')]),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH',
      );
      assert.throws(
        () => tree.symlink([Buffer.from('evil'), Buffer.from('l')], Buffer.from('/')),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH',
      );
      assert.throws(
        () => tree.finish([Buffer.from('evil')], 'dir', 0, { mode: 0o777, mtime: 0 }),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH',
      );
      assert.throws(
        () => tree.mkdir([Buffer.from('evil')]),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH',
      );
    } finally {
      tree.close();
    }
    assertUntouched();
  });

  test('SafeTree refuses to create one path twice, with and without --force', { skip: ready }, () => {
    // Without force the destination started empty, so the kernel's EEXIST is the check; with force
    // SafeTree's own record of what it made is (clearWay would otherwise replace the first file).
    for (const force of [false, true]) {
      const dest = freshDest();
      const tree = SafeTree.open(dest, { force });
      try {
        fs.closeSync(tree.createFile([Buffer.from('f')]));
        tree.mkdir([Buffer.from('d')]);
        for (const again of [() => fs.closeSync(tree.createFile([Buffer.from('f')])), () => tree.mkdir([Buffer.from('d')]), () => tree.symlink([Buffer.from('f')], Buffer.from('x'))]) {
          assert.throws(again, (e: unknown) => e instanceof SquashfsError && e.code === 'UNSAFE_PATH' && /extracted twice/.test(e.message), `force=${force}`);
        }
      } finally {
        tree.close();
      }
      assert.deepEqual(fs.readdirSync(dest).sort(), ['d', 'f']);
      fs.rmSync(dest, { recursive: true });
    }
  });

  test('DEST that is a symlink to the canary: refused, with and without --force', { skip: ready }, () => {
    const dest = freshDest();
    fs.symlinkSync(canary, dest);
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      for (const extra of [[], ['--force']]) {
        const r = runCli(['extract', f, '-d', dest, ...extra]);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /UNSAFE_PATH.*symbolic link/);
      }
      assertUntouched(['seed-ok.sqfs']);
    } finally {
      fs.rmSync(f);
      fs.rmSync(dest);
    }
  });

  test('DEST below a symlinked parent: refused', { skip: ready }, () => {
    freshDest();
    const link = path.join(tmp.dir, 'link-to-cn');
    fs.symlinkSync(canary, link);
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      const r = runCli(['extract', f, '-d', path.join(link, 'dest'), '--force']);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /UNSAFE_PATH.*parent of the destination/);
      assertUntouched(['seed-ok.sqfs', 'link-to-cn']);
    } finally {
      fs.rmSync(f);
      fs.rmSync(link);
    }
  });

  test('--force over a planted symlink where the image has a directory or a file: refused', { skip: ready }, () => {
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      for (const planted of ['sub', 'sub/file']) {
        const dest = freshDest();
        fs.mkdirSync(dest);
        if (planted === 'sub/file') fs.mkdirSync(path.join(dest, 'sub'));
        fs.symlinkSync(planted === 'sub' ? canary : path.join(canary, 'keep'), path.join(dest, planted));
        const r = runCli(['extract', f, '-d', dest, '--force']);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /UNSAFE_PATH.*symbolic link/);
        assertUntouched(['seed-ok.sqfs']);
      }
    } finally {
      fs.rmSync(f);
    }
  });

  test('--force replaces a planted symlink where the image has a symlink, without following it', { skip: ready }, () => {
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      const dest = freshDest();
      fs.mkdirSync(dest);
      fs.symlinkSync(path.join(canary, 'keep'), path.join(dest, 'lnk-keep'));
      fs.symlinkSync(canary, path.join(dest, 'evil'));
      const r = runCli(['extract', f, '-d', dest, '--force']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(fs.readlinkSync(path.join(dest, 'evil')), canary);
      assertUntouched(['seed-ok.sqfs']);
    } finally {
      fs.rmSync(f);
    }
  });

  test('a non-empty DEST without --force: refused, nothing written', { skip: ready }, () => {
    const f = writeImage('seed-ok.sqfs', seed);
    try {
      const dest = freshDest();
      fs.mkdirSync(dest);
      fs.writeFileSync(path.join(dest, 'mine'), 'x');
      const r = runCli(['extract', f, '-d', dest]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /not empty.*--force/);
      assert.deepEqual(fs.readdirSync(dest), ['mine']);
      // An existing empty directory is fine.
      fs.rmSync(path.join(dest, 'mine'));
      assert.equal(runCli(['extract', f, '-d', dest]).status, 0);
    } finally {
      fs.rmSync(f);
    }
  });
});

// ---- not root ---------------------------------------------------------------------------------

describe('extract as an unprivileged user', () => {
  test('--force merges into a directory of its own it may not read (mode 0300) and gives it the image mode', async (t) => {
    // The last phase opens a directory for reading to set its owner, mode and times through the
    // descriptor; one its user may not read is set through an O_PATH descriptor instead.
    if (!requireTools(t, 'setpriv', 'mksquashfs', isRoot())) return;
    const tmp = tempDir('distri-nobody-');
    try {
      fs.chmodSync(tmp.dir, 0o755);
      const src = path.join(tmp.dir, 'src');
      fs.mkdirSync(path.join(src, 'd'), { recursive: true });
      fs.writeFileSync(path.join(src, 'd', 'f'), 'hi\n');
      fs.chmodSync(path.join(src, 'd'), 0o751);
      const image = path.join(tmp.dir, 'image.sqfs');
      mksquashfs(src, image, UNCOMPRESSED);
      fs.chmodSync(image, 0o644);
      const dest = path.join(tmp.dir, 'dest');
      fs.mkdirSync(path.join(dest, 'd'), { recursive: true });
      fs.chownSync(dest, 65534, 65534);
      fs.chownSync(path.join(dest, 'd'), 65534, 65534);
      fs.chmodSync(path.join(dest, 'd'), 0o300);
      const r = runCliAsNobody(['extract', image, '-d', dest, '--force']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(fs.statSync(path.join(dest, 'd')).mode & 0o7777, 0o751);
      assert.equal(fs.readFileSync(path.join(dest, 'd', 'f'), 'utf8'), 'hi\n');
    } finally {
      tmp.cleanup();
    }
  });

  test('skips owners, devices, setuid bits and trusted./security. xattrs, and says so once', async (t) => {
    if (!requireTools(t, 'setpriv', 'setfattr', 'getfattr', isRoot())) return;
    const im = fixtureImages().find((i) => i.expected && /uncompressed|gzip/.test(i.name));
    assert.ok(im, 'fixtures/images holds no uncompressed or gzip image with an expected listing (they are committed)');
    const tmp = tempDir('distri-nobody-');
    try {
      fs.chmodSync(tmp.dir, 0o755);
      const image = path.join(tmp.dir, 'image.sqfs');
      fs.copyFileSync(im.file, image);
      fs.chmodSync(image, 0o644);
      const parent = path.join(tmp.dir, 'out');
      fs.mkdirSync(parent);
      fs.chownSync(parent, 65534, 65534);
      const dest = path.join(parent, 'root');
      // From a copy nobody can reach: the checkout itself may sit in a 0700 directory.
      const r = runCliAsNobody(['extract', image, '-d', dest]);
      assert.equal(r.status, 0, r.stderr);
      const notices = r.stderr.split('\n').filter((l) => /not running as root/.test(l));
      assert.equal(notices.length, 1, r.stderr);
      assert.match(notices[0]!, /entries keep your ownership/);
      assert.match(notices[0]!, /device nodes skipped/);
      assert.match(notices[0]!, /setuid\/setgid bits dropped/);
      assert.match(notices[0]!, /trusted\.\/security\. xattrs skipped/);

      const mine = new Map(walkDirectory(dest).map((e) => [e.path, e]));
      const want = readManifestFile(im.expected!);
      for (const w of want) {
        const m = mine.get(w.path);
        if (w.type === 'blockdev' || w.type === 'chardev') {
          assert.equal(m, undefined, `${w.path}: device created by a non-root user`);
          continue;
        }
        assert.ok(m, `${w.path} missing`);
        assert.equal(m.type, w.type, w.path);
        assert.equal(m.uid, 65534, `${w.path} owner`);
        assert.equal(m.mode, w.type === 'symlink' ? w.mode : w.mode & ~0o6000, `${w.path} mode`);
        assert.equal(m.mtime, w.mtime, `${w.path} mtime`);
        assert.equal(m.sha256, w.sha256, `${w.path} contents`);
        assert.equal(m.target, w.target, `${w.path} target`);
        const userOnly = Object.fromEntries(Object.entries(w.xattrs ?? {}).filter(([k]) => k.startsWith('user.') && (w.type === 'file' || w.type === 'dir')));
        assert.deepEqual(m.xattrs ?? {}, userOnly, `${w.path} xattrs`);
      }
    } finally {
      tmp.cleanup();
    }
  });
});
