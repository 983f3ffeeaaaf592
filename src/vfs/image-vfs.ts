/**
 * One SquashFS image as a Vfs: a package directory of the /ro store (package-dir.ts), until the
 * store is a NodeFs; `distri mount` serves one image through ImageFs instead.
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
}

/** One open file. */
interface Handle {
  inode: FileInode;
}

/** SquashFS names are at most 256 bytes (format: "Directory Table", name_size is u16 of size-1 ≤ 255). */
const NAME_MAX = 256;
/** Handles are 32-bit in the FUSE binding; 0 means "no handle" there. */
const MAX_HANDLE = 0x7fffffff;

export class ImageVfs implements Vfs {
  private readonly rootInode: Inode;
  private readonly paths: LruCache<string, Inode>;
  private readonly handles = new Map<number, Handle>();
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
    this.handles.set(h, { inode: inode as FileInode });
    return h;
  }

  read(handle: number, buf: Uint8Array, length: number, position: number): number {
    const h = this.handles.get(handle);
    if (!h) throw new SquashfsError('IO', `read on handle ${handle}, which is not open`, 'handles');
    if (length <= 0) return 0;
    return this.image.readInto(h.inode, position, buf.length > length ? buf.subarray(0, length) : buf);
  }

  release(handle: number): void {
    this.handles.delete(handle);
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
