/**
 * One SquashFS image as a NodeFs: the tree that `distri mount IMAGE MNT` serves, and each package
 * directory of the /ro store.
 *
 * Node ids come from the image itself: an inode's node id is its inode reference + 2 (references
 * are 48-bit, so ids stay below 2^53; 0 and 1 are taken by the protocol: "no node" and the root).
 * A hard link reached through two names is one inode reference and so one node, as the kernel
 * driver shows it. The table behind the ids holds only reference counts; parsed inodes come from
 * the image's bounded inode cache, so memory follows the number of nodes the kernel holds, at a
 * few dozen bytes each, and a FORGET gives it back.
 *
 * An image never changes under a mount, so every answer may be cached by the kernel for as long as
 * it likes (`ttl`, one day by default): names, attributes, misses, file pages, symlink targets.
 *
 * Options mirror squashfuse: `subdir` serves a directory of the image as the root (resolved once,
 * symlinks followed), `uid`/`gid` replace every owner.
 */
import { SquashfsError } from '../errors';
import type { DirEntry } from '../format/directory';
import type { Image, Inode, InodeRef } from '../reader/image';
import { ROOT_NODE, type NodeAttr, type NodeDirEntry, type NodeEntry, type NodeFs, type NodeStatfs } from './node-fs';

export interface ImageFsOptions {
  subdir?: string;
  uid?: number;
  gid?: number;
  /** Seconds the kernel may cache names, attributes and misses (default one day). */
  ttl?: number;
  /**
   * Attributes on every page of a listing (NodeFs.attributesOnEveryPage; default true): an
   * entry's attributes come from the inode table the listing points into, so they cost little
   * more than its name, and a later stat() then needs no LOOKUP. False leaves it to the kernel.
   */
  attributesOnEveryPage?: boolean;
}

/** SquashFS names are at most 256 bytes (format: "Directory Table", name_size is u16 of size-1 ≤ 255). */
export const NAME_MAX = 256;
/** node id = inode reference + REF_BIAS. */
const REF_BIAS = 2;

export class ImageFs implements NodeFs {
  readonly rootInode: Inode;
  readonly attributesOnEveryPage: boolean;
  private readonly refs = new Map<number, number>();
  private readonly ttl: number;

  constructor(
    readonly image: Image,
    private readonly options: ImageFsOptions = {},
  ) {
    const sub = options.subdir ?? '';
    this.rootInode = sub.replace(/\/+/g, '') === '' ? image.root() : image.resolve(sub, true);
    if (this.rootInode.kind !== 'dir') {
      throw new SquashfsError('NOT_A_DIRECTORY', `subdir ${JSON.stringify(sub)} is a ${this.rootInode.kind}, not a directory`, 'path');
    }
    this.ttl = options.ttl ?? 86400;
    this.attributesOnEveryPage = options.attributesOnEveryPage ?? true;
  }

  get hasXattrs(): boolean {
    return this.image.hasXattrs;
  }

  get nodeCount(): number {
    return this.refs.size;
  }

  /** The inode behind a node id the kernel sent; BAD_HANDLE for one it does not hold. */
  inodeOf(node: number): Inode {
    if (node === ROOT_NODE) return this.rootInode;
    if (!this.refs.has(node)) throw new SquashfsError('BAD_HANDLE', `node ${node} is not known (never looked up, or forgotten)`, 'node table');
    return this.image.inode((node - REF_BIAS) as InodeRef);
  }

  attrOf(inode: Inode): NodeAttr {
    const st = this.image.stat(inode);
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

  /** The child `name` of directory inode `dir`, or undefined (no reference counted). */
  child(dir: Inode, name: string): Inode | undefined {
    if (dir.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `inode ${dir.inodeNumber} is a ${dir.kind}`, 'path');
    if (name.length > NAME_MAX && Buffer.byteLength(name) > NAME_MAX) return undefined;
    const e = this.image.lookup(dir, name);
    return e && this.image.entryInode(e);
  }

  /** Counts one kernel reference on `inode` and returns its entry. */
  entryFor(inode: Inode): NodeEntry {
    const node = inode.ref + REF_BIAS;
    this.refs.set(node, (this.refs.get(node) ?? 0) + 1);
    return { node, attr: this.attrOf(inode), entryTtl: this.ttl, attrTtl: this.ttl };
  }

  lookup(parent: number, name: string): NodeEntry {
    const inode = this.child(this.inodeOf(parent), name);
    if (!inode) throw new SquashfsError('NOT_FOUND', `no such file or directory: ${name}`, 'path');
    return this.entryFor(inode);
  }

  negativeTtl(): number {
    return this.ttl;
  }

  forget(node: number, nlookup: number): void {
    const n = this.refs.get(node);
    if (n === undefined) return;
    if (n <= nlookup) this.refs.delete(node);
    else this.refs.set(node, n - nlookup);
  }

  getattr(node: number): { attr: NodeAttr; ttl: number } {
    return { attr: this.attrOf(this.inodeOf(node)), ttl: this.ttl };
  }

  readlink(node: number): string {
    return this.image.readlink(this.inodeOf(node));
  }

  readdir(node: number, cookie: number, emit: (e: NodeDirEntry) => boolean): void {
    this.readdirInode(this.inodeOf(node), cookie, emit);
  }

  /** readdir() of a directory inode (for a NodeFs that numbers nodes its own way: the store). */
  readdirInode(dir: Inode, cookie: number, emit: (e: NodeDirEntry) => boolean): void {
    const entries = this.image.readdir(dir);
    if (!Number.isSafeInteger(cookie) || cookie < 0) throw new SquashfsError('INVALID_ARGUMENT', `directory offset ${cookie}`, 'readdir');
    for (let i = cookie; i < entries.length; i++) {
      const e = entries[i]!;
      // Type bits from the entry's basic type (1 dir, 2 file, 3 symlink, 4 blk, 5 chr, 6 fifo, 7 socket).
      if (!emit({ name: e.name, nameBytes: e.nameBytes, ino: e.inodeNumber, mode: MODE_BY_BASIC_TYPE[e.type] ?? 0, cookie: i + 1, handle: e })) return;
    }
  }

  lookupDirEntry(_parent: number, e: NodeDirEntry): NodeEntry {
    const inode = this.inodeOfDirEntry(e);
    return inode ? this.entryFor(inode) : this.lookup(_parent, e.name);
  }

  /** The inode of an entry readdirInode() emitted (its directory entry is the handle). */
  inodeOfDirEntry(e: NodeDirEntry): Inode | undefined {
    const d = e.handle as DirEntry | undefined;
    return d && d.name === e.name ? this.image.entryInode(d) : undefined;
  }

  read(node: number, buf: Uint8Array, position: number): number {
    return this.image.readInto(this.inodeOf(node), position, buf);
  }

  listxattr(node: number): string[] {
    return this.image.xattrs(this.inodeOf(node)).map((x) => x.name);
  }

  getxattr(node: number, name: string): Uint8Array | undefined {
    return this.image.xattrs(this.inodeOf(node)).find((x) => x.name === name)?.value;
  }

  /** What the kernel's driver reports (fs/squashfs/super.c squashfs_statfs). */
  statfs(): NodeStatfs {
    const sb = this.image.superblock;
    return { blockSize: sb.blockSize, blocks: Math.ceil(sb.bytesUsed / sb.blockSize), files: sb.inodeCount, nameMax: NAME_MAX };
  }

  stats() {
    return { nodes: this.refs.size, cache: this.image.cacheStats() };
  }

  close(): void {
    this.image.close();
  }
}

/** st_mode type bits by a directory entry's basic inode type (format: "Directory Table"). */
export const MODE_BY_BASIC_TYPE: Record<number, number> = { 1: 0o040000, 2: 0o100000, 3: 0o120000, 4: 0o060000, 5: 0o020000, 6: 0o010000, 7: 0o140000 };
