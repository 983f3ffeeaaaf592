/** One inode as a JSON-friendly record (stat --json, ls --json) and as an ls -l line. */
import type { Inode } from '../format/inode';
import type { Image } from '../reader/image';
import { hex, isoTime, modeString, sizeColumn, type IdNames } from './format';

export interface InodeRecord {
  path: string;
  type: Inode['kind'];
  /** The 12 permission bits (setuid, setgid, sticky, rwx×3) as a number. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  nlink: number;
  inode: number;
  target?: string;
  rdev?: { major: number; minor: number };
  /** name → value as hex. */
  xattrs?: Record<string, string>;
}

export function record(img: Image, path: string, inode: Inode, withXattrs = true): InodeRecord {
  const st = img.stat(inode);
  const r: InodeRecord = {
    path,
    type: inode.kind,
    mode: inode.permissions,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtime: st.mtime,
    nlink: st.nlink,
    inode: st.inodeNumber,
  };
  if (inode.kind === 'symlink') r.target = img.readlink(inode);
  if (st.major !== undefined) r.rdev = { major: st.major, minor: st.minor! };
  if (withXattrs) {
    const xs = img.xattrs(inode);
    if (xs.length) r.xattrs = Object.fromEntries(xs.map((x) => [x.name, hex(x.value)]));
  }
  return r;
}

/** Columns of an ls -l line, before padding; owners by name where `names` resolves them. */
export function longColumns(img: Image, name: string, inode: Inode, names?: IdNames): string[] {
  const st = img.stat(inode);
  return [
    modeString(inode.kind, inode.permissions),
    String(st.nlink),
    names ? names.user(st.uid) : String(st.uid),
    names ? names.group(st.gid) : String(st.gid),
    sizeColumn(st),
    isoTime(st.mtime),
    inode.kind === 'symlink' ? `${name} -> ${img.readlink(inode)}` : name,
  ];
}

/** Pads columns like ls: numbers right-aligned, the rest left-aligned, name last. */
export function formatTable(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  // Numbers right-aligned (link count, size; owners when they are numbers), names left-aligned.
  const numeric = (i: number) => rows.every((r) => /^[\d, ]*$/.test(r[i]!));
  const right = new Set([1, 2, 3, 4].filter(numeric));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' ')).join('\n') + '\n';
}
