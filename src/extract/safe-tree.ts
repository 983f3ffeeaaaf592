/**
 * A destination directory that can only be written *inside*. Every operation names its target as a
 * list of single path components below the destination (raw bytes, so names that are not UTF-8
 * survive), and every component is reached through directory file descriptors opened with
 * O_PATH | O_DIRECTORY | O_NOFOLLOW, one component at a time, starting from the root of the host
 * filesystem. Node has no openat()/mkdirat()/fchmodat(); on Linux the same effect comes from
 * /proc/self/fd/N/NAME, which the kernel resolves from the directory that fd N holds, whatever
 * its path is now. So:
 *
 *  - a symlink anywhere on the way (one of DEST's parents, DEST itself, a directory of the image
 *    replaced by a planted or extracted symlink) makes the open fail with ELOOP/ENOTDIR, which is
 *    reported as UNSAFE_PATH: nothing is ever written through a link;
 *  - files are created with O_CREAT | O_EXCL | O_NOFOLLOW, directories with mkdir (which never
 *    follows a final symlink), symlinks/devices/fifos/sockets by calls that fail on an existing
 *    name; an existing entry is replaced only with --force, and never a symlink that stands where a
 *    directory or a regular file is to be written;
 *  - chmod/chown/utimes act on an O_PATH | O_NOFOLLOW descriptor (through its /proc/self/fd path,
 *    which names the inode itself), after fstat confirmed its type and inode number; symlinks get
 *    lchown/lutimes, which never follow.
 *
 * What this does NOT defend against: another process that swaps components of DEST's parent path
 * between the start of extraction and the setfattr run (xattrs are written by a child process with
 * paths relative to DEST's descriptor, so only DEST's own subtree is named by path, and that subtree
 * stays mode 0700 until the last phase). It needs Linux with /proc mounted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { NodeMaker } from './node-maker';

/** Not in Node's fs.constants; the asm-generic value, also x86-64's. */
export const O_PATH = 0o10000000;
const { O_DIRECTORY, O_NOFOLLOW, O_CREAT, O_EXCL, O_RDONLY, O_WRONLY } = fs.constants;

export type EntryKind = 'dir' | 'file' | 'symlink' | 'blockdev' | 'chardev' | 'fifo' | 'socket';

const SLASH = 0x2f;
const DOT = 0x2e;

/** Bytes as a string, one character per byte. */
function latin1(b: Uint8Array): string {
  return (b instanceof Buffer ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('latin1');
}

/** A readable rendering of raw path bytes for messages. */
export function showPath(comps: readonly Uint8Array[]): string {
  return JSON.stringify(comps.length ? comps.map((c) => Buffer.from(c).toString('utf8')).join('/') : '.');
}

/** One path component: non-empty, not . or .., no / and no NUL. */
export function checkComponent(name: Uint8Array, where: readonly Uint8Array[]): void {
  const bad =
    name.length === 0
      ? 'an empty name'
      : (name.length === 1 && name[0] === DOT) || (name.length === 2 && name[0] === DOT && name[1] === DOT)
        ? `the name ${JSON.stringify(Buffer.from(name).toString('latin1'))}`
        : name.indexOf(SLASH) >= 0
          ? 'a name containing /'
          : name.indexOf(0) >= 0
            ? 'a name containing NUL'
            : undefined;
  if (bad) throw new SquashfsError('UNSAFE_PATH', `refusing to extract ${bad} under ${showPath(where)}`, 'extraction');
}

function kindOf(st: fs.Stats): EntryKind {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** A filesystem error from the destination, with the path inside DEST that caused it. */
function destError(what: string, comps: readonly Uint8Array[], e: unknown): Error {
  const code = errno(e);
  if (code === 'EEXIST' || code === 'EADDRINUSE') {
    return new Error(`${what} ${showPath(comps)}: it already exists in the destination; use --force to replace it`, { cause: e });
  }
  if (code === 'ELOOP' || code === 'ENOTDIR') {
    return new SquashfsError('UNSAFE_PATH', `${what} ${showPath(comps)}: a component is a symbolic link or not a directory (${code}); refusing to write through it`, 'extraction', undefined, {
      cause: e,
    });
  }
  return new Error(`${what} ${showPath(comps)}: ${(e as Error).message}`, { cause: e });
}

/** The image names one path twice (the decoder rejects duplicates within one listing already). */
function duplicate(comps: readonly Uint8Array[], cause?: unknown): SquashfsError {
  return new SquashfsError('UNSAFE_PATH', `${showPath(comps)} is extracted twice (duplicate names in the image)`, 'extraction', undefined, { cause });
}

/**
 * Directory descriptors along one path, reused while consecutive operations share a prefix. The
 * components are kept as given (callers never change a name after passing it) and matched first
 * by identity (an extraction passes the same name objects for every entry of a directory), then by
 * their bytes.
 */
class DirChain {
  private readonly names: Uint8Array[] = [];
  private readonly fds: number[] = [];
  /** The path of each directory in the chain as a string of its bytes (latin1), for `created`. */
  private readonly keys: string[] = [];
  constructor(
    private readonly root: number,
    /** Keep `keys` (only a SafeTree that records what it created needs them). */
    private readonly keyed: boolean,
  ) {}

  /** The latin1 key of the directory the last fd() call returned ('' for the root). */
  key(depth: number): string {
    return depth === 0 ? '' : this.keys[depth - 1]!;
  }

  fd(dir: readonly Uint8Array[]): number {
    let common = 0;
    while (common < this.names.length && common < dir.length && (this.names[common] === dir[common] || Buffer.compare(this.names[common]!, dir[common]!) === 0)) common++;
    this.truncate(common);
    for (let i = common; i < dir.length; i++) {
      const parent = i === 0 ? this.root : this.fds[i - 1]!;
      let fd: number;
      try {
        fd = fs.openSync(procPath(parent, dir[i]!), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      } catch (e) {
        throw destError('opening directory', dir.slice(0, i + 1), e);
      }
      const name = dir[i]!;
      if (this.keyed) this.keys.push(i === 0 ? latin1(name) : `${this.keys[i - 1]}/${latin1(name)}`);
      this.names.push(name);
      this.fds.push(fd);
    }
    return dir.length === 0 ? this.root : this.fds[dir.length - 1]!;
  }

  truncate(n: number): void {
    while (this.fds.length > n) {
      fs.closeSync(this.fds.pop()!);
      this.names.pop();
      if (this.keyed) this.keys.pop();
    }
  }
}

/** `/proc/self/fd/FD/` by descriptor number: the same bytes whatever FD holds, so kept. */
const procDirs: Buffer[] = [];

/** /proc/self/fd/FD/NAME as bytes: NAME resolved inside the directory that FD holds. */
export function procPath(fd: number, name?: Uint8Array): Buffer {
  const dir = (procDirs[fd] ??= Buffer.from(`/proc/self/fd/${fd}/`));
  // One allocation per path (this runs several times per extracted entry).
  if (!name) return dir.subarray(0, dir.length - 1);
  const out = Buffer.allocUnsafe(dir.length + name.length);
  dir.copy(out, 0);
  out.set(name, dir.length);
  return out;
}

/** The same for a child process, which must name our pid. */
function procPathFor(pid: number, fd: number, name: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`/proc/${pid}/fd/${fd}/`), name]);
}

export interface SafeTreeOptions {
  /** Allow a non-empty existing destination, and replace entries that are in the way. */
  force?: boolean;
}

export class SafeTree {
  private readonly chain: DirChain;
  private readonly linkChain: DirChain;
  /**
   * With force, every path created in this run (latin1 of the '/'-joined bytes): a second one is a
   * duplicate, which clearWay would otherwise replace. Without force the destination started
   * empty and every creation fails on an existing name, so the kernel's EEXIST is the check.
   */
  private readonly created = new Set<string>();
  private closed = false;
  /** The shell that makes device nodes and fifos, started on the first one. */
  private nodes: NodeMaker | undefined;
  /** open() made the destination directory (it did not exist). */
  private createdDest = false;

  private constructor(
    /** O_PATH descriptor of the destination directory. */
    readonly rootFd: number,
    /** The destination as given, resolved to an absolute path (for messages only). */
    readonly dest: string,
    readonly force: boolean,
  ) {
    this.chain = new DirChain(rootFd, force);
    this.linkChain = new DirChain(rootFd, false);
  }

  /**
   * Opens (creating its last component if missing) the destination. Refuses: a destination or
   * parent that is a symlink; a destination that is not a directory; a non-empty one without force.
   * The parent directory must exist (like unsquashfs -d).
   */
  static open(dest: string, options: SafeTreeOptions = {}): SafeTree {
    if (process.platform !== 'linux' || !fs.existsSync('/proc/self/fd')) {
      throw new SquashfsError('UNSUPPORTED', 'extraction needs Linux with /proc mounted (it writes through /proc/self/fd descriptors)', 'extraction');
    }
    const abs = path.resolve(dest);
    const parts = abs.split('/').filter((p) => p !== '');
    let fd = fs.openSync('/', O_PATH | O_DIRECTORY);
    let created = false;
    try {
      for (let i = 0; i < parts.length; i++) {
        const name = Buffer.from(parts[i]!);
        const here = '/' + parts.slice(0, i + 1).join('/');
        const last = i === parts.length - 1;
        let st: fs.Stats | undefined;
        try {
          st = fs.lstatSync(procPath(fd, name));
        } catch (e) {
          if (errno(e) !== 'ENOENT') throw e;
        }
        if (st === undefined) {
          if (!last) throw new Error(`${here} does not exist (the destination's parent directory must exist)`);
          fs.mkdirSync(procPath(fd, name), 0o700);
          created = true;
        } else if (st.isSymbolicLink()) {
          throw new SquashfsError(
            'UNSAFE_PATH',
            `${last ? 'the destination' : 'a parent of the destination'} ${here} is a symbolic link (to ${JSON.stringify(fs.readlinkSync(procPath(fd, name), 'utf8'))}); refusing to extract through it (pass the real path, e.g. "$(realpath ${here})")`,
            'extraction',
          );
        } else if (!st.isDirectory()) {
          throw new Error(`${here} exists and is not a directory`);
        }
        let next: number;
        try {
          next = fs.openSync(procPath(fd, name), O_PATH | O_DIRECTORY | O_NOFOLLOW);
        } catch (e) {
          // It was a directory a moment ago: someone swapped it.
          throw destError('opening', [name], e);
        }
        fs.closeSync(fd);
        fd = next;
      }
      if (!options.force && fs.readdirSync(procPath(fd)).length > 0) {
        throw new Error(`${abs} exists and is not empty (use --force to extract into it)`);
      }
      const tree = new SafeTree(fd, abs, options.force ?? false);
      tree.createdDest = created;
      return tree;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.nodes?.close();
    this.chain.truncate(0);
    this.linkChain.truncate(0);
    fs.closeSync(this.rootFd);
  }

  /**
   * After a failure: removes the destination if this run created it and it is still empty (a PATH
   * that failed, nothing extracted). Only the directory open() made, checked by inode number.
   */
  removeIfCreatedEmpty(): void {
    if (!this.createdDest || this.closed) return;
    try {
      if (fs.readdirSync(procPath(this.rootFd)).length > 0) return;
      if (fs.lstatSync(this.dest).ino !== fs.fstatSync(this.rootFd).ino) return;
      fs.rmdirSync(this.dest);
    } catch {
      // left in place: not empty, or no longer ours
    }
  }

  /** Removes a regular file this run created (a partial one, after a read failed). */
  removeFile(comps: readonly Uint8Array[]): void {
    const at = procPath(this.chain.fd(comps.slice(0, -1)), comps[comps.length - 1]!);
    try {
      if (fs.lstatSync(at).isFile()) fs.unlinkSync(at);
    } catch {
      // already gone
    }
  }

  /** The descriptor of directory `dir` (components below DEST). */
  dirFd(dir: readonly Uint8Array[]): number {
    return this.chain.fd(dir);
  }

  /** Validates the last component, records the path, and returns (parent fd, its /proc path). */
  private prepare(comps: readonly Uint8Array[], kind: EntryKind): { parent: number; at: Buffer; name: Uint8Array } {
    if (comps.length === 0) throw new SquashfsError('UNSAFE_PATH', `cannot create the destination itself as a ${kind}`, 'extraction');
    const dir = comps.slice(0, -1);
    const name = comps[comps.length - 1]!;
    checkComponent(name, dir);
    const parent = this.chain.fd(dir);
    const at = procPath(parent, name);
    // Without --force the destination started empty, and every creation call below fails on an
    // existing name (EEXIST, reported by createError as a duplicate), so only --force needs to
    // record and to look first.
    if (this.force) {
      // The path as a string of its bytes, one character per byte: the parent's key is kept by
      // the chain, so only the last name is converted here.
      const key = `${this.chain.key(dir.length)}/${latin1(name)}`;
      if (this.created.has(key)) throw duplicate(comps);
      this.created.add(key);
      this.clearWay(at, comps, kind);
    }
    return { parent, at, name };
  }

  /**
   * Makes room for a new entry of `kind`. Without force anything already there is an error. With
   * force: an existing directory is kept when a directory is wanted (extraction merges into it);
   * a symlink where a directory or a regular file is wanted is refused (that is the classic way to
   * redirect writes); anything else that is not a directory is unlinked (unlink never follows).
   */
  private clearWay(at: Buffer, comps: readonly Uint8Array[], kind: EntryKind): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch (e) {
      if (errno(e) === 'ENOENT') return;
      throw destError('checking', comps, e);
    }
    const have = kindOf(st);
    if (!this.force) throw new Error(`${showPath(comps)} already exists (a ${have}) in ${this.dest}; use --force to replace it`);
    if (have === 'dir') {
      if (kind === 'dir') return;
      throw new Error(`${showPath(comps)}: a directory is in the way of a ${kind}; remove it first`);
    }
    if (have === 'symlink' && (kind === 'dir' || kind === 'file')) {
      throw new SquashfsError(
        'UNSAFE_PATH',
        `${showPath(comps)} is a symbolic link (to ${JSON.stringify(fs.readlinkSync(at, 'utf8'))}) where the image has a ${kind}; refusing to write through or over it, even with --force`,
        'extraction',
      );
    }
    fs.unlinkSync(at);
  }

  /** A creation call failed: on an existing name without force, the image named it twice. */
  private createError(what: string, comps: readonly Uint8Array[], e: unknown): Error {
    const code = errno(e);
    return !this.force && (code === 'EEXIST' || code === 'EADDRINUSE') ? duplicate(comps, e) : destError(what, comps, e);
  }

  /**
   * mkdir mode 0700 (the final mode is set by `finish` once the contents are in). Returns its
   * inode number (for finish's check), from the descriptor the chain opens on it.
   */
  mkdir(comps: readonly Uint8Array[]): number {
    const { at } = this.prepare(comps, 'dir');
    try {
      fs.mkdirSync(at, 0o700);
    } catch (e) {
      if (!(errno(e) === 'EEXIST' && this.force)) throw this.createError('creating directory', comps, e);
    }
    // Opening it now proves it is a directory and not a link (clearWay kept an existing one).
    return fs.fstatSync(this.chain.fd(comps)).ino;
  }

  /**
   * Creates a new regular file (mode 0600, or the `mode` given, less the umask) and returns a
   * descriptor open for writing (whatever the mode: it is open already).
   */
  createFile(comps: readonly Uint8Array[], mode = 0o600): number {
    const { at } = this.prepare(comps, 'file');
    try {
      return fs.openSync(at, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    } catch (e) {
      throw this.createError('creating file', comps, e);
    }
  }

  symlink(comps: readonly Uint8Array[], target: Uint8Array): void {
    if (target.length === 0 || target.indexOf(0) >= 0) {
      throw new SquashfsError('CORRUPT', `symlink ${showPath(comps)} has an empty target or one containing NUL`, 'inode table');
    }
    const { at } = this.prepare(comps, 'symlink');
    try {
      fs.symlinkSync(Buffer.from(target), at);
    } catch (e) {
      throw this.createError('creating symlink', comps, e);
    }
  }

  /**
   * Device nodes and fifos, by the mknod(1) tool (Node has no mknod), run by one shell kept for the
   * whole extraction (./node-maker.ts) rather than a process spawned per node.
   */
  async mknod(comps: readonly Uint8Array[], kind: 'blockdev' | 'chardev' | 'fifo', major = 0, minor = 0): Promise<void> {
    const { parent, name } = this.prepare(comps, kind);
    // The child resolves a descriptor of the parent through /proc/<our pid>/fd (same user, so
    // allowed): one of its own, held until mknod has run, since the chain's descriptors close as
    // the caller goes on to other directories (and a number reused meanwhile would name another).
    let held: number;
    try {
      held = fs.openSync(procPath(parent), O_PATH | O_DIRECTORY);
    } catch (e) {
      throw destError('opening directory', comps.slice(0, -1), e);
    }
    const target = procPathFor(process.pid, held, name);
    this.nodes ??= new NodeMaker();
    let r;
    try {
      r = await this.nodes.make(target, kind === 'fifo' ? 'p' : kind === 'blockdev' ? 'b' : 'c', major, minor);
    } catch (e) {
      throw new Error(`creating ${kind} ${showPath(comps)}: ${(e as Error).message}`, { cause: e });
    } finally {
      fs.closeSync(held);
    }
    if (r.status !== 0) throw new Error(`creating ${kind} ${showPath(comps)}: ${r.output || `mknod exited with status ${r.status}`}`);
  }

  /**
   * A Unix socket inode: bind a listening socket to a temporary name in the same directory, hard
   * link the final name to it, close (which removes the temporary name). bind() fails on any
   * existing name, so nothing is followed. The /proc path must fit in sun_path (107 bytes).
   */
  async socket(comps: readonly Uint8Array[]): Promise<void> {
    const { parent, at } = this.prepare(comps, 'socket');
    const tmp = procPath(parent, Buffer.from(`.distri-sock-${process.pid}-${Math.random().toString(36).slice(2, 10)}`));
    const net = await import('node:net');
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp.toString('latin1'), () => resolve());
    }).catch((e: unknown) => {
      throw this.createError('creating socket', comps, e);
    });
    try {
      fs.linkSync(tmp, at);
    } catch (e) {
      throw this.createError('creating socket', comps, e);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      try {
        fs.unlinkSync(tmp); // normally already gone (Node unlinks on close)
      } catch {
        // gone
      }
    }
  }

  /** A second name for an inode extracted earlier at `existing` (link() never follows a symlink). */
  link(existing: readonly Uint8Array[], comps: readonly Uint8Array[], kind: EntryKind): void {
    const src = procPath(this.linkChain.fd(existing.slice(0, -1)), existing[existing.length - 1]!);
    const { at } = this.prepare(comps, kind);
    try {
      fs.linkSync(src, at);
    } catch (e) {
      throw this.createError('creating hard link', comps, e);
    }
  }

  /** lstat of an extracted entry (inode number, for checks later). */
  lstat(comps: readonly Uint8Array[]): fs.Stats {
    if (comps.length === 0) return fs.fstatSync(this.rootFd);
    return fs.lstatSync(procPath(this.chain.fd(comps.slice(0, -1)), comps[comps.length - 1]!));
  }

  lchown(comps: readonly Uint8Array[], uid: number, gid: number): void {
    const at = procPath(this.chain.fd(comps.slice(0, -1)), comps[comps.length - 1]!);
    try {
      fs.lchownSync(at, uid, gid);
    } catch (e) {
      throw destError('chown', comps, e);
    }
  }

  /**
   * Owner (when given) and mtime of a symlink just created at `comps` (lchown and lutimes, which
   * never follow). Nothing done later in an extraction changes them (xattrs change its ctime
   * only), so a symlink is finished as it is made, not checked and changed again in the last phase.
   */
  finishSymlink(comps: readonly Uint8Array[], owner: { uid: number; gid: number } | undefined, mtime: number): void {
    const at = procPath(this.chain.fd(comps.slice(0, -1)), comps[comps.length - 1]!);
    try {
      if (owner) fs.lchownSync(at, owner.uid, owner.gid);
      fs.lutimesSync(at, mtime, mtime);
    } catch (e) {
      throw destError('setting attributes of', comps, e);
    }
  }

  /**
   * Sets owner (when uid is given), mode and mtime of an extracted entry other than a symlink
   * (finishSymlink does those) without following one: a directory is opened O_RDONLY |
   * O_DIRECTORY | O_NOFOLLOW and anything else O_PATH | O_NOFOLLOW, checked to be the same inode of
   * the expected kind, and changed through its descriptor. `ino` is what lstat said right after
   * creation.
   */
  finish(comps: readonly Uint8Array[], kind: Exclude<EntryKind, 'symlink'>, ino: number, meta: { uid?: number; gid?: number; mode: number; mtime: number }): void {
    let fd: number;
    let own = false;
    /** fd is open for reading (a directory): f-calls on it, no path to resolve. */
    let readable = false;
    if (comps.length === 0) {
      fd = this.rootFd;
    } else {
      const at = procPath(this.chain.fd(comps.slice(0, -1)), comps[comps.length - 1]!);
      try {
        fd = -1;
        if (kind === 'dir') {
          // Opening a directory for reading has no side effect; it fails (ELOOP, ENOTDIR) on
          // anything else standing there, which destError reports as UNSAFE_PATH.
          try {
            fd = fs.openSync(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            readable = true;
          } catch (e) {
            if (errno(e) !== 'EACCES') throw e; // (one this user may not read, that --force merged into)
          }
        }
        if (fd < 0) fd = fs.openSync(at, O_PATH | O_NOFOLLOW);
        own = true;
      } catch (e) {
        throw destError('opening', comps, e);
      }
    }
    try {
      const st = fs.fstatSync(fd);
      if (kindOf(st) !== kind || st.ino !== ino) {
        throw new SquashfsError('UNSAFE_PATH', `${showPath(comps)} is now a ${kindOf(st)} (inode ${st.ino}), not the ${kind} (inode ${ino}) extracted there`, 'extraction');
      }
      if (readable) {
        if (meta.uid !== undefined) fs.fchownSync(fd, meta.uid, meta.gid!);
        fs.fchmodSync(fd, meta.mode);
        fs.futimesSync(fd, meta.mtime, meta.mtime);
      } else {
        const self = procPath(fd);
        if (meta.uid !== undefined) fs.chownSync(self, meta.uid, meta.gid!);
        fs.chmodSync(self, meta.mode);
        fs.utimesSync(self, meta.mtime, meta.mtime);
      }
    } catch (e) {
      if (e instanceof SquashfsError) throw e;
      throw destError('setting attributes of', comps, e);
    } finally {
      if (own) fs.closeSync(fd);
    }
  }
}
