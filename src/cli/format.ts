/** Human-readable renderings shared by the inspect commands (ls -l, stat, info). */
import type { FileKind } from '../format/constants';
import type { Stat } from '../reader/image';

const TYPE_CHAR: Record<FileKind, string> = { dir: 'd', file: '-', symlink: 'l', blockdev: 'b', chardev: 'c', fifo: 'p', socket: 's' };

/** "drwxr-xr-x", with s/S and t/T for setuid, setgid and sticky, as ls prints them. */
export function modeString(kind: FileKind, perm: number): string {
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    TYPE_CHAR[kind] +
    rwx((perm >> 6) & 7, (perm & 0o4000) !== 0, 's') +
    rwx((perm >> 3) & 7, (perm & 0o2000) !== 0, 's') +
    rwx(perm & 7, (perm & 0o1000) !== 0, 't')
  );
}

export function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
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
