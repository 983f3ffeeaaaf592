/**
 * Writing extended attributes without an xattr API in Node: collect them while extracting, write
 * them in getfattr's dump format (the format `getfattr -d -e hex` prints) to a temporary file
 * outside the destination, and let one `setfattr -h --restore=FILE` process apply them all.
 *
 *   # file: PATH          PATH relative to the destination, "." for the destination itself
 *   NAME=0xHEX            one line per attribute; an empty value is NAME=""
 *   (blank line)
 *
 * Names and paths are quoted the way getfattr quotes them: every byte that is not printable
 * ASCII, and \, =, " , is written as \ooo (octal); setfattr turns those back into raw bytes, so
 * names that are not UTF-8 survive. -h makes setfattr use lsetxattr (never following a symlink);
 * the child runs with its working directory set to the destination's descriptor
 * (/proc/<pid>/fd/N), so a swapped parent path cannot redirect it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface XattrJob {
  /** Components below the destination; [] is the destination itself. */
  comps: readonly Uint8Array[];
  xattrs: ReadonlyArray<{ name: string; value: Uint8Array }>;
}

export function quoteDump(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d || b === 0x22) out += '\\' + b.toString(8).padStart(3, '0');
    else out += String.fromCharCode(b);
  }
  return out;
}

export function formatDump(jobs: Iterable<XattrJob>): string {
  const parts: string[] = [];
  for (const j of jobs) {
    const p = j.comps.length === 0 ? Buffer.from('.') : Buffer.concat(j.comps.flatMap((c, i) => (i ? [Buffer.from('/'), c] : [c])));
    parts.push(`# file: ${quoteDump(p)}\n`);
    for (const x of j.xattrs) {
      const v = x.value.length ? '0x' + Buffer.from(x.value.buffer, x.value.byteOffset, x.value.byteLength).toString('hex') : '""';
      parts.push(`${quoteDump(Buffer.from(x.name, 'utf8'))}=${v}\n`);
    }
    parts.push('\n');
  }
  return parts.join('');
}

/**
 * Applies the attributes with `setfattr -h --restore`. Returns setfattr's complaints (one per
 * attribute it could not set), empty when all were set.
 */
export function restoreXattrs(destFd: number, jobs: XattrJob[]): string[] {
  if (jobs.length === 0) return [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-xattrs-'));
  try {
    const file = path.join(tmp, 'dump');
    fs.writeFileSync(file, formatDump(jobs), { mode: 0o600 });
    const r = spawnSync('setfattr', ['-h', `--restore=${file}`], {
      cwd: `/proc/${process.pid}/fd/${destFd}`,
      encoding: 'latin1',
      maxBuffer: 1 << 26,
      env: { ...process.env, LC_ALL: 'C' },
    });
    if (r.error) return [`setfattr could not run: ${r.error.message}`];
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    if (r.status !== 0 && lines.length === 0) lines.push(`setfattr exited with status ${r.status}`);
    return lines.map((l) => Buffer.from(l, 'latin1').toString('utf8'));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
