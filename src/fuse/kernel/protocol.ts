/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h), as plain data: request decoding and reply
 * encoding, pure functions over bytes with no I/O, named after the kernel's structs. This is the
 * format layer of our own transport; src/fuse/kernel/session.ts decides what to answer.
 *
 * Every message on /dev/fuse is one read(2) or one write(2):
 * - a request is `fuse_in_header` (40 bytes: len, opcode, unique, nodeid, uid, gid, pid,
 *   total_extlen, padding) followed by the opcode's own struct and, for some, NUL-terminated names;
 * - a reply is `fuse_out_header` (16 bytes: len, error as a negative errno, unique) followed by the
 *   opcode's out struct, or nothing when error ≠ 0;
 * - a notification is a reply with unique 0 whose error field carries the notify code.
 * All integers are little-endian on the machines we run on (the kernel uses host order; x86-64
 * and arm64 are little-endian), 64-bit ones are read as two 32-bit halves and rejected past 2^53.
 */

export const FUSE_KERNEL_VERSION = 7;
/**
 * The minor version we speak. 31 is the last minor whose INIT reply and request layouts we use
 * without extensions (no INIT_EXT, no flags2, no request extensions); everything this transport
 * negotiates (no-open, no-opendir, readdirplus, symlink caching, max_pages) exists by 7.31.
 */
export const FUSE_OUR_MINOR = 31;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const INIT_OUT_SIZE = 64;
export const STATFS_OUT_SIZE = 80;
export const DIRENT_HEADER_SIZE = 24;
export const DIRENTPLUS_HEADER_SIZE = ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE;

/** Opcodes (enum fuse_opcode). */
export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
} as const;

/** Lower-case opcode names for counters and logs ("op42" for one we do not know). */
export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));
export function opName(op: number): string {
  return OP_NAMES[op] ?? `op${op}`;
}

/** Opcodes that would change the tree: answered EROFS, never ENOSYS (the kernel would cache that). */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR,
  Op.SYMLINK,
  Op.MKNOD,
  Op.MKDIR,
  Op.UNLINK,
  Op.RMDIR,
  Op.RENAME,
  Op.LINK,
  Op.WRITE,
  Op.SETXATTR,
  Op.REMOVEXATTR,
  Op.CREATE,
  Op.FALLOCATE,
  Op.RENAME2,
  Op.COPY_FILE_RANGE,
  Op.TMPFILE,
]);

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  INIT_EXT: 1 << 30,
} as const;

/** Notify codes (enum fuse_notify_code): sent in the out header's error field with unique 0. */
export const Notify = {
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;

/** The header every request starts with (struct fuse_in_header). */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

/** A request that does not hold together: answered EIO when it has a unique, else dropped. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    /** The request's unique when the header was readable: it is answered EIO. */
    readonly unique?: bigint,
  ) {
    super(message);
  }
}

function u64(b: Uint8Array, dv: DataView, off: number, what: string): number {
  if (off + 8 > b.length) throw new ProtocolError(`${what}: request ends at ${b.length}, field at ${off}`);
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  if (hi >= 0x200000) throw new ProtocolError(`${what}: ${hi} * 2^32 + ${lo} exceeds 2^53`);
  return hi * 0x100000000 + lo;
}

function u32(b: Uint8Array, dv: DataView, off: number, what: string): number {
  if (off + 4 > b.length) throw new ProtocolError(`${what}: request ends at ${b.length}, field at ${off}`);
  return dv.getUint32(off, true);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Decodes fuse_in_header and checks its length against the bytes read. */
export function decodeInHeader(b: Uint8Array): InHeader {
  if (b.length < IN_HEADER_SIZE) throw new ProtocolError(`request of ${b.length} bytes is shorter than its header (${IN_HEADER_SIZE})`);
  const dv = view(b);
  const len = dv.getUint32(0, true);
  if (len !== b.length) throw new ProtocolError(`header says ${len} bytes, ${b.length} were read`);
  const unique = dv.getBigUint64(8, true);
  let nodeid: number;
  try {
    nodeid = u64(b, dv, 16, 'nodeid');
  } catch (e) {
    throw new ProtocolError((e as Error).message, unique);
  }
  return {
    len,
    opcode: dv.getUint32(4, true),
    unique,
    nodeid,
    uid: dv.getUint32(24, true),
    gid: dv.getUint32(28, true),
    pid: dv.getUint32(32, true),
  };
}

/** The request's body (after the header). */
export function body(b: Uint8Array): Uint8Array {
  return b.subarray(IN_HEADER_SIZE);
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * A NUL-terminated name at `off` of a body (LOOKUP's name, GETXATTR's attribute name). Names are
 * bytes to the kernel; they are decoded as UTF-8 here, and a name without its NUL is an error.
 */
export function cstring(b: Uint8Array, off: number, what: string): string {
  const end = b.indexOf(0, off);
  if (end < 0) throw new ProtocolError(`${what}: no NUL terminator`);
  return utf8.decode(b.subarray(off, end));
}

/** fuse_init_in: the kernel's protocol version, read-ahead and capabilities. */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function decodeInit(b: Uint8Array): InitIn {
  const dv = view(b);
  return { major: u32(b, dv, 0, 'init major'), minor: u32(b, dv, 4, 'init minor'), maxReadahead: b.length >= 12 ? dv.getUint32(8, true) : 0, flags: b.length >= 16 ? dv.getUint32(12, true) : 0 };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  /** Timestamp granularity in ns (1: full nanoseconds; we send whole seconds anyway). */
  timeGran: number;
  maxPages: number;
}

export function encodeInitOut(o: InitOut): Uint8Array {
  const b = new Uint8Array(INIT_OUT_SIZE);
  const dv = view(b);
  dv.setUint32(0, o.major, true);
  dv.setUint32(4, o.minor, true);
  dv.setUint32(8, o.maxReadahead, true);
  dv.setUint32(12, o.flags >>> 0, true);
  dv.setUint16(16, o.maxBackground, true);
  dv.setUint16(18, o.congestionThreshold, true);
  dv.setUint32(20, o.maxWrite, true);
  dv.setUint32(24, o.timeGran, true);
  dv.setUint16(28, o.maxPages, true);
  return b;
}

/** fuse_read_in: offset and size (fh is unused: files are read by node, without open). */
export function decodeRead(b: Uint8Array): { offset: number; size: number } {
  const dv = view(b);
  return { offset: u64(b, dv, 8, 'read offset'), size: u32(b, dv, 16, 'read size') };
}

/** fuse_forget_in: how many lookups of the header's node the kernel drops. */
export function decodeForget(b: Uint8Array): number {
  return u64(b, view(b), 0, 'forget nlookup');
}

/** fuse_batch_forget_in + fuse_forget_one[count]. */
export function decodeBatchForget(b: Uint8Array): Array<{ node: number; nlookup: number }> {
  const dv = view(b);
  const count = u32(b, dv, 0, 'batch_forget count');
  if (8 + count * 16 > b.length) throw new ProtocolError(`batch_forget: ${count} entries do not fit in ${b.length} bytes`);
  const out: Array<{ node: number; nlookup: number }> = [];
  for (let i = 0; i < count; i++) out.push({ node: u64(b, dv, 8 + i * 16, 'forget nodeid'), nlookup: u64(b, dv, 16 + i * 16, 'forget nlookup') });
  return out;
}

/** fuse_getxattr_in (then the name): the size of the caller's buffer, 0 to ask for the length. */
export function decodeGetxattr(b: Uint8Array): { size: number; name: string } {
  return { size: u32(b, view(b), 0, 'getxattr size'), name: cstring(b, 8, 'getxattr name') };
}

/** fuse_getxattr_in for LISTXATTR (size only). */
export function decodeListxattr(b: Uint8Array): number {
  return u32(b, view(b), 0, 'listxattr size');
}

/** fuse_interrupt_in: the unique of the request to interrupt. */
export function decodeInterrupt(b: Uint8Array): bigint {
  if (b.length < 8) throw new ProtocolError('interrupt: body shorter than 8 bytes');
  return view(b).getBigUint64(0, true);
}

// ---- replies -------------------------------------------------------------------------------------

/** Writes fuse_out_header at the start of `out`. */
export function writeOutHeader(out: Uint8Array, len: number, error: number, unique: bigint): void {
  const dv = view(out);
  dv.setUint32(0, len, true);
  dv.setInt32(4, error, true);
  dv.setBigUint64(8, unique, true);
}

/** A reply that carries only an error (a positive errno, sent negated) or nothing (0). */
export function encodeError(unique: bigint, errno: number): Uint8Array {
  const b = new Uint8Array(OUT_HEADER_SIZE);
  writeOutHeader(b, OUT_HEADER_SIZE, -errno, unique);
  return b;
}

/** What fuse_attr says about one node. */
export interface Attr {
  ino: number;
  size: number;
  /** 512-byte blocks. */
  blocks: number;
  /** Seconds; used for atime, mtime and ctime alike (an image has one time per inode). */
  mtime: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v % 0x100000000, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000), true);
}

/** A signed 64-bit integer (|v| < 2^53), two's complement, little-endian. */
function setI64(dv: DataView, off: number, v: number): void {
  const hi = Math.floor(v / 0x100000000); // negative for v < 0: the sign bits of the high word
  dv.setUint32(off, v - hi * 0x100000000, true);
  dv.setInt32(off + 4, hi, true);
}

/** struct fuse_attr at `off`. Negative times (before 1970) are sent as two's complement. */
export function writeAttr(dv: DataView, off: number, a: Attr): void {
  setU64(dv, off, a.ino);
  setU64(dv, off + 8, a.size);
  setU64(dv, off + 16, a.blocks);
  // atime, mtime and ctime, all the image's one time; without BigInt (two allocations per attr).
  const t = Math.trunc(a.mtime);
  setI64(dv, off + 24, t);
  setI64(dv, off + 32, t);
  setI64(dv, off + 40, t);
  dv.setUint32(off + 48, 0, true);
  dv.setUint32(off + 52, 0, true);
  dv.setUint32(off + 56, 0, true);
  dv.setUint32(off + 60, a.mode, true);
  dv.setUint32(off + 64, a.nlink, true);
  dv.setUint32(off + 68, a.uid, true);
  dv.setUint32(off + 72, a.gid, true);
  dv.setUint32(off + 76, a.rdev, true);
  dv.setUint32(off + 80, a.blksize, true);
  dv.setUint32(off + 84, 0, true);
}

/** Splits seconds into the (u64 seconds, u32 nanoseconds) pair every validity field uses. */
function writeValidity(dv: DataView, secOff: number, nsecOff: number, seconds: number): void {
  const s = Math.max(0, seconds);
  const whole = Math.floor(s);
  setU64(dv, secOff, whole);
  dv.setUint32(nsecOff, Math.round((s - whole) * 1e9) % 1e9, true);
}

export interface EntryOut {
  /** 0: a negative entry, cached for entryValid seconds. */
  nodeid: number;
  entryValid: number;
  attrValid: number;
  attr: Attr;
}

/** struct fuse_entry_out at `off` (generation is always 0: node ids are never reused). */
export function writeEntryOut(dv: DataView, off: number, e: EntryOut): void {
  setU64(dv, off, e.nodeid);
  setU64(dv, off + 8, 0);
  writeValidity(dv, off + 16, off + 32, e.entryValid);
  writeValidity(dv, off + 24, off + 36, e.attrValid);
  writeAttr(dv, off + 40, e.attr);
}

/** A negative entry (node id 0) that the kernel may remember for `valid` seconds. */
export const NO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, mtime: 0, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };

/** A reply of `bodyLen` bytes whose body `fill` writes (header written here). */
export function encodeReply(unique: bigint, bodyLen: number, fill: (dv: DataView, off: number) => void): Uint8Array {
  const b = new Uint8Array(OUT_HEADER_SIZE + bodyLen);
  writeOutHeader(b, b.length, 0, unique);
  fill(view(b), OUT_HEADER_SIZE);
  return b;
}

export function encodeEntryOut(unique: bigint, e: EntryOut): Uint8Array {
  return encodeReply(unique, ENTRY_OUT_SIZE, (dv, off) => writeEntryOut(dv, off, e));
}

/** struct fuse_attr_out. */
export function encodeAttrOut(unique: bigint, valid: number, attr: Attr): Uint8Array {
  return encodeReply(unique, ATTR_OUT_SIZE, (dv, off) => {
    writeValidity(dv, off, off + 8, valid);
    writeAttr(dv, off + 16, attr);
  });
}

/** struct fuse_open_out (only used where the kernel does not take "no open"). */
export function encodeOpenOut(unique: bigint, fh: number, openFlags: number): Uint8Array {
  return encodeReply(unique, 16, (dv, off) => {
    setU64(dv, off, fh);
    dv.setUint32(off + 8, openFlags, true);
  });
}

export interface Kstatfs {
  blocks: number;
  files: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** struct fuse_statfs_out (bfree, bavail and ffree are 0: read-only). */
export function encodeStatfsOut(unique: bigint, s: Kstatfs): Uint8Array {
  return encodeReply(unique, STATFS_OUT_SIZE, (dv, off) => {
    setU64(dv, off, s.blocks);
    setU64(dv, off + 24, s.files);
    dv.setUint32(off + 40, s.bsize, true);
    dv.setUint32(off + 44, s.namelen, true);
    dv.setUint32(off + 48, s.frsize, true);
  });
}

/** struct fuse_getxattr_out: the size a GETXATTR/LISTXATTR with size 0 asked for. */
export function encodeXattrSize(unique: bigint, size: number): Uint8Array {
  return encodeReply(unique, 8, (dv, off) => dv.setUint32(off, size, true));
}

/** A reply whose body is raw bytes (READLINK's target, GETXATTR's value, LISTXATTR's names). */
export function encodeBytes(unique: bigint, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(OUT_HEADER_SIZE + data.length);
  writeOutHeader(b, b.length, 0, unique);
  b.set(data, OUT_HEADER_SIZE);
  return b;
}

/** Rounds up to the 8-byte alignment of directory records (FUSE_DIRENT_ALIGN). */
export function direntAlign(n: number): number {
  return (n + 7) & ~7;
}

/** DT_* from st_mode (the dirent's `type` field): S_IFMT >> 12. */
export function direntType(mode: number): number {
  return (mode & 0o170000) >>> 12;
}

/**
 * A READDIR or READDIRPLUS reply assembled in place: records are appended while they fit in the
 * size the kernel asked for; `add` returns false (and adds nothing) once one does not.
 */
export class DirentWriter {
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  private pos = OUT_HEADER_SIZE;

  constructor(
    readonly unique: bigint,
    /** The kernel's size for the body. */
    readonly size: number,
    readonly plus: boolean,
    /**
     * Where to assemble the reply (at least OUT_HEADER_SIZE + size bytes): a buffer reused from
     * one reply to the next saves allocating and zeroing up to 1 MiB per listing; every byte sent,
     * padding included, is written here. Default: a fresh one.
     */
    into?: Uint8Array,
  ) {
    this.buf = into && into.length >= OUT_HEADER_SIZE + size ? into : new Uint8Array(OUT_HEADER_SIZE + size);
    this.dv = view(this.buf);
  }

  /** Bytes one record of `nameBytes` takes. */
  recordSize(nameBytes: number): number {
    return direntAlign((this.plus ? DIRENTPLUS_HEADER_SIZE : DIRENT_HEADER_SIZE) + nameBytes);
  }

  /** Whether a record for a name of `nameBytes` still fits. */
  fits(nameBytes: number): boolean {
    return this.pos - OUT_HEADER_SIZE + this.recordSize(nameBytes) <= this.size;
  }

  /**
   * Appends one record (the caller checked fits()). `entry` is the READDIRPLUS half: a looked-up
   * entry, or nodeid 0 for one the kernel should not instantiate ("." and "..").
   */
  add(name: Uint8Array, ino: number, cookie: number, mode: number, entry?: EntryOut): void {
    let off = this.pos;
    const rec = this.recordSize(name.length);
    if (this.plus) {
      writeEntryOut(this.dv, off, entry ?? { nodeid: 0, entryValid: 0, attrValid: 0, attr: NO_ATTR });
      off += ENTRY_OUT_SIZE;
    }
    setU64(this.dv, off, ino);
    setU64(this.dv, off + 8, cookie);
    this.dv.setUint32(off + 16, name.length, true);
    this.dv.setUint32(off + 20, direntType(mode), true);
    this.buf.set(name, off + DIRENT_HEADER_SIZE);
    this.buf.fill(0, off + DIRENT_HEADER_SIZE + name.length, this.pos + rec); // the alignment padding
    this.pos += rec;
  }

  /** The reply, header included. */
  finish(): Uint8Array {
    writeOutHeader(this.buf, this.pos, 0, this.unique);
    return this.buf.subarray(0, this.pos);
  }
}

/** FUSE_NOTIFY_INVAL_ENTRY: `name` in directory `parent` is stale. */
export function encodeInvalEntry(parent: number, name: Uint8Array): Uint8Array {
  const b = new Uint8Array(OUT_HEADER_SIZE + 16 + name.length + 1);
  writeOutHeader(b, b.length, Notify.INVAL_ENTRY, 0n);
  const dv = view(b);
  setU64(dv, OUT_HEADER_SIZE, parent);
  dv.setUint32(OUT_HEADER_SIZE + 8, name.length, true);
  b.set(name, OUT_HEADER_SIZE + 16);
  return b;
}

/** FUSE_NOTIFY_INVAL_INODE: the node's attributes and all its cached pages are stale. */
export function encodeInvalInode(node: number): Uint8Array {
  const b = new Uint8Array(OUT_HEADER_SIZE + 24);
  writeOutHeader(b, b.length, Notify.INVAL_INODE, 0n);
  const dv = view(b);
  setU64(dv, OUT_HEADER_SIZE, node);
  dv.setBigInt64(OUT_HEADER_SIZE + 8, 0n, true); // from offset 0
  dv.setBigInt64(OUT_HEADER_SIZE + 16, 0n, true); // len 0: to the end
  return b;
}
