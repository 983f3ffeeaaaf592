/**
 * The virtual-filesystem interface between a tree (one image, or the whole /ro store) and the FUSE
 * adapter. It is path-based because the FUSE binding (libfuse's high-level API) is. Implementations
 * throw SquashfsError; only src/fuse turns codes into errno values.
 */
export interface VfsAttr {
  /** Full st_mode, type bits included. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  nlink: number;
  /** Inode number as stat() should show it. */
  ino: number;
  /** Device number (kernel encoding) for device nodes, else 0. */
  rdev: number;
}

export interface VfsStatfs {
  blockSize: number;
  blocks: number;
  files: number;
  nameMax: number;
}

export interface Vfs {
  getattr(path: string): VfsAttr;
  /** Names in a directory, without . and .. */
  readdir(path: string): string[];
  readlink(path: string): string;
  /** Opens a regular file for reading; returns a handle for read/release. */
  open(path: string): number;
  /** Copies up to `length` bytes at `position` into buf; returns the count (0 at end of file). */
  read(handle: number, buf: Uint8Array, length: number, position: number): number;
  release(handle: number): void;
  listxattr(path: string): string[];
  /** undefined when the attribute does not exist (ENODATA at the FUSE edge). */
  getxattr(path: string, name: string): Uint8Array | undefined;
  statfs(): VfsStatfs;
  /** Whether any file can have xattrs; when false the adapter tells the kernel to stop asking. */
  readonly hasXattrs: boolean;
}
