/**
 * `distri mount` end to end, on real FUSE mounts served by child processes (this process only
 * ever reads them): squashfuse's smoke test ported (every compressor), our mount against the
 * kernel's mount of the fixture images, a 16-reader load test, faults (a truncated image, SIGTERM
 * under load, a SIGKILLed daemon's stale mount), -o options and write refusal. Every test cleans
 * up its mounts and daemons in `finally`, and the last test checks that nothing was left behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errnoOf, Errno } from '../src/fuse/adapter';
import { parseMountOptions } from '../src/cli/commands/mount';
import { SquashfsError } from '../src/errors';
import { kernelAvailable, withKernelMount } from './oracle/kernel';
import { diffManifests, walkDirectory, type Manifest } from './oracle/manifest';
import { repoRoot, skipUnless, toolAvailable } from './oracle/tools';
import {
  cliPath,
  forceCleanup,
  fuseAvailable,
  makeMountpoint,
  mountedAt,
  processAlive,
  readFifoByte,
  run,
  sleep,
  spawnForegroundMount,
  spawnMount,
  waitFor,
  type Mount,
  forEachTransport,
} from './helpers/mount';

const fuseSkip = () => skipUnless('FUSE mount tests', fuseAvailable(), 'mksquashfs', 'cmp', 'sha256sum', 'mkfifo', 'fusermount');

// ---- a corpus like squashfuse's smoke test: big and small files, a name with spaces, a subdir ----

interface CorpusFile {
  path: string;
  size: number;
  sha256: string;
}

let work: string;
let src: string;
let corpus: CorpusFile[] = [];
const images = new Map<string, string>();
const COMPRESSORS = ['gzip', 'lzo', 'lz4', 'xz', 'zstd', 'lzma'];

/** Half compressible, half not: every codec sees real compressed blocks and stored ones. */
function mixedContent(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const text = Buffer.from('The quick brown fox jumps over the lazy dog; squashfs block ', 'utf8');
  for (let pos = 0, i = 0; pos < size; pos += 65536, i++) {
    const n = Math.min(65536, size - pos);
    if (i % 3 === 0) randomBytes(n).copy(out, pos);
    else if (i % 3 === 1) for (let j = 0; j < n; j++) out[pos + j] = text[(j + i) % text.length]!;
    else for (let j = 0; j < n; j++) out[pos + j] = (j * 7 + i) & 0x0f;
  }
  return out;
}

function writeCorpus(root: string): CorpusFile[] {
  const files: Array<[string, Buffer]> = [
    ['big.bin', mixedContent(24 * 1024 * 1024 + 12345)],
    ['small-1.txt', mixedContent(3000)],
    ['small-2.txt', randomBytes(5000)],
    ['name with spaces.txt', Buffer.from('spaces are fine\n')],
    ['sub/file.txt', mixedContent(70_000)],
    ['sub/dir/nested.bin', mixedContent(300_000)],
    ['sub/dir/empty', Buffer.alloc(0)],
  ];
  for (const [p, data] of files) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), data);
  }
  return files.map(([p, data]) => ({ path: p, size: data.length, sha256: createHash('sha256').update(data).digest('hex') }));
}

async function mksquashfs(from: string, to: string, args: string[]): Promise<void> {
  const r = await run('mksquashfs', [from, to, '-noappend', '-no-progress', '-quiet', ...args], { timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`mksquashfs ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

before(async () => {
  if (fuseSkip()) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fuse-test-'));
  src = path.join(work, 'src');
  fs.mkdirSync(src);
  corpus = writeCorpus(src);
  for (const c of COMPRESSORS) {
    const img = path.join(work, `${c}.sqfs`);
    await mksquashfs(src, img, ['-comp', c]);
    images.set(c, img);
  }
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Mounts, runs fn, always cleans up. */
async function withMount<T>(image: string, options: string[], fn: (m: Mount) => Promise<T>): Promise<T> {
  const m = await spawnMount(image, { options });
  try {
    return await fn(m);
  } finally {
    await m.cleanup();
  }
}

async function sha256sum(file: string): Promise<string> {
  const r = await run('sha256sum', [file], { timeoutMs: 120_000 });
  if (r.status !== 0) throw new Error(`sha256sum ${file}: ${r.stderr}`);
  return r.stdout.split(' ')[0]!;
}

// ---- pure parts ---------------------------------------------------------------------------------

describe('errno mapping and -o parsing', () => {
  test('errors map to errno at the FUSE edge, never EPERM', () => {
    assert.equal(errnoOf(new SquashfsError('NOT_FOUND', 'x')), Errno.ENOENT);
    assert.equal(errnoOf(new SquashfsError('NOT_A_DIRECTORY', 'x')), Errno.ENOTDIR);
    assert.equal(errnoOf(new SquashfsError('IS_A_DIRECTORY', 'x')), Errno.EISDIR);
    for (const code of ['CORRUPT', 'OUT_OF_BOUNDS', 'DECOMPRESS_FAILED', 'IO', 'OVERFLOW', 'UNSUPPORTED', 'BAD_MAGIC'] as const) {
      assert.equal(errnoOf(new SquashfsError(code, 'x')), Errno.EIO, code);
    }
    assert.equal(errnoOf(new TypeError('a bug')), Errno.EIO);
    assert.equal(errnoOf('a string'), Errno.EIO);
  });

  test('squashfuse -o options parse; unknown ones and bad values are clear errors', () => {
    assert.deepEqual(parseMountOptions(['subdir=a/b,offset=4096', 'timeout=2.5,uid=1000,gid=0,allow_other,ro']), {
      subdir: 'a/b',
      offset: 4096,
      idleTimeout: 2.5,
      uid: 1000,
      gid: 0,
      allowOther: true,
    });
    assert.throws(() => parseMountOptions(['nonsense']), /unknown -o option "nonsense"/);
    assert.throws(() => parseMountOptions(['offset=-1']), /offset= needs a non-negative integer/);
    assert.throws(() => parseMountOptions(['timeout=0']), /timeout= needs a positive number/);
    assert.throws(() => parseMountOptions(['subdir']), /subdir needs a value/);
    assert.throws(() => parseMountOptions(['readahead=8']), /unknown -o option "readahead=8"/);
  });
});

// ---- squashfuse's smoke test, per compressor ------------------------------------------------------

// Every test below runs on both FUSE transports: our own kernel-protocol code, and libfuse.
forEachTransport((transport) => {
  describe('smoke test (ported from squashfuse)', () => {
    for (const comp of COMPRESSORS) {
      test(`${comp}: cmp every file, 4 parallel checksums, a missing name twice`, { skip: fuseSkip(), timeout: 300_000 }, async () => {
        await withMount(images.get(comp)!, [], async (m) => {
          assert.deepEqual(fs.readdirSync(m.dir).sort(), ['big.bin', 'name with spaces.txt', 'small-1.txt', 'small-2.txt', 'sub']);
          for (const f of corpus) {
            const r = await run('cmp', [path.join(src, f.path), path.join(m.dir, f.path)], { timeoutMs: 120_000 });
            assert.equal(r.status, 0, `cmp ${f.path}: ${r.stdout}${r.stderr}`);
          }
          // Four readers at once over every file (big.bin twice), after dropping the page cache
          // for the mount's files, so that the daemon serves them concurrently.
          await run('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { timeoutMs: 30_000 });
          const jobs = [...corpus, corpus[0]!].map((f) => ({ f, p: sha256sum(path.join(m.dir, f.path)) }));
          const readers = 4;
          for (let i = 0; i < jobs.length; i += readers) {
            const batch = jobs.slice(i, i + readers);
            const sums = await Promise.all(batch.map((j) => j.p));
            batch.forEach((j, k) => assert.equal(sums[k], j.f.sha256, j.f.path));
          }
          for (let i = 0; i < 2; i++) {
            assert.throws(() => fs.statSync(path.join(m.dir, 'no-such-name')), { code: 'ENOENT' });
            assert.throws(() => fs.statSync(path.join(m.dir, 'sub/dir/missing')), { code: 'ENOENT' });
          }
          assert.throws(() => fs.readdirSync(path.join(m.dir, 'small-1.txt')), { code: 'ENOTDIR' });
          assert.ok(processAlive(m.pid));
        });
      });
    }

    test('subdir= serves a directory of the image as the root', { skip: fuseSkip() }, async () => {
      await withMount(images.get('gzip')!, ['subdir=sub/dir'], async (m) => {
        assert.deepEqual(fs.readdirSync(m.dir).sort(), ['empty', 'nested.bin']);
        assert.equal(await sha256sum(path.join(m.dir, 'nested.bin')), corpus.find((f) => f.path === 'sub/dir/nested.bin')!.sha256);
      });
    });

    test('subdir= naming a file or nothing fails clearly, with the status of a missing path (2)', { skip: fuseSkip() }, async () => {
      const dir = makeMountpoint();
      const img = images.get('gzip')!;
      try {
        // In the background (the daemon started first, or after parsing) and in the foreground.
        for (const how of [[], ['-f']]) {
          for (const env of [{}, { DISTRI_NO_EARLY_DAEMON: '1' }]) {
            for (const sub of ['big.bin', 'nope']) {
              const r = await run(process.execPath, [cliPath(), 'mount', ...how, '-o', `subdir=${sub}`, img, dir], { timeoutMs: 30_000, env: { ...process.env, ...env } });
              const what = `mount ${how.join(' ')} subdir=${sub} ${JSON.stringify(env)}`;
              assert.equal(r.status, 2, `${what}: ${r.stderr}`);
              const why = sub === 'nope' ? 'no such directory in the image' : 'is a file, not a directory';
              assert.equal(r.stderr, `distri: mount ${img} on ${dir}: subdir=${sub}: ${why}\n`, what);
              assert.equal(mountedAt(dir), false);
            }
          }
        }
      } finally {
        assert.deepEqual(await forceCleanup(dir, undefined), []);
      }
    });

    test('offset= mounts an image embedded in a larger file', { skip: fuseSkip() }, async () => {
      const embedded = path.join(work, 'embedded.bin');
      fs.writeFileSync(embedded, Buffer.concat([randomBytes(8192 + 17), fs.readFileSync(images.get('lz4')!)]));
      try {
        await withMount(embedded, [`offset=${8192 + 17}`], async (m) => {
          assert.equal(fs.readFileSync(path.join(m.dir, 'name with spaces.txt'), 'utf8'), 'spaces are fine\n');
        });
      } finally {
        fs.rmSync(embedded, { force: true });
      }
    });

    test('uid= and gid= override every owner', { skip: fuseSkip() }, async () => {
      await withMount(images.get('gzip')!, ['uid=4242,gid=4343'], async (m) => {
        for (const p of ['', 'big.bin', 'sub/dir']) {
          const st = fs.lstatSync(path.join(m.dir, p));
          assert.equal(st.uid, 4242, p);
          assert.equal(st.gid, 4343, p);
        }
      });
    });

    test('timeout= unmounts after the idle time and the daemon exits', { skip: fuseSkip(), timeout: 30_000 }, async () => {
      const m = await spawnMount(images.get('gzip')!, { options: ['timeout=1'] });
      try {
        assert.equal(fs.readFileSync(path.join(m.dir, 'name with spaces.txt'), 'utf8'), 'spaces are fine\n');
        assert.ok(await waitFor(() => !mountedAt(m.dir) && !processAlive(m.pid), 15_000), 'still mounted 15 s after timeout=1');
      } finally {
        await m.cleanup();
      }
    });

    test('notify_pipe says s when mounted', { skip: fuseSkip() }, async () => {
      const m = await spawnForegroundMount(images.get('zstd')!); // waits for 's' on the pipe
      try {
        assert.ok(mountedAt(m.dir));
        assert.equal(fs.readFileSync(path.join(m.dir, 'sub/file.txt')).length, 70_000);
      } finally {
        await m.cleanup();
      }
    });

    test('notify_pipe says f, and the command fails clearly, for a missing mountpoint', { skip: fuseSkip() }, async () => {
      const fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fifo-'));
      const fifo = path.join(fifoDir, 'p');
      try {
        assert.equal((await run('mkfifo', [fifo])).status, 0);
        const answer = readFifoByte(fifo, 20_000);
        const missing = path.join(fifoDir, 'no-such-dir');
        const r = await run(process.execPath, [cliPath(), 'mount', '-o', `notify_pipe=${fifo}`, images.get('gzip')!, missing], { timeoutMs: 30_000 });
        assert.equal(await answer, 'f');
        assert.equal(r.status, 1);
        assert.match(r.stderr, /mountpoint .*no-such-dir does not exist/);
      } finally {
        fs.rmSync(fifoDir, { recursive: true, force: true });
      }
    });

    test('an unreadable image fails clearly (and says f)', { skip: fuseSkip() }, async () => {
      const dir = makeMountpoint();
      const junk = path.join(work, 'junk.sqfs');
      fs.writeFileSync(junk, randomBytes(4096));
      try {
        for (const [img, why] of [
          [path.join(work, 'missing.sqfs'), /cannot open image .*missing\.sqfs: NOT_FOUND/],
          [junk, /cannot open image .*junk\.sqfs: BAD_MAGIC/],
        ] as const) {
          const r = await run(process.execPath, [cliPath(), 'mount', img, dir], { timeoutMs: 30_000 });
          assert.equal(r.status, 1);
          assert.match(r.stderr, why);
          assert.equal(mountedAt(dir), false);
        }
      } finally {
        fs.rmSync(junk, { force: true });
        assert.deepEqual(await forceCleanup(dir, undefined), []);
      }
    });

    test('every write answers EROFS', { skip: fuseSkip() }, async () => {
      await withMount(images.get('gzip')!, [], async (m) => {
        const p = (s: string) => path.join(m.dir, s);
        assert.throws(() => fs.writeFileSync(p('new'), 'x'), { code: 'EROFS' });
        assert.throws(() => fs.writeFileSync(p('small-1.txt'), 'x'), { code: 'EROFS' });
        assert.throws(() => fs.mkdirSync(p('d')), { code: 'EROFS' });
        assert.throws(() => fs.unlinkSync(p('small-1.txt')), { code: 'EROFS' });
        assert.throws(() => fs.renameSync(p('small-1.txt'), p('x')), { code: 'EROFS' });
        assert.throws(() => fs.chmodSync(p('small-1.txt'), 0o777), { code: 'EROFS' });
        assert.throws(() => fs.symlinkSync('a', p('l')), { code: 'EROFS' });
        assert.throws(() => fs.utimesSync(p('small-1.txt'), 1, 1), { code: 'EROFS' });
        assert.ok(processAlive(m.pid));
      });
    });

    test('a killed daemon leaves a stale mount; the next mount cleans it up', { skip: fuseSkip(), timeout: 60_000 }, async () => {
      const first = await spawnMount(images.get('gzip')!);
      let second: Mount | undefined;
      try {
        process.kill(first.pid, 'SIGKILL');
        assert.ok(await waitFor(() => !processAlive(first.pid), 5000));
        assert.throws(() => fs.statSync(first.dir), { code: 'ENOTCONN' });
        second = await spawnMount(images.get('gzip')!, { dir: first.dir });
        assert.equal(fs.readFileSync(path.join(second.dir, 'name with spaces.txt'), 'utf8'), 'spaces are fine\n');
      } finally {
        await second?.cleanup();
        await first.cleanup();
      }
    });

    test('distri unmount of a busy mount says so and leaves it; --lazy detaches it', { skip: fuseSkip() }, async () => {
      const m = await spawnMount(images.get('gzip')!);
      // A shell whose working directory is inside the mount keeps it busy.
      const holder = spawn('sh', ['-c', 'read x'], { cwd: m.dir, stdio: ['pipe', 'ignore', 'ignore'] });
      try {
        const r = await run(process.execPath, [cliPath(), 'unmount', m.dir], { timeoutMs: 20_000 });
        assert.equal(r.status, 1);
        assert.equal(r.stderr, `distri: unmount ${m.dir}: busy: a process is using it (--lazy detaches it now, and it goes away once no longer used)\n`);
        assert.equal(mountedAt(m.dir), true);
        const lazy = await run(process.execPath, [cliPath(), 'unmount', '--lazy', m.dir], { timeoutMs: 20_000 });
        assert.equal(lazy.status, 0, lazy.stderr);
        assert.equal(mountedAt(m.dir), false);
      } finally {
        holder.kill();
        await m.cleanup();
      }
    });

    test('distri unmount ends the mount and the daemon', { skip: fuseSkip() }, async () => {
      const m = await spawnMount(images.get('gzip')!);
      try {
        const r = await run(process.execPath, [cliPath(), 'unmount', m.dir], { timeoutMs: 20_000 });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(mountedAt(m.dir), false);
        assert.ok(await waitFor(() => !processAlive(m.pid), 5000), 'daemon still running after unmount');
      } finally {
        await m.cleanup();
      }
    });
  });

  // ---- our mount against the kernel's mount of the fixture images ------------------------------------

  describe('our mount equals the kernel mount (fixture images)', () => {
    const skip = fuseSkip() ?? skipUnless('kernel oracle', kernelAvailable(), 'getfattr');
    let fixtureImages: string[] = [];

    before(async () => {
      if (skip) return;
      const root = repoRoot();
      const manifest = path.join(root, 'fixtures', 'build', 'manifest.json');
      if (!fs.existsSync(manifest)) {
        const r = await run(path.join(root, 'fixtures', 'build.sh'), [], { timeoutMs: 600_000 });
        if (r.status !== 0) throw new Error(`fixtures/build.sh: ${r.stderr}`);
      }
      const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { images: Array<{ file: string; compressor: string }> };
      // The kernel has no legacy-lzma (id 2) decompressor: nothing to compare those images with.
      const noKernel = m.images.filter((i) => i.compressor === 'lzma').map((i) => i.file);
      if (noKernel.length) console.warn(`kernel oracle: not comparing ${noKernel.join(', ')} (the kernel cannot mount legacy lzma images)`);
      fixtureImages = m.images
        .filter((i) => i.compressor !== 'lzma')
        .map((i) => path.join(root, 'fixtures', 'build', i.file))
        .filter((f) => fs.existsSync(f));
    });

    /** path → inode number, by lstat: hard links and inode numbers must match too. */
    function inodes(root: string, m: Manifest): Map<string, bigint> {
      return new Map(m.map((e) => [e.path, fs.lstatSync(path.join(root, e.path), { bigint: true }).ino]));
    }

    test('type, mode, owner, size, mtime, nlink, link target, rdev, xattrs, contents and inode numbers', { skip, timeout: 900_000 }, async () => {
      assert.ok(fixtureImages.length > 0, 'no fixture images');
      const failures: string[] = [];
      for (const img of fixtureImages) {
        const name = path.basename(img);
        let kernel: Manifest;
        let kernelInodes: Map<string, bigint>;
        try {
          [kernel, kernelInodes] = await withKernelMount(img, (dir) => {
            const mf = walkDirectory(dir);
            return [mf, inodes(dir, mf)] as const;
          });
        } catch (e) {
          failures.push(`${name}: kernel mount: ${(e as Error).message}`);
          continue;
        }
        await withMount(img, [], async (m) => {
          const ours = walkDirectory(m.dir);
          const diff = diffManifests(kernel, ours, { labels: ['kernel', 'distri'], limit: 10 });
          if (diff.length) failures.push(`${name}:\n  ${diff.join('\n  ')}`);
          const oursInodes = inodes(m.dir, ours);
          const inoDiff = [...kernelInodes].filter(([p, ino]) => oursInodes.has(p) && oursInodes.get(p) !== ino).slice(0, 5);
          if (inoDiff.length) failures.push(`${name}: inode numbers differ: ${inoDiff.map(([p, i]) => `${p} kernel=${i} distri=${oursInodes.get(p)}`).join(', ')}`);
          if (!processAlive(m.pid)) failures.push(`${name}: daemon died during the walk`);
        });
      }
      assert.deepEqual(failures, []);
    });
  });

  // ---- load and faults ------------------------------------------------------------------------------

  describe('load and faults', () => {
    test('16 parallel readers: random reads and whole-file checksums, zero mismatches, zero EIO', { skip: fuseSkip(), timeout: 180_000 }, async () => {
      await withMount(images.get('zstd')!, [], async (m) => {
        await run('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { timeoutMs: 30_000 });
        const reader = path.join(repoRoot(), 'dist', 'test', 'helpers', 'load-reader.js');
        const seconds = Number(process.env.FUSE_LOAD_SECONDS ?? 8);
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) =>
            run(process.execPath, [reader, JSON.stringify({ mount: m.dir, source: src, files: corpus, seconds, seed: 1000 + i })], { timeoutMs: (seconds + 90) * 1000 }),
          ),
        );
        let ops = 0;
        let bytes = 0;
        for (const r of results) {
          assert.equal(r.status, 0, `reader failed: ${r.stderr}${r.timedOut ? ' (timed out)' : ''}`);
          const out = JSON.parse(r.stdout) as { ops: number; bytes: number; mismatches: number; errors: number; firstProblems: string[] };
          assert.equal(out.mismatches, 0, out.firstProblems.join('\n'));
          assert.equal(out.errors, 0, out.firstProblems.join('\n'));
          ops += out.ops;
          bytes += out.bytes;
        }
        assert.ok(ops > 16, `only ${ops} operations in ${seconds} s`);
        console.log(`load: 16 readers, ${seconds} s: ${ops} file operations, ${(bytes / 1e6).toFixed(0)} MB read, 0 mismatches, 0 errors`);
        assert.ok(processAlive(m.pid));
      });
    });

    test('image truncated while mounted: EIO for the affected reads, the daemon keeps serving', { skip: fuseSkip(), timeout: 120_000 }, async () => {
      // -no-fragments keeps every file in its own blocks, in name order: a1, a2, then z-big.
      const dir = path.join(work, `trunc-src-${transport}`);
      fs.mkdirSync(dir);
      const a1 = mixedContent(200_000);
      const a2 = mixedContent(210_000);
      fs.writeFileSync(path.join(dir, 'a1.bin'), a1);
      fs.writeFileSync(path.join(dir, 'a2.bin'), a2);
      fs.writeFileSync(path.join(dir, 'z-big.bin'), randomBytes(8 << 20));
      const img = path.join(work, `trunc-${transport}.sqfs`);
      await mksquashfs(dir, img, ['-comp', 'gzip', '-no-fragments']);
      await withMount(img, [], async (m) => {
        // Look every name up while the image is whole (the daemon caches inodes and metadata).
        for (const n of ['a1.bin', 'a2.bin', 'z-big.bin']) fs.statSync(path.join(m.dir, n));
        assert.ok(fs.readFileSync(path.join(m.dir, 'a1.bin')).equals(a1));
        fs.truncateSync(img, 2 << 20); // the middle of z-big.bin's data
        await assert.rejects(fs.promises.readFile(path.join(m.dir, 'z-big.bin')), { code: 'EIO' });
        assert.ok(processAlive(m.pid), 'daemon died on a truncated image');
        // The daemon still answers: a file whose blocks are intact reads correctly.
        assert.ok((await fs.promises.readFile(path.join(m.dir, 'a2.bin'))).equals(a2));
        await assert.rejects(fs.promises.readFile(path.join(m.dir, 'z-big.bin')), { code: 'EIO' });
        assert.ok(processAlive(m.pid));
      });
    });

    test('SIGTERM with readers active: clean unmount, prompt exit, no hung reader', { skip: fuseSkip(), timeout: 120_000 }, async () => {
      const m = await spawnForegroundMount(images.get('xz')!);
      try {
        const reader = path.join(repoRoot(), 'dist', 'test', 'helpers', 'load-reader.js');
        const readers = Array.from({ length: 4 }, (_, i) =>
          run(process.execPath, [reader, JSON.stringify({ mount: m.dir, source: src, files: corpus, seconds: 30, seed: 7 + i })], { timeoutMs: 60_000 }),
        );
        await sleep(1500);
        const exited = new Promise<number | null>((resolve) => m.child.on('exit', (code) => resolve(code)));
        const t0 = Date.now();
        m.child.kill('SIGTERM');
        const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
        assert.notEqual(code, 'timeout', 'daemon did not exit within 15 s of SIGTERM');
        assert.equal(code, 0, m.stderr());
        console.log(`SIGTERM under load: daemon exited ${Date.now() - t0} ms later`);
        assert.equal(mountedAt(m.dir), false, 'still mounted after SIGTERM');
        // Readers end (with errors for reads after the daemon left): none hangs.
        const rs = await Promise.all(readers);
        for (const r of rs) assert.equal(r.timedOut, false, 'a reader hung after the daemon left');
      } finally {
        await m.cleanup();
      }
    });
  });

  // ---- node references: the adapter's path cache keeps the NodeFs's node table bounded ----------------

  describe('node references', () => {
    const libfuseOnly = transport === 'kernel' ? 'libfuse only: the kernel transport holds what the kernel holds (the FORGET test)' : undefined;
    test('a find walk and reads through the mount keep the NodeFs nodes within the path cache; an open file holds its own', { skip: libfuseOnly ?? fuseSkip(), timeout: 120_000 }, async () => {
      // More entries than the path cache holds many times over: directories, files, symlinks, a hard link.
      const dir = path.join(work, 'refs-src');
      for (let d = 0; d < 12; d++) {
        const sub = path.join(dir, `d${d}`, 'inner');
        fs.mkdirSync(sub, { recursive: true });
        for (let f = 0; f < 10; f++) fs.writeFileSync(path.join(dir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(f * 50 + 1));
        for (let f = 0; f < 5; f++) fs.writeFileSync(path.join(sub, `g${f}`), mixedContent(1000 + f * 40_000));
        fs.symlinkSync(`../d${(d + 1) % 12}/f0.txt`, path.join(dir, `d${d}`, 'link'));
      }
      fs.linkSync(path.join(dir, 'd0', 'f1.txt'), path.join(dir, 'd5', 'hard'));
      const img = path.join(work, 'refs.sqfs');
      await mksquashfs(dir, img, ['-comp', 'gzip']);
      const entries = (await run('find', [dir, '-mindepth', '1'])).stdout.trim().split('\n').length;
      const CACHE = 16;
      assert.ok(entries > CACHE * 10, `${entries} entries`);

      const stats = path.join(work, `refs-stats-${process.pid}.json`);
      const m = await spawnMount(img, { env: { DISTRI_FUSE_STATS: stats, DISTRI_FUSE_PATH_CACHE: String(CACHE) } });
      const readStats = async () => {
        fs.rmSync(stats, { force: true });
        process.kill(m.pid, 'SIGUSR1');
        assert.ok(await waitFor(() => fs.existsSync(stats) && fs.readFileSync(stats, 'utf8').endsWith('\n'), 5000), 'no statistics from the daemon');
        return JSON.parse(fs.readFileSync(stats, 'utf8')) as { nodes: number; cachedPaths: number; openFiles: number };
      };
      try {
        // The same answers as the source tree, although almost every path is evicted before its
        // next use (so each request walks most of its path again).
        const listing = async (root: string) => {
          const files = await run('find', [root, '-type', 'f', '-printf', '%P %s %n\n'], { timeoutMs: 60_000 });
          const others = await run('find', [root, '-mindepth', '1', '!', '-type', 'f', '-printf', '%y %P %l\n'], { timeoutMs: 60_000 });
          const sum = await run('sh', ['-c', 'cd "$1" && find . -type f | sort | xargs cat | sha256sum', 'sh', root], { timeoutMs: 60_000 });
          return [files.stdout.split('\n').sort(), others.stdout.split('\n').sort(), sum.stdout];
        };
        assert.deepEqual(await listing(m.dir), await listing(dir));
        let st = await readStats();
        assert.equal(st.openFiles, 0);
        assert.ok(st.cachedPaths <= CACHE, `${st.cachedPaths} paths cached`);
        assert.ok(st.nodes >= 1 && st.nodes <= CACHE, `${st.nodes} nodes held after walking ${entries} entries (path cache ${CACHE})`);

        // An open file keeps its own reference while the walk evicts its path: it reads on, and
        // is the one node beyond the cache; release gives it back.
        const held = path.join(m.dir, 'd3', 'inner', 'g4');
        const fd = fs.openSync(held, 'r');
        try {
          await run('find', [m.dir, '-printf', '%s\n'], { timeoutMs: 60_000 });
          await run('sh', ['-c', 'echo 1 > /proc/sys/vm/drop_caches'], { timeoutMs: 30_000 });
          const buf = Buffer.alloc(4096);
          assert.equal(fs.readSync(fd, buf, 0, buf.length, 100_000), buf.length);
          assert.ok(buf.equals(fs.readFileSync(path.join(dir, 'd3', 'inner', 'g4')).subarray(100_000, 100_000 + buf.length)));
          st = await readStats();
          assert.equal(st.openFiles, 1);
          assert.ok(st.nodes <= CACHE + 1, `${st.nodes} nodes with one file open`);
        } finally {
          fs.closeSync(fd);
        }
        assert.ok(
          await waitFor(() => {
            process.kill(m.pid, 'SIGUSR1');
            try {
              return (JSON.parse(fs.readFileSync(stats, 'utf8')) as { openFiles: number }).openFiles === 0;
            } catch {
              return false;
            }
          }, 5000),
          'the file was not released',
        );
        st = await readStats();
        assert.ok(st.nodes <= CACHE, `${st.nodes} nodes after the release`);
        assert.ok(processAlive(m.pid));
      } finally {
        await m.cleanup();
        fs.rmSync(stats, { force: true });
      }
    });
  });
});

test('nothing left behind: no distri FUSE mount, no daemon of ours', { skip: fuseSkip() }, async () => {
  const r = await run('findmnt', ['-n', '-l', '-t', 'fuse.distri', '-o', 'TARGET'], { timeoutMs: 10_000 });
  const ours = r.stdout.split('\n').filter((l) => path.basename(l).startsWith('distri-fuse-'));
  assert.deepEqual(ours, []);
  const p = await run('pgrep', ['-af', `${cliPath()} mount|fuse/mount-daemon.js mount`], { timeoutMs: 10_000 });
  const daemons = p.stdout.split('\n').filter((l) => l.includes('distri-fuse-'));
  assert.deepEqual(daemons, []);
  assert.ok(toolAvailable('findmnt').ok);
});
