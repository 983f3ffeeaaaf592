/** Human-readable renderings shared by the inspect commands (ls -l, stat, info). */
import type { FileKind } from '../format/constants';
import type { Stat } from '../reader/image';

const TYPE_CHAR: Record<FileKind, string> = { dir: 'd', file: '-', symlink: 'l', blockdev: 'b', chardev: 'c', fifo: 'p', socket: 's' };

/** "drwxr-xr-x", with s/S and t/T for setuid, setgid and sticky, as ls prints them. */
export function modeString(kind: FileKind, perm: number): string {
  const rwx = (bits: number, special: boolean, ch: string) => (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return TYPE_CHAR[kind] + rwx((perm >> 6) & 7, (perm & 0o4000) !== 0, 's') + rwx((perm >> 3) & 7, (perm & 0o2000) !== 0, 's') + rwx(perm & 7, (perm & 0o1000) !== 0, 't');
}

/**
 * Seconds since the epoch as `YYYY-MM-DD hh:mm:ss` (UTC; SquashFS times are unsigned 32-bit seconds).
 * Plain arithmetic: Date's toISOString costs 1 to 3 ms on its first call in a process, a tenth of
 * what `distri stat` adds to Node's start-up. The date is the proleptic Gregorian calendar counted in
 * 400-year eras of 146,097 days, each year starting on March 1st so that the leap day ends it.
 */
export function isoTime(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const secs = s - days * 86400;
  const z = days + 719468; // days since 0000-03-01
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const m5 = Math.floor((5 * dayOfYear + 2) / 153); // month counted from March
  const day = dayOfYear - Math.floor((153 * m5 + 2) / 5) + 1;
  const month = m5 < 10 ? m5 + 3 : m5 - 9;
  const year = era * 400 + yearOfEra + (month <= 2 ? 1 : 0);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${String(year).padStart(4, '0')}-${two(month)}-${two(day)} ${two(Math.floor(secs / 3600))}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}`;
}

export function octal(perm: number): string {
  return perm.toString(8).padStart(4, '0');
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** The size column of ls -l: bytes, or "major, minor" for devices. */
export function sizeColumn(st: Stat): string {
  return st.kind === 'blockdev' || st.kind === 'chardev' ? `${st.major}, ${st.minor}` : String(st.size);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * An xattr value for humans, the same in `stat` and `xattrs`: quoted text when it is valid UTF-8
 * without control characters, else 0x and hex (a capability, a SELinux context with its NUL).
 */
export function xattrValue(v: Uint8Array): string {
  let text: string | undefined;
  try {
    text = strictUtf8.decode(v);
  } catch {
    text = undefined;
  }
  return text !== undefined && !/[\u0000-\u001f\u007f-\u009f]/.test(text) ? JSON.stringify(text) : '0x' + hex(v);
}

/**
 * Owner and group names as `ls -l` and `unsquashfs -lls` show them: from this machine's /etc/passwd
 * and /etc/group where an id resolves, the number otherwise. The files are read once, on first use.
 */
export class IdNames {
  private users?: Map<number, string>;
  private groups?: Map<number, string>;
  constructor(private readonly files = { passwd: '/etc/passwd', group: '/etc/group' }) {}

  user(uid: number): string {
    this.users ??= readIdFile(this.files.passwd);
    return this.users.get(uid) ?? String(uid);
  }

  group(gid: number): string {
    this.groups ??= readIdFile(this.files.group);
    return this.groups.get(gid) ?? String(gid);
  }
}

/** name:x:id:… lines; the first name for an id wins, as getpwuid's does. Unreadable: empty. */
function readIdFile(file: string): Map<number, string> {
  const m = new Map<number, string>();
  let text = '';
  try {
    text = require('node:fs').readFileSync(file, 'utf8') as string;
  } catch {
    return m;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !/^\d+$/.test(f[2]!)) continue;
    const id = Number(f[2]);
    if (!m.has(id) && f[0]) m.set(id, f[0]);
  }
  return m;
}
