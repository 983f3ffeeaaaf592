// Block codecs against real data: images built by the real mksquashfs (and streams from the xz CLI),
// their data blocks cut out by a minimal parser here (independent of the reader), each decoded and
// compared byte for byte with the source. Then corrupt input, output limits, and round trips, including
// images whose blocks we compressed ourselves, extracted by the real unsquashfs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { allCodecs, codecById, codecByName, lazyCodecById, type Codec } from '../src/codec';
import { _setLz4DecoderForTest, lz4DecoderName, lz4NativeDecoder } from '../src/codec/lz4';
import { liblz4DecoderAvailable } from '../src/codec/lz4-liblz4';
import { _setGzipIntoForTest, gzipHandleSource, gzipIntoName } from '../src/codec/gzip';
import { _setLzoDecoderForTest, lzoDecoderName } from '../src/codec/lzo';
import { _setXzDecoderForTest, xzDecoderName } from '../src/codec/xz';
import { _setZstdBackendForTest, zstdBackend } from '../src/codec/zstd';
import { SquashfsError } from '../src/errors';
import { xorshift32 } from '../src/util/xorshift';
import { requireTools, skipUnless, type Availability } from './oracle/tools';

const BS = 131072;
const SQUASHFS_MAGIC = 0x73717368;

// ---------- deterministic source data ----------

function randomBytes(n: number, seed: number): Buffer {
  const r = xorshift32(seed);
  const b = Buffer.alloc(n + 4);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(r(), i);
  return b.subarray(0, n);
}

function text(n: number, seed: number): Buffer {
  const words = 'squashfs inode block fragment directory table compressed superblock metadata the of and a to in is for lookup xattr uid gid export data'.split(' ');
  const r = xorshift32(seed);
  let s = '';
  let line = 0;
  while (s.length < n) {
    s += words[r() % words.length];
    s += ++line % 12 === 0 ? '.\n' : ' ';
    if (r() % 50 === 0) s += `${r() % 100000} `;
  }
  return Buffer.from(s.slice(0, n), 'latin1');
}

/** x86-64 machine code and ELF data from the node binary itself (a large, real ELF). */
function elf(n: number, at: number): Buffer {
  const fd = fs.openSync(process.execPath, 'r');
  try {
    const b = Buffer.alloc(n);
    fs.readSync(fd, b, 0, n, at);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

// ELF code, text, random (stored uncompressed by mksquashfs), ELF again, and a short text tail block.
const SOURCE = Buffer.concat([elf(640 * 1024, 0), text(320 * 1024, 1), randomBytes(192 * 1024, 2), elf(200 * 1024, 0x2000000), text(20000, 3)]);

// ---------- a minimal SquashFS parser: just enough to cut one file's data blocks out of an image ----------

interface Block {
  index: number;
  data: Uint8Array; // as on disk
  compressed: boolean;
  expected: Buffer; // the source bytes it holds
}

interface Image {
  image: Buffer;
  compressionId: number;
  blockSize: number;
  blocksStart: number;
  /** Offset of the block list inside the image (valid because the inode table is stored uncompressed). */
  blockListAt: number;
  blocks: Block[];
}

function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  assert.ok(v <= BigInt(Number.MAX_SAFE_INTEGER));
  return Number(v);
}

/** Parses an image made with -noI -noF -noX -no-fragments holding exactly one regular file. */
function parseSingleFileImage(image: Buffer, source: Buffer): Image {
  assert.equal(image.readUInt32LE(0), SQUASHFS_MAGIC, 'squashfs magic');
  assert.equal(image.readUInt16LE(28), 4, 'major version');
  const blockSize = image.readUInt32LE(12);
  const compressionId = image.readUInt16LE(20);
  const inodeTable = u64(image, 64); // inode_table_start
  // The first metadata block of the inode table; with -noI its 2-byte header has bit 15 set (stored).
  const header = image.readUInt16LE(inodeTable);
  assert.ok(header & 0x8000, 'inode table must be stored uncompressed (-noI)');
  const at = inodeTable + 2;
  // Inodes of a directory's entries come before the directory's own inode: the file's inode is first.
  const type = image.readUInt16LE(at);
  let blocksStart: number;
  let fileSize: number;
  let fragment: number;
  let list: number;
  if (type === 2) {
    // basic file: 16-byte common header, blocks_start u32, fragment u32, offset u32, file_size u32
    blocksStart = image.readUInt32LE(at + 16);
    fragment = image.readUInt32LE(at + 20);
    fileSize = image.readUInt32LE(at + 28);
    list = at + 32;
  } else if (type === 9) {
    // extended file: blocks_start u64, file_size u64, sparse u64, nlink, fragment, offset, xattr
    blocksStart = u64(image, at + 16);
    fileSize = u64(image, at + 24);
    fragment = image.readUInt32LE(at + 44);
    list = at + 56;
  } else {
    assert.fail(`first inode has type ${type}, expected a regular file`);
  }
  assert.equal(fileSize, source.length, 'file size in inode');
  assert.equal(fragment, 0xffffffff, 'no fragment (-no-fragments)');
  const n = Math.ceil(fileSize / blockSize);
  assert.ok(list + 4 * n <= inodeTable + 2 + (header & 0x7fff), 'block list fits in the first metadata block');
  const blocks: Block[] = [];
  let pos = blocksStart;
  for (let i = 0; i < n; i++) {
    const entry = image.readUInt32LE(list + 4 * i);
    const size = entry & 0xffffff;
    const compressed = (entry & 0x1000000) === 0; // bit 24 set = stored uncompressed
    assert.ok(size > 0, 'no sparse blocks expected');
    blocks.push({ index: i, data: image.subarray(pos, pos + size), compressed, expected: source.subarray(i * blockSize, Math.min((i + 1) * blockSize, fileSize)) });
    pos += size;
  }
  return { image, compressionId, blockSize, blocksStart, blockListAt: list, blocks };
}

// ---------- building real images ----------

let tmp = '';
let sourceFile = '';
const mksquashfsHelp = (() => {
  const r = spawnSync('mksquashfs', ['-help'], { encoding: 'utf8' });
  return (r.stdout ?? '') + (r.stderr ?? '');
})();
const haveMksquashfs: Availability = /Compressors available/.test(mksquashfsHelp) ? { ok: true } : { ok: false, why: 'mksquashfs not installed (no compressor list in its -help)' };

function supports(comp: string): boolean {
  const section = mksquashfsHelp.split(/Compressors available and compressor specific options:/)[1] ?? mksquashfsHelp;
  return new RegExp(`^\\s+${comp}\\b`, 'm').test(section);
}

let imageCount = 0;
function mksquashfs(args: string[]): Buffer {
  const img = path.join(tmp, `img${imageCount++}.sqfs`);
  execFileSync('mksquashfs', [sourceFile, img, '-noappend', '-no-xattrs', '-no-fragments', '-noI', '-noF', '-noX', '-b', String(BS), '-quiet', '-no-progress', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return fs.readFileSync(img);
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'codec-test-'));
  sourceFile = path.join(tmp, 'source.bin');
  fs.writeFileSync(sourceFile, SOURCE);
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function expectDecompressFailed(fn: () => unknown, what: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `${what}: expected an error, decoding succeeded`);
  assert.ok(thrown instanceof SquashfsError, `${what}: expected SquashfsError, got ${String(thrown)}`);
  assert.equal(thrown.code, 'DECOMPRESS_FAILED', `${what}: ${thrown.message}`);
}

// Every compressor and variant mksquashfs offers. Blocks are kept for the corruption tests below.
const VARIANTS: { name: string; comp: string; args: string[]; id: number }[] = [
  { name: 'gzip', comp: 'gzip', args: [], id: 1 },
  { name: 'gzip level 1', comp: 'gzip', args: ['-Xcompression-level', '1'], id: 1 },
  ...['lzo1x_1', 'lzo1x_1_11', 'lzo1x_1_12', 'lzo1x_1_15', 'lzo1x_999'].map((a) => ({ name: `lzo ${a}`, comp: 'lzo', args: ['-Xalgorithm', a], id: 3 })),
  { name: 'xz', comp: 'xz', args: [], id: 4 },
  ...['x86', 'arm', 'armthumb', 'powerpc', 'sparc', 'ia64'].map((f) => ({ name: `xz bcj ${f}`, comp: 'xz', args: ['-Xbcj', f], id: 4 })),
  { name: 'xz all bcj', comp: 'xz', args: ['-Xbcj', 'x86,arm,armthumb,powerpc,sparc,ia64'], id: 4 },
  { name: 'lz4', comp: 'lz4', args: [], id: 5 },
  { name: 'lz4 hc', comp: 'lz4', args: ['-Xhc'], id: 5 },
  { name: 'zstd', comp: 'zstd', args: [], id: 6 },
  { name: 'zstd level 1', comp: 'zstd', args: ['-Xcompression-level', '1'], id: 6 },
  { name: 'lzma', comp: 'lzma', args: [], id: 2 },
];

/** A compressed block per codec id (the short tail block and a full one), for the corruption tests. */
const samples = new Map<number, { small: Block; full: Block }>();

/** Which xz filter chains the blocks of an image used (read from each block header), for the test log. */
function xzFilterIds(block: Uint8Array): string {
  // After the 12-byte stream header: header size byte, flags, [compressed size], [uncompressed size] (VLIs).
  const flags = block[13]!;
  let p = 14;
  const skipVli = () => {
    while (block[p++]! & 0x80);
  };
  if (flags & 0x40) skipVli();
  if (flags & 0x80) skipVli();
  const ids: string[] = [];
  for (let i = 0; i < (flags & 3) + 1; i++) {
    ids.push(block[p]!.toString(16));
    p += 2 + block[p + 1]!;
  }
  return ids.join(',');
}

describe('decoding real mksquashfs images', { skip: skipUnless('decoding real mksquashfs images', haveMksquashfs) }, () => {
  for (const v of VARIANTS) {
    const skip = skipUnless(v.name, haveMksquashfs, supports(v.comp) ? { ok: true } : { ok: false, why: `this mksquashfs has no -comp ${v.comp}` });
    test(v.name, { skip, timeout: 60_000 }, () => {
      const img = parseSingleFileImage(mksquashfs(['-comp', v.comp, ...v.args]), SOURCE);
      assert.equal(img.compressionId, v.id);
      const codec = codecById(v.id);
      const compressed = img.blocks.filter((b) => b.compressed);
      assert.ok(compressed.length >= 8, `expected most blocks compressed, got ${compressed.length}/${img.blocks.length}`);
      assert.ok(
        img.blocks.some((b) => !b.compressed),
        'the random-data blocks should have been stored uncompressed',
      );
      const chains = new Map<string, number>();
      for (const b of compressed) {
        const out = codec.decompress(b.data, img.blockSize);
        assert.ok(Buffer.from(out).equals(b.expected), `${v.name}: block ${b.index} differs from the source`);
        if (v.id === 4) {
          const c = xzFilterIds(b.data);
          chains.set(c, (chains.get(c) ?? 0) + 1);
        }
      }
      if (chains.size) console.log(`  ${v.name}: filter chains used ${[...chains].map(([c, n]) => `[${c}]x${n}`).join(' ')}`);
      if (!samples.has(v.id)) {
        const small = compressed.find((b) => b.expected.length < img.blockSize);
        assert.ok(small, 'tail block is compressed');
        samples.set(v.id, { small, full: compressed[0]! });
      }
    });
  }
});

// The xz CLI forces each BCJ filter (mksquashfs only keeps a filter when it wins) and the other check types.
describe('xz and lzma streams from the xz CLI', { skip: skipUnless('xz CLI streams', 'xz') }, () => {
  const chunk = Buffer.concat([SOURCE.subarray(0, 96 * 1024), SOURCE.subarray(700 * 1024, 732 * 1024)]);
  const xz = (args: string[], data: Buffer) => execFileSync('xz', ['-c', ...args], { input: data, maxBuffer: 1 << 26 });
  const cases: [string, string[]][] = [
    ...['x86', 'powerpc', 'ia64', 'arm', 'armthumb', 'sparc'].map((f): [string, string[]] => [f, ['--format=xz', '--check=crc32', `--${f}`, '--lzma2=preset=6']]),
    ['x86 with start offset', ['--format=xz', '--check=crc32', '--x86=start=4096', '--lzma2=preset=6']],
    ['delta', ['--format=xz', '--check=crc32', '--delta=dist=4', '--lzma2=preset=6']],
    ['check none', ['--format=xz', '--check=none']],
    ['check crc64', ['--format=xz', '--check=crc64']],
    ['check sha256', ['--format=xz', '--check=sha256']],
    ['lc=4 lp=0 pb=0', ['--format=xz', '--lzma2=lc=4,lp=0,pb=0']],
    ['lc=0 lp=4 pb=4', ['--format=xz', '--lzma2=lc=0,lp=4,pb=4']],
  ];
  for (const [name, args] of cases) {
    test(name, () => {
      const stream = xz(args, chunk);
      assert.ok(Buffer.from(codecByName('xz').decompress(stream, BS)).equals(chunk));
      expectDecompressFailed(() => codecByName('xz').decompress(stream, chunk.length - 1), `${name} with a limit one byte short`);
    });
  }
  test('1 MiB block: several LZMA2 chunks, stored chunks for random data, several xz blocks', () => {
    const big = Buffer.concat([SOURCE.subarray(0, 600 * 1024), randomBytes(300 * 1024, 9), text(124 * 1024, 4)]);
    for (const args of [
      ['--format=xz', '-6e'],
      ['--format=xz', '--block-size=200000', '-1'],
      ['--format=xz', '-T2', '--block-size=300000'],
    ]) {
      const stream = xz(args, big);
      assert.ok(Buffer.from(codecByName('xz').decompress(stream, 1 << 20)).equals(big), args.join(' '));
    }
  });
  test('two concatenated streams with stream padding', () => {
    const a = xz(['--format=xz'], chunk.subarray(0, 5000));
    const b = xz(['--format=xz'], chunk.subarray(5000));
    assert.ok(Buffer.from(codecByName('xz').decompress(Buffer.concat([a, Buffer.alloc(8), b]), BS)).equals(chunk));
    expectDecompressFailed(() => codecByName('xz').decompress(Buffer.concat([a, Buffer.alloc(3), b]), BS), 'padding not a multiple of 4');
  });
  test('legacy lzma: unknown size with end marker (xz --format=lzma)', () => {
    for (const args of [['--format=lzma'], ['--format=lzma', '--lzma1=preset=1,lc=0,lp=2,pb=0']]) {
      const stream = xz(args, chunk);
      assert.ok(Buffer.from(codecByName('lzma').decompress(stream, BS)).equals(chunk));
      assert.ok(Buffer.from(codecByName('lzma').decompress(stream, chunk.length)).equals(chunk), 'exact limit');
      expectDecompressFailed(() => codecByName('lzma').decompress(stream, chunk.length - 1), 'limit one byte short');
    }
  });
});

describe('zstd backends', () => {
  test('the native decoder is in use where zstd-napi installed, else the WASM one', () => {
    let native = true;
    try {
      require.resolve('zstd-napi/binding');
    } catch {
      native = false;
    }
    assert.equal(zstdBackend(), native ? 'native' : 'wasm');
  });
  test('zstd CLI frames: 1 MiB, large limits (WASM memory growth), multiple frames', { skip: skipUnless('zstd CLI frames', 'zstd') }, () => {
    const big = Buffer.concat([SOURCE.subarray(0, 900 * 1024), text(124 * 1024, 8)]);
    const frame = execFileSync('zstd', ['-c', '-19', '--no-check'], { input: big, maxBuffer: 1 << 26 });
    const z = codecByName('zstd');
    assert.ok(Buffer.from(z.decompress(frame, 1 << 20)).equals(big));
    assert.ok(Buffer.from(z.decompress(frame, 48 << 20)).equals(big));
    expectDecompressFailed(() => z.decompress(frame, (1 << 20) - 1), 'limit one byte short');
    const two = Buffer.concat([execFileSync('zstd', ['-c'], { input: big.subarray(0, 1000) }), execFileSync('zstd', ['-c', '--check'], { input: big.subarray(1000, 50000) })]);
    assert.ok(Buffer.from(z.decompress(two, BS)).equals(big.subarray(0, 50000)));
    const checked = execFileSync('zstd', ['-c', '--check'], { input: big.subarray(0, 50000) });
    checked[checked.length - 1]! ^= 1;
    expectDecompressFailed(() => z.decompress(checked, BS), 'bad content checksum');
  });
  test('fzstd fallback (used when WebAssembly is unavailable) on real blocks and corrupt input', (t) => {
    const s = samples.get(6);
    if (!requireTools(t, s ? { ok: true } : { ok: false, why: 'no zstd image (its mksquashfs test did not run)' }) || !s) return;
    _setZstdBackendForTest('fzstd');
    try {
      assert.equal(zstdBackend(), 'fzstd');
      const z = codecByName('zstd');
      for (const b of [s.small, s.full]) {
        assert.ok(Buffer.from(z.decompress(b.data, BS)).equals(b.expected));
        expectDecompressFailed(() => z.decompress(b.data, b.expected.length - 1), 'fallback, limit one byte short');
        expectDecompressFailed(() => z.decompress(b.data.subarray(0, b.data.length >> 1), BS), 'fallback, truncated');
      }
      expectDecompressFailed(() => z.decompress(new Uint8Array(0), BS), 'fallback, empty');
      for (let seed = 1; seed <= 20; seed++) expectDecompressFailedOrBounded(z, randomBytes(500, seed), BS, 'fallback, random');
    } finally {
      _setZstdBackendForTest('auto');
    }
    assert.notEqual(zstdBackend(), 'fzstd');
  });
});

describe('registry', () => {
  test('gzip: the kept zlib context passes its self-check on this Node (its sample stream is valid)', () => {
    // The check inflates a zlib stream kept as bytes in gzip.ts; were those bytes wrong, every
    // whole-file gzip read would quietly fall back to inflateSync and a copy.
    assert.equal(gzipIntoName(), 'handle');
  });

  test("gzip: on Node 20 to 22 the kept context comes from the zlib binding, not from node:zlib's streams", () => {
    const major = Number(process.versions.node.split('.')[0]);
    assert.equal(gzipHandleSource(), major >= 20 && major <= 22 ? 'binding' : 'stream');
  });

  test('ids and names', () => {
    const expected: [number, string][] = [
      [1, 'gzip'],
      [2, 'lzma'],
      [3, 'lzo'],
      [4, 'xz'],
      [5, 'lz4'],
      [6, 'zstd'],
    ];
    for (const [id, name] of expected) {
      assert.equal(codecById(id).name, name);
      assert.equal(codecByName(name).id, id);
    }
    for (const bad of [0, 7, -1, 1.5, 65535]) {
      assert.throws(
        () => codecById(bad),
        (e: unknown) => e instanceof SquashfsError && e.code === 'UNSUPPORTED' && e.message.includes(`compressor id ${bad}`),
      );
    }
    assert.throws(
      () => codecByName('brotli'),
      (e: unknown) => e instanceof SquashfsError && e.code === 'UNSUPPORTED',
    );
  });

  test("an image's lazily loaded codec offers decompressInto exactly where the codec has it, with the same bytes", () => {
    // The reader picks its whole-file path by the presence of decompressInto (DataReader.stream).
    for (const c of allCodecs()) {
      const lazy = lazyCodecById(c.id);
      assert.equal(lazy.name, c.name);
      assert.equal(typeof lazy.decompressInto, typeof c.decompressInto, `${c.name}: decompressInto`);
      if (!lazy.decompressInto) continue;
      const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `block line ${i % 101}\n`).join(''));
      const packed = c.compress!(text)!;
      const out = new Uint8Array(text.length);
      assert.equal(lazy.decompressInto(packed, out), text.length, c.name);
      assert.deepEqual(Buffer.from(out), text, c.name);
    }
    assert.deepEqual(
      allCodecs()
        .filter((c) => lazyCodecById(c.id).decompressInto)
        .map((c) => c.name)
        .sort(),
      ['gzip', 'lz4', 'lzo', 'zstd'],
    );
  });
});

// ---------- corrupt input ----------

function sampleFor(id: number): { small: Block; full: Block } | undefined {
  return samples.get(id);
}

/**
 * Every decoder a codec may run here: the native or WASM one it picks where installed, and each
 * fallback, forced in turn (each must stand on hostile input alone).
 */
function decoders(codec: Codec): { label: string; use: () => void; reset: () => void; codec?: Codec }[] {
  const list = decoderChoices(codec);
  // Where the codec also decodes into a caller's buffer (DataReader.stream), each decoder once more
  // that way: the same bytes, the same errors, and never a byte written past the buffer.
  if (!codec.decompressInto) return list;
  return [...list, ...list.map((d) => ({ ...d, label: `${d.label}, into a given buffer`, codec: viaInto(codec) }))];
}

/** The codec with decompress() done by decompressInto() into a buffer with guard bytes after it. */
function viaInto(codec: Codec): Codec {
  const into = codec.decompressInto!;
  return {
    id: codec.id,
    name: codec.name,
    decompress(input: Uint8Array, maxOutput: number): Uint8Array {
      const room = Buffer.alloc(maxOutput + 64, 0xa5);
      let n: number;
      try {
        n = into.call(codec, input, room.subarray(0, maxOutput));
      } finally {
        assert.ok(
          room.subarray(maxOutput).every((b) => b === 0xa5),
          `${codec.name}: decompressInto wrote past the ${maxOutput}-byte buffer`,
        );
      }
      assert.ok(Number.isInteger(n) && n >= 0 && n <= maxOutput, `${codec.name}: decompressInto returned ${n} for a ${maxOutput}-byte buffer`);
      return Uint8Array.prototype.slice.call(room, 0, n);
    },
  };
}

function decoderChoices(codec: Codec): { label: string; use: () => void; reset: () => void }[] {
  const auto = { label: codec.name, use: () => {}, reset: () => {} };
  switch (codec.name) {
    case 'lz4':
      return [
        { ...auto, label: `lz4 (${lz4DecoderName()})` },
        ...(['liblz4', 'lz4-napi', 'builtin'] as const)
          .filter((d) => d !== lz4DecoderName() && (d !== 'liblz4' || liblz4DecoderAvailable()) && (d !== 'lz4-napi' || lz4NativeDecoder()))
          .map((d) => ({ label: `lz4 (${d})`, use: () => _setLz4DecoderForTest(d), reset: () => _setLz4DecoderForTest('auto') })),
      ];
    case 'lzo':
      return lzoDecoderName() === 'liblzo'
        ? [
            { ...auto, label: 'lzo (liblzo)' },
            { label: 'lzo (ours)', use: () => _setLzoDecoderForTest('builtin'), reset: () => _setLzoDecoderForTest('auto') },
          ]
        : [auto];
    case 'xz':
      return xzDecoderName() === 'liblzma'
        ? [
            { ...auto, label: 'xz (liblzma)' },
            { label: 'xz (ours)', use: () => _setXzDecoderForTest('builtin'), reset: () => _setXzDecoderForTest('auto') },
          ]
        : [auto];
    case 'zstd': {
      const r = [{ ...auto, label: `zstd (${zstdBackend()})` }];
      if (zstdBackend() === 'native') r.push({ label: 'zstd (wasm)', use: () => _setZstdBackendForTest('wasm'), reset: () => _setZstdBackendForTest('auto') });
      r.push({ label: 'zstd (fzstd)', use: () => _setZstdBackendForTest('fzstd'), reset: () => _setZstdBackendForTest('auto') });
      return r;
    }
    case 'gzip':
      // decompressInto: the kept zlib context, or inflateSync and a copy where it is not trusted.
      return gzipIntoName() === 'handle'
        ? [
            { ...auto, label: 'gzip (zlib context)' },
            { label: 'gzip (zlib context of a node:zlib stream)', use: () => _setGzipIntoForTest('stream-handle'), reset: () => _setGzipIntoForTest('auto') },
            { label: 'gzip (inflateSync)', use: () => _setGzipIntoForTest('inflateSync'), reset: () => _setGzipIntoForTest('auto') },
          ]
        : [auto];
    default:
      return [auto];
  }
}

describe('corrupt input', () => {
  for (const base of allCodecs())
    for (const dec of decoders(base)) {
      const codec = dec.codec ?? base;
      test(`${dec.label}: empty, random, truncated, short limits`, { timeout: 60_000 }, (t) => {
        dec.use();
        t.after(dec.reset);
        const s = sampleFor(codec.id);
        expectDecompressFailed(() => codec.decompress(new Uint8Array(0), BS), 'zero-length input');
        for (let seed = 1; seed <= 20; seed++) {
          const junk = randomBytes(1 + ((seed * 7919) % 4000), seed);
          expectDecompressFailedOrBounded(codec, junk, BS, `random bytes seed ${seed}`);
        }
        if (!requireTools(t, s ? { ok: true } : { ok: false, why: 'no real block for this codec (its image test did not run)' }) || !s) return;
        for (const b of [s.small, s.full]) {
          const n = b.data.length;
          for (const cut of [1, 2, 5, 13, 18, Math.floor(n / 3), Math.floor(n / 2), n - 5, n - 1]) {
            if (cut <= 0 || cut >= n) continue;
            expectDecompressFailed(() => codec.decompress(b.data.subarray(0, cut), BS), `truncated to ${cut} of ${n} bytes`);
          }
          for (const limit of [0, 1, b.expected.length >> 1, b.expected.length - 1]) {
            expectDecompressFailed(() => codec.decompress(b.data, limit), `output limit ${limit} for ${b.expected.length} bytes`);
          }
          assert.ok(Buffer.from(codec.decompress(b.data, b.expected.length)).equals(b.expected), 'exact limit works');
        }
      });
    }
});

/** Garbage may by chance be valid for codecs without checksums (lz4, lzo); then the output must respect the limit. */
function expectDecompressFailedOrBounded(codec: Codec, input: Uint8Array, limit: number, what: string): void {
  try {
    const out = codec.decompress(input, limit);
    assert.ok(out.length <= limit, `${what}: ${out.length} bytes > limit ${limit}`);
  } catch (e) {
    assert.ok(e instanceof SquashfsError, `${what}: expected SquashfsError, got ${String(e)}`);
    assert.equal(e.code, 'DECOMPRESS_FAILED', `${what}: ${e.message}`);
  }
}

describe('random mutations (fast-check)', () => {
  // Codecs with an integrity check must either fail or return exactly the original; the others must fail
  // or stay within the limit. Never another error type, never a hang.
  const checked = new Set(['gzip', 'xz']);
  const runs: Record<string, number> = { gzip: 300, lz4: 300, lzo: 300, zstd: 300, xz: 150, lzma: 150 };
  for (const base of allCodecs())
    for (const dec of decoders(base)) {
      const codec = dec.codec ?? base;
      test(`${dec.label}`, { timeout: 60_000 }, (t) => {
        dec.use();
        t.after(dec.reset);
        const s = sampleFor(codec.id);
        if (!requireTools(t, s ? { ok: true } : { ok: false, why: 'no real block for this codec (its image test did not run)' }) || !s) return;
        const base = s.small;
        const n = base.data.length;
        const mutation = fc.array(fc.tuple(fc.nat({ max: n - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 });
        fc.assert(
          fc.property(mutation, fc.boolean(), fc.nat({ max: n - 1 }), (flips, truncate, cut) => {
            const data = Buffer.from(base.data);
            for (const [at, x] of flips) data[at]! ^= x;
            const input = truncate ? data.subarray(0, cut) : data;
            let out: Uint8Array | undefined;
            try {
              out = codec.decompress(input, BS);
            } catch (e) {
              if (!(e instanceof SquashfsError) || e.code !== 'DECOMPRESS_FAILED') throw e;
              return;
            }
            assert.ok(out.length <= BS);
            if (checked.has(codec.name)) assert.ok(Buffer.from(out).equals(base.expected), 'checksummed codec returned wrong data');
          }),
          { numRuns: runs[codec.name], seed: 42 },
        );
      });
    }
});

// ---------- round trips ----------

describe('round trips', () => {
  const compressors = allCodecs().filter((c) => c.compress);
  test('which codecs compress', () => {
    assert.deepEqual(compressors.map((c) => c.name).sort(), ['gzip', 'lz4', 'lzo', 'xz', 'zstd']);
  });
  for (const codec of compressors) {
    test(`${codec.name}: real blocks and edge cases`, () => {
      const inputs = [SOURCE.subarray(0, BS), SOURCE.subarray(640 * 1024, 640 * 1024 + BS), text(20000, 5), Buffer.alloc(BS, 7), Buffer.alloc(64, 1), Buffer.from('abcabcabcabcabcabc'), text(300, 6)];
      for (const input of inputs) {
        const c = codec.compress!(input);
        // A zstd frame (~10 bytes) or an xz stream (~60 bytes of container) cannot shrink the tiniest inputs.
        if (c === null && input.length <= ({ zstd: 18, xz: 64 } as Record<string, number>)[codec.name]!) continue;
        assert.ok(c !== null, `${input.length} compressible bytes`);
        assert.ok(c.length < input.length);
        assert.ok(Buffer.from(codec.decompress(c, input.length)).equals(input));
      }
      assert.equal(codec.compress!(randomBytes(BS, 11)), null, 'incompressible block');
      assert.equal(codec.compress!(new Uint8Array(0)), null, 'empty block');
      assert.equal(codec.compress!(new Uint8Array([1, 2, 3])), null, 'tiny block');
    });
    test(`${codec.name}: property`, () => {
      const arb = fc.oneof(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.constantFrom(...'abcd '.split('')), { maxLength: 5000 }).map((a) => Buffer.from(a.join(''))),
        fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat({ max: 400 })).map(([u, k]) => Buffer.concat(Array(k + 1).fill(Buffer.from(u)))),
      );
      fc.assert(
        fc.property(arb, (input) => {
          const c = codec.compress!(input);
          if (c === null) return;
          assert.ok(c.length < input.length);
          assert.ok(Buffer.from(codec.decompress(c, input.length)).equals(Buffer.from(input)));
        }),
        { numRuns: 300, seed: 7 },
      );
    });
  }
  test('gzip levels', () => {
    const input = SOURCE.subarray(0, BS);
    const l1 = codecByName('gzip').compress!(input, { level: 1 })!;
    const l9 = codecByName('gzip').compress!(input, { level: 9 })!;
    assert.ok(l9.length <= l1.length);
    assert.throws(() => codecByName('gzip').compress!(input, { level: 10 }), SquashfsError);
  });

  // Our compressed blocks inside an image, read back by the reference unsquashfs. The image is made with
  // -noD (data stored), then each data block is replaced by our compressed version. The new blocks are
  // shorter, so they are written contiguously from blocks_start and the rest of the old data area is
  // zeroed: SquashFS finds its tables through superblock pointers, so the gap is harmless.
  for (const name of ['gzip', 'lz4']) {
    test(`${name}: our blocks extracted by unsquashfs`, { skip: skipUnless(`${name} blocks read by unsquashfs`, haveMksquashfs, 'unsquashfs'), timeout: 60_000 }, () => {
      const codec = codecByName(name);
      const img = parseSingleFileImage(mksquashfs(['-comp', name, '-noD']), SOURCE);
      assert.ok(img.blocks.every((b) => !b.compressed));
      const out = Buffer.from(img.image);
      const oldEnd = img.blocksStart + img.blocks.reduce((s, b) => s + b.data.length, 0);
      let pos = img.blocksStart;
      let ours = 0;
      for (const b of img.blocks) {
        const c = codec.compress!(b.expected);
        const data = c ?? b.expected;
        out.set(data, pos);
        out.writeUInt32LE(c ? data.length : data.length | 0x1000000, img.blockListAt + 4 * b.index);
        pos += data.length;
        if (c) ours++;
      }
      out.fill(0, pos, oldEnd);
      assert.ok(ours >= 8, `compressed ${ours} blocks`);
      const imgPath = path.join(tmp, `ours-${name}.sqfs`);
      const dest = path.join(tmp, `ours-${name}-out`);
      fs.writeFileSync(imgPath, out);
      execFileSync('unsquashfs', ['-no-progress', '-d', dest, imgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      assert.ok(fs.readFileSync(path.join(dest, 'source.bin')).equals(SOURCE), 'unsquashfs extracted the original file');
    });
  }
});
