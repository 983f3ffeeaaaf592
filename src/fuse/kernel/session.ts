/**
 * One FUSE connection's request handling: a request's bytes in, the reply's bytes out (or none),
 * with a NodeFs behind it. No I/O here: the serving thread (serve-worker.ts) reads requests from
 * /dev/fuse and writes what this returns, so the whole protocol logic runs on bytes in tests.
 *
 * What we ask of the kernel, for a tree that never changes under a node id:
 * - INIT: ASYNC_READ, READDIRPLUS (`ls -l` gets names and attributes in one request; with
 *   READDIRPLUS_AUTO as well unless the NodeFs wants attributes on every page, see
 *   NodeFs.attributesOnEveryPage), PARALLEL_DIROPS, CACHE_SYMLINKS (targets stay in the page
 *   cache), MAX_PAGES with 256 pages (1 MiB reads and directory replies);
 * - OPEN and OPENDIR answered ENOSYS once, where the kernel offers NO_OPEN(DIR)_SUPPORT: it then
 *   stops sending them and treats every file as keep-cache and every directory as cache-dir
 *   (where it does not, OPEN answers FOPEN_KEEP_CACHE and OPENDIR FOPEN_CACHE_DIR);
 * - FLUSH answered ENOSYS once (answered with success it would come on every close());
 * - entry, attribute and negative-entry validity as long as the NodeFs says (a day for images).
 * So a warm `ls -lR` or re-read sends nothing at all; the kernel answers from its caches.
 *
 * Every request is answered exactly once, except FORGET, BATCH_FORGET and INTERRUPT, which take no
 * reply. INTERRUPT needs no action: requests are answered one at a time, synchronously, so the one
 * it names has been answered before the INTERRUPT is read. An exception from the NodeFs becomes an
 * errno for that request (corruption EIO, missing ENOENT, …); a request whose bytes do not hold
 * together is answered EIO (or dropped when even its header is unreadable) and logged.
 */
import { SquashfsError } from '../../errors';
import { ROOT_NODE, type NodeAttr, type NodeEntry, type NodeFs } from '../../vfs/node-fs';
import { Errno, errnoOf } from '../errno';
import * as P from './protocol';
import { COUNTER_SLOTS } from './worker-api';

/** Replies carry a body of at most this many bytes (READ, READDIR): 256 pages. */
export const MAX_PAGES = 256;
export const MAX_READ = MAX_PAGES * 4096;
/** The kernel's max_write: also decides the smallest read(2) buffer the device accepts. */
export const MAX_WRITE = MAX_READ;
/** A read(2) buffer for /dev/fuse: max_write plus room for the header and a request's fields. */
export const REQUEST_BUFFER_SIZE = MAX_WRITE + 64 * 1024;

/**
 * A name no SquashFS image and no store directory can hold (longer than any name either allows):
 * a LOOKUP of it in the root is answered ENOENT without being cached. The daemon's main thread
 * looks it up to wake the serving thread, which blocks in read(2), when it has work for it.
 */
export const WAKE_NAME = '.distri-wake-' + 'z'.repeat(260);

const WANTED_FLAGS = P.InitFlag.ASYNC_READ | P.InitFlag.DO_READDIRPLUS | P.InitFlag.PARALLEL_DIROPS | P.InitFlag.MAX_PAGES | P.InitFlag.CACHE_SYMLINKS;

/** Counter slots (worker-api.ts): [0] is every request, [op] each opcode (op < WAKE_SLOT), [WAKE_SLOT] wake-ups. */
export { COUNTER_SLOTS };
export const WAKE_SLOT = COUNTER_SLOTS - 1;
const WAKE_BYTES = new TextEncoder().encode(WAKE_NAME);

export interface SessionOptions {
  /** Per-opcode request counters (COUNTER_SLOTS long; a SharedArrayBuffer view the main thread reads). */
  counters?: Float64Array;
  /** A failure that is not a SquashfsError (a bug), or a malformed request: once per message. */
  onUnexpected?: (what: string, e: unknown) => void;
  /** Called for LOOKUP of WAKE_NAME in the root, before it is answered. */
  onWake?: () => void;
}

const utf8 = new TextEncoder();

export class Session {
  /** INIT answered: the protocol minor in use (0 before). */
  minor = 0;
  /** The kernel offered "no open": OPEN and OPENDIR answer ENOSYS. */
  noOpen = false;
  noOpendir = false;
  destroyed = false;
  private readonly counters: Float64Array;
  private readonly readReply: Uint8Array;
  private readonly reported = new Set<string>();

  constructor(
    readonly fs: NodeFs,
    private readonly options: SessionOptions = {},
  ) {
    this.counters = options.counters ?? new Float64Array(COUNTER_SLOTS);
    // One reply buffer for READ and READDIR(PLUS), reused: the serving thread writes each reply
    // before it reads the next request, so the bytes are never overwritten while still needed.
    this.readReply = new Uint8Array(P.OUT_HEADER_SIZE + MAX_READ);
  }

  private unexpected(what: string, e: unknown): void {
    const key = `${what}: ${e instanceof Error ? e.message : String(e)}`;
    if (this.reported.has(key) || this.reported.size >= 100) return;
    this.reported.add(key);
    this.options.onUnexpected?.(what, e);
  }

  /** The reply to one request, or undefined for one that takes none. */
  handle(req: Uint8Array): Uint8Array | undefined {
    let h: P.InHeader;
    try {
      h = P.decodeInHeader(req);
    } catch (e) {
      this.unexpected('request header', e);
      // A readable unique gets its EIO; without one there is nothing to answer.
      return e instanceof P.ProtocolError && e.unique !== undefined ? P.encodeError(e.unique, Errno.EIO) : undefined;
    }
    try {
      if (h.opcode === P.Op.LOOKUP && h.nodeid === ROOT_NODE && this.isWake(req)) {
        // The daemon's own wake-up, not a request of anyone's: counted apart.
        this.counters[WAKE_SLOT]!++;
        this.options.onWake?.();
        return P.encodeError(h.unique, Errno.ENOENT);
      }
      this.counters[0]!++;
      if (h.opcode < WAKE_SLOT) this.counters[h.opcode]!++;
      return this.dispatch(h, P.body(req));
    } catch (e) {
      if (!(e instanceof SquashfsError)) this.unexpected(P.opName(h.opcode), e);
      if (h.opcode === P.Op.FORGET || h.opcode === P.Op.BATCH_FORGET || h.opcode === P.Op.INTERRUPT) return undefined;
      return P.encodeError(h.unique, errnoOf(e));
    }
  }

  private dispatch(h: P.InHeader, b: Uint8Array): Uint8Array | undefined {
    const fs = this.fs;
    switch (h.opcode) {
      case P.Op.INIT:
        return this.init(h, b);
      case P.Op.LOOKUP:
        return this.lookup(h, P.cstring(b, 0, 'lookup name'));
      case P.Op.FORGET:
        fs.forget(h.nodeid, P.decodeForget(b));
        return undefined;
      case P.Op.BATCH_FORGET:
        for (const f of P.decodeBatchForget(b)) fs.forget(f.node, f.nlookup);
        return undefined;
      case P.Op.INTERRUPT:
        return undefined;
      case P.Op.GETATTR: {
        const { attr, ttl } = fs.getattr(h.nodeid);
        return P.encodeAttrOut(h.unique, ttl, kernelAttr(attr));
      }
      case P.Op.READLINK:
        return P.encodeBytes(h.unique, utf8.encode(fs.readlink(h.nodeid)));
      case P.Op.OPEN:
        if (this.noOpen) return P.encodeError(h.unique, Errno.ENOSYS);
        return P.encodeOpenOut(h.unique, 0, P.FOPEN_KEEP_CACHE);
      case P.Op.OPENDIR:
        if (this.noOpendir) return P.encodeError(h.unique, Errno.ENOSYS);
        return P.encodeOpenOut(h.unique, 0, P.FOPEN_KEEP_CACHE | P.FOPEN_CACHE_DIR);
      case P.Op.RELEASE:
      case P.Op.RELEASEDIR:
        return P.encodeError(h.unique, 0);
      case P.Op.READ:
        return this.read(h, b);
      case P.Op.READDIR:
      case P.Op.READDIRPLUS:
        return this.readdir(h, b, h.opcode === P.Op.READDIRPLUS);
      case P.Op.STATFS: {
        const s = fs.statfs();
        return P.encodeStatfsOut(h.unique, { blocks: s.blocks, files: s.files, bsize: s.blockSize, frsize: s.blockSize, namelen: s.nameMax });
      }
      case P.Op.GETXATTR:
        return this.getxattr(h, b);
      case P.Op.LISTXATTR:
        return this.listxattr(h, b);
      case P.Op.DESTROY:
        this.destroyed = true;
        return P.encodeError(h.unique, 0);
      default:
        // Writes are refused as the read-only filesystem this is; ENOSYS for them would be cached
        // by the kernel as "not implemented" and change the errors callers see.
        if (P.WRITE_OPS.has(h.opcode)) return P.encodeError(h.unique, Errno.EROFS);
        // FLUSH, ACCESS, FSYNC, IOCTL, POLL, LSEEK, …: ENOSYS, and for most the kernel stops asking.
        return P.encodeError(h.unique, Errno.ENOSYS);
    }
  }

  private init(h: P.InHeader, b: Uint8Array): Uint8Array {
    const init = P.decodeInit(b);
    if (init.major > P.FUSE_KERNEL_VERSION) {
      // A newer major: reply with ours and wait for the kernel to send INIT again in it.
      return P.encodeReply(h.unique, 8, (dv, off) => {
        dv.setUint32(off, P.FUSE_KERNEL_VERSION, true);
        dv.setUint32(off + 4, P.FUSE_OUR_MINOR, true);
      });
    }
    if (init.major < P.FUSE_KERNEL_VERSION || init.minor < 12) {
      this.unexpected('init', new Error(`kernel protocol ${init.major}.${init.minor} is too old`));
      return P.encodeError(h.unique, Errno.EPROTO);
    }
    this.minor = Math.min(init.minor, P.FUSE_OUR_MINOR);
    this.noOpen = (init.flags & P.InitFlag.NO_OPEN_SUPPORT) !== 0;
    this.noOpendir = (init.flags & P.InitFlag.NO_OPENDIR_SUPPORT) !== 0;
    return P.encodeBytes(
      h.unique,
      P.encodeInitOut({
        major: P.FUSE_KERNEL_VERSION,
        minor: this.minor,
        maxReadahead: init.maxReadahead,
        // Without READDIRPLUS_AUTO the kernel asks READDIRPLUS for every page, not only the
        // first: a cold `find` of a directory longer than one reply then sends no LOOKUP per entry
        // of the later pages (bench/README-fuse.md, "Cold find": 424 of 2,002 requests).
        flags: init.flags & (this.fs.attributesOnEveryPage ? WANTED_FLAGS : WANTED_FLAGS | P.InitFlag.READDIRPLUS_AUTO),
        maxBackground: 16,
        congestionThreshold: 12,
        maxWrite: MAX_WRITE,
        timeGran: 1,
        maxPages: MAX_PAGES,
      }),
    );
  }

  /** Whether a LOOKUP's name is WAKE_NAME (compared as bytes, before any decoding). */
  private isWake(req: Uint8Array): boolean {
    const name = req.subarray(P.IN_HEADER_SIZE);
    if (name.length !== WAKE_BYTES.length + 1 || name[WAKE_BYTES.length] !== 0) return false;
    for (let i = 0; i < WAKE_BYTES.length; i++) if (name[i] !== WAKE_BYTES[i]) return false;
    return true;
  }

  private lookup(h: P.InHeader, name: string): Uint8Array {
    let e: NodeEntry;
    try {
      e = this.fs.lookup(h.nodeid, name);
    } catch (err) {
      if (err instanceof SquashfsError && err.code === 'NOT_FOUND') {
        // A negative entry (node id 0) with a validity: the kernel remembers the miss.
        const ttl = this.fs.negativeTtl(h.nodeid);
        if (ttl > 0) return P.encodeEntryOut(h.unique, { nodeid: 0, entryValid: ttl, attrValid: 0, attr: P.NO_ATTR });
      }
      throw err;
    }
    return P.encodeEntryOut(h.unique, entryOut(e));
  }

  private read(h: P.InHeader, b: Uint8Array): Uint8Array {
    const { offset, size } = P.decodeRead(b);
    const want = Math.min(size, MAX_READ);
    const out = this.readReply;
    const n = want === 0 ? 0 : this.fs.read(h.nodeid, out.subarray(P.OUT_HEADER_SIZE, P.OUT_HEADER_SIZE + want), offset);
    P.writeOutHeader(out, P.OUT_HEADER_SIZE + n, 0, h.unique);
    return out.subarray(0, P.OUT_HEADER_SIZE + n);
  }

  /**
   * READDIR / READDIRPLUS. Cookies: 1 is ".", 2 is "..", and the NodeFs's own cookies are shifted
   * by 2. With "plus", every entry but "." and ".." is a counted lookup, taken only once the record
   * is known to fit (an entry the kernel never receives must not hold a reference).
   */
  private readdir(h: P.InHeader, b: Uint8Array, plus: boolean): Uint8Array {
    const { offset, size } = P.decodeRead(b);
    const w = new P.DirentWriter(h.unique, Math.min(size, MAX_READ), plus, this.readReply);
    const dir = h.nodeid;
    if (offset < 2) {
      const { attr } = this.fs.getattr(dir);
      if ((attr.mode & 0o170000) !== 0o040000) throw new SquashfsError('NOT_A_DIRECTORY', `node ${dir} is not a directory`, 'readdir');
      const dots: Array<[string, number]> = [
        ['.', 1],
        ['..', 2],
      ];
      for (const [name, cookie] of dots) {
        if (cookie <= offset) continue;
        if (!w.fits(name.length)) return w.finish();
        w.add(utf8.encode(name), cookie === 1 ? attr.ino : 0, cookie, 0o040000);
      }
    }
    this.fs.readdir(dir, Math.max(0, offset - 2), (e) => {
      // The image's own bytes when they are what encoding the name gives (not when decoding it
      // replaced invalid UTF-8: the kernel sees the same name either way).
      const name = e.nameBytes !== undefined && !e.name.includes('\uFFFD') ? e.nameBytes : utf8.encode(e.name);
      if (!w.fits(name.length)) return false;
      let entry: P.EntryOut | undefined;
      if (plus) {
        try {
          entry = entryOut(this.fs.lookupDirEntry ? this.fs.lookupDirEntry(dir, e) : this.fs.lookup(dir, e.name));
        } catch {
          // An entry whose inode cannot be read still lists; the kernel looks it up (and gets the
          // error) if someone touches it.
          entry = undefined;
        }
      }
      w.add(name, e.ino, e.cookie + 2, e.mode, entry);
      return true;
    });
    return w.finish();
  }

  private getxattr(h: P.InHeader, b: Uint8Array): Uint8Array {
    // No xattr table: ENOSYS makes the kernel answer every later getxattr itself (EOPNOTSUPP), so
    // `ls -l`'s security.* and system.posix_acl_* probes stop reaching us after the first.
    if (!this.fs.hasXattrs) return P.encodeError(h.unique, Errno.ENOSYS);
    const { size, name } = P.decodeGetxattr(b);
    const v = this.fs.getxattr(h.nodeid, name);
    if (v === undefined) return P.encodeError(h.unique, Errno.ENODATA);
    if (size === 0) return P.encodeXattrSize(h.unique, v.length);
    if (v.length > size) return P.encodeError(h.unique, Errno.ERANGE);
    return P.encodeBytes(h.unique, v);
  }

  private listxattr(h: P.InHeader, b: Uint8Array): Uint8Array {
    const size = P.decodeListxattr(b);
    const names = this.fs.hasXattrs ? this.fs.listxattr(h.nodeid) : [];
    const bytes = utf8.encode(names.map((n) => n + '\0').join(''));
    if (size === 0) return P.encodeXattrSize(h.unique, bytes.length);
    if (bytes.length > size) return P.encodeError(h.unique, Errno.ERANGE);
    return P.encodeBytes(h.unique, bytes);
  }
}

/** fuse_attr from a node's attributes: blocks as the kernel driver counts them (512-byte units). */
export function kernelAttr(a: NodeAttr): P.Attr {
  return { ino: a.ino, size: a.size, blocks: Math.ceil(a.size / 512), mtime: a.mtime, mode: a.mode, nlink: a.nlink || 1, uid: a.uid, gid: a.gid, rdev: a.rdev, blksize: 4096 };
}

function entryOut(e: NodeEntry): P.EntryOut {
  return { nodeid: e.node, entryValid: e.entryTtl, attrValid: e.attrTtl, attr: kernelAttr(e.attr) };
}
