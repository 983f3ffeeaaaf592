/**
 * One look at a store directory: which packages it holds right now, and the identity (size, mtime,
 * inode) of each package's two files, `<full>.squashfs` and `<full>.meta.textproto`.
 *
 * A package is *complete* when both files are there. `distri install` renames the meta into place
 * first and the image second, so an image that is visible under its final name is whole; an image
 * without a meta is skipped (the caller logs it once). Hidden files (`.distri-index`, `.foo.tmp`),
 * files whose name holds no versioned package name, and other suffixes are ignored.
 *
 * This reads the directory and stats two files per package (one in a quick scan, which leaves the
 * metas unchecked; the daemon follows its quick first scan with a full one right after the mount is
 * ready). It never opens an image.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePackageName, type PackageName } from '../store/package-name';

/** Enough of a stat to notice that a file was replaced or rewritten. */
export interface FileKey {
  size: number;
  mtimeMs: number;
  ino: number;
}

export interface ScannedPackage {
  name: PackageName;
  imagePath: string;
  image: FileKey;
  /** Whether `<full>.meta.textproto` is in the directory. */
  hasMeta: boolean;
  /** The meta's key; undefined when missing, or not looked at (a quick scan). */
  meta?: FileKey;
  metaPath: string;
}

/**
 * The store directory's own identity and times, taken before it is read: any name added, removed
 * or renamed in it changes mtime and ctime (and setting the mtime back changes the ctime), so an
 * equal stamp means the directory lists what it listed then (see StoreIndex.stamp).
 */
export interface DirStamp {
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

export function dirStamp(st: fs.Stats): DirStamp {
  return { mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

export function sameStamp(a: DirStamp | undefined, b: DirStamp | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

export interface StoreScan {
  /** The directory as it was just before it was read. */
  dir: DirStamp;
  /** Complete or not, by full name. */
  packages: Map<string, ScannedPackage>;
  /** Milliseconds the scan took. */
  ms: number;
}

const IMAGE = '.squashfs';
const META = '.meta.textproto';

export function fileKey(st: fs.Stats): FileKey {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

export function sameKey(a: FileKey | undefined, b: FileKey | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** Lists the packages of `store`. Throws (ENOENT, EACCES) when the directory cannot be read. */
export function scanStore(store: string, quick = false): StoreScan {
  const t0 = performance.now();
  const dir = dirStamp(fs.statSync(store));
  const names = fs.readdirSync(store);
  const metas = new Set<string>();
  const images: string[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    if (n.endsWith(META)) metas.add(n.slice(0, -META.length));
    else if (n.endsWith(IMAGE)) images.push(n.slice(0, -IMAGE.length));
  }
  const packages = new Map<string, ScannedPackage>();
  for (const full of images) {
    const name = parsePackageName(full);
    // The whole file name must be the package name (not a name found inside a longer string).
    if (name === null || name.full !== full || name.upstream === '') continue;
    const imagePath = path.join(store, full + IMAGE);
    const metaPath = path.join(store, full + META);
    let image: FileKey;
    try {
      const st = fs.statSync(imagePath);
      if (!st.isFile()) continue;
      image = fileKey(st);
    } catch {
      continue; // removed between readdir and stat
    }
    let meta: FileKey | undefined;
    if (metas.has(full) && !quick) {
      try {
        meta = fileKey(fs.statSync(metaPath));
      } catch {
        meta = undefined;
      }
    }
    packages.set(full, { name, imagePath, image, hasMeta: metas.has(full), meta, metaPath });
  }
  return { dir, packages, ms: performance.now() - t0 };
}
