/**
 * squashfs-tools' `unsquashfs` as an oracle: extract an image into a temporary directory, let a
 * test look at it, always remove it. Run as root, unsquashfs restores owners, setuid bits, device
 * nodes and xattrs; as anyone else it cannot, so it is reported unavailable then.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allAvailable, isRoot, type Availability } from './tools';

const extractedHere: string[] = [];

/** Extraction directories made by this process that still exist (empty when cleanup worked). */
export function unsquashfsLeftovers(): string[] {
  return extractedHere.filter((d) => fs.existsSync(d));
}

export function unsquashfsAvailable(): Availability {
  return allAvailable('unsquashfs', isRoot());
}

export type UnsquashfsOptions = {
  /** Extra arguments before the image (e.g. ['-no-xattrs']). */
  args?: string[];
  /** Exit statuses to accept besides 0 (unsquashfs uses 2 for "non-fatal errors"). */
  acceptStatus?: number[];
};

export type UnsquashfsResult = { status: number; log: string };

/**
 * `unsquashfs -d TMP/root -no-progress IMAGE`, then `fn(TMP/root, result)`, then always remove TMP.
 * Throws with unsquashfs's output when it exits with a status not accepted.
 */
export async function withUnsquashfs<T>(image: string, fn: (dir: string, result: UnsquashfsResult) => T | Promise<T>, options: UnsquashfsOptions = {}): Promise<T> {
  const avail = unsquashfsAvailable();
  if (!avail.ok) throw new Error(`unsquashfs not available: ${avail.why}`);
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-unsquash-'));
  extractedHere.push(parent);
  try {
    const dest = path.join(parent, 'root');
    const r = spawnSync('unsquashfs', ['-d', dest, '-no-progress', ...(options.args ?? []), image], {
      encoding: 'utf8',
      timeout: 120_000,
      maxBuffer: 1 << 26,
    });
    if (r.error) throw new Error(`unsquashfs could not run: ${r.error.message}`);
    const log = `${r.stdout}${r.stderr}`.trim();
    const status = r.status ?? -1;
    if (status !== 0 && !(options.acceptStatus ?? []).includes(status)) {
      throw new Error(`unsquashfs ${image} exited with ${status}: ${log.slice(-2000)}`);
    }
    return await fn(dest, { status, log });
  } finally {
    // rmSync never follows symlinks; as root it also removes 0000-mode directories.
    fs.rmSync(parent, { recursive: true, force: true });
  }
}
