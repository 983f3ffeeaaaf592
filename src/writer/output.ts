/**
 * The file an image is written to. A new image, or one replacing a regular file, is written to a
 * temporary file beside it and renamed over it once complete: a failed or interrupted pack leaves
 * the previous image as it was, and whoever reads the old image never sees half of the new one.
 * Anything else the path names (a symlink, a device, a file with other hard links, which a rename
 * would split from them) is written in place, as before.
 *
 * `exclude` is the existing image's (device, inode), for the scanner: an image inside the tree
 * being packed is left out of it, as mksquashfs leaves out its destination.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoWords } from '../io/errno';
import { SquashfsError } from '../errors';

/** Temporary files of packs under way in this process. */
const partial = new Set<string>();

/**
 * Removes the temporary files of packs still under way: for a command line that is interrupted
 * (SIGINT, SIGTERM), which would otherwise leave a hidden partial image beside the real one.
 */
export function removePartialImages(): void {
  for (const f of partial) fs.rmSync(f, { force: true });
  partial.clear();
}

/** An error that names the image, not the temporary file beside it. */
function cannotWrite(imagePath: string, e: unknown): SquashfsError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? `directory ${path.dirname(imagePath)} does not exist` : errnoWords(e);
  return new SquashfsError('IO', `cannot write ${imagePath}: ${why}`, undefined, undefined, { cause: e });
}

export interface Output {
  readonly exclude: Array<{ dev: number; ino: number }>;
  /** Opens the file to write (after the scan, so that a temporary file is never scanned). */
  open(): number;
  /** The image is complete: put it in place. */
  commit(): void;
  /** Packing failed: remove what was written (the temporary file; never an image written in place). */
  abort(): void;
}

export function prepareOutput(imagePath: string): Output {
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(imagePath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  let target: fs.Stats | undefined = existing;
  if (existing?.isSymbolicLink()) {
    try {
      target = fs.statSync(imagePath);
    } catch {
      target = undefined; // a dangling symlink: the file it names does not exist yet
    }
  }
  // Checked before the scan: a directory would only fail (EISDIR) once everything is compressed.
  if (target?.isDirectory()) {
    throw new SquashfsError('IS_A_DIRECTORY', `${imagePath} is a directory, not an image (name the image file, e.g. ${path.join(imagePath, 'image.sqfs')})`);
  }
  const exclude = target ? [{ dev: target.dev, ino: target.ino }] : [];
  const replace = !existing || (existing.isFile() && existing.nlink === 1);
  let temp: string | undefined;
  return {
    exclude,
    open(): number {
      if (replace) {
        const dir = path.dirname(imagePath);
        const name = path.join(dir, `.${path.basename(imagePath)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
        let fd: number | undefined;
        try {
          fd = fs.openSync(name, 'wx', 0o666);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          // A directory we may not create files in (but the image itself is writable): in place.
          if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw cannotWrite(imagePath, e);
        }
        if (fd !== undefined) {
          temp = name;
          partial.add(name);
          try {
            // The replaced image keeps its permission bits, as writing into it did.
            if (existing) fs.fchmodSync(fd, existing.mode & 0o7777);
          } catch {
            // (best effort: the new image then has the default mode)
          }
          return fd;
        }
      }
      try {
        return fs.openSync(imagePath, 'w');
      } catch (e) {
        throw cannotWrite(imagePath, e);
      }
    },
    commit(): void {
      if (!temp) return;
      try {
        fs.renameSync(temp, imagePath);
      } catch (e) {
        abort();
        throw cannotWrite(imagePath, e);
      }
      partial.delete(temp);
      temp = undefined;
    },
    abort,
  };

  function abort(): void {
    if (!temp) return;
    fs.rmSync(temp, { force: true });
    partial.delete(temp);
    temp = undefined;
  }
}
