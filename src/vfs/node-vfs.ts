/**
 * A path-based Vfs over any NodeFs: what lets the libfuse transport (src/fuse/adapter.ts, which
 * names every file by its full path) serve a tree that only speaks nodes, the /ro store, until the
 * kernel-protocol transport replaces it. Delete it together with the Vfs interface.
 *
 * Each request walks its path from the root with lookup(), as the kernel would, and forgets every
 * node it looked up once answered, so the NodeFs holds only what is in use: nothing between
 * requests, plus one node per open file (open() keeps its file's reference until release()).
 * A walk costs one directory search per component; libfuse asks for few enough paths that this
 * stopgap needs no cache of its own.
 */
import { SquashfsError } from '../errors';
import { ROOT_NODE, type NodeFs } from './node-fs';
import type { Vfs, VfsAttr, VfsStatfs } from './types';

/** Handles are 32-bit in the FUSE binding; 0 means "no handle" there. */
const MAX_HANDLE = 0x7fffffff;
const S_IFMT = 0o170000;

export class NodeVfs implements Vfs {
  /** Open file handle → the node it holds one reference on. */
  private readonly handles = new Map<number, number>();
  private nextHandle = 1;

  constructor(readonly fs: NodeFs) {}

  get hasXattrs(): boolean {
    return this.fs.hasXattrs;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  /**
   * Runs `fn` on the node at `path`, then forgets what the walk looked up; with `keep`, a successful
   * `fn` leaves the reference on the final node to the caller.
   */
  private at<T>(path: string, fn: (node: number) => T, keep = false): T {
    const walked: number[] = [];
    try {
      let node = ROOT_NODE;
      for (const c of path.split('/')) {
        if (c === '') continue;
        node = this.fs.lookup(node, c).node;
        walked.push(node);
      }
      const result = fn(node);
      if (keep && walked.length > 0) walked.pop();
      return result;
    } finally {
      for (const n of walked) this.fs.forget(n, 1);
    }
  }

  getattr(path: string): VfsAttr {
    return this.at(path, (n) => this.fs.getattr(n).attr);
  }

  readdir(path: string): string[] {
    return this.at(path, (n) => {
      const names: string[] = [];
      this.fs.readdir(n, 0, (e) => {
        names.push(e.name);
        return true;
      });
      return names;
    });
  }

  readlink(path: string): string {
    return this.at(path, (n) => this.fs.readlink(n));
  }

  open(path: string): number {
    if (this.handles.size >= MAX_HANDLE) throw new SquashfsError('OVERFLOW', `${this.handles.size} open handles`, 'handles');
    return this.at(
      path,
      (node) => {
        const type = this.fs.getattr(node).attr.mode & S_IFMT;
        if (type === 0o040000) throw new SquashfsError('IS_A_DIRECTORY', `${path} is a directory`, 'path');
        if (type !== 0o100000) throw new SquashfsError('NOT_A_FILE', `${path} is not a regular file`, 'path');
        let h = this.nextHandle;
        while (this.handles.has(h)) h = h >= MAX_HANDLE ? 1 : h + 1;
        this.nextHandle = h >= MAX_HANDLE ? 1 : h + 1;
        this.handles.set(h, node);
        return h;
      },
      true,
    );
  }

  read(handle: number, buf: Uint8Array, length: number, position: number): number {
    const node = this.handles.get(handle);
    if (node === undefined) throw new SquashfsError('BAD_HANDLE', `read on handle ${handle}, which is not open`, 'handles');
    if (length <= 0) return 0;
    return this.fs.read(node, buf.length > length ? buf.subarray(0, length) : buf, position);
  }

  release(handle: number): void {
    const node = this.handles.get(handle);
    if (node === undefined) return;
    this.handles.delete(handle);
    this.fs.forget(node, 1);
  }

  listxattr(path: string): string[] {
    return this.at(path, (n) => this.fs.listxattr(n));
  }

  getxattr(path: string, name: string): Uint8Array | undefined {
    return this.at(path, (n) => this.fs.getxattr(n, name));
  }

  statfs(): VfsStatfs {
    return this.fs.statfs();
  }
}
