/**
 * A package's `etc/` (default configuration) copied to the machine's `/etc` on its first install.
 *
 * The directory is read from the image with our own reader and extracted (src/extract: owners,
 * modes, symlinks, no way out of the destination) into a staging directory, then merged into
 * `<root>/etc` without ever replacing anything: a file the administrator already has (edited, or
 * left from an earlier install) stays, and is reported as kept. Directories are created as needed
 * with the image's mode.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Image } from '../reader/image';
import { extract } from '../extract/extract';

export interface EtcCopy {
  /** Paths below etc/ that were written. */
  copied: string[];
  /** Paths below etc/ that already existed and were left alone. */
  kept: string[];
}

function merge(src: string, dest: string, rel: string, out: EtcCopy, asRoot: boolean): void {
  for (const name of fs.readdirSync(src).sort()) {
    const s = path.join(src, name);
    const d = path.join(dest, name);
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = fs.lstatSync(s);
    let existing: fs.Stats | undefined;
    try {
      existing = fs.lstatSync(d);
    } catch {
      existing = undefined;
    }
    if (st.isDirectory()) {
      if (existing === undefined) {
        fs.mkdirSync(d, { mode: st.mode & 0o7777 });
        fs.chmodSync(d, st.mode & 0o7777);
        if (asRoot) fs.chownSync(d, st.uid, st.gid);
        out.copied.push(r + '/');
      } else if (!existing.isDirectory()) {
        out.kept.push(r);
        continue;
      }
      merge(s, d, r, out, asRoot);
      continue;
    }
    if (existing !== undefined) {
      out.kept.push(r);
      continue;
    }
    if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(s), d);
      if (asRoot) fs.lchownSync(d, st.uid, st.gid);
    } else if (st.isFile()) {
      fs.copyFileSync(s, d, fs.constants.COPYFILE_EXCL);
      if (asRoot) fs.chownSync(d, st.uid, st.gid);
      fs.chmodSync(d, st.mode & 0o7777); // after chown, which clears setuid bits
    } else {
      continue; // devices, fifos and sockets have no place in a package's default configuration
    }
    out.copied.push(r);
  }
}

/**
 * Copies the image's `etc/` into `etcDir` (created if missing), staging in `stagingDir` (must not
 * exist; removed afterwards). An image without `etc/` copies nothing.
 */
export async function copyEtc(imagePath: string, etcDir: string, stagingDir: string): Promise<EtcCopy> {
  const out: EtcCopy = { copied: [], kept: [] };
  const image = Image.open(imagePath);
  try {
    let etc;
    try {
      etc = image.resolve('etc', false);
    } catch {
      return out;
    }
    if (etc.kind !== 'dir') return out;
    fs.mkdirSync(stagingDir);
    // xattrs stay behind: a configuration file carries none that matter, and setfattr is then not needed.
    await extract(image, stagingDir, { paths: ['etc'], force: true, xattrs: false });
  } finally {
    image.close();
  }
  try {
    fs.mkdirSync(etcDir, { recursive: true });
    merge(path.join(stagingDir, 'etc'), etcDir, '', out, typeof process.getuid === 'function' && process.getuid() === 0);
  } finally {
    fs.rmSync(stagingDir, { recursive: true, force: true });
  }
  return out;
}
