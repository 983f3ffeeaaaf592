/**
 * What makes the short commands and `distri mount` start faster must never change what they do:
 * the V8 code cache beside a bundle (src/util/code-cache.ts) is used only when it was made from
 * exactly that bundle and is intact, and is otherwise ignored without a word on the command's
 * output; the bundled CLI prints what the unbundled modules print; a mount served by the bundled
 * daemon and serving thread reads the same bytes; an image that fails to open while mount(8) ran
 * beside it leaves nothing mounted.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, repoRoot, skipUnless, type Availability } from './oracle/tools';

const root = repoRoot();
const cli = path.join(root, 'dist/src/cli/main.js');
const codeCacheModule = path.join(root, 'dist/src/util/code-cache.js');
const demo = path.join(root, 'fixtures/demo.sqfs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-startup-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `file` through runBundle in a child process; its stdout, and what it said of the cache. */
function runBundled(file: string, env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []) {
  const r = spawnSync(process.execPath, [...nodeArgs, '-e', `require(${JSON.stringify(codeCacheModule)}).runBundle(${JSON.stringify(file)})`], {
    encoding: 'utf8',
    env: { ...process.env, DISTRI_CODE_CACHE_DEBUG: '1', ...env },
  });
  const outcome = /code cache \S+: (.*)/.exec(r.stderr)?.[1];
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, outcome };
}

/** A small bundle with enough functions that its V8 data is not trivial; prints a marker. */
function makeBundle(dir: string, marker: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'b.bundle.js');
  const fns = Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x.map((y) => y * ${i} + ${i}).filter((y) => y % 3 !== 1).length; }`).join('\n');
  const calls = Array.from({ length: 200 }, (_, i) => `n += f${i}([1, 2, 3, ${i}]);`).join('\n');
  fs.writeFileSync(
    file,
    `${fns}\nlet n = 0;\n${calls}\nprocess.stdout.write(${JSON.stringify(marker)} + ' ' + n + ' ' + path0() + '\\n');\nfunction path0() { return require('node:path').basename(__filename) + ':' + (module.exports === exports); }\n`,
  );
  return file;
}

function withCache(dir: string, marker = 'AAAA'): { file: string; cache: string; expected: string } {
  const file = makeBundle(dir, marker);
  const plain = runBundled(file, { DISTRI_NO_CODE_CACHE: '1' });
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(plain.outcome, 'off');
  const made = runBundled(file, { DISTRI_CODE_CACHE_WRITE: '1' });
  assert.equal(made.status, 0, made.stderr);
  assert.equal(made.outcome, 'absent');
  const cache = file + '.cache';
  assert.ok(fs.statSync(cache).size > 1000, 'a code cache was written');
  return { file, cache, expected: plain.stdout };
}

test('a code cache made from the bundle is used, and the bundle runs as a module of its own', () => {
  const { file, expected } = withCache(path.join(tmp, 'fresh'));
  assert.match(expected, /^AAAA \d+ b\.bundle\.js:true\n$/);
  const r = runBundled(file);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.outcome, 'used');
  assert.equal(r.stdout, expected);
});

test('a damaged code cache is rejected and ignored (V8 alone would crash on it)', () => {
  const { file, cache, expected } = withCache(path.join(tmp, 'damaged'));
  const b = fs.readFileSync(cache);
  // Damage the middle of V8's data, keeping the length: only a checksum notices.
  for (let i = b.length >> 1; i < (b.length >> 1) + 64; i++) b[i]! ^= 0x5a;
  fs.writeFileSync(cache, b);
  const r = runBundled(file);
  assert.equal(r.outcome, 'rejected: damaged');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, expected);
});

test('a code cache cut short, or not one of ours, is rejected and ignored', () => {
  const { file, cache, expected } = withCache(path.join(tmp, 'cut'));
  const b = fs.readFileSync(cache);
  fs.writeFileSync(cache, b.subarray(0, b.length - 100));
  let r = runBundled(file);
  assert.equal(r.outcome, 'rejected: damaged');
  assert.equal(r.stdout, expected);
  fs.writeFileSync(cache, 'not a cache at all');
  r = runBundled(file);
  assert.equal(r.outcome, 'rejected: not a code cache of ours');
  assert.equal(r.stdout, expected);
});

test('a code cache of an older bundle is rejected: the new bundle runs, even at the same length', () => {
  const { file, expected } = withCache(path.join(tmp, 'stale'), 'AAAA');
  // A rebuilt bundle of exactly the same length (V8 itself compares only the length).
  const rebuilt = fs.readFileSync(file, 'utf8').replace('"AAAA"', '"BBBB"');
  assert.equal(rebuilt.length, fs.statSync(file).size);
  fs.writeFileSync(file, rebuilt);
  const r = runBundled(file);
  assert.equal(r.outcome, 'rejected: made from another bundle');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, expected.replace('AAAA', 'BBBB'));
});

test('a code cache made under other V8 flags is refused by V8 and ignored', () => {
  const dir = path.join(tmp, 'flags');
  const file = makeBundle(dir, 'CCCC');
  const made = runBundled(file, { DISTRI_CODE_CACHE_WRITE: '1' }, ['--stack-size=900']);
  assert.equal(made.status, 0, made.stderr);
  const r = runBundled(file);
  assert.match(r.outcome ?? '', /^rejected: by V8/);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^CCCC /);
});

function distri(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.replace(/^distri: code cache .*\n/m, '') };
}

test('the bundled commands, with their code cache, print what the modules print', () => {
  const probe = spawnSync(process.execPath, [cli, 'info', demo], { encoding: 'utf8', env: { ...process.env, DISTRI_CODE_CACHE_DEBUG: '1' } });
  assert.match(probe.stderr, /code cache cli\.bundle\.js\.cache: used/, 'npm run build makes the bundle and its code cache');
  const cases = [
    ['info', demo],
    ['info', '--json', demo],
    ['ls', '-lR', demo],
    ['stat', demo, 'README.md'],
    ['cat', demo, 'README.md'],
    ['xattrs', demo, 'README.md'],
    ['cat', demo, 'no/such/file'],
    ['info', path.join(tmp, 'no-such-image')],
    ['ls', '--bogus', demo],
    ['mount', '--help'],
    ['mount', demo],
    ['unmount', '--help'],
    ['--help'],
  ];
  for (const args of cases) {
    const bundled = distri(args, { DISTRI_CODE_CACHE_DEBUG: '1' });
    const modules = distri(args, { DISTRI_NO_BUNDLE: '1' });
    assert.deepEqual(bundled, modules, `distri ${args.join(' ')}`);
  }
});

function kernelMountAvailable(): Availability {
  if (!fs.existsSync('/dev/fuse')) return { ok: false, why: 'no /dev/fuse' };
  return isRoot();
}

function mountedAt(dir: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

test('distri mount runs its bundled daemon and serving thread, which serve the image', { skip: skipUnless('bundled mount', kernelMountAvailable(), 'mount') }, () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const pidFile = path.join(tmp, 'daemon.pid');
  try {
    const m = distri(['mount', '--transport', 'kernel', '--pid-file', pidFile, demo, mnt]);
    assert.equal(m.status, 0, m.stderr);
    const cmdline = fs.readFileSync(`/proc/${fs.readFileSync(pidFile, 'utf8').trim()}/cmdline`, 'utf8');
    assert.match(cmdline, /mount-daemon\.bundle\.js/);
    // Read through the mount from a child process, never from this one (see test rules).
    const viaMount = spawnSync('cat', [path.join(mnt, 'README.md')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(viaMount.status, 0, viaMount.stderr);
    assert.equal(viaMount.stdout, distri(['cat', demo, 'README.md']).stdout);
  } finally {
    if (mountedAt(mnt)) spawnSync(process.execPath, [cli, 'unmount', '--lazy', mnt], { timeout: 20_000 });
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
    assert.ok(!mountedAt(mnt), 'unmounted');
  }
});

test('an image that fails to open while mount(8) runs beside it leaves nothing mounted', { skip: skipUnless('bundled mount', kernelMountAvailable(), 'mount') }, () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const bad = path.join(tmp, 'bad.sqfs');
  // A superblock whose tables lie past the end of the file: the serving thread fails after starting.
  const img = Buffer.from(fs.readFileSync(demo));
  img.writeBigUInt64LE(1n << 40n, 40); // bytes_used
  fs.writeFileSync(bad, img);
  try {
    for (let i = 0; i < 3; i++) {
      const m = distri(['mount', '--transport', 'kernel', bad, mnt]);
      assert.equal(m.status, 1);
      assert.match(m.stderr, /^distri: mount .*: cannot open image .*bad\.sqfs: /m);
      assert.ok(!mountedAt(mnt), `nothing left mounted on ${mnt} (try ${i + 1})`);
    }
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});
