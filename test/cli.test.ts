/**
 * The inspect commands as a user runs them: the built CLI in a child process, its stdout, stderr
 * and exit status, checked against the committed images' expected listings and, where installed,
 * against `unsquashfs -s` and a kernel mount.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readManifestFile, type Entry } from './oracle/manifest';
import { isRoot, repoRoot, requireTools } from './oracle/tools';
import { isoTime } from '../src/cli/format';
import { decodeBlockWord } from '../src/format/data-block';
import { Image } from '../src/reader/image';

const readFileText = (f: string) => fs.readFileSync(f, 'utf8');

const root = repoRoot();
const cliPath = path.join(root, 'dist/src/cli/main.js');
const small = path.join(root, 'fixtures/images/small-gzip.sqfs');
const expected: Entry[] = readManifestFile(path.join(root, 'fixtures/images/small-gzip.expected.json'));

function distri(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'buffer', maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
}

test('info --json reports the superblock; unsquashfs -s agrees', (t) => {
  const r = distri('info', '--json', small);
  assert.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  for (const k of ['compression', 'blockSize', 'inodeCount', 'bytesUsed', 'modificationTime', 'fragmentCount', 'idCount', 'flags']) assert.ok(k in info, `missing ${k}`);
  assert.equal(info.compression, 'gzip');
  assert.equal(info.blockSize, 4096);
  // mksquashfs pads the file to a multiple of 4 KiB after bytes_used.
  assert.equal(fs.statSync(small).size, Math.ceil(info.bytesUsed / 4096) * 4096);
  const human = distri('info', small);
  assert.equal(human.status, 0);
  assert.match(human.out, /Compression\s+gzip/);
  if (!requireTools(t, 'unsquashfs')) return;
  const s = spawnSync('unsquashfs', ['-s', small], { encoding: 'utf8' }).stdout;
  assert.match(s, new RegExp(`Block size ${info.blockSize}\\b`));
  assert.match(s, new RegExp(`Number of inodes ${info.inodeCount}\\b`));
  assert.match(s, new RegExp(`Number of fragments ${info.fragmentCount}\\b`));
  assert.match(s, new RegExp(`Number of ids ${info.idCount}\\b`));
  assert.match(s, new RegExp(`Filesystem size ${info.bytesUsed} bytes`));
});

test('ls -R lists every path once, relative, in the same set as the expected listing', () => {
  const r = distri('ls', '-R', small);
  assert.equal(r.status, 0, r.err);
  const got = r.out.split('\n').filter(Boolean);
  // A name with a newline prints over two lines; compare with that in mind.
  const want = expected.filter((e) => e.path !== '').flatMap((e) => e.path.split('\n'));
  assert.deepEqual([...got].sort(), [...want].sort());
  const sub = distri('ls', '-R', small, 'links');
  assert.ok(
    sub.out
      .split('\n')
      .filter(Boolean)
      .every((p) => !p.startsWith('links/')),
    'paths must be relative to PATH',
  );
});

test('ls -l shows type, mode, owner, size, link targets; --json carries the same fields', () => {
  const r = distri('ls', '-l', small, 'links');
  assert.equal(r.status, 0, r.err);
  const link = expected.find((e) => e.path.startsWith('links/') && e.type === 'symlink')!;
  const name = link.path.slice('links/'.length);
  assert.ok(
    r.out.split('\n').some((l) => l.startsWith('lrwxrwxrwx') && l.endsWith(`${name} -> ${link.target}`)),
    r.out,
  );
  const j = JSON.parse(distri('ls', '--json', '-R', small).out) as Array<Record<string, unknown>>;
  assert.equal(j.length, expected.length - 1);
  for (const e of j) {
    const x = expected.find((y) => y.path === e.path)!;
    assert.ok(x, `unexpected ${e.path}`);
    assert.equal(e.type, x.type);
    assert.equal(e.mode, x.mode, String(e.path));
    assert.equal(e.uid, x.uid);
    assert.equal(e.mtime, x.mtime);
    if (x.type === 'file') assert.equal(e.size, x.size);
    if (x.xattrs) assert.deepEqual(e.xattrs, x.xattrs);
  }
});

test('cat writes files byte for byte and follows symlinks inside the image', () => {
  const files = expected.filter((e) => e.type === 'file' && e.size > 0).slice(0, 10);
  assert.ok(files.length > 5);
  for (const f of files) {
    const r = distri('cat', small, f.path);
    assert.equal(r.status, 0, r.err);
    assert.equal(require('node:crypto').createHash('sha256').update(r.stdout).digest('hex'), f.sha256, f.path);
  }
  const rel = expected.find(
    (e) =>
      e.type === 'symlink' &&
      e.target &&
      !e.target.startsWith('/') &&
      expected.find((x) => x.type === 'file' && x.path === path.posix.normalize(path.posix.join(path.posix.dirname(e.path), e.target!))),
  );
  assert.ok(rel, 'fixture has a relative symlink to a file');
  const target = expected.find((x) => x.path === path.posix.normalize(path.posix.join(path.posix.dirname(rel.path), rel.target!)))!;
  const r = distri('cat', small, rel.path);
  assert.equal(require('node:crypto').createHash('sha256').update(r.stdout).digest('hex'), target.sha256);
});

test('stat --json matches the expected entry (mode, owner, size, mtime, nlink, target, rdev, xattrs)', () => {
  for (const x of expected.filter((e) => e.path !== '' && (e.type !== 'file' || e.xattrs || e.nlink > 1)).slice(0, 15)) {
    const r = distri('stat', '--json', small, x.path);
    assert.equal(r.status, 0, `${x.path}: ${r.err}`);
    const s = JSON.parse(r.out);
    assert.equal(s.type, x.type);
    assert.equal(s.mode, x.mode);
    assert.equal(s.uid, x.uid);
    assert.equal(s.gid, x.gid);
    assert.equal(s.mtime, x.mtime);
    assert.equal(s.nlink, x.nlink, x.path);
    assert.equal(typeof s.inode, 'number');
    if (x.target !== undefined) assert.equal(s.target, x.target);
    if (x.rdev) assert.deepEqual(s.rdev, x.rdev);
    assert.deepEqual(s.xattrs, x.xattrs);
  }
});

test('xattrs shows security.capability exactly', () => {
  const x = expected.find((e) => e.xattrs && 'security.capability' in e.xattrs);
  if (!x) return assert.fail('the fixture tree has a file with security.capability');
  const r = distri('xattrs', '--json', small, x.path);
  assert.equal(r.status, 0, r.err);
  assert.equal(JSON.parse(r.out)['security.capability'], x.xattrs!['security.capability']);
});

test('errors: one line naming the image and the problem, non-zero exit, no stack trace', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-test-'));
  try {
    const junk = path.join(d, 'junk.sqfs');
    fs.writeFileSync(junk, Buffer.alloc(8192, 0x41));
    const bad = distri('ls', junk);
    assert.equal(bad.status, 1);
    assert.equal(bad.err.trim().split('\n').length, 1, bad.err);
    assert.match(bad.err, /junk\.sqfs: BAD_MAGIC/);
    assert.doesNotMatch(bad.err, /\n\s+at /);
    const missing = distri('cat', small, 'no/such/file');
    assert.equal(missing.status, 2);
    assert.equal(missing.err, `distri: ${small}: no/such/file: no such file or directory in the image\n`);
    const nofile = distri('info', path.join(d, 'absent.sqfs'));
    assert.equal(nofile.status, 2);
    assert.match(nofile.err, /absent\.sqfs/);
    const verbose = distri('--verbose', 'ls', junk);
    assert.match(verbose.err, /\n\s+at /, '--verbose shows the stack');
    const offset = distri('info', '--offset', 'abc', small);
    assert.notEqual(offset.status, 0);
    assert.match(offset.err, /--offset/);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('--help teaches: every command is listed with a description and examples', () => {
  const r = distri('--help');
  assert.equal(r.status, 0);
  for (const c of ['info', 'ls', 'cat', 'stat', 'xattrs']) assert.match(r.out, new RegExp(`\\n\\s+${c}\\b`), c);
  for (const c of ['info', 'ls', 'cat', 'stat', 'xattrs']) assert.match(distri(c, '--help').out, /Examples:/, c);
});

// ---- the command-line habits a new user tripped on ------------------------------------------------

const zstdXattr = path.join(root, 'fixtures/images/small-zstd-xattr.sqfs');
const uncompressed = path.join(root, 'fixtures/images/small-uncompressed.sqfs');

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-habits-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Every line on stderr starts "distri: " (commander's messages included). */
function allDistriLines(err: string): void {
  const lines = err.split('\n').filter(Boolean);
  assert.ok(lines.length > 0, 'some error output');
  for (const l of lines) assert.match(l, /^distri: /, err);
}

test('a caller mistake is said plainly, not as corruption, and exits 2', () => {
  const fifo = distri('cat', small, 'special/fifo');
  assert.equal(fifo.status, 2);
  assert.equal(fifo.err, `distri: ${small}: special/fifo: is a fifo, not a regular file\n`);
  const dir = distri('cat', small, 'files');
  assert.equal(dir.status, 2);
  assert.equal(dir.err, `distri: ${small}: files: is a directory, not a regular file\n`);
  const dev = distri('cat', small, 'special/char-null');
  assert.equal(dev.err, `distri: ${small}: special/char-null: is a character device, not a regular file\n`);
  const dangling = distri('cat', small, 'links/sym-dangling');
  assert.equal(dangling.status, 2);
  assert.match(dangling.err, /links\/sym-dangling: a symbolic link to \S+, which is not in the image\n$/);
  for (const r of [fifo, dir, dev, dangling]) assert.doesNotMatch(r.err, /CORRUPT|NOT_A_FILE|IS_A_DIRECTORY|inode \d/);
  // cat goes on with the next path, like cat(1), and still exits non-zero.
  const hello = expected.find((e) => e.path === 'files/hello.txt')!;
  const mixed = distri('cat', small, 'special/fifo', hello.path);
  assert.equal(mixed.status, 2);
  assert.equal(mixed.stdout.length, hello.size);
});

test("a missing image or a directory is said in our words, not Node's", (t) => {
  const d = tmpdir(t);
  const dir = distri('info', d);
  assert.equal(dir.status, 2);
  assert.equal(dir.err, `distri: ${d}: is a directory, not an image\n`);
  const absent = distri('ls', path.join(d, 'absent.sqfs'));
  assert.equal(absent.status, 2);
  assert.equal(absent.err, `distri: ${path.join(d, 'absent.sqfs')}: no such file\n`);
  // pack onto a directory: refused before anything is scanned or written.
  const src = path.join(d, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'x');
  const out = path.join(d, 'out');
  fs.mkdirSync(out);
  const onto = distri('pack', '--quiet', src, out);
  assert.equal(onto.status, 2);
  assert.match(onto.err, new RegExp(`^distri: .*: ${out} is a directory, not an image`));
  assert.deepEqual(fs.readdirSync(out), [], 'no temporary file left in it');
  for (const r of [dir, absent, onto]) assert.doesNotMatch(r.err, /ENOENT|EISDIR|illegal operation|open '/);
});

test('pack names a file it may not read, in our words', (t) => {
  // Root reads every file: the pack runs as nobody, on a tree with one file only root may read.
  if (!requireTools(t, 'setpriv', isRoot())) return;
  const d = tmpdir(t);
  fs.chmodSync(d, 0o777);
  const src = path.join(d, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'open'), 'x');
  fs.writeFileSync(path.join(src, 'secret'), 'y', { mode: 0o600 });
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliPath, 'pack', '--quiet', src, path.join(d, 'o.sqfs')], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^distri: pack ${src}: IO: ${path.join(src, 'secret')}: cannot open: permission denied\n$`));
  assert.doesNotMatch(r.stderr, /EACCES|open '/);
  assert.ok(!fs.existsSync(path.join(d, 'o.sqfs')), 'no image left behind');
});

test('unmount says in our words what is wrong with its path, and touches no mount that is not FUSE', (t) => {
  const d = tmpdir(t);
  const missing = distri('unmount', path.join(d, 'nope'));
  assert.deepEqual([missing.status, missing.err], [2, `distri: unmount ${path.join(d, 'nope')}: no such file or directory\n`]);
  const plain = distri('unmount', d);
  assert.deepEqual([plain.status, plain.err], [2, `distri: unmount ${d}: not mounted\n`]);
  // As root, umount(8) would end any mount: distri unmount leaves a tmpfs alone.
  if (!requireTools(t, 'mount', 'umount', 'findmnt', isRoot())) return;
  const mnt = path.join(d, 'tmpfs');
  fs.mkdirSync(mnt);
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'none', mnt]).status, 0);
  try {
    const other = distri('unmount', mnt);
    assert.deepEqual([other.status, other.err], [2, `distri: unmount ${mnt}: not a FUSE mount (tmpfs); distri unmount ends only FUSE mounts\n`]);
    assert.equal(spawnSync('findmnt', [mnt]).status, 0, 'the tmpfs is still mounted');
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('every error line starts "distri:", usage errors included', () => {
  for (const args of [['ls'], ['bogus'], ['info', '--bogus', small], ['ls', small, 'a', 'b'], ['pack', '--comp', 'brotli', 'a', 'b']]) {
    const r = distri(...args);
    assert.equal(r.status, 1, args.join(' '));
    allDistriLines(r.err);
  }
  assert.match(distri('ls').err, /^distri: missing required argument 'image'\ndistri: see 'distri ls --help'\n$/);
});

test('ls through a file names the file, not only the last component', () => {
  const r = distri('ls', small, 'files/hello.txt/x');
  assert.equal(r.status, 2);
  assert.equal(r.err, `distri: ${small}: files/hello.txt/x: files/hello.txt is a regular file, not a directory\n`);
  const s = distri('stat', small, 'files/hello.txt/x/y');
  assert.match(s.err, /files\/hello\.txt is a regular file, not a directory/);
});

test("pack --level: each compressor's own range", (t) => {
  const d = tmpdir(t);
  fs.writeFileSync(path.join(d, 'f'), 'x');
  const img = path.join(d, 'i.sqfs');
  const gzip = distri('pack', '--quiet', '--comp', 'gzip', '--level', '30', d, img);
  assert.equal(gzip.status, 1);
  assert.match(gzip.err, /--level 30: gzip levels are 1\.\.9\n$/);
  const zstd = distri('pack', '--quiet', '--comp', 'zstd', '--level', '23', d, img);
  assert.match(zstd.err, /--level 23: zstd levels are 1\.\.22\n$/);
  const xz = distri('pack', '--quiet', '--comp', 'xz', '--level', '3', d, img);
  assert.equal(xz.status, 1);
  assert.match(xz.err, /--level 3: --comp xz takes no level \(gzip 1\.\.9, zstd 1\.\.22; .*xz take none\)/);
  assert.ok(!fs.existsSync(img));
  assert.equal(distri('pack', '--quiet', '--comp', 'gzip', '--level', '1', d, img).status, 0);
});

test('stat and xattrs show xattr values the same way: text when printable, hex otherwise', () => {
  const withX = JSON.parse(readFileText(path.join(root, 'fixtures/images/small-zstd-xattr.expected.json'))) as Entry[];
  const entries = withX.filter((e) => e.xattrs && e.path !== '').slice(0, 8);
  let text = 0;
  let hexed = 0;
  for (const e of entries) {
    const x = distri('xattrs', zstdXattr, e.path);
    assert.equal(x.status, 0, x.err);
    const st = distri('stat', zstdXattr, e.path);
    const fromStat = st.out
      .split('\n')
      .filter((l) => l.startsWith(' Xattr: '))
      .map((l) => l.slice(' Xattr: '.length) + '\n')
      .join('');
    assert.equal(fromStat, x.out, e.path);
    text += (x.out.match(/="/g) ?? []).length;
    hexed += (x.out.match(/=0x/g) ?? []).length;
  }
  assert.ok(text > 0 && hexed > 0, 'the fixture has both kinds');
  const cap = distri('stat', zstdXattr, 'xattrs/capability');
  assert.match(cap.out, / Xattr: security\.capability=0x0100000200100000000000000000000000000000\n/);
});

test('info in words: compressor options, an uncompressed image, the tables; pack --json uses info --json names', (t) => {
  const u = distri('info', uncompressed);
  assert.equal(u.status, 0, u.err);
  assert.match(u.out, /Compression\s+none: everything is stored uncompressed \(the superblock names gzip/);
  assert.match(u.out, /Tables at\s+inodes 0x[0-9a-f]+, directories 0x/);
  for (const f of fs.readdirSync(path.join(root, 'fixtures/images')).filter((n) => n.endsWith('.sqfs'))) {
    const r = distri('info', path.join(root, 'fixtures/images', f));
    assert.doesNotMatch(r.out, /\w+=\w/, `${f}: no internal key=value names`);
  }
  assert.match(distri('info', path.join(root, 'fixtures/images/small-lz4-no-exports.sqfs')).out, /Compression\s+lz4 \(format version 1\)/);
  const d = tmpdir(t);
  fs.writeFileSync(path.join(d, 'f'), 'x');
  const img = path.join(os.tmpdir(), `cli-habits-json-${process.pid}.sqfs`);
  t.after(() => fs.rmSync(img, { force: true }));
  const p = distri('pack', '--json', d, img);
  assert.equal(p.status, 0, p.err);
  const packed = JSON.parse(p.out);
  const info = JSON.parse(distri('info', '--json', img).out);
  for (const k of ['inodeCount', 'fragmentCount', 'idCount', 'bytesUsed', 'compression', 'blockSize', 'flags']) assert.deepEqual(packed[k], info[k], k);
  for (const k of ['inodes', 'fragments', 'ids']) assert.ok(!(k in packed), `old name ${k}`);
});

test('pack takes mksquashfs habits: -e paths and globs, -ef FILE, -b; -comp gets a hint', (t) => {
  const d = tmpdir(t);
  const src = path.join(d, 'src');
  for (const dir of ['keep', 'cache/deep', 'obj']) fs.mkdirSync(path.join(src, dir), { recursive: true });
  for (const f of ['keep/a.txt', 'keep/b.o', 'cache/deep/x', 'obj/c.o', 'obj/c.c', 'top.log']) fs.writeFileSync(path.join(src, f), f);
  const img = path.join(d, 'i.sqfs');
  const listing = () => distri('ls', '-R', img).out.split('\n').filter(Boolean).sort();
  const e = distri('pack', '--quiet', '-b', '4K', src, img, '-e', 'cache', 'obj/*.o', '*.log');
  assert.equal(e.status, 0, e.err);
  assert.deepEqual(listing(), ['keep', 'keep/a.txt', 'keep/b.o', 'obj', 'obj/c.c']);
  assert.equal(JSON.parse(distri('info', '--json', img).out).blockSize, 4096);
  const list = path.join(d, 'excludes');
  fs.writeFileSync(list, 'keep/?.o\n\ncache/deep\n');
  const ef = distri('pack', '--quiet', src, img, '-ef', list);
  assert.equal(ef.status, 0, ef.err);
  assert.deepEqual(listing(), ['cache', 'keep', 'keep/a.txt', 'obj', 'obj/c.c', 'obj/c.o', 'top.log']);
  const comp = distri('pack', '-comp', 'xz', src, img);
  assert.equal(comp.status, 1);
  assert.match(comp.err, /^distri: unknown option '-comp' \(did you mean '--comp'\?/);
  allDistriLines(comp.err);
});

test('--version prints the package version; --help has examples', () => {
  const v = distri('--version');
  assert.equal(v.status, 0);
  assert.equal(v.out, JSON.parse(readFileText(path.join(root, 'package.json'))).version + '\n');
  const h = distri('--help');
  assert.match(h.out, /Examples:\n\s+distri info /);
  assert.match(distri('ls', '--help').out, /--numeric-ids/);
});

test('ls -l shows owner and group names where this machine resolves them; -n numbers', () => {
  const names = (file: string) =>
    new Map(
      readFileText(file)
        .split('\n')
        .map((l) => l.split(':'))
        .filter((f) => f.length > 2 && /^\d+$/.test(f[2]!))
        .reverse()
        .map((f) => [Number(f[2]), f[0]!] as const),
    );
  const users = names('/etc/passwd');
  const groups = names('/etc/group');
  const file = expected.find((e) => e.path === 'owners/file-0-65534')!;
  const line = (out: string) => out.split('\n').find((l) => l.endsWith(' file-0-65534'))!;
  const l = distri('ls', '-l', small, 'owners');
  assert.equal(l.status, 0, l.err);
  const cols = line(l.out).split(/\s+/);
  assert.equal(cols[2], users.get(file.uid) ?? String(file.uid));
  assert.equal(cols[3], groups.get(file.gid) ?? String(file.gid));
  assert.equal(users.get(0), 'root', 'this machine has root in /etc/passwd');
  assert.ok(
    l.out.split('\n').some((x) => / 4000000000 +12345 /.test(x)),
    'ids that do not resolve stay numbers',
  );
  const n = distri('ls', '-ln', small, 'owners');
  const ncols = line(n.out).split(/\s+/);
  assert.deepEqual([ncols[2], ncols[3]], [String(file.uid), String(file.gid)]);
});

test('extract: a PATH not in the image leaves no DEST behind; a corrupt block names the file, removes it, finishes the directories', (t) => {
  const d = tmpdir(t);
  const dest = path.join(d, 'ex3');
  const nope = distri('extract', '--no-xattrs', small, '-d', dest, 'nope');
  assert.equal(nope.status, 2);
  assert.match(nope.err, /nope/);
  assert.ok(!fs.existsSync(dest), 'DEST was not created');
  const existing = path.join(d, 'ex4');
  fs.mkdirSync(existing);
  distri('extract', '--no-xattrs', small, '-d', existing, 'nope');
  assert.ok(fs.existsSync(existing), 'a DEST that existed is kept');

  const src = path.join(d, 'src');
  fs.mkdirSync(path.join(src, 'a'), { recursive: true });
  fs.chmodSync(path.join(src, 'a'), 0o750);
  fs.writeFileSync(path.join(src, 'a', 'big.txt'), Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join(''));
  const img = path.join(d, 'c.sqfs');
  const p = distri('pack', '--quiet', '--no-xattrs', '--no-fragments', '-b', '4K', src, img);
  assert.equal(p.status, 0, p.err);
  // Our writer puts the data blocks right after the 96-byte superblock: spoil the first one.
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, 200);
  fs.closeSync(fd);
  const out = path.join(d, 'ex1');
  const r = distri('extract', '--no-xattrs', img, '-d', out);
  assert.equal(r.status, 1);
  assert.match(r.err, new RegExp(`^distri: ${img}: a/big\\.txt: DECOMPRESS_FAILED`));
  assert.ok(!fs.existsSync(path.join(out, 'a', 'big.txt')), 'the partial file is removed');
  assert.equal(fs.statSync(path.join(out, 'a')).mode & 0o7777, 0o750, 'the directory has its final mode, not 0700');
});

// A large file's blocks decoded by a second thread (src/reader/split-decode.ts): the worker
// reopens the image, decodes groups of blocks into shared memory, and its failures come back
// through it. DISTRI_SPLIT=worker makes the worker decode every group (this thread none), so its
// bytes and its errors are what is compared with the one-thread pass (DISTRI_SPLIT=off).
test('cat of a large file with a second decoding thread: the same bytes, and the same error at a corrupt block, as one thread', (t) => {
  if (!requireTools(t, 'mksquashfs')) return;
  const d = tmpdir(t);
  const src = path.join(d, 'src');
  fs.mkdirSync(src);
  // 6 MiB: text, and bytes from a xorshift generator (incompressible), in runs.
  const big = Buffer.alloc(6 << 20);
  let x = 0x2545f491;
  for (let off = 0; off < big.length; off += 65536) {
    if ((off >> 16) % 3 === 0) big.write(`line ${off} of the big file\n`.repeat(2600).slice(0, 65536), off, 'latin1');
    else
      for (let i = off; i < off + 65536; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        big.writeUInt32LE(x >>> 0, i);
      }
  }
  fs.writeFileSync(path.join(src, 'big'), big);
  const env = (mode: string) => ({ ...process.env, DISTRI_SPLIT: mode });
  const cat = (img: string, mode: string) => {
    const r = spawnSync(process.execPath, [cliPath, 'cat', img, 'big'], { env: env(mode), encoding: 'buffer', maxBuffer: 1 << 28, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, err: r.stderr.toString('utf8') };
  };
  for (const comp of ['gzip', 'zstd', 'lz4', 'lzo']) {
    const img = path.join(d, `${comp}.sqfs`);
    const made = spawnSync('mksquashfs', [src, img, '-noappend', '-no-progress', '-quiet', '-comp', comp, '-no-fragments'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    for (const mode of ['worker', 'always', 'off']) {
      const r = cat(img, mode);
      assert.equal(r.status, 0, `${comp} ${mode}: ${r.err}`);
      assert.ok(r.stdout.equals(big), `${comp} ${mode}: the bytes differ`);
    }
    // Spoil block 21 of 48, half text, so compressed (its first bytes: every codec's header or
    // first token; a block stored as is would only change the bytes).
    const image = Image.open(img);
    const inode = image.entryInode(image.lookup(image.root(), 'big')!);
    image.close();
    assert.equal(inode.kind, 'file');
    if (inode.kind !== 'file') return;
    assert.equal(inode.blockSizes[21]! & (1 << 24), 0, `${comp}: block 21 is compressed`);
    let at = inode.blocksStart;
    for (let i = 0; i < 21; i++) at += decodeBlockWord(inode.blockSizes[i]!).onDiskSize;
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, at);
    fs.closeSync(fd);
    const one = cat(img, 'off');
    const two = cat(img, 'worker');
    assert.equal(one.status, 1, `${comp}: ${one.err}`);
    assert.equal(two.status, 1, `${comp}: ${two.err}`);
    assert.match(one.err, new RegExp(`^distri: ${img}: big: (DECOMPRESS_FAILED|CORRUPT) in data block at 0x${at.toString(16)}\\b`));
    assert.equal(two.err, one.err, `${comp}: the worker's error is reported as this thread's`);
    // Output stops before the corrupt block (one thread: right before it; two: at its group's start).
    for (const r of [one, two]) {
      assert.ok(r.stdout.length <= 21 * 131072, `${comp}: ${r.stdout.length} bytes written`);
      assert.ok(r.stdout.equals(big.subarray(0, r.stdout.length)), `${comp}: what was written is the file's start`);
    }
  }
  // xz decodes a large file ahead in its worker pool (cat and extract): a failed block is named
  // with its position there too.
  const img = path.join(d, 'xz.sqfs');
  const made = spawnSync('mksquashfs', [src, img, '-noappend', '-no-progress', '-quiet', '-comp', 'xz', '-no-fragments'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const image = Image.open(img);
  const inode = image.entryInode(image.lookup(image.root(), 'big')!);
  image.close();
  if (inode.kind !== 'file') return assert.fail('big is a file');
  let at = inode.blocksStart;
  for (let i = 0; i < 21; i++) at += decodeBlockWord(inode.blockSizes[i]!).onDiskSize;
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, at);
  fs.closeSync(fd);
  const line = new RegExp(`^distri: ${img}: big: DECOMPRESS_FAILED in data block at 0x${at.toString(16)}: `);
  const c = cat(img, 'auto');
  assert.equal(c.status, 1);
  assert.match(c.err, line);
  const ex = distri('extract', '--no-xattrs', img, '-d', path.join(d, 'xz-out'));
  assert.equal(ex.status, 1);
  assert.match(ex.err, line);
});

test('printed times: isoTime gives what Date gives, over the whole range of SquashFS times', () => {
  // stat, ls -l and info print times through isoTime, which does the calendar arithmetic itself
  // (Date's first toISOString costs milliseconds of a short command's start-up).
  const ref = (s: number) =>
    new Date(s * 1000)
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, '');
  const edges = [0, 1, 59, 60, 3599, 86399, 86400, 68169599, 68169600, 946684799, 946684800, 951782400, 951868799, 951868800, 4107542399, 4107542400, 4294967295];
  let x = 0x9e3779b9;
  const spread = Array.from({ length: 20000 }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  });
  for (const s of [...edges, ...spread]) assert.equal(isoTime(s), ref(s), `isoTime(${s})`);
});
