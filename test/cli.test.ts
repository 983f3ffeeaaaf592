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
import { repoRoot, skipUnless } from './oracle/tools';

const root = repoRoot();
const cliPath = path.join(root, 'dist/src/cli/main.js');
const small = path.join(root, 'fixtures/images/small-gzip.sqfs');
const expected: Entry[] = readManifestFile(path.join(root, 'fixtures/images/small-gzip.expected.json'));

function distri(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'buffer', maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
}

test('info --json reports the superblock; unsquashfs -s agrees', () => {
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
  if (skipUnless('unsquashfs -s comparison', 'unsquashfs')) return;
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
  assert.ok(sub.out.split('\n').filter(Boolean).every((p) => !p.startsWith('links/')), 'paths must be relative to PATH');
});

test('ls -l shows type, mode, owner, size, link targets; --json carries the same fields', () => {
  const r = distri('ls', '-l', small, 'links');
  assert.equal(r.status, 0, r.err);
  const link = expected.find((e) => e.path.startsWith('links/') && e.type === 'symlink')!;
  const name = link.path.slice('links/'.length);
  assert.ok(r.out.split('\n').some((l) => l.startsWith('lrwxrwxrwx') && l.endsWith(`${name} -> ${link.target}`)), r.out);
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
  const rel = expected.find((e) => e.type === 'symlink' && e.target && !e.target.startsWith('/') && expected.find((x) => x.type === 'file' && x.path === path.posix.normalize(path.posix.join(path.posix.dirname(e.path), e.target!))));
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
    assert.match(missing.err, /NOT_FOUND/);
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
