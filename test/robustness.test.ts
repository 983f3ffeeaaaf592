/**
 * robustness.md's decoder table, one test per class: each bad image is a real mksquashfs image of
 * a small tree with one field patched (metadata uncompressed, so no checksum to fix), and it must
 * give a SquashfsError with the expected code within a work budget derived from the image (reads,
 * bytes, lookups and content counted, so the check does not depend on the machine's load; the
 * times and memory are printed by bench/robustness.ts) — never a
 * RangeError, TypeError, stack overflow or hang. Every class has its "must still read" twin where
 * the format allows it. fixtures/crashers/ holds images that once crashed the decoder; each must
 * give the error its file name says.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SquashfsError, type ErrorCode } from '../src/errors';
import { DATA_BLOCK_UNCOMPRESSED, EXPORT_ENTRY_SIZE } from '../src/format/constants';
import { DIR_ENTRY, DIR_HEADER, validateName } from '../src/format/directory';
import { FILE_INODE, INODE_HEADER, LFILE_INODE, SYMLINK_INODE, inodeRef, splitInodeRef, type FileInode } from '../src/format/inode';
import { FRAGMENT_ENTRY, XATTR_ID_ENTRY, XATTR_TABLE_HEADER } from '../src/format/tables';
import { XATTR_KEY, XATTR_VALUE_OOL } from '../src/format/xattr';
import { Image } from '../src/reader/image';
import { MAX_DEPTH, walk, walkTree } from '../src/reader/walk';
import { repoRoot, requireTools, skipUnless } from './oracle/tools';
import { expectError, expectReads, exercise, noWork } from './craft/exercise';
import { Layout, SB, UNCOMPRESSED, inodeFields, mksquashfs, r64, renameEntry, sh, tempDir, u16, u32, w16, w32, w64 } from './craft/image';
import { deepImage } from './craft/writer';

const ABSENT = 0xffffffffffffffffn;

interface Seeds {
  /** Everything uncompressed, 4 KiB blocks: the structure seed. */
  u: Buffer;
  /** The same without xattrs, without an export table, without fragments. */
  noXattrs: Buffer;
  noExports: Buffer;
  noFragments: Buffer;
  /** Compressed (gzip) data and fragments, uncompressed metadata: for codec paths in data blocks. */
  gzData: Buffer;
  /** Everything gzip-compressed. */
  gz: Buffer;
  /** One 1.7 MB uncompressed file of u64 values 96, which lands right after the superblock. */
  pointers: Buffer;
}

let tmp: ReturnType<typeof tempDir>;
let seeds: Seeds;
const ready = skipUnless('decoder robustness (needs seeds from mksquashfs)', 'mksquashfs');

before(() => {
  if (ready) return;
  tmp = tempDir('distri-robust-');
  const src = path.join(tmp.dir, 'src');
  fs.mkdirSync(src);
  sh(
    `printf 'hello\\n' > aa;  # small files: only a tail, in the fragment block
     printf 'world\\n' > ab
     head -c 10000 /dev/urandom > big                       # 3 blocks (mksquashfs packs only small files into fragments)
     for i in $(seq 1 400); do printf 'line %04d of text\\n' $i; done | head -c 8192 > txt   # 2 compressible blocks
     mkdir -p d/e && printf 'deep\\n' > d/e/f
     printf 'linked\\n' > hl1 && ln hl1 hl2                  # nlink 2: an extended file inode
     ln -s aa lnk
     printf 'x\\n' > xf && setfattr -n user.x -v 1 xf && setfattr -n user.y -v 2 xf
     mkdir xd && setfattr -n user.d -v 1 xd
     touch -d @1700000000 aa ab big txt d d/e d/e/f hl1 lnk xf xd .`,
    src,
  );
  const mk = (name: string, args: string[]) => mksquashfs(src, path.join(tmp.dir, `${name}.sqfs`), ['-b', '4096', ...args]);
  seeds = {
    u: mk('u', UNCOMPRESSED),
    noXattrs: mk('nx', [...UNCOMPRESSED, '-no-xattrs']),
    noExports: mk('ne', [...UNCOMPRESSED, '-no-exports']),
    noFragments: mk('nf', [...UNCOMPRESSED, '-no-fragments']),
    gzData: mk('gzd', ['-noI', '-noX']),
    gz: mk('gz', []),
    pointers: (() => {
      const p = path.join(tmp.dir, 'ptr');
      fs.mkdirSync(p);
      sh(`perl -e 'print pack("Q<", 96) x 212500' > p`, p);
      return mksquashfs(p, path.join(tmp.dir, 'ptr.sqfs'), [...UNCOMPRESSED, '-b', '4096']);
    })(),
  };
});
after(() => tmp?.cleanup());

/** A copy of `seed` changed by `fn`, which gets the copy and the seed's layout. */
function patch(seed: Buffer, fn: (b: Buffer, l: Layout) => void): Buffer {
  const b = Buffer.from(seed);
  const l = new Layout(seed);
  try {
    fn(b, l);
  } finally {
    l.close();
  }
  return b;
}

/** Image offset of entry `i` of a lookup table whose u64 block pointers start at `pointers`. */
function tableEntry(b: Buffer, pointers: number, entrySize: number, i: number): number {
  const perBlock = 8192 / entrySize;
  const ptr = Number(r64(b, pointers + 8 * Math.floor(i / perBlock)));
  if (u16(b, ptr) & 0x8000) return ptr + 2 + (i % perBlock) * entrySize;
  throw new Error('table block is compressed: use an uncompressed seed');
}

// Inode field offsets from the inode's first byte, from the format's layouts (format: "Inode Table").
const I = INODE_HEADER.at;
const FILE = inodeFields(FILE_INODE); // basic (type 2); the block list starts at FILE.end
const LFILE = inodeFields(LFILE_INODE); // extended (9)
const SYMLINK = inodeFields(SYMLINK_INODE); // the target starts at SYMLINK.end
const XH = XATTR_TABLE_HEADER.at;

describe('the seeds read (the "must still read" baseline)', () => {
  test('every seed reads completely', { skip: ready }, () => {
    for (const [name, s] of Object.entries(seeds)) {
      const r = expectReads(s);
      assert.equal(r.entries, name === 'pointers' ? 2 : 13, name);
    }
  });
  test('the inodes are the kinds the cases below patch', { skip: ready }, () => {
    const l = new Layout(seeds.u);
    try {
      assert.equal(l.inode('aa').type, 2);
      assert.equal(l.inode('hl1').type, 9);
      assert.equal(l.inode('xf').type, 9);
      assert.equal(l.inode('lnk').type, 3);
      assert.notEqual((l.inode('aa') as FileInode).fragIndex, 0xffffffff);
    } finally {
      l.close();
    }
  });
});

type Case = [what: string, seed: keyof Seeds, fn: (b: Buffer, l: Layout) => void, code: ErrorCode | ErrorCode[]];

function cases(title: string, list: Case[]): void {
  describe(title, () => {
    for (const [what, seed, fn, code] of list) {
      test(what, { skip: ready }, () => {
        expectError(patch(seeds[seed], fn), code);
      });
    }
  });
}

cases('counts drive allocation', [
  ['fragment_count = 0xFFFFFFFF', 'u', (b) => w32(b, SB.fragmentCount, 0xffffffff), 'OUT_OF_BOUNDS'],
  // id_count is a u16 in SquashFS 4.0: 0xFFFF is its largest value.
  ['id_count = 0xFFFF', 'u', (b) => w16(b, SB.idCount, 0xffff), 'OUT_OF_BOUNDS'],
  ['inode_count = 0xFFFFFFFF (with an export table sized by it)', 'u', (b) => w32(b, SB.inodeCount, 0xffffffff), 'OUT_OF_BOUNDS'],
  ['xattr_ids = 0xFFFFFFFF in the xattr id table header', 'u', (b, l) => w32(b, l.img.superblock.xattrIdTableStart! + XH.xattrIds, 0xffffffff), 'OUT_OF_BOUNDS'],
  [
    'xattr count of one id entry = 0xFFFFFFFF',
    'u',
    (b, l) => w32(b, tableEntry(b, l.img.superblock.xattrIdTableStart! + XATTR_TABLE_HEADER.size, XATTR_ID_ENTRY.size, 0) + XATTR_ID_ENTRY.at.count, 0xffffffff),
    'CORRUPT',
  ],
  [
    'xattr count of one id entry = 60000 (below the cap: runs out of its table)',
    'u',
    (b, l) => w32(b, tableEntry(b, l.img.superblock.xattrIdTableStart! + XATTR_TABLE_HEADER.size, XATTR_ID_ENTRY.size, 0) + XATTR_ID_ENTRY.at.count, 60000),
    ['OUT_OF_BOUNDS', 'CORRUPT'],
  ],
  // A pointer array of 200,000 plausible pointers (file data at 104.., each 96): found a RangeError
  // (Math.min(...pointers) in LookupTable.firstBlock); fixtures/crashers keeps the image.
  [
    'inode_count 204,800,000 with the export table in file data (200,000 block pointers)',
    'pointers',
    (b) => {
      w64(b, SB.exportTableStart, 104n);
      w32(b, SB.inodeCount, 200_000 * 1024);
    },
    'OUT_OF_BOUNDS',
  ],
  ['directory header count 0xFFFFFFFF', 'u', (b, l) => w32(b, l.entry('', 'aa').header, 0xffffffff), 'CORRUPT'],
]);

describe('counts drive allocation: inode_count without an export table', () => {
  test('inode_count = 0xFFFFFFFF on a -no-exports image: nothing is sized by it, reads (bounded) or a typed error', { skip: ready }, () => {
    const b = patch(seeds.noExports, (b) => w32(b, SB.inodeCount, 0xffffffff));
    const work = noWork();
    assert.equal(exercise(b, work).entries, 13);
    // The same work as the unpatched image: the count drives nothing.
    const base = noWork();
    exercise(seeds.noExports, base);
    assert.deepEqual(work, base);
  });
});

cases('table pointers', [
  ['id_table_start past bytes_used', 'u', (b, l) => w64(b, SB.idTableStart, BigInt(l.img.superblock.bytesUsed + 100)), 'OUT_OF_BOUNDS'],
  ['inode_table_start past the end of the file (2^52)', 'u', (b) => w64(b, SB.inodeTableStart, 1n << 52n), 'OUT_OF_BOUNDS'],
  ['table start with the top bit set', 'u', (b) => w64(b, SB.directoryTableStart, 0x8000000000000000n), 'OVERFLOW'],
  ['id_table_start inside the superblock', 'u', (b) => w64(b, SB.idTableStart, 40n), 'OUT_OF_BOUNDS'],
  ['fragment_table_start inside the superblock', 'u', (b) => w64(b, SB.fragmentTableStart, 8n), 'OUT_OF_BOUNDS'],
  [
    'inode table after the directory table (out of order)',
    'u',
    (b, l) => {
      w64(b, SB.inodeTableStart, BigInt(l.img.superblock.directoryTableStart));
      w64(b, SB.directoryTableStart, BigInt(l.img.superblock.inodeTableStart));
    },
    'CORRUPT',
  ],
  ['id table pointing at the inode table (out of order)', 'u', (b, l) => w64(b, SB.idTableStart, BigInt(l.img.superblock.inodeTableStart)), ['OUT_OF_BOUNDS', 'CORRUPT']],
  ['a lookup table block pointer past its own pointer array', 'u', (b, l) => w64(b, l.img.superblock.idTableStart, BigInt(l.img.superblock.idTableStart + 8)), 'OUT_OF_BOUNDS'],
  ['bytes_used past the end of the file (truncated image)', 'u', (b) => w64(b, SB.bytesUsed, BigInt(b.length + 4096)), 'OUT_OF_BOUNDS'],
  ['fragment table marked absent while fragment_count > 0', 'u', (b) => w64(b, SB.fragmentTableStart, ABSENT), 'CORRUPT'],
  ['id table marked absent (it is required)', 'u', (b) => w64(b, SB.idTableStart, ABSENT), 'CORRUPT'],
  ['id_count = 0', 'u', (b) => w16(b, SB.idCount, 0), 'CORRUPT'],
]);

describe('table pointers: the absent marker with count 0 is valid', () => {
  test('fragment table absent, fragment_count 0, on an image without fragments', { skip: ready }, () => {
    const b = patch(seeds.noFragments, (b) => {
      w64(b, SB.fragmentTableStart, ABSENT);
      w32(b, SB.fragmentCount, 0);
    });
    assert.equal(expectReads(b).entries, 13);
  });
  test('export table absent', { skip: ready }, () => {
    assert.equal(expectReads(patch(seeds.u, (b) => w64(b, SB.exportTableStart, ABSENT))).entries, 13);
  });
  test('xattr id table absent on an image without xattrs', { skip: ready }, () => {
    assert.equal(expectReads(patch(seeds.noXattrs, (b) => w64(b, SB.xattrIdTableStart, ABSENT))).entries, 13);
  });
  test('a truncated file (every prefix length at 512-byte steps) is a typed error', { skip: ready }, () => {
    const used = Number(r64(seeds.u, SB.bytesUsed));
    for (let n = 0; n < used; n += 512) expectError(seeds.u.subarray(0, n), ['BAD_MAGIC', 'OUT_OF_BOUNDS']);
  });
});

cases('64-bit sizes', [
  ['extended file_size 2^50 with 4 KiB blocks', 'u', (b, l) => w64(b, l.inodeAt('hl1') + LFILE.fileSize, 1n << 50n), 'CORRUPT'],
  ['extended file_size with the top bit set', 'u', (b, l) => w64(b, l.inodeAt('hl1') + LFILE.fileSize, 0x8000000000000000n), 'OVERFLOW'],
  ['extended blocks_start with the top bit set', 'u', (b, l) => w64(b, l.inodeAt('hl1') + LFILE.blocksStart, 0x8000000000000000n), 'OVERFLOW'],
  ['extended sparse with the top bit set', 'u', (b, l) => w64(b, l.inodeAt('hl1') + LFILE.sparse, 0xffffffffffffffffn), 'OVERFLOW'],
  ['basic file_size 0xFFFFFFFF', 'u', (b, l) => w32(b, l.inodeAt('aa') + FILE.fileSize, 0xffffffff), 'CORRUPT'],
  ['basic file blocks_start past the data area', 'u', (b, l) => w32(b, l.inodeAt('big') + FILE.blocksStart, 0xfffff000), 'OUT_OF_BOUNDS'],
]);

cases('index off by one', [
  ['frag_index == fragment_count', 'u', (b, l) => w32(b, l.inodeAt('aa') + FILE.fragIndex, l.img.superblock.fragmentCount), 'OUT_OF_BOUNDS'],
  ['frag_index 512 (the second table block, which does not exist)', 'u', (b, l) => w32(b, l.inodeAt('aa') + FILE.fragIndex, 512), 'OUT_OF_BOUNDS'],
  [
    'fragment_count 600 (a second block pointer read from the next table) and frag_index 512',
    'u',
    (b, l) => {
      w32(b, SB.fragmentCount, 600);
      w32(b, l.inodeAt('aa') + FILE.fragIndex, 512);
    },
    'OUT_OF_BOUNDS',
  ],
  ['uid index == id count', 'u', (b, l) => w16(b, l.inodeAt('aa') + I.uidIndex, l.img.superblock.idCount), 'OUT_OF_BOUNDS'],
  ['gid index 0xFFFF', 'u', (b, l) => w16(b, l.inodeAt('d') + I.gidIndex, 0xffff), 'OUT_OF_BOUNDS'],
  [
    'export table entry 0 pointing at another inode',
    'u',
    (b, l) => {
      const first = tableEntry(b, l.img.superblock.exportTableStart!, EXPORT_ENTRY_SIZE, 0);
      const second = tableEntry(b, l.img.superblock.exportTableStart!, EXPORT_ENTRY_SIZE, 1);
      b.copy(b, first, second, second + 8);
    },
    'CORRUPT',
  ],
]);

cases('fragment tail', [
  ['frag_offset + tail past the fragment block', 'u', (b, l) => w32(b, l.inodeAt('aa') + FILE.fragOffset, 4000), 'OUT_OF_BOUNDS'],
  ['frag_offset 0xFFFFFFFF', 'u', (b, l) => w32(b, l.inodeAt('aa') + FILE.fragOffset, 0xffffffff), 'OUT_OF_BOUNDS'],
  [
    'fragment entry with an on-disk size larger than the block size',
    'u',
    (b, l) => {
      const e = tableEntry(b, l.img.superblock.fragmentTableStart!, FRAGMENT_ENTRY.size, (l.inode('aa') as FileInode).fragIndex);
      w32(b, e + FRAGMENT_ENTRY.at.sizeWord, DATA_BLOCK_UNCOMPRESSED | 5000);
    },
    'CORRUPT',
  ],
  [
    'fragment entry starting past the data area',
    'u',
    (b, l) => {
      const e = tableEntry(b, l.img.superblock.fragmentTableStart!, FRAGMENT_ENTRY.size, (l.inode('aa') as FileInode).fragIndex);
      w64(b, e, BigInt(l.img.superblock.inodeTableStart - 10));
    },
    'OUT_OF_BOUNDS',
  ],
  [
    'fragment entry with size 0',
    'u',
    (b, l) => {
      const e = tableEntry(b, l.img.superblock.fragmentTableStart!, FRAGMENT_ENTRY.size, (l.inode('aa') as FileInode).fragIndex);
      w32(b, e + FRAGMENT_ENTRY.at.sizeWord, 0);
    },
    'CORRUPT',
  ],
]);

/** zlib stream that inflates to `n` zero bytes (tiny on disk). */
const bomb = (n: number) => zlib.deflateSync(Buffer.alloc(n));

cases('data and metadata blocks', [
  ['a data block whose on-disk length is the block size + 1', 'u', (b, l) => w32(b, l.inodeAt('big') + FILE.end, DATA_BLOCK_UNCOMPRESSED | 4097), 'CORRUPT'],
  ['a data block whose on-disk length is 0xFFFFFF', 'u', (b, l) => w32(b, l.inodeAt('big') + FILE.end, 0xffffff), ['CORRUPT', 'OUT_OF_BOUNDS']],
  ['inode table metadata header length 0', 'u', (b, l) => w16(b, l.img.superblock.inodeTableStart, 0x8000), 'CORRUPT'],
  ['inode table metadata header length 9000 (> 8192)', 'u', (b, l) => w16(b, l.img.superblock.inodeTableStart, 0x8000 | 9000), 'CORRUPT'],
  ['directory table metadata header length 0 (compressed)', 'u', (b, l) => w16(b, l.img.superblock.directoryTableStart, 0), 'CORRUPT'],
  [
    'a gzip data block that inflates past the block size',
    'gzData',
    (b, l) => {
      const z = bomb(65536);
      const at = l.inodeAt('txt');
      const start = u32(b, at + FILE.blocksStart);
      assert.ok((u32(b, at + FILE.end) & 0xffffff) >= z.length, 'seed block too small for the bomb');
      z.copy(b, start);
      w32(b, at + FILE.end, z.length);
    },
    'DECOMPRESS_FAILED',
  ],
  [
    'a gzip data block that inflates to less than the block',
    'gzData',
    (b, l) => {
      const z = zlib.deflateSync(Buffer.alloc(100));
      const at = l.inodeAt('txt');
      z.copy(b, u32(b, at + FILE.blocksStart));
      w32(b, at + FILE.end, z.length);
    },
    ['CORRUPT', 'DECOMPRESS_FAILED'],
  ],
  [
    'a gzip data block of garbage',
    'gzData',
    (b, l) => {
      const at = l.inodeAt('txt');
      const start = u32(b, at + FILE.blocksStart);
      b.fill(0xa5, start, start + (u32(b, at + FILE.end) & 0xffffff));
    },
    'DECOMPRESS_FAILED',
  ],
]);

describe('data and metadata blocks: compressed metadata', () => {
  test('an inode table metadata block that inflates past 8 KiB', { skip: ready }, () => {
    const b = Buffer.from(seeds.gz);
    const img = Image.fromBuffer(seeds.gz);
    const start = img.superblock.inodeTableStart;
    img.close();
    const z = bomb(65536);
    assert.ok((u16(b, start) & 0x7fff) >= z.length);
    w16(b, start, z.length);
    z.copy(b, start + 2);
    expectError(b, 'DECOMPRESS_FAILED');
  });
  test('an inode table metadata block of garbage', { skip: ready }, () => {
    const b = Buffer.from(seeds.gz);
    const img = Image.fromBuffer(seeds.gz);
    const start = img.superblock.inodeTableStart;
    img.close();
    b.fill(0x5a, start + 2, start + 2 + (u16(b, start) & 0x7fff));
    expectError(b, 'DECOMPRESS_FAILED');
  });
});

cases('inode references', [
  ['root inode reference offset 8192', 'u', (b) => w64(b, SB.rootInodeRef, 8192n), 'OUT_OF_BOUNDS'],
  ['root inode reference offset 0xFFFF', 'u', (b) => w64(b, SB.rootInodeRef, 0xffffn), 'OUT_OF_BOUNDS'],
  ['root inode reference into the directory table', 'u', (b, l) => w64(b, SB.rootInodeRef, inodeRef(l.img.superblock.directoryTableStart - l.img.superblock.inodeTableStart, 0)), 'OUT_OF_BOUNDS'],
  ['root inode reference of 49 bits', 'u', (b) => w64(b, SB.rootInodeRef, 1n << 48n), 'CORRUPT'],
  ['root inode is a regular file', 'u', (b, l) => w64(b, SB.rootInodeRef, BigInt(l.inode('aa').ref)), 'CORRUPT'],
  ['directory entry inode offset 8192', 'u', (b, l) => w16(b, l.entry('', 'aa').entry, 8192), 'CORRUPT'],
  ['directory entry inode offset inside another inode', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.offset, u16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.offset) + 3), 'CORRUPT'],
  ['directory header start block past the inode table', 'u', (b, l) => w32(b, l.entry('', 'aa').header + DIR_HEADER.at.start, 0x100000), 'OUT_OF_BOUNDS'],
  ['inode type 0', 'u', (b, l) => w16(b, l.inodeAt('aa') + I.type, 0), 'CORRUPT'],
  ['inode type 15', 'u', (b, l) => w16(b, l.inodeAt('aa') + I.type, 15), 'CORRUPT'],
  ['inode type 0xFFFF', 'u', (b, l) => w16(b, l.inodeAt('aa') + I.type, 0xffff), 'CORRUPT'],
  ['entry says symlink, inode is a file', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.type, 3), 'CORRUPT'],
  ['entry says directory, inode is a file', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.type, 1), 'CORRUPT'],
  ['entry type 0', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.type, 0), 'CORRUPT'],
  ['entry type 9 (an extended type in an entry)', 'u', (b, l) => w16(b, l.entry('', 'hl1').entry + DIR_ENTRY.at.type, 9), 'CORRUPT'],
  ['inode number 0', 'u', (b, l) => w32(b, l.inodeAt('aa') + I.inodeNumber, 0), 'CORRUPT'],
  ['inode number inode_count + 1', 'u', (b, l) => w32(b, l.inodeAt('aa') + I.inodeNumber, l.img.superblock.inodeCount + 1), 'CORRUPT'],
  [
    'entry inode number 0 (delta)',
    'u',
    (b, l) => {
      const e = l.entry('', 'aa');
      w16(b, e.entry + DIR_ENTRY.at.inodeNumber, (0x10000 - u32(b, e.header + DIR_HEADER.at.inodeNumber)) & 0xffff);
    },
    'CORRUPT',
  ],
  [
    'entry inode number that disagrees with its inode',
    'u',
    (b, l) => w16(b, l.entry('', 'ab').entry + DIR_ENTRY.at.inodeNumber, (u16(b, l.entry('', 'ab').entry + DIR_ENTRY.at.inodeNumber) + 1) & 0xffff),
    'CORRUPT',
  ],
]);

cases('names', [
  // name_size is stored as size - 1 in a u16, so 257 is representable (field 256); so is 65536.
  ['name_size 257', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.nameSize, 256), 'CORRUPT'],
  ['name_size 65536', 'u', (b, l) => w16(b, l.entry('', 'aa').entry + DIR_ENTRY.at.nameSize, 0xffff), 'CORRUPT'],
  ['name_size running past the listing', 'u', (b, l) => w16(b, l.entry('', 'xf').entry + DIR_ENTRY.at.nameSize, 200), 'CORRUPT'],
  ['a name "."', 'u', (b, l) => renameInPlace(b, l, '', 'xd', '.'), 'CORRUPT'],
  ['a name ".."', 'u', (b, l) => renameInPlace(b, l, '', 'aa', '..'), 'CORRUPT'],
  ['a name containing /', 'u', (b, l) => renameInPlace(b, l, '', 'ab', 'a/'), 'CORRUPT'],
  ['a name containing NUL', 'u', (b, l) => renameInPlace(b, l, '', 'ab', 'a\0'), 'CORRUPT'],
  ['a name that is only NUL', 'u', (b, l) => renameInPlace(b, l, 'd/e', 'f', '\0'), 'CORRUPT'],
  ['duplicate names', 'u', (b, l) => renameInPlace(b, l, '', 'ab', 'aa'), 'CORRUPT'],
  ['unsorted names', 'u', (b, l) => renameInPlace(b, l, '', 'ab', 'a0'), 'CORRUPT'],
]);

/** Renames an entry in the copy `b` (same length), by the seed's layout. */
function renameInPlace(b: Buffer, l: Layout, dir: string, name: string, to: string): void {
  Buffer.from(to, 'latin1').copy(b, l.entry(dir, name).name_at);
}

describe('names: the empty name', () => {
  test('cannot be encoded (name_size is stored minus one), and validateName rejects it', () => {
    assert.throws(
      () => validateName(new Uint8Array(0), 'directory table', 0),
      (e: unknown) => e instanceof SquashfsError && e.code === 'CORRUPT',
    );
  });
  test('renameEntry of the helper agrees with in-place patching', { skip: ready }, () => {
    expectError(renameEntry(seeds.u, '', 'aa', '..'), 'CORRUPT');
  });
});

cases('loops', [
  ['a directory entry pointing at its own directory', 'u', (b, l) => pointEntryAt(b, l, 'd/e', 'f', 'd/e'), 'LOOP'],
  ['a directory entry pointing at an ancestor', 'u', (b, l) => pointEntryAt(b, l, 'd/e', 'f', 'd'), 'LOOP'],
  ['a directory entry pointing at the root', 'u', (b, l) => pointEntryAt(b, l, 'd', 'e', ''), 'LOOP'],
]);

describe('loops: the message names the entry', () => {
  test('walk and walkTree name the looping entry by its path (below the start given to walk)', { skip: ready }, () => {
    const img = Image.fromBuffer(patch(seeds.u, (b, l) => pointEntryAt(b, l, 'd/e', 'f', 'd')));
    try {
      const loops = (run: () => void, want: string) =>
        assert.throws(run, (e: unknown) => e instanceof SquashfsError && e.code === 'LOOP' && e.message.includes(`directory "${want}" is its own ancestor`));
      loops(() => [...walkTree(img)], 'd/e/f');
      loops(() => [...walk(img)], 'd/e/f');
      const d = img.entryInode(img.lookup(img.root(), 'd')!);
      loops(() => [...walk(img, d, 'top/d')], 'top/d/e/f');
    } finally {
      img.close();
    }
  });
});

/** Makes entry `name` of `dir` point at the directory inode at `target` (offset, number, type). */
function pointEntryAt(b: Buffer, l: Layout, dir: string, name: string, target: string): void {
  const e = l.entry(dir, name);
  const t = l.inode(target);
  const { block, offset } = splitInodeRef(t.ref);
  assert.equal(u32(b, e.header + DIR_HEADER.at.start), block, 'seed inodes are in the first block');
  w16(b, e.entry + DIR_ENTRY.at.offset, offset);
  const delta = t.inodeNumber - u32(b, e.header + DIR_HEADER.at.inodeNumber);
  w16(b, e.entry + DIR_ENTRY.at.inodeNumber, delta & 0xffff);
  w16(b, e.entry + DIR_ENTRY.at.type, 1);
}

describe('loops: deep nesting', () => {
  test(`${MAX_DEPTH - 1} levels (the most a path of PATH_MAX can name) read, with work linear in depth`, () => {
    // Inode and metadata lookups per level stay constant from 500 levels to MAX_DEPTH - 1: a walk
    // that re-resolved its ancestors would do work growing with depth per level.
    const perLevel = (depth: number) => {
      const img = Image.fromBuffer(deepImage(depth));
      try {
        let n = 0;
        for (const _ of walk(img)) n++;
        assert.equal(n, depth + 1);
        const c = img.cacheStats();
        return { inodes: (c.inodes.hits + c.inodes.misses) / depth, metadata: (c.metadata.hits + c.metadata.misses) / depth };
      } finally {
        img.close();
      }
    };
    const small = perLevel(500);
    const deep = perLevel(MAX_DEPTH - 1);
    assert.ok(deep.inodes <= small.inodes * 1.1 + 0.1, `inode lookups per level: ${small.inodes} at 500 levels, ${deep.inodes} at ${MAX_DEPTH - 1}`);
    assert.ok(deep.metadata <= small.metadata * 1.1 + 0.1, `metadata lookups per level: ${small.metadata} at 500 levels, ${deep.metadata} at ${MAX_DEPTH - 1}`);
  });
  test('10,000 levels: a typed error within the work budget, no stack overflow', () => {
    expectError(deepImage(10_000), 'CORRUPT');
  });
  test('a real mksquashfs image of a tree as deep as PATH_MAX allows (2,047 levels) reads', async (t) => {
    if (!requireTools(t, 'mksquashfs', 'perl', 'rm')) return;
    const d = tempDir('distri-deep-');
    try {
      // perl: 2,100 mkdir+chdir without a process each; mksquashfs keeps what fits in PATH_MAX.
      sh(`perl -e 'mkdir "t" or die; chdir "t" or die; for (1..2100) { mkdir "a" or die; chdir "a" or die }'`, d.dir);
      const img = mksquashfs(path.join(d.dir, 't'), path.join(d.dir, 'deep.sqfs'), UNCOMPRESSED);
      const r = expectReads(img);
      assert.ok(r.entries > 2000 && r.entries <= MAX_DEPTH, `${r.entries} levels`);
    } finally {
      d.cleanup();
    }
  });
});

cases('symlinks', [
  ['target size 0', 'u', (b, l) => w32(b, l.inodeAt('lnk') + SYMLINK.targetSize, 0), 'CORRUPT'],
  ['target size 4097', 'u', (b, l) => w32(b, l.inodeAt('lnk') + SYMLINK.targetSize, 4097), 'CORRUPT'],
  ['target size 0xFFFFFFFF', 'u', (b, l) => w32(b, l.inodeAt('lnk') + SYMLINK.targetSize, 0xffffffff), 'CORRUPT'],
  ['target size 4096, running past the inode table', 'u', (b, l) => w32(b, l.inodeAt('lnk') + SYMLINK.targetSize, 4096), 'OUT_OF_BOUNDS'],
]);

cases('xattrs', [
  ['xattr index == xattr id count', 'u', (b, l) => w32(b, l.inodeAt('xf') + LFILE.xattrIndex, u32(b, l.img.superblock.xattrIdTableStart! + XH.xattrIds)), 'OUT_OF_BOUNDS'],
  ['xattr index 0xFFFFFFFE', 'u', (b, l) => w32(b, l.inodeAt('xf') + LFILE.xattrIndex, 0xfffffffe), 'OUT_OF_BOUNDS'],
  ['xattr table absent while an inode has an index', 'u', (b) => w64(b, SB.xattrIdTableStart, ABSENT), 'CORRUPT'],
  ['a -no-xattrs image with an index in an inode', 'noXattrs', (b, l) => w32(b, l.inodeAt('hl1') + LFILE.xattrIndex, 0), 'CORRUPT'],
  ['xattr key type 3', 'u', (b, l) => w16(b, xattrKey(b, l), 3), 'CORRUPT'],
  ['xattr name_size 0xFFFF', 'u', (b, l) => w16(b, xattrKey(b, l) + XATTR_KEY.at.nameSize, 0xffff), 'CORRUPT'],
  [
    'xattr value size 0xFFFFFFFF',
    'u',
    (b, l) => {
      const k = xattrKey(b, l);
      w32(b, k + XATTR_KEY.size + u16(b, k + XATTR_KEY.at.nameSize), 0xffffffff);
    },
    'CORRUPT',
  ],
  [
    'xattr id entry reference past the xattr table',
    'u',
    (b, l) => w64(b, tableEntry(b, l.img.superblock.xattrIdTableStart! + XATTR_TABLE_HEADER.size, XATTR_ID_ENTRY.size, 0), 0xffff0000n),
    'OUT_OF_BOUNDS',
  ],
  [
    'an out-of-line value whose reference is not 8 bytes',
    'u',
    (b, l) => {
      const k = xattrKey(b, l);
      w16(b, k + XATTR_KEY.at.type, u16(b, k + XATTR_KEY.at.type) | XATTR_VALUE_OOL);
    },
    'CORRUPT',
  ],
]);

/** Image offset of the first key of xattr id 0 (uncompressed seed). */
function xattrKey(b: Buffer, l: Layout): number {
  const sb = l.img.superblock;
  const kvStart = Number(r64(b, sb.xattrIdTableStart!));
  const e = tableEntry(b, sb.xattrIdTableStart! + XATTR_TABLE_HEADER.size, XATTR_ID_ENTRY.size, 0);
  const ref = r64(b, e);
  const { block, offset } = splitInodeRef(Number(ref));
  assert.ok(u16(b, kvStart + block) & 0x8000, 'xattr block compressed');
  return kvStart + block + 2 + offset;
}

// ---- over-strict: a large real image must read ---------------------------------------------

describe('over-strict checks', () => {
  test('a large real image (mksquashfs of /usr/share) reads completely', async (t) => {
    // Host state on purpose: the over-strict checks are about what real trees give (tens of
    // thousands of names, long directories, real xattrs), which a generated tree would only guess.
    // Every Linux machine has a /usr/share; nothing is asserted about its content.
    if (!requireTools(t, 'mksquashfs', fs.existsSync('/usr/share') ? { ok: true } : { ok: false, why: 'no /usr/share to pack' })) return;
    const d = tempDir('distri-big-');
    try {
      const out = path.join(d.dir, 'share.sqfs');
      const t0 = Date.now();
      // gzip level 1: the point is the shape of real metadata, not the compression ratio.
      mksquashfs('/usr/share', out, ['-comp', 'gzip', '-Xcompression-level', '1', '-b', '131072', '-processors', '2']);
      const built = Date.now() - t0;
      const img = Image.open(out);
      let n = 0;
      let bytes = 0;
      try {
        for (const it of walk(img)) {
          n++;
          img.stat(it.inode);
          img.xattrs(it.inode);
          if (it.inode.kind === 'file') for (const c of img.chunks(it.inode)) bytes += c.length;
          if (it.inode.kind === 'symlink') img.readlink(it.inode);
        }
      } finally {
        img.close();
      }
      t.diagnostic(`${n} entries, ${(bytes / 1048576).toFixed(0)} MiB; built in ${built} ms, read in ${Date.now() - t0 - built} ms`);
      assert.ok(n > 1000, `${n} entries`);
    } finally {
      d.cleanup();
    }
  });
});

// ---- crashers ---------------------------------------------------------------------------------

describe('fixtures/crashers: images that once crashed the decoder', () => {
  const dir = path.join(repoRoot(), 'fixtures', 'crashers');
  const files = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /\.sqfs(\.gz)?$/.test(f))
        .sort()
    : [];
  test('the corpus is there', () => {
    assert.ok(files.length > 0, `no *.sqfs or *.sqfs.gz in ${dir}`);
  });
  for (const f of files) {
    // NAME is "<CODE>-<what>.sqfs[.gz]": the error code the image must produce. Images that are
    // large only because a structure must be (a 1.6 MB pointer array) are stored gzipped.
    const code = f.split('-')[0] as ErrorCode;
    test(f, () => {
      const raw = fs.readFileSync(path.join(dir, f));
      expectError(f.endsWith('.gz') ? zlib.gunzipSync(raw) : raw, code);
    });
  }
});
