/**
 * Manifests: a listing of a file tree (every entry, its attributes, xattrs and a content digest)
 * that can be produced from any source — a real directory (a kernel mount, an unsquashfs
 * extraction, the fixture source tree) or, later, the engine's own reader — and compared.
 *
 * Entry semantics (every producer must follow these exactly, or comparisons become noise):
 * - `path`: relative to the root, '/'-separated, '' for the root itself. Names are JS strings
 *   decoded as UTF-8 (the fixture tree has no names that are not valid UTF-8).
 * - `type`: from the inode type; SquashFS "extended" inode variants are not visible here.
 * - `mode`: the 12 permission bits (0o7777: rwx for all three classes plus setuid, setgid and
 *   sticky), never the file type bits. Symlinks report what lstat gives (0o777 on Linux).
 * - `uid`, `gid`: numeric ids, unsigned 32-bit values.
 * - `size`: the byte length of regular files; 0 for every other type. Directory sizes are
 *   deliberately left out (ext4 says 4096, SquashFS says listing size + 3: they mean nothing
 *   comparable); a symlink's length is `target`'s length; devices, fifos and sockets have none.
 * - `mtime`: whole seconds since the epoch (SquashFS stores an unsigned 32-bit count of seconds).
 * - `nlink`: the link count as stat reports it. Directories: 2 + number of subdirectories, as on
 *   ext4 and in SquashFS. Hard-linked files, symlinks and devices: the number of names.
 * - `target`: symlinks only, the link text exactly as readlink returns it.
 * - `rdev`: block and character devices only, `{ major, minor }` (Linux encoding, decoded).
 * - `xattrs`: present only when the entry has at least one extended attribute: full names
 *   (`user.foo`, `security.capability`, `trusted.x`) to lowercase hex of the value without `0x`;
 *   an empty value is ''. Absent, never `{}`, when there are none.
 * - `sha256`: regular files only, lowercase hex digest of the contents (holes read as zeros).
 * A Manifest is sorted by path in byte order of the UTF-8 encoding (`compareBytes`), which for
 * '/'-joined paths is not quite the same as a depth-first walk: use the paths, not positions.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

export type EntryType = 'dir' | 'file' | 'symlink' | 'blockdev' | 'chardev' | 'fifo' | 'socket';

export type Entry = {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  nlink: number;
  target?: string;
  rdev?: { major: number; minor: number };
  xattrs?: Record<string, string>;
  sha256?: string;
};

export type Manifest = Entry[];

/** Byte order of the UTF-8 encodings: the order SquashFS itself sorts directory entries in. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function sortManifest(m: Manifest): Manifest {
  const keyed = m.map((e) => ({ e, k: Buffer.from(e.path, 'utf8') }));
  keyed.sort((x, y) => Buffer.compare(x.k, y.k));
  return keyed.map((x) => x.e);
}

function typeOf(st: fs.BigIntStats): EntryType {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  throw new Error(`unknown file type, mode 0o${st.mode.toString(8)}`);
}

/** glibc's major()/minor() for a 64-bit dev_t, in BigInt so that no bit is lost. */
export function decodeRdev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

export function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Turns getfattr's quoting (`\ooo` octal for control bytes and backslash) back into a string. */
function unquoteGetfattr(latin1: string): string {
  const raw = latin1.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return Buffer.from(raw, 'latin1').toString('utf8');
}

/**
 * Extended attributes of the given paths (relative to `root`), never following symlinks, with
 * one `getfattr` process per ~64 KiB of arguments. Returns only the paths that have xattrs.
 */
export function readXattrs(root: string, relPaths: string[]): Map<string, Record<string, string>> {
  const result = new Map<string, Record<string, string>>();
  // getfattr prints the path as given; '' is not a path, so the root is passed as '.'.
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let bytes = 0;
  for (const p of relPaths) {
    const arg = p === '' ? '.' : p;
    if (bytes + arg.length > 64 * 1024 && chunk.length > 0) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(arg);
    bytes += Buffer.byteLength(arg) + 1;
  }
  if (chunk.length > 0) chunks.push(chunk);

  for (const args of chunks) {
    const r = spawnSync('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', '-h', '--', ...args], {
      cwd: root,
      maxBuffer: 1 << 30,
      env: { ...process.env, LC_ALL: 'C' },
    });
    if (r.error) throw new Error(`getfattr could not run: ${r.error.message}`);
    // A filesystem without xattr support (a SquashFS image built with -no-xattrs, whose kernel
    // mount answers EOPNOTSUPP) has no xattrs: that one error is an answer, any other is a failure.
    const errors = r.stderr
      .toString()
      .split('\n')
      .filter((l) => l !== '' && !l.endsWith(': Operation not supported'));
    if (r.status !== 0 && errors.length > 0) {
      throw new Error(`getfattr failed (status ${r.status}) under ${root}: ${r.stderr.toString().slice(0, 2000)}`);
    }
    let current: Record<string, string> | undefined;
    for (const line of r.stdout.toString('latin1').split('\n')) {
      if (line.startsWith('# file: ')) {
        const p = unquoteGetfattr(line.slice('# file: '.length));
        current = {};
        result.set(p === '.' ? '' : p, current);
      } else if (line === '') {
        current = undefined;
      } else {
        if (!current) throw new Error(`getfattr output: attribute line outside a file block: ${JSON.stringify(line)}`);
        const eq = line.indexOf('=');
        const name = unquoteGetfattr(eq < 0 ? line : line.slice(0, eq));
        const value = eq < 0 ? '' : line.slice(eq + 1);
        if (value !== '' && !/^0x[0-9a-f]*$/.test(value)) {
          throw new Error(`getfattr output: ${name} is not hex: ${JSON.stringify(value.slice(0, 80))}`);
        }
        current[name] = value.replace(/^0x/, '');
      }
    }
  }
  for (const [p, x] of result) if (Object.keys(x).length === 0) result.delete(p);
  return result;
}

export type WalkOptions = {
  /** Read extended attributes (default true). Needs `getfattr` (package `attr`). */
  xattrs?: boolean;
  /** Hash file contents (default true). */
  hash?: boolean;
};

/**
 * Walks a real directory with lstat (never following a symlink, never crossing into anything but
 * plain subdirectories) and returns its Manifest. Iterative, so depth is not bounded by the stack.
 */
export function walkDirectory(root: string, options: WalkOptions = {}): Manifest {
  const wantXattrs = options.xattrs ?? true;
  const wantHash = options.hash ?? true;
  const entries: Entry[] = [];
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const e: Entry = {
      path: rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtime: Number(st.mtimeNs / 1_000_000_000n),
      nlink: Number(st.nlink),
    };
    if (type === 'symlink') e.target = fs.readlinkSync(abs, 'utf8');
    if (type === 'blockdev' || type === 'chardev') e.rdev = decodeRdev(st.rdev);
    if (type === 'file' && wantHash) e.sha256 = sha256File(abs);
    entries.push(e);
    if (type === 'dir') {
      for (const name of fs.readdirSync(abs)) stack.push(rel === '' ? name : `${rel}/${name}`);
    }
  }
  if (wantXattrs) {
    const x = readXattrs(
      root,
      entries.map((e) => e.path),
    );
    const byPath = new Map(entries.map((e) => [e.path, e]));
    for (const [p, attrs] of x) {
      const e = byPath.get(p);
      if (!e) throw new Error(`getfattr reported a path the walk did not see: ${JSON.stringify(p)}`);
      e.xattrs = sortedRecord(attrs);
    }
  }
  return sortManifest(entries);
}

function sortedRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort(compareBytes)) out[k] = r[k]!;
  return out;
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? 'undefined';
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

export type DiffOptions = {
  /** Names for the two sides in messages (default 'a' and 'b'). */
  labels?: [string, string];
  /** At most this many lines, then one "... N more" line (default 50). */
  limit?: number;
};

/**
 * Human-readable differences between two manifests, matched by path (order does not matter);
 * empty when they are equal. One line per differing field, e.g.
 * `links/two-a: nlink a=2 b=1` or `only in b: special/socket (socket)`.
 */
export function diffManifests(a: Manifest, b: Manifest, options: DiffOptions = {}): string[] {
  const [la, lb] = options.labels ?? ['a', 'b'];
  const limit = options.limit ?? 50;
  const out: string[] = [];
  const index = (m: Manifest, label: string) => {
    const map = new Map<string, Entry>();
    for (const e of m) {
      if (map.has(e.path)) out.push(`${label} lists ${show(e.path)} twice`);
      map.set(e.path, e);
    }
    return map;
  };
  const ma = index(a, la);
  const mb = index(b, lb);
  const paths = [...new Set([...ma.keys(), ...mb.keys()])].sort(compareBytes);
  for (const p of paths) {
    const x = ma.get(p);
    const y = mb.get(p);
    const name = p === '' ? '(root)' : show(p).slice(1, -1);
    if (!x || !y) {
      const e = (x ?? y) as Entry;
      out.push(`only in ${x ? la : lb}: ${name} (${e.type})`);
      continue;
    }
    const field = (f: string, vx: unknown, vy: unknown, fmt: (v: unknown) => string = show) => {
      if (!isDeepStrictEqual(vx, vy)) out.push(`${name}: ${f} ${la}=${fmt(vx)} ${lb}=${fmt(vy)}`);
    };
    const octal = (v: unknown) => (typeof v === 'number' ? `0o${v.toString(8).padStart(4, '0')}` : show(v));
    field('type', x.type, y.type);
    field('mode', x.mode, y.mode, octal);
    field('uid', x.uid, y.uid);
    field('gid', x.gid, y.gid);
    field('size', x.size, y.size);
    field('mtime', x.mtime, y.mtime);
    field('nlink', x.nlink, y.nlink);
    field('target', x.target, y.target);
    field('rdev', x.rdev, y.rdev);
    field('sha256', x.sha256, y.sha256);
    const xa = x.xattrs ?? {};
    const ya = y.xattrs ?? {};
    if (x.xattrs !== undefined && Object.keys(x.xattrs).length === 0) out.push(`${la}: ${name}: xattrs is {} (must be absent)`);
    if (y.xattrs !== undefined && Object.keys(y.xattrs).length === 0) out.push(`${lb}: ${name}: xattrs is {} (must be absent)`);
    for (const k of [...new Set([...Object.keys(xa), ...Object.keys(ya)])].sort(compareBytes)) {
      if (!(k in xa)) out.push(`${name}: xattr ${k} only in ${lb}`);
      else if (!(k in ya)) out.push(`${name}: xattr ${k} only in ${la}`);
      else if (xa[k] !== ya[k]) out.push(`${name}: xattr ${k} ${la}=${show(xa[k])} ${lb}=${show(ya[k])}`);
    }
  }
  if (out.length > limit) {
    const more = out.length - limit;
    out.length = limit;
    out.push(`... and ${more} more difference(s)`);
  }
  return out;
}

/** Writes a manifest as JSON with one entry per line, so that diffs of committed files stay readable. */
export function formatManifest(m: Manifest): string {
  return `[\n${sortManifest(m)
    .map((e) => JSON.stringify(e))
    .join(',\n')}\n]\n`;
}

export function readManifestFile(file: string): Manifest {
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(m)) throw new Error(`${file}: not a JSON array of entries`);
  return m as Manifest;
}
