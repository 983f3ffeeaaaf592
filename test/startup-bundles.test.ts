/**
 * What makes the short commands and `distri mount` start faster must never change what they do:
 * the bundled CLI prints what the unbundled modules print; a mount served by the bundled daemon
 * and serving thread (src/fuse/bundles.ts) reads the same bytes; an image that fails to open
 * while mount(8) ran beside it leaves nothing mounted.
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
const demo = path.join(root, 'fixtures/demo.sqfs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-startup-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function distri(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the bundled commands print what the modules print', () => {
  const bundle = path.join(root, 'dist/src/cli/cli.bundle.js');
  assert.ok(fs.existsSync(bundle) && fs.statSync(bundle).mtimeMs >= fs.statSync(path.join(root, 'dist/src/cli/program.js')).mtimeMs, 'npm run build makes a fresh bundle');
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
    ['pack', '--help'],
    ['--help'],
  ];
  for (const args of cases) {
    const bundled = distri(args);
    const modules = distri(args, { DISTRI_NO_BUNDLE: '1' });
    assert.deepEqual(bundled, modules, `distri ${args.join(' ')}`);
  }
});

test('the bundled pack writes the image the modules write, its compression workers included', () => {
  const src = path.join(tmp, 'pack-src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  // Blocks (to the compression workers), a fragment, an empty file, a symlink.
  fs.writeFileSync(path.join(src, 'big.txt'), 'the quick brown fox jumps over the lazy squashfs inode table\n'.repeat(8000));
  fs.writeFileSync(path.join(src, 'sub', 'small'), 'small file\n');
  fs.writeFileSync(path.join(src, 'empty'), '');
  fs.symlinkSync('sub/small', path.join(src, 'link'));
  for (const comp of ['lz4', 'gzip', 'none']) {
    const images = ['bundled', 'modules'].map((how) => path.join(tmp, `${how}-${comp}.sqfs`));
    const bundled = distri(['pack', src, images[0]!, '--comp', comp, '--mtime', '0', '--json']);
    const modules = distri(['pack', src, images[1]!, '--comp', comp, '--mtime', '0', '--json'], { DISTRI_NO_BUNDLE: '1' });
    assert.equal(bundled.status, 0, `bundled pack --comp ${comp}: ${bundled.stderr}`);
    // The same report but for the image's name and the time taken.
    const report = (r: { status: number | null; stdout: string; stderr: string }) => {
      const { image: _image, seconds: _seconds, ...rest } = JSON.parse(r.stdout) as Record<string, unknown>;
      return { status: r.status, stderr: r.stderr, report: rest };
    };
    assert.deepEqual(report(bundled), report(modules), `distri pack --comp ${comp}`);
    assert.ok(fs.readFileSync(images[0]!).equals(fs.readFileSync(images[1]!)), `--comp ${comp}: the same image bytes`);
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
