/**
 * Access to the fixture images: the mksquashfs matrix built by fixtures/build.sh (gitignored, built
 * on demand) and the small committed images in fixtures/images/ with their expected listings.
 * Also the one place that knows how each mksquashfs option changes what an image must contain
 * relative to its source tree (`expectedFromSource`), including the documented exceptions.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readManifestFile, type Manifest } from './manifest';
import { allAvailable, isRoot, repoRoot, type Availability } from './tools';

/** One image of the matrix, as fixtures/build/manifest.json describes it. */
export type BuiltImage = {
  name: string;
  /** Absolute path of the image. */
  file: string;
  compressor: 'gzip' | 'lzo' | 'lz4' | 'xz' | 'zstd' | 'lzma';
  blockSize: number;
  fragments: 'default' | 'none' | 'always';
  xattrs: boolean;
  exports: boolean;
  duplicates: boolean;
  hardlinks: boolean;
  uncompressed: boolean;
  allRoot: boolean;
  allTime: number | null;
  mksquashfsArgs: string[];
};

export type BuiltFixtures = { dir: string; tree: string; treeHash: string; images: BuiltImage[] };

export function buildAvailable(): Availability {
  return allAvailable('mksquashfs', 'getfattr', 'setfattr', 'mknod', isRoot());
}

let built: BuiltFixtures | undefined;

/**
 * Runs fixtures/build.sh (cheap when nothing changed) and returns the matrix with absolute paths.
 * Throws with the script's output when the build fails; check `buildAvailable()` first.
 */
export function buildFixtures(outDir?: string): BuiltFixtures {
  if (built && outDir === undefined) return built;
  const root = repoRoot();
  const dir = outDir ?? path.join(root, 'fixtures', 'build');
  const r = spawnSync(path.join(root, 'fixtures', 'build.sh'), [dir], { encoding: 'utf8', timeout: 600_000 });
  if (r.error || r.status !== 0) {
    throw new Error(`fixtures/build.sh failed (${r.error?.message ?? `status ${r.status}`}): ${(r.stderr ?? '').slice(-3000)}`);
  }
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
    tree: string;
    treeHash: string;
    images: BuiltImage[];
  };
  const result: BuiltFixtures = {
    dir,
    tree: path.join(dir, m.tree),
    treeHash: m.treeHash,
    images: m.images.map((i) => ({ ...i, file: path.join(dir, i.file) })),
  };
  if (outDir === undefined) built = result;
  return result;
}

export type CommittedImage = { name: string; file: string; expected: string; sha256: string; mksquashfsArgs: string[] };

/** The small committed images (fixtures/images/images.json), with absolute paths. */
export function committedImages(): { mksquashfsVersion: string; images: CommittedImage[] } {
  const dir = path.join(repoRoot(), 'fixtures', 'images');
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'images.json'), 'utf8')) as {
    mksquashfsVersion: string;
    images: CommittedImage[];
  };
  return {
    mksquashfsVersion: m.mksquashfsVersion,
    images: m.images.map((i) => ({ ...i, file: path.join(dir, i.file), expected: path.join(dir, i.expected) })),
  };
}

export function readExpected(image: CommittedImage): Manifest {
  return readManifestFile(image.expected);
}

/** The README demo image. */
export function demoImage(): string {
  return path.join(repoRoot(), 'fixtures', 'demo.sqfs');
}

/**
 * What an image built from `source` with the given options must list (the kernel mount and the
 * unsquashfs extraction of every matrix image equal this; test/oracle.test.ts proves it):
 * - `-all-root`: uid and gid 0 everywhere;
 * - `-no-xattrs`: no xattrs anywhere (the kernel mount answers EOPNOTSUPP, read as "none");
 * - `-all-time T`: every mtime is T, the root's included;
 * - `-no-hardlinks`: every non-directory has nlink 1 (its names become independent inodes);
 * Hard links between symlinks are kept (one inode, nlink 2) only because make-tree.sh and build.sh
 * make atimes recent first: mksquashfs compares whole stat structures, atime included, to find hard
 * links, and its own readlink of the first name would otherwise change the atime under relatime.
 * Everything else (compressor, block size, fragments, exports, duplicates, uncompressed tables)
 * must not change the listing at all.
 */
export function expectedFromSource(source: Manifest, image: Pick<BuiltImage, 'allRoot' | 'xattrs' | 'allTime' | 'hardlinks'>): Manifest {
  return source.map((src) => {
    const e = { ...src };
    if (image.allRoot) {
      e.uid = 0;
      e.gid = 0;
    }
    if (!image.xattrs) delete e.xattrs;
    if (image.allTime !== null) e.mtime = image.allTime;
    if (!image.hardlinks && e.type !== 'dir') e.nlink = 1;
    return e;
  });
}
