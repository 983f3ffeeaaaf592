/**
 * The NodeFs of `distri mount`: one image, with squashfuse's options. Built by the thread that
 * serves it (the kernel transport's serving thread, or the main thread for libfuse), so this module
 * loads only the reader: no FUSE binding, nothing a worker thread cannot load.
 */
import * as path from 'node:path';
import { SquashfsError, isPathMistake } from '../errors';
import { Image } from '../reader/image';
import { ImageFs } from '../vfs/image-fs';

export interface ImageSourceArgs {
  image: string;
  offset?: number;
  subdir?: string;
  uid?: number;
  gid?: number;
  /** Decompressed data blocks kept, in MiB. */
  cacheMiB: number;
  /** `-o readdirplus=`: 'auto' leaves READDIRPLUS to the kernel's heuristic (default: every page). */
  readdirplus?: 'always' | 'auto';
}

function describe(e: unknown): string {
  if (e instanceof SquashfsError) return e.describe();
  return e instanceof Error ? e.message : String(e);
}

export function buildImageFs(a: ImageSourceArgs): ImageFs {
  let image: Image;
  try {
    image = Image.open(path.resolve(a.image), { offset: a.offset ?? 0, dataCacheBytes: a.cacheMiB * 1024 * 1024, pooledBlocks: true, passWholeBlocks: true });
  } catch (e) {
    throw new Error(`cannot open image ${a.image}: ${describe(e)}`);
  }
  try {
    return new ImageFs(image, { subdir: a.subdir, uid: a.uid, gid: a.gid, attributesOnEveryPage: a.readdirplus !== 'auto' });
  } catch (e) {
    image.close();
    // A subdir that is not there, or not a directory, is the caller's mistake: said plainly, and
    // with its code kept (the command exits 2, as for any path of the wrong type).
    if (isPathMistake(e)) {
      const why = e.code === 'NOT_FOUND' ? 'no such directory in the image' : e.message.replace(/^subdir "[^"]*" /, '');
      throw new SquashfsError(e.code, `subdir=${a.subdir}: ${why}`, e.structure);
    }
    throw new Error(`${a.image}: subdir=${a.subdir}: ${describe(e)}`);
  }
}
