/**
 * TEMPORARY: a path-based Vfs served as a NodeFs, so that the store (StoreVfs) keeps working
 * through the NodeFs-based FUSE adapter while it is being converted. This file goes once StoreFs
 * (the store as a NodeFs of its own) lands.
 *
 * A node is a path: NodeTable hands out one id per path while references are held, and every
 * request on a node asks the Vfs about that path afresh, so a tree that changes under the mount
 * (a rescan) answers exactly as the Vfs does today. A lookup is the Vfs's getattr of the joined
 * path; the kernel may keep names and attributes for the source's cache timeout.
 *
 * Files: the Vfs wants an open before reads, and an open file keeps its package image readable
 * after the store has dropped the package. openFile/readFile/releaseFile pass the Vfs's handles
 * through the adapter (its OpenFileHook); read() by node alone opens the file for that one read.
 */
import type { Vfs } from './types';
import { NodeTable } from './node-table';
import { ROOT_NODE, type NodeAttr, type NodeDirEntry, type NodeEntry, type NodeFs, type NodeStatfs } from './node-fs';

export class VfsNodeBridge implements NodeFs {
  private readonly table = new NodeTable<string, null>();

  constructor(
    readonly vfs: Vfs,
    /** Seconds the kernel may keep names, attributes and misses. */
    private readonly ttl: number,
  ) {}

  get hasXattrs(): boolean {
    return this.vfs.hasXattrs;
  }

  get nodeCount(): number {
    return this.table.size;
  }

  /** The path of a node ("/" for the root); BAD_HANDLE for a node not held. */
  pathOf(node: number): string {
    if (node === ROOT_NODE) return '/';
    this.table.get(node);
    return this.table.keyOf(node)!;
  }

  lookup(parent: number, name: string): NodeEntry {
    const dir = this.pathOf(parent);
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const attr = this.vfs.getattr(path);
    return { node: this.table.acquire(path, null), attr, entryTtl: this.ttl, attrTtl: this.ttl };
  }

  negativeTtl(): number {
    return this.ttl;
  }

  forget(node: number, nlookup: number): void {
    this.table.forget(node, nlookup);
  }

  getattr(node: number): { attr: NodeAttr; ttl: number } {
    return { attr: this.vfs.getattr(this.pathOf(node)), ttl: this.ttl };
  }

  readlink(node: number): string {
    return this.vfs.readlink(this.pathOf(node));
  }

  /** Names only: a Vfs listing has no types or inode numbers, so `ino` and `mode` are 0 (unknown). */
  readdir(node: number, cookie: number, emit: (e: NodeDirEntry) => boolean): void {
    const names = this.vfs.readdir(this.pathOf(node));
    for (let i = cookie; i < names.length; i++) {
      if (!emit({ name: names[i]!, ino: 0, mode: 0, cookie: i + 1 })) return;
    }
  }

  read(node: number, buf: Uint8Array, position: number): number {
    const fh = this.vfs.open(this.pathOf(node));
    try {
      return this.vfs.read(fh, buf, buf.length, position);
    } finally {
      this.vfs.release(fh);
    }
  }

  openFile(node: number): number {
    return this.vfs.open(this.pathOf(node));
  }

  readFile(fh: number, buf: Uint8Array, position: number): number {
    return this.vfs.read(fh, buf, buf.length, position);
  }

  releaseFile(fh: number): void {
    this.vfs.release(fh);
  }

  listxattr(node: number): string[] {
    return this.vfs.listxattr(this.pathOf(node));
  }

  getxattr(node: number, name: string): Uint8Array | undefined {
    return this.vfs.getxattr(this.pathOf(node), name);
  }

  statfs(): NodeStatfs {
    return this.vfs.statfs();
  }

  /** The Vfs belongs to whoever made the bridge (the store source closes it). */
  close(): void {}
}
