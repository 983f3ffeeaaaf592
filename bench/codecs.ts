// Decode throughput of each block codec on real SquashFS data blocks.
//   npx tsc -p . && node dist/bench/codecs.js [corpus-MB (default 12)] [rounds (default 7)]
// Builds a corpus (x86-64 code from the node binary, TypeScript's compiler JS, C headers), packs it with the
// real mksquashfs once per compressor (-noI -noF -no-fragments, 128 KiB blocks), cuts the compressed data
// blocks out of each image, checks every decoded block against the corpus, then times whole rounds over all
// blocks. MB/s = decoded bytes (10^6) per second, median of the rounds, single thread.
// Each codec runs its default decoder (lz4-napi, zstd-napi, liblzma where installed); bench/decoders.ts
// compares every candidate on an image's blocks.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { codecById, codecByName } from '../src/codec';
import { _setZstdBackendForTest } from '../src/codec/zstd';
import { median } from './lib';

const BS = 131072;
const corpusMB = Number(process.argv[2] ?? 12);
const rounds = Number(process.argv[3] ?? 7);

function readSome(file: string, at: number, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, fs.readSync(fd, b, 0, n, at));
  } finally {
    fs.closeSync(fd);
  }
}

function headers(limit: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (total >= limit) return;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.h')) {
        const b = fs.readFileSync(p);
        parts.push(b);
        total += b.length;
      }
    }
  };
  if (fs.existsSync('/usr/include')) walk('/usr/include');
  return Buffer.concat(parts).subarray(0, limit);
}

const MB = 1024 * 1024;
const corpus = Buffer.concat([
  readSome(process.execPath, 16 * MB, Math.round(corpusMB * 0.5 * MB)),
  readSome(require.resolve('typescript/lib/typescript.js'), 0, Math.round(corpusMB * 0.3 * MB)),
  headers(Math.round(corpusMB * 0.2 * MB)),
]);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'codec-bench-'));
const src = path.join(tmp, 'corpus');
fs.writeFileSync(src, corpus);

function blocksOf(args: string[]): { id: number; blocks: { data: Uint8Array; expected: Buffer }[] } {
  const img = path.join(tmp, 'img');
  execFileSync('mksquashfs', [src, img, '-noappend', '-no-xattrs', '-no-fragments', '-noI', '-noF', '-noX', '-b', String(BS), '-quiet', '-no-progress', ...args], { stdio: 'ignore' });
  const b = fs.readFileSync(img);
  const inodes = Number(b.readBigUInt64LE(64)) + 2; // uncompressed inode table: skip the metadata header
  if (b.readUInt16LE(inodes) !== 2) throw new Error('expected a basic file inode first');
  let pos = b.readUInt32LE(inodes + 16);
  const n = Math.ceil(b.readUInt32LE(inodes + 28) / BS);
  const blocks = [];
  for (let i = 0; i < n; i++) {
    const e = b.readUInt32LE(inodes + 32 + 4 * i);
    const size = e & 0xffffff;
    if ((e & 0x1000000) === 0) blocks.push({ data: b.subarray(pos, pos + size), expected: corpus.subarray(i * BS, Math.min((i + 1) * BS, corpus.length)) });
    pos += size;
  }
  return { id: b.readUInt16LE(20), blocks };
}

function time(fn: () => number): number {
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint();
    const bytes = fn();
    rates.push(bytes / (Number(process.hrtime.bigint() - t) / 1e9) / 1e6);
  }
  return median(rates);
}

const variants: [string, string[]][] = [
  ['gzip', ['-comp', 'gzip']],
  ['lzo (lzo1x_999)', ['-comp', 'lzo']],
  ['lzo (lzo1x_1)', ['-comp', 'lzo', '-Xalgorithm', 'lzo1x_1']],
  ['xz', ['-comp', 'xz']],
  ['xz -Xbcj x86', ['-comp', 'xz', '-Xbcj', 'x86']],
  ['lz4', ['-comp', 'lz4']],
  ['lz4 -Xhc', ['-comp', 'lz4', '-Xhc']],
  ['zstd (native where installed)', ['-comp', 'zstd']],
  ['zstd (WASM)', ['-comp', 'zstd']],
  ['zstd (fzstd fallback)', ['-comp', 'zstd']],
  ['lzma', ['-comp', 'lzma']],
];

console.log(`corpus ${(corpus.length / 1e6).toFixed(1)} MB, ${rounds} rounds, node ${process.version}`);
console.log('codec                      blocks   decode MB/s');
try {
  for (const [name, args] of variants) {
    const { id, blocks } = blocksOf(args);
    const codec = codecById(id);
    _setZstdBackendForTest(name.includes('fzstd') ? 'fzstd' : name.includes('WASM') ? 'wasm' : 'auto');
    for (const b of blocks) if (!Buffer.from(codec.decompress(b.data, BS)).equals(b.expected)) throw new Error(`${name}: wrong output`);
    const rate = time(() => {
      let n = 0;
      for (const b of blocks) n += codec.decompress(b.data, BS).length;
      return n;
    });
    console.log(`${name.padEnd(26)} ${String(blocks.length).padStart(6)}   ${rate.toFixed(0).padStart(6)}`);
  }
  _setZstdBackendForTest('auto');
  console.log('\ncodec       compress MB/s (input)   size vs input');
  const blocks: Buffer[] = [];
  for (let i = 0; i < corpus.length; i += BS) blocks.push(corpus.subarray(i, i + BS));
  for (const [name, level] of [
    ['gzip', 9],
    ['gzip', 1],
    ['lz4', undefined],
  ] as const) {
    const codec = codecByName(name);
    let out = 0;
    for (const b of blocks) out += codec.compress!(b, { level })?.length ?? b.length;
    const rate = time(() => {
      for (const b of blocks) codec.compress!(b, { level });
      return corpus.length;
    });
    console.log(`${(name + (level ? ` -${level}` : '')).padEnd(11)} ${rate.toFixed(0).padStart(8)}              ${((100 * out) / corpus.length).toFixed(1)} %`);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
