/**
 * What makes the short commands and `distri mount` start faster must never change what they do:
 * the bundled CLI prints what the unbundled modules print; the short commands' fast path (a small
 * argument parser instead of commander, src/cli/short.ts) answers every command line, --help and
 * usage errors included, with the same output and exit status as commander does, and loads nothing
 * the command does not use; a mount served by the bundled daemon
 * and serving thread (src/fuse/bundles.ts) reads the same bytes; an image that fails to open
 * while mount(8) ran beside it leaves nothing mounted; a background mount whose daemon was started
 * before anything was parsed (src/cli/daemon-first.ts) fails with the words and status the command
 * itself gives.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, repoRoot, skipUnless, type Availability } from './oracle/tools';
import { plainMountCommandLine } from '../src/cli/commands/mount';
import { daemonFirstCommand, notifyPipeIn, servesHere } from '../src/cli/daemon-first';
import { kernelTransportWanted } from '../src/fuse/mount-env';
import { scanArgv } from '../src/util/argv-scan';
import { buildProgram, CODE_CACHE } from '../src/cli/main';

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
  // A destination that is not empty: extract refuses it, both ways, in the same words.
  const full = path.join(tmp, 'not-empty');
  fs.mkdirSync(full, { recursive: true });
  fs.writeFileSync(path.join(full, 'a'), 'a\n');
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
    ['extract', '--help'],
    ['extract', demo, '-d', full],
    ['--help'],
  ];
  for (const args of cases) {
    const bundled = distri(args);
    const modules = distri(args, { DISTRI_NO_BUNDLE: '1' });
    assert.deepEqual(bundled, modules, `distri ${args.join(' ')}`);
  }
});

/**
 * info, ls, stat and cat three ways: the fast path (what `distri` runs), the full bundle with
 * commander (DISTRI_NO_FAST_PATH) and the modules as tsc emitted them (DISTRI_NO_BUNDLE). The
 * command lines are the ones the small parser takes and, just as many, the ones it hands on.
 */
test('the short commands fast path answers like commander, help and usage errors included', () => {
  const shortBundle = path.join(root, 'dist/src/cli/cli-short.bundle.js');
  assert.ok(fs.existsSync(shortBundle), 'npm run build makes the short commands bundle');
  const dir = path.join(tmp, 'a-dir');
  fs.mkdirSync(dir, { recursive: true });
  const cases: string[][] = [
    // taken by the fast path
    ['info', demo],
    ['info', '--json', demo],
    ['info', demo, '--offset', '0'],
    ['info', '--offset=0', demo],
    ['-v', 'info', demo],
    ['info', demo, '--verbose'],
    ['ls', demo],
    ['ls', demo, 'docs'],
    ['ls', '-lR', demo],
    ['ls', '-l', '-R', '-n', demo, '/'],
    ['ls', '-Rln', demo, 'docs'],
    ['ls', demo, 'docs', '--json'],
    ['ls', '--json', '-R', demo],
    ['ls', demo, 'README.md'],
    ['ls', '--', demo, 'docs'],
    ['ls', demo, 'no/such'],
    ['ls', demo, 'README.md/x'],
    ['stat', demo, 'README.md'],
    ['stat', demo, 'guide'],
    ['stat', '--json', demo, 'docs'],
    ['stat', demo, 'nope'],
    ['cat', demo, 'README.md'],
    ['cat', demo, 'README.md', 'guide', 'docs/changelog.txt'],
    ['cat', demo, 'docs', 'README.md'],
    ['cat', demo, 'no/such/file'],
    ['cat', '--offset', '0', demo, 'guide'],
    ['info', path.join(tmp, 'no-such-image')],
    ['info', dir],
    ['ls', dir],
    ['info', '--offset', '4096', demo],
    ['info', '-', demo],
    // handed on to commander
    ['info', '--help'],
    ['ls', '--help'],
    ['stat', '-h'],
    ['cat', '--help'],
    ['ls', '-lh', demo],
    ['info'],
    ['stat', demo],
    ['cat', demo],
    ['info', demo, 'extra'],
    ['stat', demo, 'a', 'b'],
    ['ls', demo, '/', 'extra'],
    ['ls', '--bogus', demo],
    ['ls', '-lx', demo],
    ['ls', '-long', demo],
    ['info', '--json=yes', demo],
    ['info', '--offset', demo],
    ['info', '--offset', '-1', demo],
    ['info', '--offset=abc', demo],
    ['info', demo, '--offset'],
    ['info', '--offset', '-v', '0', demo],
    ['-x', 'info', demo],
    ['--version', 'info', demo],
    ['info', demo, '--version'],
    ['cat', demo, '-5'],
    ['ls', demo, '--', '--json'],
  ];
  for (const args of cases) {
    const fast = distri(args);
    const full = distri(args, { DISTRI_NO_FAST_PATH: '1' });
    const modules = distri(args, { DISTRI_NO_BUNDLE: '1' });
    assert.deepEqual(fast, full, `distri ${args.join(' ')}: fast path and full bundle`);
    assert.deepEqual(fast, modules, `distri ${args.join(' ')}: fast path and the modules`);
  }
});

/** Which files and which of Node's own modules a run of distri loaded (recorded as it exits). */
function loaded(args: string[], script = cli): { files: string[]; builtins: string[]; out: ReturnType<typeof distri> } {
  const record = path.join(tmp, 'loaded.json');
  const hook = path.join(tmp, 'record-loaded.js');
  fs.writeFileSync(
    hook,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(record)}, JSON.stringify({ files: Object.keys(require.cache), builtins: process.moduleLoadList })));\n`,
  );
  const r = spawnSync(process.execPath, ['-r', hook, script, ...args], { encoding: 'utf8' });
  const seen = JSON.parse(fs.readFileSync(record, 'utf8')) as { files: string[]; builtins: string[] };
  return { ...seen, out: { status: r.status, stdout: r.stdout, stderr: r.stderr } };
}

test('the fast path loads only what the command uses', () => {
  const baseline = new Set(JSON.parse(spawnSync(process.execPath, ['-p', 'JSON.stringify(process.moduleLoadList)'], { encoding: 'utf8' }).stdout) as string[]);
  // An image stored uncompressed names gzip in its superblock but needs no codec at all.
  const tree = path.join(tmp, 'tree');
  fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'sub', 'a.txt'), 'a small file\n');
  const plain = path.join(tmp, 'plain.sqfs');
  const packed = distri(['pack', '--comp', 'none', tree, plain]);
  assert.equal(packed.status, 0, packed.stderr);
  const lz4 = path.join(tmp, 'lz4.sqfs');
  const packedLz4 = distri(['pack', '--comp', 'lz4', tree, lz4]);
  assert.equal(packedLz4.status, 0, packedLz4.stderr);
  // The codec modules loaded from tsc's output (gzip is in the bundle: src/cli/bundle.ts).
  const codecs = (files: string[]) => files.filter((f) => f.includes(`${path.sep}codec${path.sep}`)).map((f) => path.basename(f));
  const lz4Codec = ['lz4-hc.js', 'lz4-liblz4.js', 'lz4.js', 'util.js'];
  for (const [args, wantCodecs] of [
    [['ls', '-lR', plain], []],
    [['cat', plain, 'sub/a.txt'], []],
    [['stat', demo, 'README.md'], []],
    [['cat', demo, 'README.md'], []],
    [['stat', lz4, 'sub/a.txt'], lz4Codec],
    [['cat', lz4, 'sub/a.txt'], lz4Codec],
  ] as Array<[string[], string[]]>) {
    const what = `distri ${args.join(' ')}`;
    const { files, builtins, out } = loaded(args);
    assert.equal(out.status, 0, `${what}: ${out.stderr}`);
    assert.ok(
      files.some((f) => f.endsWith('cli-short.bundle.js')),
      `${what}: runs from the short commands bundle`,
    );
    assert.deepEqual(
      files.filter((f) => f.endsWith('cli.bundle.js') || f.includes('commander')),
      [],
      `${what}: neither commander nor the full bundle`,
    );
    assert.deepEqual(codecs(files).sort(), wantCodecs, `${what}: the image's codec only`);
    const extra = builtins.filter((m) => !baseline.has(m));
    assert.ok(!extra.includes('NativeModule worker_threads'), `${what}: no worker threads for a small file`);
    // node:vm compiles the bundle with its code cache (src/cli/main.ts); gzip inflates through
    // Node's zlib binding: node:zlib would load Node's ~20 stream modules.
    const gzip = args.includes(demo);
    assert.deepEqual(
      extra.sort(),
      gzip ? ['Internal Binding zlib', 'NativeModule vm'] : ['NativeModule vm'],
      `${what}: node:vm${gzip ? ' and the zlib binding' : ''} only, neither node:zlib nor streams`,
    );
  }
});

/**
 * The bundles' V8 code caches (made by src/cli/code-cache.ts, read by src/cli/main.ts) are only ever
 * a faster way to run the same bundle. One with damaged bytes in V8's data, cut short or grown,
 * made for another build of the bundle or by another V8, or refused by V8 (other V8 flags) is not
 * used, and every command prints what it prints without one. V8 alone checks none of the first
 * three: handed the damaged data, Node dies in V8's deserializer.
 */
test('a damaged, cut, grown or foreign code cache is not used, and the commands print the same', () => {
  // A copy of the build, timestamps kept (main.js runs bundles only when newer than the program).
  const dist = path.join(tmp, 'cache-dist');
  fs.cpSync(path.join(root, 'dist/src'), path.join(dist, 'src'), { recursive: true, preserveTimestamps: true });
  const main = path.join(dist, 'src/cli/main.js');
  // The short commands' bundle, and the whole program's (commander's help included).
  for (const [name, lines] of [
    [
      'cli-short.bundle',
      [
        ['info', demo],
        ['ls', '-l', demo],
        ['stat', demo, 'README.md'],
        ['cat', demo, 'README.md'],
        ['cat', demo, 'no/such/file'],
      ],
    ],
    [
      'cli.bundle',
      [
        ['xattrs', demo, 'README.md'],
        ['xattrs', demo, 'no/such/file'],
        ['pack', '--help'],
        ['mount', '--help'],
      ],
    ],
  ] as Array<[string, string[][]]>)
    checkCodeCache(main, path.join(dist, 'src/cli', `${name}.js`), path.join(dist, 'src/cli', `${name}.cache`), lines);
});

function checkCodeCache(main: string, bundle: string, cache: string, lines: string[][]): void {
  const good = fs.readFileSync(cache);
  const run = (args: string[], opts: { execArgv?: string[]; cache?: string } = {}) => {
    const r = spawnSync(process.execPath, [...(opts.execArgv ?? []), main, ...args], { encoding: 'utf8', env: { ...process.env, DISTRI_CODE_CACHE: opts.cache ?? 'report' } });
    const said = /^distri: code cache: (.*)\n/m.exec(r.stderr)?.[1];
    return { out: { status: r.status, stdout: r.stdout, stderr: r.stderr.replace(/^distri: code cache: .*\n/m, '') }, said };
  };
  const without = lines.map((args) => run(args, { cache: 'off' }).out);
  const check = (what: string, want: RegExp, execArgv?: string[]) =>
    lines.forEach((args, i) => {
      const { out, said } = run(args, { execArgv });
      assert.match(said ?? '(nothing said)', want, `${path.basename(cache)}, ${what}: distri ${args.join(' ')}`);
      assert.deepEqual(out, without[i], `${path.basename(cache)}, ${what}: distri ${args.join(' ')} prints what it prints without a cache`);
    });

  check('the cache as built', /^used$/);
  // 64 bytes in the middle of the first copy of V8's data (the one V8 is given): V8 handed them
  // dies there (status 133; at other places a segmentation fault, or the command runs wrong code,
  // all seen). Then the same in the second copy.
  const [h, s, d] = [CODE_CACHE.headerSize, good.readUInt32LE(12), good.readUInt32LE(16)];
  for (const at of [h + s + Math.floor(d / 2), h + s + d + Math.floor(d / 2)]) {
    const damaged = Buffer.from(good);
    for (let i = at; i < at + 64; i++) damaged[i] = damaged[i]! ^ 0x5a;
    fs.writeFileSync(cache, damaged);
    check(`damaged bytes at ${at} of ${good.length}`, /^not used: damaged/);
  }
  fs.writeFileSync(cache, good.subarray(0, good.length - 1000));
  check('cut short', /^not used: damaged/);
  fs.writeFileSync(cache, Buffer.concat([good, Buffer.alloc(100, 7)]));
  check('grown', /^not used: damaged/);
  fs.writeFileSync(cache, good.subarray(0, 12));
  check('only part of a header', /^not used: not a cache of this format/);
  // Made by another V8 (a Node upgraded since the build): not even offered to V8.
  const otherV8 = Buffer.from(good);
  otherV8.fill(0, CODE_CACHE.v8At, CODE_CACHE.v8At + CODE_CACHE.v8Size).write('9.9.999.9', CODE_CACHE.v8At, 'latin1');
  fs.writeFileSync(cache, otherV8);
  check('made by another V8', /^not used: made by another V8 \(9\.9\.999\.9; this is /);
  fs.writeFileSync(cache, good);
  // Another build of the bundle: one of the same length (which V8 would take the cache for), and a longer one.
  const code = fs.readFileSync(bundle, 'utf8');
  assert.ok(code.startsWith('"use strict";'));
  fs.writeFileSync(bundle, `'use strict';${code.slice('"use strict";'.length)}`);
  check('made from another build of the same length', /^not used: made from another build/);
  fs.writeFileSync(bundle, `${code}\n`);
  check('made from a longer build', /^not used: made from another build/);
  fs.writeFileSync(bundle, code);
  check('V8 flags other than the build ran with', /^rejected by V8/, ['--stack-size=900']);
  fs.rmSync(cache);
  check('no cache', /^not used: no cache file$/);
  fs.writeFileSync(cache, good);
}

/** lzma-native's addon as package.json's postinstall builds it (npm ci, with a compiler). */
function lzmaAddonBuilt(): Availability {
  const built = fs.existsSync(path.join(root, 'node_modules', 'lzma-native', 'build', 'Release', 'lzma_native.node'));
  return built ? { ok: true } : { ok: false, why: "lzma-native's addon was not built at install (no compiler?)" };
}

test("an xz image loads liblzma's addon alone, not lzma-native's stream classes", { skip: skipUnless('loading the xz addon', lzmaAddonBuilt()) }, () => {
  // lzma-native's index builds Node streams on the addon (readable-stream and its dependencies):
  // 20-30 ms of every process's and every decoding worker's first xz block, for nothing we call.
  const tree = path.join(tmp, 'xz-tree');
  fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'sub', 'a.txt'), 'a small file\n'.repeat(100));
  const img = path.join(tmp, 'small-xz.sqfs');
  const packed = distri(['pack', '--comp', 'xz', tree, img]);
  assert.equal(packed.status, 0, packed.stderr);
  const { files, out } = loaded(['cat', img, 'sub/a.txt']);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout, 'a small file\n'.repeat(100));
  const lzma = files.filter((f) => f.includes(`${path.sep}lzma-native${path.sep}`) || f.includes('readable-stream'));
  assert.deepEqual(
    lzma.map((f) => path.relative(path.join(root, 'node_modules'), f)),
    [path.join('lzma-native', 'build', 'Release', 'lzma_native.node')],
    'the addon built at install, and nothing else of the package',
  );
});

/** An image with one 3 MiB file (more than a pipe holds), made once. */
let big: { img: string; content: Buffer } | undefined;
function bigImage(): { img: string; content: Buffer } {
  if (big) return big;
  const tree = path.join(tmp, 'big-tree');
  fs.mkdirSync(tree, { recursive: true });
  const content = Buffer.alloc(3 << 20);
  for (let i = 0; i < content.length; i += 4) content.writeUInt32LE((i * 2654435761) >>> 0, i);
  fs.writeFileSync(path.join(tree, 'big.bin'), content);
  const img = path.join(tmp, 'big.sqfs');
  const packed = distri(['pack', tree, img]);
  assert.equal(packed.status, 0, packed.stderr);
  return (big = { img, content });
}

test('cat into a pipe whose reader leaves (| head) ends quietly with status 0', { skip: skipUnless('a shell pipe', 'bash', 'head') }, () => {
  const { img } = bigImage();
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', `${q(process.execPath)} ${q(cli)} cat ${q(img)} big.bin big.bin | head -c 10 > /dev/null`], { encoding: 'utf8', timeout: 120_000 });
  assert.deepEqual({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' });
});

/**
 * stdout by write(2) (src/cli/stdout.ts) must still deliver every byte, in order, to a pipe that
 * another process made non-blocking (write(2) then answers EAGAIN when the pipe is full): the
 * rest goes through Node's stream. Python sets O_NONBLOCK and reads slowly; Node cannot hand a
 * child a non-blocking pipe.
 */
test('cat to a full non-blocking pipe still delivers every byte in order', { skip: skipUnless('a non-blocking pipe', 'python3') }, () => {
  const { img, content } = bigImage();
  const script = [
    'import os, fcntl, subprocess, sys, time, hashlib',
    'r, w = os.pipe()',
    'fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)',
    'p = subprocess.Popen(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)',
    'os.close(w)',
    'h = hashlib.sha256(); n = 0',
    'while True:',
    '    time.sleep(0.001)',
    '    d = os.read(r, 4096)',
    '    if not d: break',
    '    n += len(d); h.update(d)',
    'p.wait()',
    'print(p.returncode, n, h.hexdigest(), p.stderr.read().decode().strip())',
  ].join('\n');
  const r = spawnSync('python3', ['-c', script, process.execPath, cli, 'cat', img, 'big.bin', 'big.bin'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const want = createHash('sha256').update(content).update(content).digest('hex');
  assert.equal(r.stdout.trim(), `0 ${2 * content.length} ${want}`);
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

test('a daemon started before the command parsed anything reports its failures as the command does', () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const junk = path.join(tmp, 'junk.sqfs');
  fs.writeFileSync(junk, Buffer.alloc(4096, 7));
  const missing = path.join(tmp, 'no-such-dir');
  const cases: Array<[string[], RegExp, number?]> = [
    [['mount', demo], /^distri: missing required argument 'mountpoint'$/m],
    [['mount', '-o', 'bogus', demo, mnt], /^distri: mount: unknown -o option "bogus"/m],
    [['mount', '--bogus', demo, mnt], /^distri: unknown option '--bogus'$/m],
    [['mount', demo, missing], new RegExp(`^distri: mount ${demo} on ${missing}: mountpoint ${missing} does not exist$`, 'm')],
    [['mount', junk, mnt], /^distri: mount .*junk\.sqfs on .*: cannot open image .*junk\.sqfs: BAD_MAGIC/m],
    [['mount', '-o', 'subdir=nope', demo, mnt], /^distri: mount .* on .*: subdir=nope: no such directory in the image$/m, 2],
    [['fuse', '--max-open', 'x', mnt], /^distri: fuse: --max-open needs a positive integer, got "x"$/m],
    [['fuse', '--store', path.join(tmp, 'no-such-store'), mnt], /^distri: fuse .*no-such-store on .*: store .*no-such-store: no such directory$/m, 2],
  ];
  const timing = /^distri mount: timing: .*\n/gm;
  try {
    for (const [args, want, status = 1] of cases) {
      const early = distri(args, { DISTRI_MOUNT_TIMING: '1' });
      // The daemon ran, and it was the one that found the problem: the command spawns before parsing.
      assert.match(early.stderr, /timing: .* daemon entry \(pid/, `distri ${args.join(' ')}: the daemon started`);
      const asBefore = distri(args, { DISTRI_NO_EARLY_DAEMON: '1' });
      assert.equal(early.status, status, `distri ${args.join(' ')}: ${early.stderr}`);
      assert.match(early.stderr, want);
      assert.deepEqual({ status: early.status, stderr: early.stderr.replace(timing, '') }, { status: asBefore.status, stderr: asBefore.stderr }, `distri ${args.join(' ')}`);
      assert.ok(!mountedAt(mnt), `nothing mounted on ${mnt}`);
    }
    // --help stays with the command: no daemon, the same text.
    const help = distri(['mount', '--help'], { DISTRI_MOUNT_TIMING: '1' });
    assert.equal(help.status, 0);
    assert.doesNotMatch(help.stderr, /daemon entry/);
    assert.equal(help.stdout, distri(['mount', '--help'], { DISTRI_NO_EARLY_DAEMON: '1' }).stdout);
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});

test("a daemon killed before it reports still gets 'f' written to notify_pipe, by the waiting command", () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const dir = fs.mkdtempSync(path.join(tmp, 'notify-'));
  // Preloaded into every process; only the daemon (it has the readiness descriptor) dies, at once.
  const killer = path.join(dir, 'kill-daemon.js');
  fs.writeFileSync(killer, "if (process.env.DISTRI_MOUNT_READY_FD) process.kill(process.pid, 'SIGKILL');\n");
  try {
    for (const [label, env] of [
      ['daemon first', {}],
      ['command first', { DISTRI_NO_EARLY_DAEMON: '1' }],
    ] as const) {
      for (const args of [
        ['mount', '-o', `ro,notify_pipe=${path.join(dir, 'fifo')}`, demo, mnt],
        ['fuse', '--notify-pipe', path.join(dir, 'fifo'), '--store', dir, mnt],
      ]) {
        const fifo = path.join(dir, 'fifo');
        fs.rmSync(fifo, { force: true });
        assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
        const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        try {
          const r = distri(args, { ...env, NODE_OPTIONS: `--require ${killer}` });
          assert.equal(r.status, 1, `${label}: distri ${args.join(' ')}: ${r.stderr}`);
          assert.match(r.stderr, /killed \(SIGKILL\) before mounting|exited \(SIGKILL\) before mounting/, label);
          const got = Buffer.alloc(8);
          let n = 0;
          try {
            n = fs.readSync(fd, got, 0, 8, null);
          } catch {
            n = 0; // EAGAIN: nothing was written
          }
          assert.equal(got.subarray(0, n).toString(), 'f', `${label}: distri ${args[0]} wrote "f" to the notify pipe`);
        } finally {
          fs.closeSync(fd);
        }
        assert.ok(!mountedAt(mnt), `nothing mounted on ${mnt}`);
      }
    }
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});

test("the daemon's reading of a plain mount command line is commander's, and it leaves every other line to commander", async () => {
  /** What commander hands the mount action for `distri ARGS`. */
  const viaCommander = async (args: string[]) => {
    const program = buildProgram('mount');
    let got: unknown;
    program.commands
      .find((c) => c.name() === 'mount')!
      .action((image: string, mountpoint: string, flags: unknown) => {
        got = { image, mountpoint, flags };
      });
    await program.parseAsync(['node', 'distri', ...args]);
    return got;
  };
  const plain = [
    ['mount', 'a.sqfs', 'mnt'],
    ['mount', '-o', 'uid=1,gid=2', 'a.sqfs', '-ooffset=4', 'mnt', '--options', 'cache=8', '--options=ro'],
    ['mount', '--pid-file', 'p', '--transport', 'kernel', 'a.sqfs', 'mnt', '--pid-file=q', '--transport=libfuse'],
    ['mount', 'a.sqfs', 'mnt', '-o', ''],
  ];
  for (const args of plain) {
    const mine = plainMountCommandLine(args);
    assert.ok(mine, `${args.join(' ')} is plain`);
    assert.deepEqual(mine, await viaCommander(args), args.join(' '));
  }
  for (const args of [
    ['mount', 'a.sqfs'],
    ['mount', 'a', 'b', 'c'],
    ['mount', '-f', 'a', 'b'],
    ['-v', 'mount', 'a', 'b'],
    ['mount', '-o', '-x', 'a', 'b'],
    ['mount', '--bogus', 'a', 'b'],
    ['mount', 'a', 'b', '-o'],
  ]) {
    assert.equal(plainMountCommandLine(args), undefined, args.join(' '));
  }
});

test('the look at argv before any parser: which runs start their daemon first, serve here, and what they name', () => {
  // One reading of the words (src/util/argv-scan.ts) behind four questions asked before commander
  // is loaded. Option values are never taken for options or operands, and `--` ends the options.
  assert.deepEqual(scanArgv(['-v', 'mount', '-fo', 'uid=1', '--transport', 'kernel', '--pid-file=p', 'a', '--', '-x']), [
    { kind: 'short', letters: 'v' },
    { kind: 'operand', text: 'mount' },
    { kind: 'short', letters: 'fo', value: 'uid=1' },
    { kind: 'long', name: '--transport', value: 'kernel' },
    { kind: 'long', name: '--pid-file', value: 'p' },
    { kind: 'operand', text: 'a' },
    { kind: 'end' },
    { kind: 'operand', text: '-x' },
  ]);
  const none = {};
  const first: Array<[string[], 'mount' | 'fuse' | undefined]> = [
    [['mount', 'a.sqfs', 'mnt'], 'mount'],
    [['-v', 'fuse', '--store', 's', 'ro'], 'fuse'],
    [['mount', 'debug.sqfs', 'mnt'], 'mount'], // a name with "debug" in it is not -o debug
    [['mount', '-o', 'ro,debug', 'a', 'b'], undefined],
    [['mount', '-ffoo', 'a', 'b'], undefined],
    [['mount', '-fd', 'a', 'b'], undefined],
    [['fuse', '--foreground', 'ro'], undefined],
    [['mount', '--help'], undefined],
    [['mount', 'a', '--', 'b'], undefined],
    [['fuse', '--store', 'mount', 'ro'], 'fuse'], // a value is not the command
    [['info', 'a.sqfs'], undefined],
  ];
  for (const [argv, want] of first) assert.equal(daemonFirstCommand(argv, none), want, argv.join(' '));
  assert.equal(daemonFirstCommand(['mount', 'a', 'b'], { DISTRI_NO_EARLY_DAEMON: '1' }), undefined);

  const serves: Array<[string[], boolean]> = [
    [['mount', '-f', 'a', 'b'], true],
    [['fuse', '-d', 'ro'], true],
    [['fuse', '--debug', 'ro'], true],
    [['mount', 'a', 'b'], false],
    [['mount', '-o', 'fd=3', 'a', 'b'], false], // -o's value is not -f -d
    [['mount', '-fh'], false],
    [['mount', '--', '-f', 'b'], false],
  ];
  for (const [argv, want] of serves) assert.equal(servesHere(argv, none), want, argv.join(' '));
  assert.equal(servesHere(['mount', 'a', 'b'], { DISTRI_MOUNT_READY_FD: '3' }), true);

  assert.equal(notifyPipeIn(['mount', '-o', 'ro,notify_pipe=rel/f', 'a', 'b']), path.resolve('rel/f'));
  assert.equal(notifyPipeIn(['fuse', '--notify-pipe', '/abs/f', 'ro']), '/abs/f');
  assert.equal(notifyPipeIn(['fuse', '--notify-pipe=x', 'ro']), path.resolve('x'));
  assert.equal(notifyPipeIn(['mount', 'a', 'b']), undefined);

  const before = process.env.DISTRI_TRANSPORT;
  delete process.env.DISTRI_TRANSPORT;
  try {
    assert.equal(kernelTransportWanted(['mount', 'a', 'b']), true);
    assert.equal(kernelTransportWanted(['mount', '--transport', 'libfuse', 'a', 'b']), false);
    assert.equal(kernelTransportWanted(['mount', '--transport=libfuse', '--transport', 'kernel', 'a', 'b']), true);
    assert.equal(kernelTransportWanted(['mount', '--', '--transport', 'libfuse']), true);
  } finally {
    if (before !== undefined) process.env.DISTRI_TRANSPORT = before;
  }
});
