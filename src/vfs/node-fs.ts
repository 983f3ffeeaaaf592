/**
 * The inode-based filesystem interface between a tree (one image, or the whole /ro store) and a
 * FUSE transport. It follows the kernel protocol rather than libfuse's path API: the kernel names
 * a file by the node id it was given for it by an earlier LOOKUP, so no request ever walks a path.
 *
 * Three identifiers, never to be mixed up (squashfuse's ll.c has the same long comment):
 * - the on-disk **inode reference** (48 bits: metadata block << 16 | offset), how an image finds
 *   an inode;
 * - the **inode number** (1..inode_count), what stat() shows as st_ino (attr.ino);
 * - the **node id**, what the kernel sends back in every request: chosen by the implementation,
 *   1 is the root (FUSE_ROOT_ID), stable for as long as the kernel holds a reference to it.
 *
 * Reference counting, as the protocol defines it: every successful lookup() (and every entry that
 * a READDIRPLUS reply carries, which the transport gets through lookup() too) adds one reference
 * to the node; FORGET and BATCH_FORGET take `nlookup` of them back. When a node's count reaches
 * zero the kernel has forgotten it and the implementation may drop it, so memory follows what the
 * kernel caches, not what was ever walked. The root is never forgotten.
 *
 * Every failure is a SquashfsError (src/errors.ts); only src/fuse turns codes into errno values.
 * Files are read by node, without open: the kernel transport negotiates "no open" (FUSE's
 * NO_OPEN_SUPPORT) for an immutable tree, and the libfuse transport keeps its handles to itself.
 */

/** The kernel's node id of the root directory (FUSE_ROOT_ID). */
export const ROOT_NODE = 1;

export interface NodeAttr {
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

export interface NodeStatfs {
  blockSize: number;
  blocks: number;
  files: number;
  nameMax: number;
}

/** What a lookup answers: the node, its attributes, and how long the kernel may keep both. */
export interface NodeEntry {
  /** Node id (never 0 and never ROOT_NODE for a lookup result). */
  node: number;
  attr: NodeAttr;
  /** Seconds the kernel may keep the name → node binding (entry_valid). */
  entryTtl: number;
  /** Seconds the kernel may keep the attributes (attr_valid). */
  attrTtl: number;
}

/** One directory entry as READDIR carries it. */
export interface NodeDirEntry {
  name: string;
  /** The name's UTF-8 bytes, where the implementation has them (saves the transport encoding it again). */
  nameBytes?: Uint8Array;
  /** Inode number (as attr.ino would show it). */
  ino: number;
  /** st_mode (only the type bits are used). */
  mode: number;
  /**
   * The cookie of this entry: readdir(dir, cookie) continues with the entry after it. Strictly
   * increasing within one listing, never 0 (0 means "from the start").
   */
  cookie: number;
  /**
   * Opaque to the transport: what the implementation needs to make this entry a node without
   * searching the directory for its name again (handed back to lookupDirEntry, READDIRPLUS).
   */
  handle?: unknown;
}

/** Where an implementation tells the kernel that cached names or attributes changed. */
export interface Invalidator {
  /** `name` in directory `parent` may now mean something else, or nothing (NOTIFY_INVAL_ENTRY). */
  entry(parent: number, name: string): void;
  /** The node's attributes and cached contents are stale (NOTIFY_INVAL_INODE). */
  inode(node: number): void;
  /**
   * The filesystem asks its daemon for a control request back (the store, when an opened image
   * disagrees with its index, asks for a `scan`). The daemon sends it soon, debounced, on its
   * usual control path; nothing polls for it, so an idle mount is never woken.
   */
  ask?(req: { op: string; why: string }): void;
}

export interface NodeFs {
  /** Whether any file can have xattrs; when false the transport tells the kernel to stop asking. */
  readonly hasXattrs: boolean;
  /** Nodes the kernel holds references on now (the root excluded): what FORGET keeps bounded. */
  readonly nodeCount: number;
  /**
   * Optional: every page of a listing carries attributes (READDIRPLUS on each request, not only
   * on the first). Left unset, the kernel decides (READDIRPLUS_AUTO): attributes on the page at
   * offset 0 only, so an entry of a later page that is stat()ed costs a LOOKUP of its own, which
   * is what a cold `find` of a directory larger than one reply pays. Set it where attributes are
   * as cheap as the names (an image); a plain `ls` of a huge directory then asks for more pages.
   */
  readonly attributesOnEveryPage?: boolean;

  /** `name` in directory `parent`: counts one kernel reference on the node. NOT_FOUND if absent. */
  lookup(parent: number, name: string): NodeEntry;
  /** Seconds the kernel may remember that a name in `parent` does not exist (0: ask each time). */
  negativeTtl(parent: number): number;
  /** The kernel dropped `nlookup` references to `node`. Never throws. */
  forget(node: number, nlookup: number): void;
  getattr(node: number): { attr: NodeAttr; ttl: number };
  readlink(node: number): string;
  /**
   * The entries of directory `node` after `cookie` (0: from the first), in order, without "." and
   * "..". `emit` returns false when the reply is full: that entry was not taken, and the listing
   * stops there (the kernel asks again with the last cookie it got).
   */
  readdir(node: number, cookie: number, emit: (e: NodeDirEntry) => boolean): void;
  /**
   * Optional: lookup(parent, e.name) for an entry readdir(parent) just emitted, the same counted
   * reference, but from what the listing already holds (READDIRPLUS asks this for every entry).
   */
  lookupDirEntry?(parent: number, e: NodeDirEntry): NodeEntry;
  /** Copies bytes at `position` into `buf` (as many as fit); returns the count, 0 at end of file. */
  read(node: number, buf: Uint8Array, position: number): number;
  listxattr(node: number): string[];
  /** undefined when the attribute does not exist (ENODATA at the FUSE edge). */
  getxattr(node: number, name: string): Uint8Array | undefined;
  statfs(): NodeStatfs;

  /**
   * Optional: the filesystem can change (the store). The transport hands over where to send
   * invalidations; they are written by another thread than the one answering requests, because
   * the kernel may hold the directory's lock for a request that waits for this very thread.
   */
  setInvalidator?(inv: Invalidator): void;
  /**
   * Optional: a control request from the daemon's main thread (the store's `scan`, `mkdirall`,
   * `stats`), answered synchronously on the thread that serves requests, between two requests.
   * Returns a JSON-serialisable answer; throws to report a failure.
   */
  control?(req: { op: string; [k: string]: unknown }): unknown;
  /** Counters for `stats` (JSON-serialisable). */
  stats?(): unknown;
  /** Releases descriptors and caches. */
  close(): void;
}
