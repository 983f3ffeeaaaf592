/**
 * One SquashFS image as a Vfs: the tree the FUSE adapter serves for `distri mount IMAGE MNT`.
 *
 * FUSE's high-level API names every file by its full path, so each request starts with a path
 * walk. Walks are cut short by a bounded path → inode cache: the kernel looks up /a/b/c as
 * "/a", "/a/b", "/a/b/c" in that order, so the parent of almost every path is already cached
 * and a lookup costs one directory search. Paths are never resolved through symlinks: the
 * kernel resolves them itself (it asks readlink and walks the target), exactly as with the
 * kernel's own SquashFS driver.
 *
 * Options mirror squashfuse: `subdir` serves a directory of the image as the root (resolved once,
 * symlinks followed, at construction), `uid`/`gid` replace every owner.
 *
 * Every failure is a SquashfsError; errno values exist only in src/fuse.
 */
import { SquashfsError, check } from '../errors';
import { LruCache } from '../io/lru';
import type { FileInode } from '../format/inode';
import type { BlockDecompressor } from '../reader/data';
import type { Image, Inode } from '../reader/image';
import type { Vfs, VfsAttr, VfsStatfs } from './types';

export interface ImageVfsOptions {
  /** Serve this directory of the image as the root ('' or '/' for the image root). */
  subdir?: string;
  /** Report this owner for every file instead of the image's. */
  uid?: number;
  gid?: number;
  /** Path → inode entries kept (default 65536; an entry costs roughly 200 bytes). */
  pathCacheEntries?: number;
  /**
   * Read-ahead for sequential reads of compressed files: the pool that decompresses blocks ahead
   * of the reader (made on first need, so a mount that never streams a file starts no threads).
   * Without it every block is decompressed on demand, on the calling thread.
   */
  prefetchPool?: () => BlockDecompressor;
  /** Blocks decompressed ahead of a sequential reader (default 4, i.e. 512 KiB of 128 KiB blocks). */
  prefetchWindow?: number;
  /** Blocks in flight across all handles at most (default 16): bounds the memory read-ahead holds. */
  prefetchMaxInFlight?: number;
}

/** One open file: its inode and where its reader is going. */
interface Handle {
  inode: FileInode;
  /** Block index of the last read's end; -1 before the first read. */
  lastBlock: number;
  /** Consecutive reads that moved forward by at most a window. */
  streak: number;
}

/** SquashFS names are at most 256 bytes (format: "Directory Table", name_size is u16 of size-1 ≤ 255). */
const NAME_MAX = 256;
/** Handles are 32-bit in the FUSE binding; 0 means "no handle" there. */
const MAX_HANDLE = 0x7fffffff;

export class ImageVfs implements Vfs {
  private readonly rootInode: Inode;
  private readonly paths: LruCache<string, Inode>;
  private readonly handles = new Map<number, Handle>();
  private pool: BlockDecompressor | undefined;
  /** Hands blocks to the pool, making it on the first block that needs decompressing. */
  private readonly lazyPool: BlockDecompressor = {
    decompress: (codec, input, maxOutput) => (this.pool ??= this.options.prefetchPool!()).decompress(codec, input, maxOutput),
  };
  private nextHandle = 1;

  constructor(
    readonly image: Image,
    private readonly options: ImageVfsOptions = {},
  ) {
    const sub = options.subdir ?? '';
    this.rootInode = sub.replace(/\/+/g, '') === '' ? image.root() : image.resolve(sub, true);
    if (this.rootInode.kind !== 'dir') {
      throw new SquashfsError('NOT_A_DIRECTORY', `subdir ${JSON.stringify(sub)} is a ${this.rootInode.kind}, not a directory`, 'path');
    }
    this.paths = new LruCache(options.pathCacheEntries ?? 65536, () => 1);
  }

  get hasXattrs(): boolean {
    return this.image.hasXattrs;
  }

  /** Open handles (the daemon does not unmount on idle while a file is open). */
  get openHandles(): number {
    return this.handles.size;
  }

  /** The inode at an absolute FUSE path ("/", "/a/b"); never follows a symlink. */
  private inodeAt(path: string): Inode {
    if (path === '/' || path === '') return this.rootInode;
    const hit = this.paths.get(path);
    if (hit) return hit;
    const slash = path.lastIndexOf('/');
    const parent = this.inodeAt(slash <= 0 ? '/' : path.slice(0, slash));
    const name = path.slice(slash + 1);
    if (parent.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${path}: parent is a ${parent.kind}`, 'path');
    if (Buffer.byteLength(name) > NAME_MAX) throw new SquashfsError('NOT_FOUND', `${path}: name longer than ${NAME_MAX} bytes`, 'path');
    const entry = this.image.lookup(parent, name);
    if (!entry) throw new SquashfsError('NOT_FOUND', `no such file or directory: ${path}`, 'path');
    const inode = this.image.entryInode(entry);
    this.paths.set(path, inode);
    return inode;
  }

  getattr(path: string): VfsAttr {
    const st = this.image.stat(this.inodeAt(path));
    return {
      mode: st.mode,
      uid: this.options.uid ?? st.uid,
      gid: this.options.gid ?? st.gid,
      size: st.size,
      mtime: st.mtime,
      nlink: st.nlink,
      ino: st.inodeNumber,
      rdev: st.rdev,
    };
  }

  readdir(path: string): string[] {
    return this.image.readdir(this.inodeAt(path)).map((e) => e.name);
  }

  readlink(path: string): string {
    return this.image.readlink(this.inodeAt(path));
  }

  open(path: string): number {
    const inode = this.inodeAt(path);
    if (inode.kind === 'dir') throw new SquashfsError('IS_A_DIRECTORY', `${path} is a directory`, 'path');
    check(inode.kind === 'file', 'NOT_A_FILE', `${path} is a ${inode.kind}: only regular files are opened through the filesystem`, 'path');
    check(this.handles.size < MAX_HANDLE, 'OVERFLOW', `${this.handles.size} open handles`, 'handles');
    let h = this.nextHandle;
    while (this.handles.has(h)) h = h >= MAX_HANDLE ? 1 : h + 1;
    this.nextHandle = h >= MAX_HANDLE ? 1 : h + 1;
    this.handles.set(h, { inode: inode as FileInode, lastBlock: -1, streak: 0 });
    return h;
  }

  read(handle: number, buf: Uint8Array, length: number, position: number): number {
    const h = this.handles.get(handle);
    if (!h) throw new SquashfsError('IO', `read on handle ${handle}, which is not open`, 'handles');
    if (length <= 0) return 0;
    const n = this.image.readInto(h.inode, position, buf.length > length ? buf.subarray(0, length) : buf);
    if (this.options.prefetchPool) this.readAhead(h, position, length);
    return n;
  }

  /**
   * When a read of [position, position + length) waits for blocks that read-ahead is decompressing
   * right now: a promise that settles once they are done (never rejects; read() then finds them
   * in the cache, or decompresses and reports an error itself). undefined: read at once.
   */
  readReady(handle: number, length: number, position: number): Promise<void> | undefined {
    const h = this.handles.get(handle);
    if (!h || length <= 0 || this.image.data.prefetchesInFlight === 0) return undefined;
    const bs = this.image.superblock.blockSize;
    const first = Math.floor(position / bs);
    const last = Math.floor((Math.min(position + length, h.inode.fileSize) - 1) / bs);
    const waits: Array<Promise<void>> = [];
    for (let i = first; i <= last; i++) {
      const p = this.image.data.prefetching(h.inode, i);
      if (p) waits.push(p);
    }
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  /** Sequential reader detection and read-ahead (see ImageVfsOptions.prefetchPool). */
  private readAhead(h: Handle, position: number, length: number): void {
    const inode = h.inode;
    const bs = this.image.superblock.blockSize;
    const window = this.options.prefetchWindow ?? 4;
    const endBlock = Math.floor((position + length - 1) / bs);
    const startBlock = Math.floor(position / bs);
    // Forward by at most a window from the last read (the kernel's read-ahead requests may arrive
    // slightly out of order from several libfuse threads), or the start of the file.
    const forward = h.lastBlock >= 0 ? startBlock >= h.lastBlock - 1 && startBlock <= h.lastBlock + window : position === 0;
    h.streak = forward ? h.streak + 1 : 0;
    h.lastBlock = Math.max(endBlock, forward ? h.lastBlock : -1);
    if (h.streak < (startBlock === 0 ? 1 : 2) || inode.blockSizes.length <= endBlock + 1) return;
    const max = this.options.prefetchMaxInFlight ?? 16;
    const data = this.image.data;
    const stop = Math.min(inode.blockSizes.length - 1, h.lastBlock + window);
    for (let i = h.lastBlock + 1; i <= stop && data.prefetchesInFlight < max; i++) data.prefetch(inode, i, this.lazyPool);
  }

  release(handle: number): void {
    this.handles.delete(handle);
  }

  /** The read-ahead pool, once made (for the owner to close). */
  get prefetchPoolInUse(): BlockDecompressor | undefined {
    return this.pool;
  }

  listxattr(path: string): string[] {
    return this.image.xattrs(this.inodeAt(path)).map((x) => x.name);
  }

  getxattr(path: string, name: string): Uint8Array | undefined {
    return this.image.xattrs(this.inodeAt(path)).find((x) => x.name === name)?.value;
  }

  /** What the kernel's driver reports (fs/squashfs/super.c squashfs_statfs). */
  statfs(): VfsStatfs {
    const sb = this.image.superblock;
    return {
      blockSize: sb.blockSize,
      blocks: Math.ceil(sb.bytesUsed / sb.blockSize),
      files: sb.inodeCount,
      nameMax: NAME_MAX,
    };
  }
}
