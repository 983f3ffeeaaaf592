/**
 * pack's compressor settings, mksquashfs's -X options: xz BCJ filters (--xz-bcj / -Xbcj), xz
 * dictionary size (--xz-dict-size / -Xdict-size), lz4 high compression (--lz4-hc / -Xhc).
 * Oracles: mksquashfs with the same options (the compressor options block, as `unsquashfs -s`
 * prints it, and the listing), unsquashfs's extraction, the kernel's squashfs mount, and the xz
 * tool (liblzma's decoder) for our own xz encoder's filtered blocks.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelAvailable, kernelSupportsCompressor, repoRoot, requireTools, unsquashfsAvailable, withKernelMount, withUnsquashfs } from './oracle';
import { xzCompress } from '../src/codec/xz-encoder';
import { XZ_BCJ_FILTERS } from '../src/codec/bcj';
import { xzDecompress } from '../src/codec/xz';
import { lz4Codec, lz4CompressBlock, lz4DecompressBlock } from '../src/codec/lz4';

const cliPath = path.join(repoRoot(), 'dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-pack-options-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function distri(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** x86-64 ELF programs of this machine (the test's point: machine code BCJ can help). */
const ELF = ['/usr/bin/ls', '/usr/bin/cp', '/usr/bin/mv', '/usr/bin/chmod'].filter((f) => {
  try {
    return fs.readFileSync(f).subarray(0, 4).toString('latin1') === '\x7fELF';
  } catch {
    return false;
  }
});

/** A small tree: programs, text, a directory, a symlink. */
function makeTree(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  for (const f of ELF) fs.copyFileSync(f, path.join(dir, 'bin', path.basename(f)));
  fs.mkdirSync(path.join(dir, 'share/doc'), { recursive: true });
  const text = Array.from({ length: 3000 }, (_, i) => `line ${i}: the quick brown fox ${i % 17} jumps over ${(i * 7) % 13}\n`).join('');
  fs.writeFileSync(path.join(dir, 'share/doc/notes.txt'), text);
  fs.writeFileSync(path.join(dir, 'share/doc/small'), 'small file\n');
  fs.symlinkSync('bin/ls', path.join(dir, 'ls-link'));
  return dir;
}

/** Every path below dir with what identifies it: type, mode, content or target. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.set(rel, `link ${fs.readlinkSync(p)}`);
    else if (st.isFile()) out.set(rel, `file ${mode} ${fs.readFileSync(p).toString('base64')}`);
    else if (st.isDirectory()) {
      out.set(rel, `dir ${mode}`);
      for (const e of fs.readdirSync(p).sort()) walk(path.join(rel, e));
    }
  };
  walk('.');
  return out;
}

function assertSameTree(got: string, want: string, what: string): void {
  const a = snapshot(got);
  const b = snapshot(want);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: paths differ`);
  for (const [k, v] of b) assert.ok(a.get(k) === v, `${what}: ${k} differs`);
}

/** unsquashfs -s lines that describe the compressor (its name and its options block). */
function compressorLines(image: string): string[] {
  const r = spawnSync('unsquashfs', ['-s', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const i = lines.findIndex((l) => l.startsWith('Compression '));
  assert.ok(i >= 0, r.stdout);
  const opts = [lines[i]!];
  for (let j = i + 1; j < lines.length && lines[j]!.startsWith('\t'); j++) opts.push(lines[j]!.trim());
  return opts;
}

function lls(image: string): string {
  const r = spawnSync('unsquashfs', ['-lls', '-n', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/**
 * Packs `tree` with distri (args in distri's spelling) and with mksquashfs (its spelling); checks the
 * options block, the listing, unsquashfs's extraction and a kernel mount; returns our image.
 */
async function packAndCheck(t: import('node:test').TestContext, name: string, tree: string, ours: string[], theirs: string[], comp: string): Promise<string> {
  const image = path.join(tmp, `${name}.sqfs`);
  const r = distri('pack', tree, image, '--quiet', ...ours);
  assert.equal(r.status, 0, r.err);
  const ref = path.join(tmp, `${name}.mksquashfs.sqfs`);
  const m = spawnSync('mksquashfs', [tree, ref, '-noappend', '-no-progress', '-quiet', '-processors', '1', ...theirs], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  assert.deepEqual(compressorLines(image), compressorLines(ref), 'the compressor options block, as unsquashfs -s prints it');
  // info decodes both options blocks the same way.
  const info = (img: string) => JSON.parse(distri('info', '--json', img).out).compressorOptions;
  assert.deepEqual(info(image), info(ref));
  assert.equal(lls(image), lls(ref));
  await withUnsquashfs(image, (dir) => assertSameTree(dir, tree, 'unsquashfs extraction'));
  if (requireTools(t, kernelAvailable(), kernelSupportsCompressor(comp))) {
    await withKernelMount(image, (dir) => assertSameTree(dir, tree, 'kernel mount'));
  }
  return image;
}

const oracles = () => [unsquashfsAvailable(), 'mksquashfs'] as const;

test('--comp xz --xz-bcj x86 --xz-dict-size 50%: the options block mksquashfs -Xbcj x86 -Xdict-size 50% writes; readable by unsquashfs and the kernel', async (t) => {
  if (!requireTools(t, ...oracles())) return;
  const tree = makeTree('xz-bcj');
  const image = await packAndCheck(t, 'xz-bcj', tree, ['--comp', 'xz', '--xz-bcj', 'x86', '--xz-dict-size', '50%'], ['-comp', 'xz', '-Xbcj', 'x86', '-Xdict-size', '50%'], 'xz');
  assert.deepEqual(compressorLines(image), ['Compression xz', 'Dictionary size 65536', 'Filters selected: x86']);
});

test('-Xbcj x86,arm and -Xdict-size 32K, spelled as mksquashfs spells them, with 64 KiB blocks', async (t) => {
  if (!requireTools(t, ...oracles())) return;
  const tree = makeTree('xz-mk-spelling');
  await packAndCheck(t, 'xz-mk-spelling', tree, ['--comp', 'xz', '-b', '64K', '-Xbcj', 'x86,arm', '-Xdict-size', '32K'], ['-comp', 'xz', '-b', '64K', '-Xbcj', 'x86,arm', '-Xdict-size', '32K'], 'xz');
});

test('--xz-dict-size alone (96K of 128K blocks): recorded as mksquashfs records it', async (t) => {
  if (!requireTools(t, ...oracles())) return;
  const tree = makeTree('xz-dict');
  const image = await packAndCheck(t, 'xz-dict', tree, ['--comp', 'xz', '--xz-dict-size', '96K'], ['-comp', 'xz', '-Xdict-size', '96K'], 'xz');
  assert.deepEqual(compressorLines(image), ['Compression xz', 'Dictionary size 98304', 'No filters specified']);
});

test('--comp lz4 --lz4-hc (-Xhc): the HC flag as mksquashfs -Xhc writes it; readable by unsquashfs and the kernel; smaller than plain lz4', async (t) => {
  if (!requireTools(t, ...oracles())) return;
  const tree = makeTree('lz4-hc');
  const hc = await packAndCheck(t, 'lz4-hc', tree, ['--comp', 'lz4', '-Xhc'], ['-comp', 'lz4', '-Xhc'], 'lz4');
  assert.ok(compressorLines(hc).includes('High Compression option specified (-Xhc)'));
  const plain = path.join(tmp, 'lz4-plain.sqfs');
  assert.equal(distri('pack', tree, plain, '--quiet', '--comp', 'lz4').status, 0);
  const [a, b] = [fs.statSync(hc).size, fs.statSync(plain).size];
  assert.ok(a < b, `lz4 -Xhc image ${a} bytes, plain lz4 ${b}`);
});

test('the lz4 HC search makes smaller blocks than our fast search (itself smaller than lz4-napi), which decode to the input', () => {
  const tree = makeTree('lz4-blocks');
  const files = [...ELF.map((f) => path.join(tree, 'bin', path.basename(f))), path.join(tree, 'share/doc/notes.txt')];
  for (const f of files) {
    const block = new Uint8Array(fs.readFileSync(f).subarray(0, 131072));
    const hc = lz4Codec.compress!(block, { lz4HighCompression: true })!;
    const fast = lz4CompressBlock(block)!;
    assert.ok(hc.length < fast.length, `${f}: HC ${hc.length} bytes, fast ${fast.length}`);
    assert.ok(Buffer.from(block).equals(lz4DecompressBlock(hc, block.length)), `${f}: HC block decodes to other bytes`);
  }
});

test('--xz-bcj x86 makes an image of x86 programs smaller', (t) => {
  if (ELF.length === 0) return void t.skip('no ELF programs in /usr/bin');
  const tree = makeTree('xz-size');
  const sizes = ['', 'x86'].map((bcj) => {
    const image = path.join(tmp, `xz-size-${bcj || 'none'}.sqfs`);
    const r = distri('pack', tree, image, '--quiet', '--comp', 'xz', ...(bcj ? ['--xz-bcj', bcj] : []));
    assert.equal(r.status, 0, r.err);
    return fs.statSync(image).size;
  });
  assert.ok(sizes[1]! < sizes[0]!, `with x86 BCJ ${sizes[1]} bytes, without ${sizes[0]}`);
});

test('our own xz encoder: each BCJ filter and a smaller dictionary give streams liblzma (xz -d) decodes to the input; x86 helps on x86 code', (t) => {
  if (!requireTools(t, 'xz')) return;
  if (ELF.length === 0) return void t.skip('no ELF programs in /usr/bin');
  const input = new Uint8Array(fs.readFileSync(ELF[0]!).subarray(0, 131072));
  const plain = xzCompress(input)!;
  for (const bcj of XZ_BCJ_FILTERS) {
    const stream = xzCompress(input, { bcj, dictSize: 65536 })!;
    assert.ok(stream, bcj.name);
    const x = spawnSync('xz', ['-dc'], { input: stream, maxBuffer: 1 << 24 });
    assert.equal(x.status, 0, `${bcj.name}: ${x.stderr}`);
    assert.ok(Buffer.from(input).equals(x.stdout), `${bcj.name}: xz -d gives other bytes`);
    assert.ok(Buffer.from(input).equals(xzDecompress(stream, input.length)), `${bcj.name}: our decoder gives other bytes`);
    const list = spawnSync('xz', ['--robot', '-lvv', '-'], { input: stream, encoding: 'latin1' });
    // The block header names the chain: e.g. "--x86 --lzma2=dict=64KiB".
    if (list.status === 0) assert.match(list.stdout, new RegExp(`--${bcj.name} --lzma2=dict=64KiB`));
    if (bcj.name === 'x86') assert.ok(stream.length < plain.length, `x86 BCJ ${stream.length} bytes, none ${plain.length}`);
  }
});

test('bad compressor settings: distri: errors, exit 1, no image', () => {
  const tree = makeTree('bad');
  const image = path.join(tmp, 'bad.sqfs');
  const cases: Array<[string[], RegExp]> = [
    [['--comp', 'xz', '--xz-dict-size', '100K'], /--xz-dict-size 100K \(102400 bytes\): an xz header can only state 2\^n or 2\^n \+ 2\^\(n-1\)/],
    [['--comp', 'xz', '-Xdict-size', '256K'], /larger than the block size \(131072\)/],
    [['--comp', 'xz', '--xz-dict-size', '4K'], /must be 8K or more/],
    [['--comp', 'xz', '--xz-dict-size', 'lots'], /--xz-dict-size must be bytes, a size like 64K/],
    [['--comp', 'xz', '-Xbcj', 'mips'], /--xz-bcj: unknown filter "mips" \(known: x86, powerpc, ia64, arm, armthumb, sparc\)/],
    [['--comp', 'gzip', '-Xbcj', 'x86'], /--xz-bcj applies to --comp xz only, not gzip/],
    [['--comp', 'zstd', '--xz-dict-size', '64K'], /--xz-dict-size applies to --comp xz only/],
    [['--comp', 'xz', '--lz4-hc'], /--lz4-hc applies to --comp lz4 only, not xz/],
  ];
  for (const [args, message] of cases) {
    const r = distri('pack', tree, image, ...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /^distri: /, args.join(' '));
    assert.match(r.err, message, args.join(' '));
    assert.ok(!fs.existsSync(image), `${args.join(' ')} left an image`);
  }
});

test('pack --help explains each setting with an example, and the -X spellings', () => {
  const r = distri('pack', '--help');
  assert.equal(r.status, 0);
  for (const s of ['--xz-bcj <filters>', '--xz-dict-size <size>', '--lz4-hc', '-Xbcj', '-Xdict-size', '-Xhc', 'distri pack --comp xz --xz-bcj x86', 'distri pack --comp lz4 --lz4-hc']) {
    assert.ok(r.out.includes(s), `--help lacks ${s}`);
  }
});
