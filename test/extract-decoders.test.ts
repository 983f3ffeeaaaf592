/**
 * The whole-file pass that `distri extract` and `distri cat` make (DataReader.stream) decodes into
 * reused buffers where the codec can (decompressInto), and keeps compressed fragment blocks in a
 * small ring of reused slots instead of the fragment cache. These tests hold that path to the
 * bytes mksquashfs packed, with every decoder each codec may run here (the native one it picks and
 * each fallback, forced in turn), in walk order and in a shuffled order (ring hits, misses and
 * evictions), and on images with a spoiled block: an error with a code, never stale bytes from a
 * slot a failed decode wrote into.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SquashfsError } from '../src/errors';
import { extract } from '../src/extract/extract';
import { decodeBlockWord } from '../src/format/data-block';
import { NO_INDEX } from '../src/format/constants';
import type { FileInode } from '../src/format/inode';
import { Image } from '../src/reader/image';
import { walk } from '../src/reader/walk';
import { _setLz4DecoderForTest, lz4NativeDecoder } from '../src/codec/lz4';
import { liblz4DecoderAvailable } from '../src/codec/lz4-liblz4';
import { _setZstdBackendForTest, zstdBackend } from '../src/codec/zstd';
import { _setGzipIntoForTest, gzipIntoName } from '../src/codec/gzip';
import { _setLzoDecoderForTest } from '../src/codec/lzo';
import { liblzoAvailable } from '../src/codec/lzo-liblzo';
import { xorshift32 } from '../src/util/xorshift';
import { skipUnless } from './oracle/tools';
import { mksquashfs, tempDir } from './craft/image';

interface Variant {
  label: string;
  /**
   * fzstd (the last zstd fallback, pure JS) decodes some damaged blocks without a complaint:
   * mksquashfs's zstd frames carry no checksum and fzstd checks less than the reference decoder.
   * With it a spoiled block may read as wrong bytes instead of an error (as before this path).
   */
  lenient?: boolean;
  use(): void;
  reset(): void;
}

/** Every decoder the codec may run here, each forced in turn. */
function variants(comp: string): Variant[] {
  const none = () => {};
  switch (comp) {
    case 'lz4': {
      const r: Variant[] = [{ label: 'lz4 (ours)', use: () => _setLz4DecoderForTest('builtin'), reset: () => _setLz4DecoderForTest('auto') }];
      if (liblz4DecoderAvailable()) r.push({ label: 'lz4 (liblz4)', use: () => _setLz4DecoderForTest('liblz4'), reset: () => _setLz4DecoderForTest('auto') });
      if (lz4NativeDecoder()) r.push({ label: 'lz4 (lz4-napi)', use: () => _setLz4DecoderForTest('lz4-napi'), reset: () => _setLz4DecoderForTest('auto') });
      return r;
    }
    case 'zstd': {
      const r: Variant[] = [{ label: `zstd (${zstdBackend()})`, use: none, reset: none }];
      if (zstdBackend() === 'native') r.push({ label: 'zstd (wasm)', use: () => _setZstdBackendForTest('wasm'), reset: () => _setZstdBackendForTest('auto') });
      r.push({ label: 'zstd (fzstd)', use: () => _setZstdBackendForTest('fzstd'), reset: () => _setZstdBackendForTest('auto'), lenient: true });
      return r;
    }
    case 'lzo': {
      const r: Variant[] = [{ label: 'lzo (ours)', use: () => _setLzoDecoderForTest('builtin'), reset: () => _setLzoDecoderForTest('auto') }];
      if (liblzoAvailable()) r.push({ label: 'lzo (liblzo)', use: () => _setLzoDecoderForTest('liblzo'), reset: () => _setLzoDecoderForTest('auto') });
      return r;
    }
    case 'gzip': {
      const r: Variant[] = [{ label: `gzip (${gzipIntoName()})`, use: none, reset: none }];
      if (gzipIntoName() === 'handle') r.push({ label: 'gzip (inflateSync)', use: () => _setGzipIntoForTest('inflateSync'), reset: () => _setGzipIntoForTest('auto') });
      return r;
    }
    default:
      return [{ label: comp, use: none, reset: none }];
  }
}

const COMPRESSORS = ['lz4', 'zstd', 'gzip', 'lzo'];
const ready = skipUnless('stream decoders against mksquashfs', 'mksquashfs');

/**
 * A tree whose small files share 4 KiB fragment blocks (dozens of them, so a pass meets more
 * than the ring holds), files of several blocks with tails, and a block of zeros (sparse).
 */
function makeTree(dir: string): Map<string, Buffer> {
  const next = xorshift32(7);
  const text = (n: number) => {
    let s = '';
    while (s.length < n) s += `line ${next() % 1000} of ${next() % 97}: ${'abcdefgh'.slice(0, next() % 8)}\n`;
    return Buffer.from(s.slice(0, n));
  };
  const files = new Map<string, Buffer>();
  for (let d = 0; d < 3; d++) for (let i = 0; i < 60; i++) files.set(`d${d}/small-${String(i).padStart(3, '0')}`, text(100 + (next() % 1400)));
  for (let i = 0; i < 5; i++) files.set(`big/f${i}`, text(9000 + (next() % 30000)));
  files.set('big/holey', Buffer.concat([text(5000), Buffer.alloc(8192), text(3000)]));
  for (const [rel, data] of files) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  }
  return files;
}

/** A file's bytes through stream(), the way extract and cat read them. */
function streamed(img: Image, inode: FileInode): Buffer {
  const parts: Buffer[] = [];
  for (const group of img.data.stream(inode)) for (const v of group) parts.push(Buffer.from(v)); // copied: views die with the next group
  return Buffer.concat(parts);
}

function regularFiles(img: Image): Array<{ rel: string; inode: FileInode }> {
  const out: Array<{ rel: string; inode: FileInode }> = [];
  const names: string[] = [];
  for (const it of walk(img)) {
    if (it.depth === 0) continue;
    names.length = it.depth - 1;
    names.push(it.entry!.name);
    if (it.inode.kind === 'file') out.push({ rel: names.join('/'), inode: it.inode });
  }
  return out;
}

function expectCodedError(fn: () => unknown, what: string, lenient = false): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (lenient && thrown === undefined) return;
  assert.ok(thrown instanceof SquashfsError, `${what}: expected a SquashfsError, got ${thrown === undefined ? 'success' : String(thrown)}`);
  assert.ok(['DECOMPRESS_FAILED', 'CORRUPT', 'OUT_OF_BOUNDS'].includes(thrown.code), `${what}: code ${thrown.code}: ${thrown.message}`);
}

describe('whole-file reads through reused buffers, every decoder', { skip: ready }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let files: Map<string, Buffer>;
  const images = new Map<string, string>();
  before(() => {
    tmp = tempDir('distri-stream-');
    const src = path.join(tmp.dir, 'src');
    files = makeTree(src);
    for (const comp of COMPRESSORS) {
      const img = path.join(tmp.dir, `${comp}.sqfs`);
      mksquashfs(src, img, ['-comp', comp, '-b', '4096']);
      images.set(comp, img);
    }
  });
  after(() => tmp?.cleanup());

  for (const comp of COMPRESSORS)
    for (const v of variants(comp)) {
      test(`${v.label}: walk order, a shuffled order and extract give the packed bytes`, async (t) => {
        v.use();
        t.after(v.reset);
        const img = Image.open(images.get(comp)!);
        try {
          const all = regularFiles(img);
          assert.equal(all.length, files.size);
          const frags = new Set(all.map((f) => f.inode.fragIndex).filter((i) => i !== NO_INDEX));
          assert.ok(frags.size > 8, `only ${frags.size} fragment blocks: the ring would never evict`);
          for (const f of all) assert.ok(streamed(img, f.inode).equals(files.get(f.rel)!), `${f.rel} (walk order)`);
          const next = xorshift32(11);
          const shuffled = all.slice();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = next() % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
          }
          for (const f of shuffled) assert.ok(streamed(img, f.inode).equals(files.get(f.rel)!), `${f.rel} (shuffled order)`);
          const dest = path.join(tmp.dir, `out-${v.label.replace(/\W+/g, '-')}`);
          await extract(img, dest, { xattrs: false });
          for (const [rel, data] of files) assert.ok(fs.readFileSync(path.join(dest, rel)).equals(data), `${rel} (extract)`);
        } finally {
          img.close();
        }
      });

      test(`${v.label}: a spoiled fragment or data block is an error with a code, and leaves no stale bytes behind`, (t) => {
        v.use();
        t.after(v.reset);
        const clean = Image.open(images.get(comp)!);
        // One file per fragment block, in the order the blocks were packed.
        const byFrag = new Map<number, { rel: string; inode: FileInode }>();
        let big: { rel: string; inode: FileInode } | undefined;
        let f2 = { start: 0, onDisk: 0 };
        let d1 = { start: 0, onDisk: 0 };
        try {
          for (const f of regularFiles(clean)) {
            if (f.inode.fragIndex !== NO_INDEX && !byFrag.has(f.inode.fragIndex)) byFrag.set(f.inode.fragIndex, f);
            if (!big && f.inode.blockSizes.length >= 2 && decodeBlockWord(f.inode.blockSizes[0]!).compressed) big = f;
          }
          const e = clean.data.fragmentEntry(1);
          const w = decodeBlockWord(e.sizeWord);
          assert.ok(w.compressed, 'fragment block 1 is compressed');
          f2 = { start: e.start, onDisk: w.onDiskSize };
          assert.ok(big, 'a file with compressed data blocks');
          d1 = { start: big.inode.blocksStart, onDisk: decodeBlockWord(big.inode.blockSizes[0]!).onDiskSize };
        } finally {
          clean.close();
        }
        // The second half of each spoiled block: the first half still decodes (into the slot) before
        // the decoder meets the damage.
        const spoiled = path.join(tmp.dir, `spoiled-${comp}.sqfs`);
        const bytes = fs.readFileSync(images.get(comp)!);
        for (const b of [f2, d1]) bytes.fill(0xff, b.start + (b.onDisk >> 1), b.start + b.onDisk);
        fs.writeFileSync(spoiled, bytes);
        const img = Image.open(spoiled);
        try {
          const file = (i: number) => byFrag.get(i)!;
          const check = (i: number) => assert.ok(streamed(img, file(i).inode).equals(files.get(file(i).rel)!), `${file(i).rel} (fragment ${i})`);
          // Fill the ring (4 slots) so that fragment 0's slot is the one the spoiled block 1 reuses.
          for (const i of [0, 2, 3, 4]) check(i);
          expectCodedError(() => streamed(img, file(1).inode), 'spoiled fragment block', v.lenient);
          check(0);
          expectCodedError(() => streamed(img, file(1).inode), 'spoiled fragment block, again', v.lenient);
          expectCodedError(() => streamed(img, big!.inode), 'spoiled data block', v.lenient);
          check(2);
        } finally {
          img.close();
        }
      });
    }
});
