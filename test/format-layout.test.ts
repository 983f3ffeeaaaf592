/**
 * One layout per on-disk structure (src/format/layout.ts): every encoder writes through it and the
 * hand-written hot decoders read at its offsets. These checks tie the three together:
 *  - each layout is packed (offsets follow widths, no gaps or overlaps) and has the size and the
 *    offsets the format description gives (the superblock's are written out here as the oracle);
 *  - the table-driven encoder puts each field in exactly the bytes the layout gives it;
 *  - every inode type, directory header and entry, superblock and table entry round-trips through
 *    encode → hand-written decode with every field equal;
 *  - changing one field's bytes at the layout's offset changes that field, and only that field, in
 *    what the hand-written decoder returns (a decoder reading any other offset fails this).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BufferCursor, u16, u32, u64big, writeU16, writeU32, writeU64 } from '../src/format/bytes';
import { FRAGMENT_ENTRY_SIZE, InodeType, NO_INDEX, SUPERBLOCK_SIZE, XATTR_ID_ENTRY_SIZE } from '../src/format/constants';
import { DIR_ENTRY, DIR_HEADER, encodeDirEntry, encodeDirHeader, parseListing, type DirEntry } from '../src/format/directory';
import {
  DEV_INODE,
  DIR_INDEX_ENTRY,
  DIR_INODE,
  FILE_INODE,
  INODE_HEADER,
  IPC_INODE,
  LDEV_INODE,
  LDIR_INODE,
  LFILE_INODE,
  LIPC_INODE,
  SYMLINK_INODE,
  encodeInode,
  inodeRef,
  parseInode,
  splitInodeRef,
  type Inode,
  type InodeFields,
  type InodeRef,
} from '../src/format/inode';
import { decodeFields, encodeFields, type Field, type Layout } from '../src/format/layout';
import { SUPERBLOCK, encodeSuperblock, parseSuperblock, type SuperblockFields } from '../src/format/superblock';
import {
  FRAGMENT_ENTRY,
  XATTR_ID_ENTRY,
  XATTR_TABLE_HEADER,
  encodeFragmentEntry,
  encodeXattrIdEntry,
  encodeXattrTableHeader,
  parseFragmentEntry,
  parseXattrIdEntry,
  parseXattrTableHeader,
} from '../src/format/tables';
import { XATTR_KEY, XATTR_OOL_VALUE, XATTR_VALUE, encodeXattrKey, encodeXattrOolValue, encodeXattrValue, splitXattrName, xattrPrefix } from '../src/format/xattr';

const LAYOUTS: Array<Layout<string>> = [
  SUPERBLOCK,
  INODE_HEADER,
  DIR_INODE,
  LDIR_INODE,
  DIR_INDEX_ENTRY,
  FILE_INODE,
  LFILE_INODE,
  SYMLINK_INODE,
  DEV_INODE,
  LDEV_INODE,
  IPC_INODE,
  LIPC_INODE,
  DIR_HEADER,
  DIR_ENTRY,
  FRAGMENT_ENTRY,
  XATTR_ID_ENTRY,
  XATTR_TABLE_HEADER,
  XATTR_KEY,
  XATTR_VALUE,
  XATTR_OOL_VALUE,
];

/** A value of `width` bytes with every byte non-zero and distinct per field. */
function pattern(f: Field, seed: number): bigint {
  let v = 0n;
  for (let i = 0; i < f.width; i++) v |= BigInt(((seed * 37 + i * 11) % 250) + 1) << BigInt(8 * i);
  return v;
}

describe('layouts', () => {
  test('each layout is packed: offsets follow the widths, the size is their sum', () => {
    for (const l of LAYOUTS) {
      let at = 0;
      for (const f of l.fields) {
        assert.equal(f.at, at, `${l.structure}.${f.name}`);
        assert.equal(l.at[f.name], f.at);
        at += f.width;
      }
      assert.equal(l.size, at, l.structure);
    }
  });

  test('sizes and superblock offsets are those of the format description', () => {
    assert.equal(SUPERBLOCK.size, SUPERBLOCK_SIZE);
    assert.equal(INODE_HEADER.size, 16);
    assert.deepEqual(
      [DIR_INODE, LDIR_INODE, DIR_INDEX_ENTRY, FILE_INODE, LFILE_INODE, SYMLINK_INODE, DEV_INODE, LDEV_INODE, IPC_INODE, LIPC_INODE].map((l) => l.size),
      [16, 24, 12, 16, 40, 8, 8, 12, 4, 8],
    );
    assert.equal(DIR_HEADER.size, 12);
    assert.equal(DIR_ENTRY.size, 8);
    assert.equal(FRAGMENT_ENTRY.size, FRAGMENT_ENTRY_SIZE);
    assert.equal(XATTR_ID_ENTRY.size, XATTR_ID_ENTRY_SIZE);
    assert.equal(XATTR_TABLE_HEADER.size, 16);
    // Written out from the format description, independently of the layout.
    const sb = {
      magic: 0,
      inodeCount: 4,
      modificationTime: 8,
      blockSize: 12,
      fragmentCount: 16,
      compressionId: 20,
      blockLog: 22,
      flags: 24,
      idCount: 26,
      versionMajor: 28,
      versionMinor: 30,
      rootInodeRef: 32,
      bytesUsed: 40,
      idTableStart: 48,
      xattrIdTableStart: 56,
      inodeTableStart: 64,
      directoryTableStart: 72,
      fragmentTableStart: 80,
      exportTableStart: 88,
    };
    assert.deepEqual({ ...SUPERBLOCK.at }, sb);
  });

  test('the encoder writes each field into exactly the bytes the layout gives it, and the generic decoder reads it back', () => {
    for (const l of LAYOUTS) {
      for (const [k, f] of l.fields.entries()) {
        const values = Object.fromEntries(l.fields.map((g) => [g.name, 0])) as Record<string, number | bigint>;
        values[f.name] = f.type === 'u64' ? pattern(f, k) : Number(pattern(f, k));
        const b = new Uint8Array(l.size + 4).fill(0);
        encodeFields(l, values, b, 2);
        for (let i = 0; i < b.length; i++) {
          const inside = i >= 2 + f.at && i < 2 + f.at + f.width;
          assert.equal(b[i] !== 0, inside, `${l.structure}.${f.name}: byte ${i - 2}`);
        }
        const back = decodeFields(l, b, 2);
        const want = f.type === 'i16' ? (Number(values[f.name]) << 16) >> 16 : values[f.name];
        assert.equal(back[f.name], want, `${l.structure}.${f.name}`);
      }
    }
  });
});

// ---- the hand-written decoders against the layouts ---------------------------------------------

const CTX = { blockSize: 4096, inodeCount: 1_000_000, bytesUsed: 1 << 40, maxBlockListBytes: 1 << 20 };
const REF = inodeRef(8194, 100);

function decodeInode(b: Uint8Array): Inode {
  return parseInode(new BufferCursor(b), REF, CTX);
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const header = { permissions: 0o4755, uidIndex: 3, gidIndex: 5, mtime: 1_700_000_123, inodeNumber: 77 };
const index = [
  { index: 0, start: 0, name: bytes('alpha') },
  { index: 8200, start: 8194, name: bytes('omega') },
];
/** One value of every inode type, each field distinct where the type stores it. */
const INODES: InodeFields[] = [
  { ...header, type: InodeType.DIR, nlink: 4, xattrIndex: NO_INDEX, dirBlock: 16388, dirOffset: 300, listingSize: 900, parentInode: 12, index: [] },
  { ...header, type: InodeType.LDIR, nlink: 4, xattrIndex: 9, dirBlock: 16388, dirOffset: 300, listingSize: 70_000, parentInode: 12, index },
  {
    ...header,
    type: InodeType.FILE,
    nlink: 1,
    xattrIndex: NO_INDEX,
    blocksStart: 4000,
    fileSize: 10_000,
    sparse: 0,
    fragIndex: 6,
    fragOffset: 1234,
    blockSizes: Uint32Array.of(0x1000000 | 4096, 2000),
  },
  {
    ...header,
    type: InodeType.LFILE,
    nlink: 2,
    xattrIndex: 8,
    blocksStart: 2 ** 40 + 5,
    fileSize: 3 * 4096 + 7,
    sparse: 4096,
    fragIndex: NO_INDEX,
    fragOffset: 0,
    blockSizes: Uint32Array.of(100, 0, 300, 44),
  },
  { ...header, type: InodeType.SYMLINK, nlink: 1, xattrIndex: NO_INDEX, target: bytes('../lib/x') },
  { ...header, type: InodeType.LSYMLINK, nlink: 3, xattrIndex: 2, target: bytes('y') },
  { ...header, type: InodeType.BLKDEV, nlink: 1, xattrIndex: NO_INDEX, rdev: 0x00800103 },
  { ...header, type: InodeType.LCHRDEV, nlink: 2, xattrIndex: 4, rdev: 0x00000501 },
  { ...header, type: InodeType.FIFO, nlink: 1, xattrIndex: NO_INDEX },
  { ...header, type: InodeType.LSOCKET, nlink: 5, xattrIndex: 1 },
];

/** What the decoder returns minus what it derives (ref, kind, major/minor). */
function stored(i: Inode): Record<string, unknown> {
  const { ref, kind: _kind, ...rest } = i as Inode & { major?: number; minor?: number };
  assert.equal(ref, REF);
  delete (rest as { major?: number }).major;
  delete (rest as { minor?: number }).minor;
  return { ...rest, ...('blockSizes' in rest ? { blockSizes: Array.from(rest.blockSizes as Uint32Array) } : {}) };
}
function expected(v: InodeFields): Record<string, unknown> {
  return { ...v, ...('blockSizes' in v ? { blockSizes: Array.from(v.blockSizes) } : {}) };
}

/** The body layout of each inode type. */
function bodyOf(type: number): Layout<string> {
  const byType: Record<number, Layout<string>> = {
    1: DIR_INODE,
    2: FILE_INODE,
    3: SYMLINK_INODE,
    4: DEV_INODE,
    5: DEV_INODE,
    6: IPC_INODE,
    7: IPC_INODE,
    8: LDIR_INODE,
    9: LFILE_INODE,
    10: SYMLINK_INODE,
    11: LDEV_INODE,
    12: LDEV_INODE,
    13: LIPC_INODE,
    14: LIPC_INODE,
  };
  return byType[type]!;
}
/** Fields whose change changes the inode's shape (sizes of variable parts), or that are validated. */
const SHAPE = new Set(['type', 'fileSize', 'indexCount', 'targetSize', 'fragIndex']);

describe('inodes: encodeInode → parseInode', () => {
  test('every type round-trips with every field equal', () => {
    for (const v of INODES) assert.deepEqual(stored(decodeInode(encodeInode(v))), expected(v), `type ${v.type}`);
  });

  test('the encoder writes the header and the body through their layouts', () => {
    for (const v of INODES) {
      const b = encodeInode(v);
      const h: Record<string, number | bigint> = decodeFields(INODE_HEADER, b, 0);
      for (const f of INODE_HEADER.fields) assert.equal(h[f.name], (v as unknown as Record<string, number>)[f.name], `type ${v.type} header ${f.name}`);
      const body = decodeFields(bodyOf(v.type), b, INODE_HEADER.size);
      for (const [k, x] of Object.entries(body)) {
        if (k === 'fileSize' || k === 'indexCount' || k === 'targetSize') continue; // biased or derived: covered by the round trip
        if (k in v) assert.equal(Number(x), Number((v as unknown as Record<string, number>)[k]), `type ${v.type} ${k}`);
      }
    }
  });

  test('one field changed at its layout offset changes that field alone in what the decoder returns', () => {
    for (const v of INODES) {
      const base = encodeInode(v);
      const before = stored(decodeInode(base));
      const parts: Array<[Layout<string>, number]> = [
        [INODE_HEADER, 0],
        [bodyOf(v.type), INODE_HEADER.size],
      ];
      for (const [l, off] of parts) {
        for (const f of l.fields) {
          if (SHAPE.has(f.name)) continue;
          const b = Uint8Array.from(base);
          const at = off + f.at;
          if (f.width === 2) writeU16(b, at, (u16(b, at) + 1) % 0x2000);
          else if (f.width === 4) writeU32(b, at, (u32(b, at) + 1) % 0x100000000);
          else writeU64(b, at, u64big(b, at) + 1n);
          const after = stored(decodeInode(b));
          const changed = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
          const permitted = [f.name];
          assert.deepEqual(changed, permitted, `type ${v.type}: ${l.structure}.${f.name} at ${at}`);
        }
      }
    }
  });
});

describe('directory listings: encodeDirHeader/encodeDirEntry → parseListing', () => {
  function listing(): Uint8Array {
    const b = new Uint8Array(DIR_HEADER.size + 2 * (DIR_ENTRY.size + 3));
    encodeDirHeader(2, 8194, 100, b, 0);
    let p = DIR_HEADER.size;
    p += encodeDirEntry(40, 99, 100, 2, Buffer.from('abc'), b, p);
    encodeDirEntry(500, 130, 100, 1, Buffer.from('abd'), b, p);
    return b;
  }
  function decode(b: Uint8Array): Array<Omit<DirEntry, 'nameBytes' | 'kind'> & { block: number; offset: number }> {
    const out: Array<Omit<DirEntry, 'nameBytes' | 'kind'> & { block: number; offset: number }> = [];
    parseListing(new BufferCursor(b), b.length, { inodeCount: 1000 }, (e) => {
      out.push({ name: e.name, type: e.type, inodeRef: e.inodeRef, inodeNumber: e.inodeNumber, ...splitInodeRef(e.inodeRef) });
    });
    return out;
  }
  test('a run of two entries round-trips (negative and positive inode number deltas)', () => {
    assert.deepEqual(decode(listing()), [
      { name: 'abc', type: 2, inodeRef: inodeRef(8194, 40), inodeNumber: 99, block: 8194, offset: 40 },
      { name: 'abd', type: 1, inodeRef: inodeRef(8194, 500), inodeNumber: 130, block: 8194, offset: 500 },
    ]);
  });
  test('each header and entry field is read at its layout offset', () => {
    const base = decode(listing());
    const bump = (at: number, w: 2 | 4) => {
      const b = listing();
      if (w === 2) writeU16(b, at, u16(b, at) + 1);
      else writeU32(b, at, u32(b, at) + 1);
      return decode(b)[0]!;
    };
    const e0 = DIR_HEADER.size;
    assert.equal(bump(DIR_HEADER.at.start, 4).block, base[0]!.block + 1);
    assert.equal(bump(DIR_HEADER.at.inodeNumber, 4).inodeNumber, base[0]!.inodeNumber + 1);
    assert.equal(bump(e0 + DIR_ENTRY.at.offset, 2).offset, base[0]!.offset + 1);
    assert.equal(bump(e0 + DIR_ENTRY.at.inodeNumber, 2).inodeNumber, base[0]!.inodeNumber + 1);
    assert.equal(bump(e0 + DIR_ENTRY.at.type, 2).type, base[0]!.type + 1);
    // count and name_size change the shape: one entry fewer, a longer name running into the next.
    const fewer = listing();
    writeU32(fewer, DIR_HEADER.at.count, 0);
    assert.throws(() => decode(fewer), /trailing bytes|header count|runs past|ends inside/);
  });
});

describe('superblock and table entries', () => {
  const sb: SuperblockFields = {
    inodeCount: 7,
    modificationTime: 1_700_000_000,
    blockSize: 131072,
    fragmentCount: 3,
    compressionId: 4,
    flags: 0x0c0,
    idCount: 2,
    rootInodeRef: inodeRef(8194, 32),
    bytesUsed: 100_000,
    idTableStart: 99_000,
    xattrIdTableStart: undefined,
    inodeTableStart: 90_000,
    directoryTableStart: 95_000,
    fragmentTableStart: 97_000,
    exportTableStart: 98_000,
  };
  test('encodeSuperblock → parseSuperblock keeps every field; each field is read at its layout offset', () => {
    const b = encodeSuperblock(sb);
    const back = parseSuperblock(b, 200_000);
    for (const k of Object.keys(sb) as Array<keyof SuperblockFields>) assert.equal(back[k], sb[k], k);
    assert.equal(back.blockLog, 17);
    for (const f of SUPERBLOCK.fields) {
      if (['magic', 'blockSize', 'blockLog', 'versionMajor', 'versionMinor', 'xattrIdTableStart'].includes(f.name)) continue; // constants, coupled or absent
      const c = Uint8Array.from(b);
      if (f.width === 2) writeU16(c, f.at, u16(c, f.at) + 1);
      else if (f.width === 4) writeU32(c, f.at, u32(c, f.at) + 1);
      else writeU64(c, f.at, u64big(c, f.at) + 1n);
      const after = parseSuperblock(c, 200_000);
      const changed = Object.keys(after).filter((k) => after[k as keyof typeof after] !== back[k as keyof typeof back]);
      assert.deepEqual(changed, f.name === 'compressionId' ? ['compressionId', 'compression'] : [f.name], f.name);
    }
  });
  test('fragment entry, xattr id entry and xattr table header round-trip', () => {
    const b = new Uint8Array(48);
    encodeFragmentEntry({ start: 2 ** 33 + 9, sizeWord: 0x1000123 }, b, 0);
    assert.deepEqual(parseFragmentEntry(b, 0, 0), { start: 2 ** 33 + 9, sizeWord: 0x1000123 });
    encodeXattrIdEntry({ ref: inodeRef(16388, 17), count: 3, size: 77 }, b, 16);
    assert.deepEqual(parseXattrIdEntry(b, 16, 0), { ref: inodeRef(16388, 17), count: 3, size: 77 });
    encodeXattrTableHeader({ xattrTableStart: 123_456, xattrIds: 9 }, b, 32);
    assert.deepEqual(parseXattrTableHeader(b.subarray(32), 0), { xattrTableStart: 123_456, xattrIds: 9 });
  });
  test('xattr keys and values, and the one prefix table', () => {
    const s = splitXattrName('security.capability')!;
    assert.deepEqual(s, { id: 2, suffix: 'capability' });
    assert.equal(splitXattrName('system.posix_acl_access'), undefined);
    const k = encodeXattrKey(s.id, true, Buffer.from(s.suffix));
    assert.equal(xattrPrefix(u16(k, XATTR_KEY.at.type)), 'security.');
    assert.equal(u16(k, XATTR_KEY.at.type) & 0x100, 0x100);
    assert.equal(u16(k, XATTR_KEY.at.nameSize), 10);
    const v = encodeXattrValue(Buffer.from('xyz'));
    assert.equal(u32(v, XATTR_VALUE.at.valueSize), 3);
    const o = encodeXattrOolValue(inodeRef(100, 2));
    assert.equal(u32(o, 0), 8);
    assert.equal(Number(u64big(o, XATTR_VALUE.size + XATTR_OOL_VALUE.at.ref)), inodeRef(100, 2));
  });
  test('inodeRef and splitInodeRef are inverses over 48 bits', () => {
    for (const [block, offset] of [
      [0, 0],
      [8194, 8191],
      [0xffffffff, 0xffff],
    ] as const) {
      const r: InodeRef = inodeRef(block, offset);
      assert.deepEqual(splitInodeRef(r), { block, offset });
    }
  });
});
