/**
 * The writer's input: a tree of nodes described in code, or scanned from a directory. A node is
 * what becomes one inode; a non-directory node reachable under several names is a hard link (the
 * scanner gives every (st_dev, st_ino) pair one node object, code does the same by reusing an
 * object). Directory entries are kept as given and sorted by name bytes when the image is written.
 *
 * File contents are a `FileContent`: a size and a positional read, so that neither the scanner nor
 * the packer ever holds a whole file (or the image) in memory.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { preadFully } from '../io/pread';
import { errnoWords } from '../io/errno';
import { compareBytes } from '../format/directory';

export interface Xattr {
  /** Full name with its prefix: user.*, trusted.* or security.* (the prefixes SquashFS can store). */
  name: string;
  value: Uint8Array;
}

export interface NodeAttrs {
  /** The 12 permission bits (setuid, setgid, sticky, rwx×3). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (SquashFS stores an unsigned 32-bit value). */
  mtime: number;
  xattrs: Xattr[];
}

/** File contents: a size and a positional read that fills `buf` from `position` (returns bytes read). */
export interface FileContent {
  readonly size: number;
  read(position: number, buf: Uint8Array): number;
  /** Optional: called once the packer is done with the contents (closes a file descriptor). */
  close?(): void;
  /**
   * Optional, for contents in a file: its descriptor, opened on first use and valid until close(),
   * so that other threads (the compression workers) can read blocks of it positionally.
   */
  fd?(): number;
  /** For messages: where the contents come from. */
  readonly origin?: string;
}

export interface DirEntryNode {
  name: Uint8Array;
  node: TreeNode;
}

export type TreeNode =
  | (NodeAttrs & { kind: 'dir'; entries: DirEntryNode[] })
  | (NodeAttrs & { kind: 'file'; content: FileContent })
  | (NodeAttrs & { kind: 'symlink'; target: Uint8Array })
  | (NodeAttrs & { kind: 'blockdev' | 'chardev'; major: number; minor: number })
  | (NodeAttrs & { kind: 'fifo' | 'socket' });

export type DirNode = Extract<TreeNode, { kind: 'dir' }>;
export type FileNode = Extract<TreeNode, { kind: 'file' }>;

// ---- building trees in code -----------------------------------------------------------------------

export type AttrInput = Partial<Omit<NodeAttrs, 'xattrs'>> & { xattrs?: Record<string, string | Uint8Array> | Xattr[] };

function attrs(a: AttrInput | undefined, defMode: number): NodeAttrs {
  let xattrs: Xattr[] = [];
  if (Array.isArray(a?.xattrs)) xattrs = a!.xattrs;
  else if (a?.xattrs) xattrs = Object.entries(a.xattrs).map(([name, v]) => ({ name, value: typeof v === 'string' ? Buffer.from(v, 'utf8') : v }));
  return { mode: a?.mode ?? defMode, uid: a?.uid ?? 0, gid: a?.gid ?? 0, mtime: a?.mtime ?? 0, xattrs };
}

const enc = (s: string | Uint8Array) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

/** In-memory contents. */
export function bufferContent(data: Uint8Array | string): FileContent {
  const b = enc(data);
  return {
    size: b.length,
    read(position, buf) {
      const n = Math.max(0, Math.min(buf.length, b.length - position));
      buf.set(b.subarray(position, position + n));
      return n;
    },
  };
}

/** Contents produced by a function of the position (large or sparse synthetic files in tests). */
export function generatedContent(size: number, fill: (position: number, buf: Uint8Array) => void): FileContent {
  return {
    size,
    read(position, buf) {
      const n = Math.max(0, Math.min(buf.length, size - position));
      fill(position, buf.subarray(0, n));
      return n;
    },
  };
}

/** Contents of a file on disk, opened lazily and read positionally. */
export function fileContent(file: string | Buffer, size: number): FileContent {
  let fd: number | undefined;
  const open = (): number => {
    try {
      return (fd ??= fs.openSync(file, 'r'));
    } catch (e) {
      // ENOENT (removed since the scan), EACCES: in our words, naming the file (as the compression
      // workers' reads do).
      throw new SquashfsError('IO', `${file.toString()}: cannot open: ${errnoWords(e)}`, undefined, undefined, { cause: e });
    }
  };
  return {
    size,
    origin: file.toString(),
    fd: open,
    read(position, buf) {
      const at = open();
      try {
        return preadFully(at, buf, position);
      } catch (e) {
        throw new SquashfsError('IO', `${file.toString()}: cannot read: ${errnoWords(e)}`, undefined, undefined, { cause: e });
      }
    },
    close() {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    },
  };
}

export const tree = {
  dir(entries: Record<string, TreeNode> | DirEntryNode[], a?: AttrInput): TreeNode {
    const list = Array.isArray(entries) ? entries : Object.entries(entries).map(([name, node]) => ({ name: enc(name), node }));
    return { kind: 'dir', entries: list, ...attrs(a, 0o755) };
  },
  file(content: string | Uint8Array | FileContent, a?: AttrInput): TreeNode {
    const c = typeof content === 'string' || content instanceof Uint8Array ? bufferContent(content) : content;
    return { kind: 'file', content: c, ...attrs(a, 0o644) };
  },
  symlink(target: string | Uint8Array, a?: AttrInput): TreeNode {
    return { kind: 'symlink', target: enc(target), ...attrs(a, 0o777) };
  },
  device(kind: 'blockdev' | 'chardev', major: number, minor: number, a?: AttrInput): TreeNode {
    return { kind, major, minor, ...attrs(a, 0o644) };
  },
  fifo(a?: AttrInput): TreeNode {
    return { kind: 'fifo', ...attrs(a, 0o644) };
  },
  socket(a?: AttrInput): TreeNode {
    return { kind: 'socket', ...attrs(a, 0o755) };
  },
};

// ---- scanning a directory --------------------------------------------------------------------------

export interface ScanOptions {
  /** Read extended attributes with getfattr (default true). */
  xattrs?: boolean;
  /** Called with a warning line (missing getfattr, unstorable xattr prefixes). */
  warn?: (message: string) => void;
  /** Called after each directory with the number of entries found so far (progress of long scans). */
  onScan?: (entries: number) => void;
  /** Files to leave out, by device and inode number (the image being written, when it lies inside the tree). */
  exclude?: Array<{ dev: number; ino: number }>;
  /**
   * Paths to leave out (with everything below them), relative to the scanned directory, as
   * mksquashfs -e takes them; `*` and `?` match within one path component (mksquashfs -wildcards).
   */
  excludePaths?: string[];
}

/**
 * A matcher for exclude patterns: each pattern is split into components, each component a glob
 * where `*` is any run of characters and `?` one character, never a `/`. A path is excluded when
 * some pattern has as many components and each one matches. Names are compared as latin1 strings
 * of their bytes, so a UTF-8 name matches its UTF-8 pattern byte for byte.
 */
export function excludeMatcher(patterns: readonly string[]): ((relComps: readonly string[]) => boolean) | undefined {
  const compiled = patterns
    .map((p) => p.split('/').filter((c) => c !== '' && c !== '.'))
    .filter((comps) => comps.length > 0)
    .map((comps) =>
      comps.map((c) => {
        const bytes = Buffer.from(c, 'utf8').toString('latin1');
        if (!/[*?]/.test(bytes)) return bytes;
        return new RegExp(
          '^' +
            bytes
              .replace(/[.+^${}()|[\]\\]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]') +
            '$',
          's',
        );
      }),
    );
  if (compiled.length === 0) return undefined;
  return (rel) => compiled.some((pat) => pat.length === rel.length && pat.every((m, i) => (typeof m === 'string' ? m === rel[i] : m.test(rel[i]!))));
}

/** glibc's major()/minor() of a 64-bit dev_t, in BigInt so no bit is lost. */
function splitRdev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * Scans `root` with lstat (never following symlinks), one node per inode: names under which the
 * same (dev, ino) appears share a node, which the packer writes as a hard link. Iterative, so deep
 * trees do not overflow the stack. Extended attributes come from one `getfattr -R` run.
 */
export function scanDirectory(root: string, options: ScanOptions = {}): DirNode {
  const scan = scanNodes(root, options.exclude ?? [], options.onScan, excludeMatcher(options.excludePaths ?? []));
  if (options.xattrs ?? true) {
    const r = spawnSync('getfattr', getfattrArgs(scan.rootBuf), { maxBuffer: 1 << 30, env: { ...process.env, LC_ALL: 'C' } });
    applyGetfattr(r.error, r.status, r.stdout, r.stderr, scan.find, options.warn ?? defaultWarn);
  }
  return scan.root;
}

/**
 * The same as scanDirectory, but the xattrs are read by a getfattr process that runs while the
 * caller goes on (packing the file data): `xattrs` resolves once they are attached to the nodes.
 */
export function scanDirectoryAsync(root: string, options: ScanOptions = {}): { root: DirNode; xattrs: Promise<void> } {
  const scan = scanNodes(root, options.exclude ?? [], options.onScan, excludeMatcher(options.excludePaths ?? []));
  if (!(options.xattrs ?? true)) return { root: scan.root, xattrs: Promise.resolve() };
  const xattrs = new Promise<void>((resolve, reject) => {
    const child = spawn('getfattr', getfattrArgs(scan.rootBuf), { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let spawnError: Error | undefined;
    child.on('error', (e) => (spawnError = e));
    child.on('close', (status) => {
      try {
        applyGetfattr(spawnError, status, Buffer.concat(out), Buffer.concat(err), scan.find, options.warn ?? defaultWarn);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
  return { root: scan.root, xattrs };
}

const defaultWarn = (m: string) => process.stderr.write(`distri: ${m}\n`);

/** Node's buffer.isAscii (Node >= 18.15). */
const isAscii = (require('node:buffer') as { isAscii?: (b: Uint8Array) => boolean }).isAscii;

/**
 * A path is a string while every byte of it is ASCII (cheaper to build and to pass to lstat), and
 * a Buffer of its bytes once a name is not, so that names which are not UTF-8 survive exactly.
 */
type FsPath = string | Buffer;
const SLASH = Buffer.from('/');
function joinPath(dir: FsPath, name: Buffer): FsPath {
  if (typeof dir === 'string' && isAscii?.(name)) return `${dir}/${name.toString('latin1')}`;
  return Buffer.concat([typeof dir === 'string' ? Buffer.from(dir, 'latin1') : dir, SLASH, name]);
}

/** What a path getfattr names is: a node of the tree, left out on purpose (null), or unknown (undefined). */
type FindNode = (latin1Path: string) => TreeNode | null | undefined;

function scanNodes(
  root: string,
  exclude: Array<{ dev: number; ino: number }>,
  onScan?: (entries: number) => void,
  excludePath?: (relComps: readonly string[]) => boolean,
): { root: DirNode; rootBuf: Buffer; find: FindNode } {
  const excluded = new Set<string>(); // latin1 paths left out
  // The directory named is packed even when it is named through a symlink (srclink, srclink/):
  // only what lies below it is stored as found, symlinks included.
  let rootBuf: Buffer;
  try {
    rootBuf = fs.realpathSync.native(path.resolve(root), { encoding: 'buffer' });
  } catch {
    rootBuf = Buffer.from(path.resolve(root)); // lstat below reports why, with the path given
  }
  const seen = new Map<string, TreeNode>();
  const make = (abs: FsPath, st: fs.Stats): TreeNode => {
    const a: NodeAttrs = {
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: Math.floor(st.mtimeMs / 1000),
      xattrs: [],
    };
    if (st.isDirectory()) return { kind: 'dir', entries: [], ...a };
    if (st.isFile()) return { kind: 'file', content: fileContent(abs, st.size), ...a };
    if (st.isSymbolicLink()) return { kind: 'symlink', target: fs.readlinkSync(abs, { encoding: 'buffer' }), ...a };
    if (st.isBlockDevice()) return { kind: 'blockdev', ...splitRdev(BigInt(st.rdev)), ...a };
    if (st.isCharacterDevice()) return { kind: 'chardev', ...splitRdev(BigInt(st.rdev)), ...a };
    if (st.isFIFO()) return { kind: 'fifo', ...a };
    if (st.isSocket()) return { kind: 'socket', ...a };
    throw new SquashfsError('UNSUPPORTED', `${abs.toString()}: unknown file type (mode 0o${st.mode.toString(8)})`);
  };
  let rootSt: fs.Stats;
  try {
    rootSt = fs.lstatSync(rootBuf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SquashfsError('NOT_FOUND', `${root} does not exist`);
    throw new SquashfsError('IO', (e as Error).message, undefined, undefined, { cause: e });
  }
  if (rootSt.isSymbolicLink()) throw new SquashfsError('NOT_A_DIRECTORY', `${root} is a symbolic link to ${fs.readlinkSync(rootBuf, 'utf8')}, which cannot be followed (missing, or a loop)`);
  if (!rootSt.isDirectory()) throw new SquashfsError('NOT_A_DIRECTORY', `${root} is not a directory`);
  const rootPath: FsPath = isAscii?.(rootBuf) ? rootBuf.toString('latin1') : rootBuf;
  const top = make(rootPath, rootSt) as DirNode;
  const stack: Array<{ abs: FsPath; node: DirNode; rel: string[] }> = [{ abs: rootPath, node: top, rel: [] }];
  let entries = 0;
  while (stack.length) {
    const { abs, node, rel } = stack.pop()!;
    const names = fs.readdirSync(abs, { encoding: 'buffer' });
    names.sort(compareBytes);
    for (const name of names) {
      const childAbs = joinPath(abs, name);
      const childRel = excludePath ? [...rel, name.toString('latin1')] : rel;
      if (excludePath?.(childRel)) {
        excluded.add(typeof childAbs === 'string' ? childAbs : childAbs.toString('latin1'));
        continue;
      }
      const st = fs.lstatSync(childAbs);
      if (exclude.length > 0 && exclude.some((x) => x.ino === st.ino && x.dev === st.dev)) {
        excluded.add(typeof childAbs === 'string' ? childAbs : childAbs.toString('latin1'));
        continue;
      }
      let child: TreeNode | undefined;
      if (!st.isDirectory() && st.nlink > 1) {
        // Inode numbers above 2^53 would collide here; no Linux filesystem hands those out.
        const key = `${st.dev}:${st.ino}`;
        child = seen.get(key);
        if (!child) seen.set(key, (child = make(childAbs, st)));
      } else {
        child = make(childAbs, st);
      }
      node.entries.push({ name, node: child });
      entries++;
      if (child.kind === 'dir') stack.push({ abs: childAbs, node: child, rel: childRel });
    }
    onScan?.(entries);
  }
  // getfattr names the few paths that have attributes: look them up through the tree, with a name
  // map built per directory on first use, rather than keeping a map of every path.
  const rootKey = rootBuf.toString('latin1');
  const names = new Map<DirNode, Map<string, TreeNode>>();
  const find = (p: string): TreeNode | null | undefined => {
    if (p === rootKey) return top;
    if (!p.startsWith(rootKey + '/')) return undefined;
    // Left out, or below something left out (getfattr -R still walks excluded directories).
    for (let q = p; q.length > rootKey.length; q = q.slice(0, q.lastIndexOf('/'))) if (excluded.has(q)) return null;
    let node: TreeNode = top;
    for (const part of p.slice(rootKey.length + 1).split('/')) {
      if (node.kind !== 'dir') return undefined;
      let m = names.get(node);
      if (!m) names.set(node, (m = new Map(node.entries.map((e) => [Buffer.from(e.name.buffer, e.name.byteOffset, e.name.length).toString('latin1'), e.node]))));
      const next = m.get(part);
      if (!next) return undefined;
      node = next;
    }
    return node;
  };
  return { root: top, rootBuf, find };
}

function getfattrArgs(rootBuf: Buffer): string[] {
  return ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', rootBuf.toString()];
}

/** getfattr quotes bytes as \ooo (octal); this turns a printed name back into its bytes (latin1). */
function unquote(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Node has no xattr API, so the whole tree's attributes come from one `getfattr -R` process
 * (physical walk, symlinks not followed, values in hex). Missing getfattr is a loud warning and an
 * image without xattrs, never a failure.
 */
function applyGetfattr(error: Error | undefined, status: number | null, stdout: Buffer, stderr: Buffer, find: FindNode, warn: (m: string) => void): void {
  if (error) {
    warn(
      `WARNING: getfattr could not run (${(error as NodeJS.ErrnoException).code ?? error.message}): extended attributes are NOT packed (install the "attr" package, or pass --no-xattrs to silence this)`,
    );
    return;
  }
  const errors = stderr
    .toString()
    .split('\n')
    .filter((l) => l !== '' && !l.endsWith('Operation not supported'));
  if (status !== 0 && errors.length > 0) throw new SquashfsError('IO', `getfattr failed: ${errors.slice(0, 5).join('; ')}`);
  const skipped = new Set<string>();
  let current: TreeNode | undefined;
  for (const line of stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const found = find(unquote(line.slice(8)));
      if (found === undefined) throw new SquashfsError('IO', `getfattr reported a path the scan did not see: ${line.slice(8)}`);
      current = found ?? undefined; // null: a file left out, whose attributes are skipped
    } else if (line === '') {
      current = undefined;
    } else if (current) {
      const eq = line.indexOf('=');
      const name = Buffer.from(unquote(eq < 0 ? line : line.slice(0, eq)), 'latin1').toString('utf8');
      const raw = eq < 0 ? '' : line.slice(eq + 1);
      if (!/^(user|trusted|security)\./.test(name)) {
        skipped.add(name.replace(/\..*$/, '.'));
        continue;
      }
      if (raw !== '' && !raw.startsWith('0x')) throw new SquashfsError('IO', `getfattr printed ${name} not in hex: ${raw.slice(0, 40)}`);
      const value = Buffer.from(raw.slice(2), 'hex');
      // The same node may be reported under several names (hard links): keep one copy.
      if (!current.xattrs.some((x) => x.name === name)) current.xattrs.push({ name, value });
    }
  }
  if (skipped.size) warn(`warning: extended attributes with prefixes ${[...skipped].join(', ')} cannot be stored in SquashFS and were skipped`);
}
