/**
 * Writing a built package: `<full>.squashfs` with our own writer in distri's layout (uncompressed,
 * 128 KiB blocks, no fragments, everything owned by root), `<full>.meta.textproto`, and the
 * `<pkg>-<arch>.meta.textproto` symlink naming the newest build. Every file is written beside its
 * final name and renamed onto it, meta first (a store reader that sees an image sees its meta).
 *
 * Reproducible: every mtime later than SOURCE_DATE_EPOCH is clamped to it and the superblock's
 * creation time is it, so two builds of the same inputs give the same bytes (distri stamped the
 * build time: **fix**).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatMeta, type Meta } from '../store/meta';
import { pack, type PackResult } from '../writer/pack';

/** Packs `root` into `image` with distri's options, mtimes clamped to `sourceDateEpoch`. */
export async function packReproducible(root: string, image: string, sourceDateEpoch: number): Promise<PackResult> {
  // pack() clamps to $SOURCE_DATE_EPOCH in reproducible mode; set it for the duration of the call.
  const saved = process.env.SOURCE_DATE_EPOCH;
  process.env.SOURCE_DATE_EPOCH = String(sourceDateEpoch);
  try {
    return await pack(root, image, {
      compression: 'none',
      blockSize: 128 * 1024,
      fragments: 'none',
      allRoot: true,
      reproducible: true,
      mkfsTime: sourceDateEpoch,
      warn: () => undefined,
    });
  } finally {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  }
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function symlinkAtomic(target: string, at: string): void {
  const tmp = `${at}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, at);
}

export interface PackageFiles {
  image: string;
  meta: string;
  link: string;
  result: PackResult;
}

/** Writes one package (image, meta, link) into `outDir`. */
export async function writePackage(o: { root: string; fullName: string; pkg: string; arch: string; meta: Meta; outDir: string; sourceDateEpoch: number }): Promise<PackageFiles> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const image = path.join(o.outDir, `${o.fullName}.squashfs`);
  const meta = path.join(o.outDir, `${o.fullName}.meta.textproto`);
  const link = path.join(o.outDir, `${o.pkg}-${o.arch}.meta.textproto`);
  // The image is packed to a temp name first (pack itself renames onto its target when done), so
  // that meta-then-image holds for the final names.
  const tmpImage = path.join(o.outDir, `.${o.fullName}.squashfs.tmp-${process.pid}`);
  let result: PackResult;
  try {
    result = await packReproducible(o.root, tmpImage, o.sourceDateEpoch);
    writeAtomic(meta, formatMeta(o.meta));
    fs.renameSync(tmpImage, image);
  } finally {
    fs.rmSync(tmpImage, { force: true });
  }
  symlinkAtomic(`${o.fullName}.meta.textproto`, link);
  return { image, meta, link, result };
}

/** Writes a debug image (`debug/<full>.squashfs`, no meta). */
export async function writeDebugImage(o: { root: string; fullName: string; outDir: string; sourceDateEpoch: number }): Promise<string> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const image = path.join(o.outDir, `${o.fullName}.squashfs`);
  await packReproducible(o.root, image, o.sourceDateEpoch);
  return image;
}
