/**
 * The FUSE edge: any NodeFs served through fuse-native (libfuse 2's high-level, path-based API).
 * This is the only module that knows fuse-native and errno values.
 *
 * Paths to nodes: libfuse names every file by its full path, the NodeFs by node id. A path is
 * resolved with one counted lookup() per component, from the root (ROOT_NODE, "/") down. The
 * result is kept in a bounded path → node cache: the kernel asks for "/a", "/a/b", "/a/b/c" in
 * that order, so the parent of almost every path is cached and a new path costs one lookup. Each
 * cached path holds exactly the one reference its lookup counted; when the least recently used
 * path is evicted, that reference is given back with forget(node, 1). So the NodeFs's node table
 * holds at most as many nodes as the cache has paths, plus one per open file: an open takes its
 * own reference (a second lookup) and release gives it back, so a file stays readable while open
 * however the cache moves. libfuse's file handles never reach the NodeFs: the adapter keeps its
 * own table (handle → node) and reads by node.
 *
 * The attributes a lookup answered stay with the path for as long as the NodeFs allows (attrTtl),
 * and a getattr of a cached path is answered from them, as the path-based image tree did (its path cache held
 * parsed inodes): an image's inode cache is smaller than a large tree, so asking the NodeFs each
 * time would parse inodes again whenever the kernel has dropped its own copy. The kernel got the
 * same attributes at the same moment with the same lifetime (libfuse's lookup is our getattr), so
 * by the time its copy expires, ours normally has too.
 *
 * How a request travels: the kernel hands it to one of libfuse's worker threads (fuse_loop_mt),
 * which passes it to the single JavaScript thread (uv_async_send) and blocks until the callback
 * answers. Every handler here is synchronous and wrapped in try/catch, so each request is answered
 * exactly once, right away; an exception (a corrupt block, a bug) becomes an errno for that request
 * and never leaves a kernel request hanging, which would wedge every process touching the mount.
 * For that reason fuse-native's per-operation timeout (a setTimeout per request, 15 s by default,
 * answering ETIMEDOUT) is turned off: it cannot fire for synchronous handlers and costs a timer per
 * request.
 *
 * Caching, for an immutable image:
 * - kernel_cache: file pages stay in the page cache across opens (repeat reads never reach us);
 * - entry_timeout/attr_timeout/negative_timeout: one day, so lookups, stat and misses are answered
 *   by the kernel after the first time;
 * - use_ino: stat shows the image's inode numbers (libfuse 2 otherwise invents its own), so that
 *   hard links show the same inode number as through the kernel's SquashFS driver;
 * - ro: the kernel refuses writes before they reach us; the write handlers (EROFS) are a second
 *   line in case a binding or option changes;
 * - default_permissions: the kernel checks mode bits against the caller, like a kernel mount (this
 *   matters with allow_other).
 * - nonempty: libfuse 2 refuses a non-empty mountpoint unless told; squashfuse (libfuse 3) does not.
 * libfuse 2 has no option for these last two and several others; fuse-native passes `fsname`
 * verbatim into the comma-separated -o list, which is how they reach libfuse.
 *
 * Xattrs: when the image has no xattr table, getxattr answers ENOSYS. The kernel then sets
 * `no_getxattr` for the whole connection and answers every later getxattr itself with EOPNOTSUPP
 * (fs/fuse/xattr.c), so `ls -l`'s per-file security.selinux / system.posix_acl_* queries stop
 * reaching the daemon after the first (measured: `ls -lR` of the fixture tree sends 1 getxattr
 * instead of 923). The one visible difference from the kernel's SquashFS driver: `getfattr -n x`
 * says "Operation not supported" where the kernel says "No such attribute". listxattr, which
 * `ls` does not call, answers an empty list like the kernel, so `getfattr -d` shows the same.
 */
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { ROOT_NODE, type NodeAttr, type NodeFs } from '../vfs/node-fs';
import { Errno, errnoOf } from './errno';

export { Errno, errnoOf } from './errno';

// fuse-native ships no types; this is the part of its API used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FuseNative = require('fuse-native') as FuseClass;
type Cb = (code: number, ...values: unknown[]) => void;
type Signal = (code: number, ...values: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseClass {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  prototype: Record<string, unknown>;
}

export interface FuseServeOptions {
  /** Where the NodeFs's asks for a control request go (Invalidator.ask). */
  onAsk?: (req: { op: string; why: string }) => void;
  /** Let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root). */
  allowOther?: boolean;
  /** Shown as the mount's source in /proc/mounts (findmnt SOURCE). */
  fsname?: string;
  /** Filesystem type shown as fuse.<subtype>. */
  subtype?: string;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** Seconds the kernel may cache entries, attributes and misses (default one day). */
  cacheTimeout?: number;
  /** false: leave out use_ino, so libfuse numbers the inodes (default true). */
  useIno?: boolean;
  /**
   * Paths whose node stays resolved (default DEFAULT_PATH_CACHE). Each one holds one reference
   * on the NodeFs, so this bounds its node table (open files add one each).
   */
  pathCacheEntries?: number;
  /** Called for a failure that is not a SquashfsError (a bug): once per message. */
  onUnexpected?: (op: string, e: unknown) => void;
  /** setuid bits take effect (default false: nosuid). */
  suid?: boolean;
  /** Device nodes can be opened (default false: nodev). */
  dev?: boolean;
  /** The kernel checks modes against the caller (default true). */
  defaultPermissions?: boolean;
}

/** Paths kept resolved by default: a cached path costs roughly 300 bytes here and in the NodeFs. */
export const DEFAULT_PATH_CACHE = 65536;

/** One open file: the node it holds a reference on. */
interface OpenFile {
  node: number;
}

/** Per-operation request counts (for benchmarks and the xattr test). */
export type OpCounts = Record<string, number>;

const WRITE_OPS = [
  'truncate',
  'ftruncate',
  'chown',
  'chmod',
  'mknod',
  'setxattr',
  'removexattr',
  'create',
  'utimens',
  'unlink',
  'rename',
  'link',
  'symlink',
  'mkdir',
  'rmdir',
  'write',
  'fsync',
  'fsyncdir',
];

/** O_ACCMODE | O_TRUNC | O_APPEND | O_CREAT on Linux. */
const WRITE_FLAGS = 0o3 | 0o1000 | 0o2000 | 0o100;

/** File type bits of st_mode, and the two types open() tells apart. */
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Handles are 32-bit in the FUSE binding; 0 means "no handle" there. */
const MAX_HANDLE = 0x7fffffff;

/** A resolved path: its node, and its attributes until `attrUntil` (ms since the epoch). */
interface Resolved {
  node: number;
  attr: NodeAttr;
  attrUntil: number;
}

/**
 * Resolved paths, least recently used first (a Map iterates in insertion order, and a hit is
 * re-inserted). Every entry owns one lookup reference on its node; `release` gives it back when
 * the entry goes.
 */
class PathCache {
  private readonly map = new Map<string, Resolved>();

  constructor(
    readonly capacity: number,
    private readonly release: (node: number) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(path: string): Resolved | undefined {
    const r = this.map.get(path);
    if (r === undefined) return undefined;
    this.map.delete(path);
    this.map.set(path, r);
    return r;
  }

  /** Stores a node whose reference the cache now owns; evicts down to capacity. */
  set(path: string, r: Resolved): void {
    const old = this.map.get(path);
    if (old !== undefined) {
      this.map.delete(path);
      this.release(old.node);
    }
    this.map.set(path, r);
    for (const [p, e] of this.map) {
      if (this.map.size <= this.capacity) break;
      this.map.delete(p);
      this.release(e.node);
    }
  }

  /** Drops every entry (the tree changed): each reference goes back. */
  clear(): void {
    const nodes = [...this.map.values()];
    this.map.clear();
    for (const r of nodes) this.release(r.node);
  }
}

/** One mount of one NodeFs. */
export class FuseServer {
  readonly counts: OpCounts = Object.create(null) as OpCounts;
  /** Total requests answered; the daemon watches it for the idle timeout. */
  requests = 0;
  private fuse: FuseInstance | undefined;
  private readonly reported = new Set<string>();
  private readonly paths: PathCache;
  private readonly files = new Map<number, OpenFile>();
  private nextHandle = 1;

  constructor(
    readonly fs: NodeFs,
    readonly mountpoint: string,
    private readonly options: FuseServeOptions = {},
  ) {
    this.paths = new PathCache(Math.max(1, options.pathCacheEntries ?? DEFAULT_PATH_CACHE), (node) => fs.forget(node, 1));
    // libfuse 2 cannot tell the kernel that a name changed (its entries expire by cacheTimeout),
    // but the paths resolved here must not outlive a change: drop them all.
    fs.setInvalidator?.({ entry: () => this.paths.clear(), inode: () => this.paths.clear(), ask: options.onAsk });
  }

  /** Files open now (libfuse handles): the daemon neither idles out nor leaves while any is. */
  get openHandles(): number {
    return this.files.size;
  }

  /** Paths resolved now (each holds one reference on the NodeFs). */
  get cachedPaths(): number {
    return this.paths.size;
  }

  private count(op: string): void {
    this.requests++;
    this.counts[op] = (this.counts[op] ?? 0) + 1;
  }

  private fail(op: string, e: unknown): number {
    if (!(e instanceof SquashfsError) && this.options.onUnexpected) {
      const key = `${op}: ${e instanceof Error ? e.message : String(e)}`;
      if (!this.reported.has(key) && this.reported.size < 100) {
        this.reported.add(key);
        this.options.onUnexpected(op, e);
      }
    }
    return -errnoOf(e);
  }

  /**
   * The node at an absolute FUSE path ("/", "/a/b"), looked up component by component from the
   * nearest cached ancestor. Never follows a symlink: the kernel resolves those itself (readlink,
   * then a walk of the target), as with the kernel's own SquashFS driver.
   */
  private nodeAt(path: string): number {
    if (path === '/' || path === '') return ROOT_NODE;
    return this.resolve(path).node;
  }

  /** nodeAt for a path other than the root, with the cached entry. */
  private resolve(path: string): Resolved {
    const hit = this.paths.get(path);
    if (hit !== undefined) return hit;
    const slash = path.lastIndexOf('/');
    const parent = this.nodeAt(slash <= 0 ? '/' : path.slice(0, slash));
    // The parent is used right here, before anything else is cached: inserting the child may
    // evict the parent's path (and forget its reference) without harm.
    const e = this.fs.lookup(parent, path.slice(slash + 1));
    const r: Resolved = { node: e.node, attr: e.attr, attrUntil: Date.now() + e.attrTtl * 1000 };
    this.paths.set(path, r);
    return r;
  }

  /** The attributes at a path: cached with it while still valid, else from the NodeFs. */
  private attrAt(path: string): NodeAttr {
    if (path === '/' || path === '') return this.fs.getattr(ROOT_NODE).attr;
    const r = this.resolve(path);
    if (Date.now() < r.attrUntil) return r.attr;
    const fresh = this.fs.getattr(r.node);
    r.attr = fresh.attr;
    r.attrUntil = Date.now() + fresh.ttl * 1000;
    return r.attr;
  }

  /** open: a reference of its own on the node (so the file outlives its cached path), regular files only. */
  private openFile(path: string): number {
    if (path === '/' || path === '') throw new SquashfsError('IS_A_DIRECTORY', '/ is a directory', 'path');
    const slash = path.lastIndexOf('/');
    const e = this.fs.lookup(this.nodeAt(slash <= 0 ? '/' : path.slice(0, slash)), path.slice(slash + 1));
    try {
      const type = e.attr.mode & S_IFMT;
      if (type === S_IFDIR) throw new SquashfsError('IS_A_DIRECTORY', `${path} is a directory`, 'path');
      if (type !== S_IFREG) throw new SquashfsError('NOT_A_FILE', `${path}: only regular files are opened through the filesystem`, 'path');
      if (this.files.size >= MAX_HANDLE) throw new SquashfsError('OVERFLOW', `${this.files.size} open handles`, 'handles');
    } catch (err) {
      this.fs.forget(e.node, 1);
      throw err;
    }
    let h = this.nextHandle;
    while (this.files.has(h)) h = h >= MAX_HANDLE ? 1 : h + 1;
    this.nextHandle = h >= MAX_HANDLE ? 1 : h + 1;
    this.files.set(h, { node: e.node });
    return h;
  }

  private readFile(handle: number, buf: Buffer, len: number, pos: number): number {
    const f = this.files.get(handle);
    if (!f) throw new SquashfsError('BAD_HANDLE', `read on handle ${handle}, which is not open`, 'handles');
    if (len <= 0) return 0;
    const into = buf.length > len ? buf.subarray(0, len) : buf;
    return this.fs.read(f.node, into, pos);
  }

  private releaseFile(handle: number): void {
    const f = this.files.get(handle);
    if (!f) return;
    this.files.delete(handle);
    this.fs.forget(f.node, 1);
  }

  /**
   * Mounts and resolves once the kernel has sent FUSE_INIT (the mount is usable). Rejects with
   * libfuse's generic "fuse failed" when the mount itself fails; the caller checks the mountpoint
   * first to give a better message.
   */
  mount(): Promise<void> {
    const t = this.options.cacheTimeout ?? 86400;
    // Options libfuse 2 knows but fuse-native has no switch for ride along in fsname (see top).
    const fsname = (this.options.fsname ?? 'distri').replace(/[,\\]/g, '_');
    const o = this.options;
    const extra = [
      'ro',
      ...(o.useIno === false ? [] : ['use_ino']),
      ...(o.defaultPermissions === false ? [] : ['default_permissions']),
      o.suid ? 'suid' : 'nosuid',
      o.dev ? 'dev' : 'nodev',
      'nonempty',
      `negative_timeout=${t}`,
    ];
    const fuseOpts = {
      fsname: [fsname, ...extra].join(','),
      subtype: this.options.subtype ?? 'distri',
      kernelCache: true,
      attrTimeout: t,
      entryTimeout: t,
      allowOther: Boolean(this.options.allowOther),
      debug: Boolean(this.options.debug),
      timeout: false,
    };
    const Server = subclassWithExactXattrs(this);
    const fuse = new Server(this.mountpoint, this.ops(), fuseOpts);
    this.fuse = fuse;
    return new Promise((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  }

  private ops(): Record<string, unknown> {
    const fs = this.fs;
    const ops: Record<string, unknown> = {
      // getattr: answered by the subclass below (statArray); this entry marks it implemented.
      getattr: () => undefined,
      readdir: (path: string, cb: Cb) => {
        this.count('readdir');
        try {
          const names: string[] = [];
          fs.readdir(this.nodeAt(path), 0, (e) => {
            names.push(e.name);
            return true;
          });
          cb(0, names);
        } catch (e) {
          cb(this.fail('readdir', e));
        }
      },
      readlink: (path: string, cb: Cb) => {
        this.count('readlink');
        try {
          cb(0, fs.readlink(this.nodeAt(path)));
        } catch (e) {
          cb(this.fail('readlink', e));
        }
      },
      open: (path: string, flags: number, cb: Cb) => {
        this.count('open');
        if (flags & WRITE_FLAGS) return cb(-Errno.EROFS);
        try {
          cb(0, this.openFile(path));
        } catch (e) {
          cb(this.fail('open', e));
        }
      },
      read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        this.count('read');
        try {
          cb(this.readFile(fd, buf, len, pos));
        } catch (e) {
          cb(this.fail('read', e));
        }
      },
      release: (_path: string, fd: number, cb: Cb) => {
        this.count('release');
        try {
          this.releaseFile(fd);
          cb(0);
        } catch (e) {
          cb(this.fail('release', e));
        }
      },
      statfs: (_path: string, cb: Cb) => {
        this.count('statfs');
        try {
          const s = fs.statfs();
          cb(0, { bsize: s.blockSize, frsize: s.blockSize, blocks: s.blocks, bfree: 0, bavail: 0, files: s.files, ffree: 0, favail: 0, fsid: 0, flag: 1 /* ST_RDONLY */, namemax: s.nameMax });
        } catch (e) {
          cb(this.fail('statfs', e));
        }
      },
      // getxattr/listxattr: the subclass below answers them (it needs the reply buffer's size);
      // these entries only mark them as implemented for fuse-native.
      getxattr: () => undefined,
      listxattr: () => undefined,
    };
    for (const op of WRITE_OPS) {
      ops[op] = (...args: unknown[]) => {
        this.count(op);
        const cb = args[args.length - 1] as Cb;
        cb(-Errno.EROFS);
      };
    }
    return ops;
  }

  /** getattr as fuse-native's binding reads it (see statArray), or a negative errno. */
  answerGetattr(path: string): Uint32Array | number {
    this.count('getattr');
    try {
      return statArray(this.attrAt(path));
    } catch (e) {
      return this.fail('getattr', e);
    }
  }

  /** getxattr into the kernel's buffer: size 0 asks for the length; too small is ERANGE. */
  answerGetxattr(path: string, name: string, buf: Buffer): number {
    this.count('getxattr');
    if (!this.fs.hasXattrs) return -Errno.ENOSYS;
    try {
      const v = this.fs.getxattr(this.nodeAt(path), name);
      if (v === undefined) return -Errno.ENODATA;
      if (buf.length === 0) return v.length;
      if (v.length > buf.length) return -Errno.ERANGE;
      buf.set(v, 0);
      return v.length;
    } catch (e) {
      return this.fail('getxattr', e);
    }
  }

  /** listxattr: NUL-terminated names; size 0 asks for the length; too small is ERANGE. */
  answerListxattr(path: string, buf: Buffer): number {
    this.count('listxattr');
    if (!this.fs.hasXattrs) return 0;
    try {
      const names = this.fs.listxattr(this.nodeAt(path));
      const bytes = Buffer.from(names.map((n) => n + '\0').join(''), 'utf8');
      if (buf.length === 0) return bytes.length;
      if (bytes.length > buf.length) return -Errno.ERANGE;
      buf.set(bytes, 0);
      return bytes.length;
    } catch (e) {
      return this.fail('listxattr', e);
    }
  }
}

const EMPTY_STAT = new Uint32Array(18);
/** fuse-native 2.2.6's opcode for getattr (op_getattr in fuse-native.c). */
const OP_GETATTR = 5;

type NativeSignal = (nativeHandler: unknown, code: number, ...values: unknown[]) => void;
/** fuse-native's compiled binding, loaded the way fuse-native loads it (the same module instance). */
function nativeBinding(): Record<string, NativeSignal> | undefined {
  try {
    const dir = path.dirname(require.resolve('fuse-native/package.json'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const gypBuild = require(require.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => Record<string, NativeSignal>;
    return gypBuild(dir);
  } catch {
    return undefined;
  }
}

/**
 * A stat in the layout fuse-native 2.2.6's binding copies into struct stat (populate_stat in
 * fuse-native.c, built by getStatArray in its index.js): mode, uid, gid, size (lo, hi), dev,
 * nlink, ino, rdev, blksize, blocks (lo, hi), then atime, mtime, ctime in ms (lo, hi each).
 */
export function statArray(st: NodeAttr): Uint32Array {
  const a = new Uint32Array(18);
  a[0] = st.mode;
  a[1] = st.uid;
  a[2] = st.gid;
  a[3] = st.size % 0x100000000;
  a[4] = Math.floor(st.size / 0x100000000);
  a[6] = st.nlink || 1;
  a[7] = st.ino;
  a[8] = st.rdev;
  a[9] = 4096;
  // The kernel driver's i_blocks for a file: 512-byte units covering the size.
  const blocks = Math.ceil(st.size / 512);
  a[10] = blocks % 0x100000000;
  a[11] = Math.floor(blocks / 0x100000000);
  const ms = st.mtime * 1000;
  const lo = ms % 0x100000000;
  const hi = Math.floor(ms / 0x100000000);
  a[12] = a[14] = a[16] = lo;
  a[13] = a[15] = a[17] = hi;
  return a;
}

/**
 * fuse-native's own xattr glue hides the size of the kernel's buffer from the handler (and would
 * write past a too-small one into a truncated answer); the two xattr methods replace it. They override
 * internals of the pinned fuse-native 2.2.6 (`_op_getxattr(signal, path, name, buf, position)`,
 * `_op_listxattr(signal, path, buf)`; the answer travels as the return code, the buffer's
 * ArrayBuffer goes back so the binding can detach it).
 */
function subclassWithExactXattrs(server: FuseServer): FuseClass {
  class Server extends (FuseNative as unknown as new (...a: unknown[]) => object) {
    // Replaces fuse-native's dispatcher for getattr only. Its generic one copies the arguments,
    // binds a signal function, and answers on the next tick (a closure and a queued tick per
    // request); this one answers right away through the binding's own signal function. Falls back
    // to the generic path (and _op_getattr below) if the binding does not look as expected.
    _makeHandlerArray(): unknown[] {
      const handlers = (FuseNative.prototype._makeHandlerArray as () => unknown[]).call(this);
      const signalGetattr = nativeBinding()?.fuse_native_signal_getattr;
      if (typeof signalGetattr === 'function' && typeof handlers[OP_GETATTR] === 'function') {
        handlers[OP_GETATTR] = (nativeHandler: unknown, _op: number, path: string) => {
          const r = server.answerGetattr(path);
          if (typeof r === 'number') signalGetattr(nativeHandler, r, EMPTY_STAT);
          else signalGetattr(nativeHandler, 0, r);
        };
      }
      return handlers;
    }
    // The hot request of find and ls -l: answer with the binding's stat layout directly, not an
    // object that fuse-native converts.
    _op_getattr(signal: Signal, path: string): void {
      const r = server.answerGetattr(path);
      if (typeof r === 'number') signal(r, EMPTY_STAT);
      else signal(0, r);
    }
    _op_getxattr(signal: Signal, path: string, name: string, buf: Buffer): void {
      signal(server.answerGetxattr(path, name, buf), buf.buffer);
    }
    _op_listxattr(signal: Signal, path: string, buf: Buffer): void {
      signal(server.answerListxattr(path, buf), buf.buffer);
    }
  }
  return Server as unknown as FuseClass;
}
