/**
 * Our FUSE transport on bytes: requests written here by hand, field by field at the offsets of
 * include/uapi/linux/fuse.h (not with the module's own encoders), answered by a Session over a
 * real committed image, and the replies read back the same way. No mount, no /dev/fuse: this is
 * the format layer and the dispatch, checked the way src/format is.
 */
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Image } from '../src/reader/image';
import { ImageFs } from '../src/vfs/image-fs';
import { Session, WAKE_NAME, MAX_READ } from '../src/fuse/kernel/session';
import { encodeInvalEntry, encodeInvalInode } from '../src/fuse/kernel/protocol';
import { repoRoot } from './oracle/tools';

const fixture = (name: string) => path.join(repoRoot(), 'fixtures/images', name);

let uniqueSeq = 100n;

/** fuse_in_header (40 bytes) + body, as the kernel writes it. */
function request(opcode: number, nodeid: number, body: Uint8Array = new Uint8Array(0)): { bytes: Uint8Array; unique: bigint } {
  const unique = uniqueSeq++;
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeUInt32LE(0, 24); // uid
  b.writeUInt32LE(0, 28); // gid
  b.writeUInt32LE(4242, 32); // pid
  Buffer.from(body).copy(b, 40);
  return { bytes: b, unique };
}

const cstr = (s: string) => Buffer.concat([Buffer.from(s), Buffer.from([0])]);

function readIn(offset: number, size: number): Buffer {
  const b = Buffer.alloc(40); // fuse_read_in: fh, offset, size, read_flags, lock_owner, flags, padding
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
}

interface Reply {
  len: number;
  error: number;
  unique: bigint;
  body: Buffer;
}

function parseReply(r: Uint8Array | undefined): Reply {
  assert.ok(r, 'expected a reply');
  const b = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  const len = b.readUInt32LE(0);
  assert.equal(len, b.length, 'out header length equals the reply length');
  return { len, error: b.readInt32LE(4), unique: b.readBigUInt64LE(8), body: Buffer.from(b.subarray(16)) };
}

/** fuse_entry_out at `off`. */
function entryOut(b: Buffer, off = 0) {
  return {
    nodeid: Number(b.readBigUInt64LE(off)),
    generation: Number(b.readBigUInt64LE(off + 8)),
    entryValid: Number(b.readBigUInt64LE(off + 16)),
    attrValid: Number(b.readBigUInt64LE(off + 24)),
    ino: Number(b.readBigUInt64LE(off + 40)),
    size: Number(b.readBigUInt64LE(off + 48)),
    mtime: Number(b.readBigInt64LE(off + 40 + 32)),
    mode: b.readUInt32LE(off + 40 + 60),
    nlink: b.readUInt32LE(off + 40 + 64),
    uid: b.readUInt32LE(off + 40 + 68),
  };
}

const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  MKDIR: 9,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  INTERRUPT: 36,
  BATCH_FORGET: 42,
  READDIRPLUS: 44,
};
const ENOENT = 2;
const EIO = 5;
const EBADF = 9;
const EROFS = 30;
const ERANGE = 34;
const ENOSYS = 38;
const ENODATA = 61;

/** An INIT as kernel 6.18 sends it: 7.45, flags 0x73fffffb, 128 KiB read-ahead. */
function init(s: Session): Reply {
  const body = Buffer.alloc(64);
  body.writeUInt32LE(7, 0);
  body.writeUInt32LE(45, 4);
  body.writeUInt32LE(131072, 8);
  body.writeUInt32LE(0x73fffffb, 12);
  const { bytes } = request(Op.INIT, 0, body);
  return parseReply(s.handle(bytes));
}

function open(name = 'small-gzip.sqfs') {
  const image = Image.open(fixture(name));
  const fs = new ImageFs(image);
  const s = new Session(fs);
  return { image, fs, s };
}

function lookup(s: Session, parent: number, name: string) {
  const r = parseReply(s.handle(request(Op.LOOKUP, parent, cstr(name)).bytes));
  return { r, e: r.error === 0 ? entryOut(r.body) : undefined };
}

/** Every entry of a READDIR(PLUS) reply body. */
function dirents(body: Buffer, plus: boolean) {
  const out: Array<{ name: string; ino: number; off: number; type: number; nodeid?: number }> = [];
  let p = 0;
  while (p < body.length) {
    const entry = plus ? entryOut(body, p) : undefined;
    const d = plus ? p + 128 : p;
    const namelen = body.readUInt32LE(d + 16);
    out.push({
      ino: Number(body.readBigUInt64LE(d)),
      off: Number(body.readBigUInt64LE(d + 8)),
      type: body.readUInt32LE(d + 20),
      name: body.subarray(d + 24, d + 24 + namelen).toString(),
      nodeid: entry?.nodeid,
    });
    p += ((plus ? 128 : 0) + 24 + namelen + 7) & ~7;
  }
  return out;
}

describe('FUSE protocol on bytes (Session over a committed image)', () => {
  test('INIT: protocol 7.31, 1 MiB reads, and only the capabilities we use', () => {
    const { s } = open();
    const r = init(s);
    assert.equal(r.error, 0);
    assert.equal(r.body.length, 64, 'fuse_init_out is 64 bytes');
    assert.equal(r.body.readUInt32LE(0), 7);
    assert.equal(r.body.readUInt32LE(4), 31);
    assert.equal(r.body.readUInt32LE(8), 131072, 'max_readahead echoes the kernel');
    const flags = r.body.readUInt32LE(12);
    // No READDIRPLUS_AUTO (1 << 14) for an image: every page of a listing carries attributes.
    const want = (1 << 0) | (1 << 13) | (1 << 18) | (1 << 22) | (1 << 23);
    assert.equal(flags, want, `flags 0x${flags.toString(16)}: ASYNC_READ, DO_READDIRPLUS, PARALLEL_DIROPS, MAX_PAGES, CACHE_SYMLINKS`);
    assert.equal(r.body.readUInt32LE(20), MAX_READ, 'max_write');
    assert.equal(r.body.readUInt16LE(28), 256, 'max_pages');
    assert.ok(s.noOpen && s.noOpendir, 'the kernel offered no-open: OPEN/OPENDIR will be ENOSYS');
    assert.equal(parseReply(s.handle(request(Op.OPEN, 1).bytes)).error, -ENOSYS);
    assert.equal(parseReply(s.handle(request(Op.OPENDIR, 1).bytes)).error, -ENOSYS);
    assert.equal(parseReply(s.handle(request(Op.FLUSH, 1).bytes)).error, -ENOSYS);
  });

  test('INIT: READDIRPLUS_AUTO only for a tree that does not want attributes on every page', () => {
    const image = Image.open(fixture('small-gzip.sqfs'));
    const AUTO = 1 << 14;
    const DO_READDIRPLUS = 1 << 13;
    const every = init(new Session(new ImageFs(image))).body.readUInt32LE(12);
    assert.equal(every & (DO_READDIRPLUS | AUTO), DO_READDIRPLUS, `image: READDIRPLUS on every page (flags 0x${every.toString(16)})`);
    const auto = init(new Session(new ImageFs(image, { attributesOnEveryPage: false }))).body.readUInt32LE(12);
    assert.equal(auto & (DO_READDIRPLUS | AUTO), DO_READDIRPLUS | AUTO, `left to the kernel: READDIRPLUS_AUTO (flags 0x${auto.toString(16)})`);
  });

  test('LOOKUP: entry_out with the image inode number and a day of validity; a miss is a cached negative entry', () => {
    const { s, image, fs } = open();
    init(s);
    const files = lookup(s, 1, 'files');
    assert.equal(files.r.error, 0);
    const want = image.resolve('files');
    assert.equal(files.e!.nodeid, want.ref + 2, 'node id = inode reference + 2');
    assert.equal(files.e!.ino, want.inodeNumber);
    assert.equal(files.e!.mode & 0o170000, 0o040000);
    assert.equal(files.e!.entryValid, 86400);
    assert.equal(files.e!.attrValid, 86400);
    assert.equal(files.e!.generation, 0);
    const hello = lookup(s, files.e!.nodeid, 'hello.txt');
    assert.equal(hello.e!.size, 16);
    assert.equal(hello.e!.mtime, image.resolve('files/hello.txt').mtime);
    assert.equal(fs.nodeCount, 2, 'two nodes referenced');

    const miss = lookup(s, files.e!.nodeid, 'nope');
    assert.equal(miss.r.error, 0, 'a miss is an entry with node id 0, not ENOENT');
    assert.equal(miss.e!.nodeid, 0);
    assert.equal(miss.e!.entryValid, 86400);
    assert.equal(fs.nodeCount, 2, 'a miss holds no reference');
  });

  test('the wake name is answered ENOENT (never a cached negative entry) and calls onWake', () => {
    const image = Image.open(fixture('small-gzip.sqfs'));
    let woken = 0;
    const s = new Session(new ImageFs(image), { onWake: () => woken++ });
    init(s);
    const r = lookup(s, 1, WAKE_NAME);
    assert.equal(r.r.error, -ENOENT);
    assert.equal(r.r.body.length, 0);
    assert.equal(woken, 1);
    // Only in the root: elsewhere it is an ordinary (missing) name.
    const files = lookup(s, 1, 'files');
    assert.equal(lookup(s, files.e!.nodeid, WAKE_NAME).e!.nodeid, 0);
    assert.equal(woken, 1);
  });

  test('READDIRPLUS in small replies: every name once, cookies continue, "." and "..", one reference per entry sent', () => {
    const { s, image, fs } = open();
    init(s);
    const many = lookup(s, 1, 'many').e!;
    const before = fs.nodeCount;
    const listing = image.readdir(image.resolve('many'));
    const typeOf = new Map(listing.map((e) => [e.name, e.type === 1 ? 4 : e.type === 2 ? 8 : -1]));
    const names: string[] = [];
    let offset = 0;
    let calls = 0;
    for (;;) {
      const r = parseReply(s.handle(request(Op.READDIRPLUS, many.nodeid, readIn(offset, 4096)).bytes));
      assert.equal(r.error, 0);
      assert.ok(r.body.length <= 4096, 'a reply never exceeds the size asked for');
      const ds = dirents(r.body, true);
      if (ds.length === 0) break;
      calls++;
      for (const d of ds) {
        names.push(d.name);
        assert.ok(d.off > offset, 'cookies increase');
        offset = d.off;
        if (d.name === '.' || d.name === '..') assert.equal(d.nodeid, 0, '"." and ".." carry no entry');
        else assert.ok(d.nodeid! > 1, `${d.name}: a node id`);
        assert.equal(d.type, d.name === '.' || d.name === '..' ? 4 : typeOf.get(d.name), `${d.name}: DT_DIR or DT_REG as in the image`);
      }
    }
    const expected = listing.map((e) => e.name);
    assert.ok(calls > 1, 'the listing needed several replies');
    assert.deepEqual(names, ['.', '..', ...expected]);
    assert.equal(fs.nodeCount - before, expected.length, 'one node per entry sent, none for entries that did not fit');
  });

  test('READDIR (no plus) takes no references', () => {
    const { s, fs } = open();
    init(s);
    const before = fs.nodeCount;
    const r = parseReply(s.handle(request(Op.READDIR, 1, readIn(0, 65536)).bytes));
    const ds = dirents(r.body, false);
    assert.ok(ds.some((d) => d.name === 'files'));
    assert.equal(fs.nodeCount, before);
  });

  test('FORGET and BATCH_FORGET take references back (no reply); a forgotten node is EBADF', () => {
    const { s, fs } = open();
    init(s);
    const files = lookup(s, 1, 'files').e!;
    lookup(s, 1, 'files');
    const deep = lookup(s, 1, 'deep').e!;
    assert.equal(fs.nodeCount, 2);
    const forget = Buffer.alloc(8);
    forget.writeBigUInt64LE(1n);
    assert.equal(s.handle(request(Op.FORGET, files.nodeid, forget).bytes), undefined);
    assert.equal(fs.nodeCount, 2, 'files still has one reference');
    const batch = Buffer.alloc(8 + 32);
    batch.writeUInt32LE(2, 0);
    batch.writeBigUInt64LE(BigInt(files.nodeid), 8);
    batch.writeBigUInt64LE(1n, 16);
    batch.writeBigUInt64LE(BigInt(deep.nodeid), 24);
    batch.writeBigUInt64LE(1n, 32);
    assert.equal(s.handle(request(Op.BATCH_FORGET, 0, batch).bytes), undefined);
    assert.equal(fs.nodeCount, 0);
    assert.equal(parseReply(s.handle(request(Op.GETATTR, files.nodeid, Buffer.alloc(16)).bytes)).error, -EBADF);
  });

  test('READ returns the file bytes; READLINK the target; GETATTR the attributes', () => {
    const { s, image } = open();
    init(s);
    const files = lookup(s, 1, 'files').e!;
    const text = lookup(s, files.nodeid, 'text.txt').e!;
    const want = Buffer.from(image.read(image.resolve('files/text.txt')));
    const r = parseReply(s.handle(request(Op.READ, text.nodeid, readIn(1000, 3000)).bytes));
    assert.deepEqual(r.body, want.subarray(1000, 4000));
    const tail = parseReply(s.handle(request(Op.READ, text.nodeid, readIn(want.length - 10, 4096)).bytes));
    assert.deepEqual(tail.body, want.subarray(want.length - 10), 'a short read at the end of the file');
    const links = lookup(s, 1, 'links').e!;
    const rel = lookup(s, links.nodeid, 'sym-relative').e!;
    assert.equal(parseReply(s.handle(request(Op.READLINK, rel.nodeid).bytes)).body.toString(), '../files/hello.txt');
    assert.equal(parseReply(s.handle(request(Op.READLINK, files.nodeid).bytes)).error, -22, 'readlink of a directory is EINVAL');
    const ga = parseReply(s.handle(request(Op.GETATTR, text.nodeid, Buffer.alloc(16)).bytes));
    assert.equal(ga.body.length, 104, 'fuse_attr_out is 104 bytes');
    assert.equal(Number(ga.body.readBigUInt64LE(0)), 86400);
    assert.equal(Number(ga.body.readBigUInt64LE(16 + 8)), want.length, 'attr.size');
  });

  test('xattrs: size probe, ERANGE, ENODATA; an image without xattrs answers ENOSYS', () => {
    const { s } = open('small-zstd-xattr.sqfs');
    init(s);
    const x = lookup(s, 1, 'xattrs').e!;
    const user = lookup(s, x.nodeid, 'user').e!;
    const listProbe = parseReply(s.handle(request(Op.LISTXATTR, user.nodeid, Buffer.alloc(8)).bytes));
    const listLen = listProbe.body.readUInt32LE(0);
    assert.ok(listLen > 0);
    const sized = Buffer.alloc(8);
    sized.writeUInt32LE(listLen, 0);
    const names = parseReply(s.handle(request(Op.LISTXATTR, user.nodeid, sized).bytes))
      .body.toString()
      .split('\0')
      .filter(Boolean);
    assert.ok(names.length > 0 && names.every((n) => n.includes('.')), `names: ${names}`);
    const getIn = (size: number, name: string) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(size, 0);
      return Buffer.concat([b, cstr(name)]);
    };
    const probe = parseReply(s.handle(request(Op.GETXATTR, user.nodeid, getIn(0, names[0]!)).bytes));
    const vlen = probe.body.readUInt32LE(0);
    if (vlen > 0) assert.equal(parseReply(s.handle(request(Op.GETXATTR, user.nodeid, getIn(vlen - 1, names[0]!)).bytes)).error, -ERANGE);
    assert.equal(parseReply(s.handle(request(Op.GETXATTR, user.nodeid, getIn(vlen, names[0]!)).bytes)).body.length, vlen);
    assert.equal(parseReply(s.handle(request(Op.GETXATTR, user.nodeid, getIn(100, 'user.nope')).bytes)).error, -ENODATA);

    const plain = open('small-xz-no-fragments-no-xattrs.sqfs');
    init(plain.s);
    assert.equal(parseReply(plain.s.handle(request(Op.GETXATTR, 1, getIn(100, 'security.selinux')).bytes)).error, -ENOSYS);
  });

  test('writes are EROFS, unknown opcodes ENOSYS, INTERRUPT has no reply, STATFS as the kernel driver', () => {
    const { s, image } = open();
    init(s);
    for (const op of [Op.SETATTR, Op.MKDIR, Op.WRITE]) assert.equal(parseReply(s.handle(request(op, 1, Buffer.alloc(64)).bytes)).error, -EROFS, `opcode ${op}`);
    assert.equal(parseReply(s.handle(request(4242, 1).bytes)).error, -ENOSYS);
    assert.equal(s.handle(request(Op.INTERRUPT, 0, Buffer.alloc(8)).bytes), undefined);
    const st = parseReply(s.handle(request(Op.STATFS, 1).bytes));
    assert.equal(st.body.length, 80);
    assert.equal(Number(st.body.readBigUInt64LE(0)), Math.ceil(image.superblock.bytesUsed / image.superblock.blockSize));
    assert.equal(Number(st.body.readBigUInt64LE(24)), image.superblock.inodeCount);
    assert.equal(st.body.readUInt32LE(40), image.superblock.blockSize);
    assert.equal(st.body.readUInt32LE(44), 256);
  });

  test('malformed requests: a wrong length gets no reply, a truncated body EIO, an unknown node EBADF; the session keeps serving', () => {
    const { s } = open();
    init(s);
    const bad = Buffer.from(request(Op.GETATTR, 1, Buffer.alloc(16)).bytes);
    bad.writeUInt32LE(9999, 0);
    assert.equal(s.handle(bad), undefined);
    assert.equal(s.handle(new Uint8Array(12)), undefined, 'shorter than a header');
    const shortRead = request(Op.READ, 1, Buffer.alloc(8));
    const r = parseReply(s.handle(shortRead.bytes));
    assert.equal(r.error, -EIO);
    assert.equal(r.unique, shortRead.unique, 'the reply names the request');
    assert.equal(parseReply(s.handle(request(Op.LOOKUP, 1, Buffer.from('no-nul')).bytes)).error, -EIO);
    assert.equal(parseReply(s.handle(request(Op.GETATTR, 987654321, Buffer.alloc(16)).bytes)).error, -EBADF);
    const huge = Buffer.from(request(Op.GETATTR, 0).bytes);
    huge.writeUInt32LE(0xffffffff, 20); // node id high half past 2^53
    assert.equal(parseReply(s.handle(huge)).error, -EIO);
    assert.equal(lookup(s, 1, 'files').r.error, 0, 'still serving');
  });

  test('notifications: INVAL_ENTRY and INVAL_INODE as fuse.h lays them out', () => {
    const e = Buffer.from(encodeInvalEntry(7, Buffer.from('less')));
    assert.equal(e.readUInt32LE(0), e.length);
    assert.equal(e.readInt32LE(4), 3, 'FUSE_NOTIFY_INVAL_ENTRY in the error field');
    assert.equal(e.readBigUInt64LE(8), 0n, 'unique 0');
    assert.equal(e.readBigUInt64LE(16), 7n);
    assert.equal(e.readUInt32LE(24), 4);
    assert.equal(e.subarray(32).toString(), 'less\0');
    const i = Buffer.from(encodeInvalInode(9));
    assert.equal(i.length, 40);
    assert.equal(i.readInt32LE(4), 2);
    assert.equal(i.readBigUInt64LE(16), 9n);
    assert.equal(i.readBigInt64LE(24), 0n);
    assert.equal(i.readBigInt64LE(32), 0n);
  });
});
