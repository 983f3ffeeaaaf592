/**
 * Depth-first walk of an image's tree, iterative (an explicit stack, so 10,000 levels of nesting
 * cannot overflow the JavaScript stack). It guards against the two ways a corrupt directory table
 * can make a tree infinite: an entry that points back at the directory itself or one of its
 * ancestors (LOOP), and nesting deeper than any path the kernel could name (PATH_MAX 4096 bytes
 * allows at most 2048 levels).
 */
import { SquashfsError } from '../errors';
import type { DirEntry } from '../format/directory';
import type { Inode } from '../format/inode';
import type { Image } from './image';

export const MAX_DEPTH = 2048;

export interface WalkItem {
  /** Path relative to the start directory, '/'-separated; '' for the start itself. */
  path: string;
  /** Path as raw name bytes joined with '/', for writing names that are not UTF-8. */
  pathBytes: Uint8Array;
  inode: Inode;
  /** The entry that named it (undefined for the start directory). */
  entry?: DirEntry;
  depth: number;
}

const SLASH = Uint8Array.of(0x2f);

/** Pre-order walk: a directory is yielded before its children, children in sorted order. */
export function* walk(image: Image, start: Inode = image.root(), startPath = ''): Generator<WalkItem> {
  const startBytes = Buffer.from(startPath, 'utf8');
  yield { path: startPath, pathBytes: startBytes, inode: start, depth: 0 };
  if (start.kind !== 'dir') return;
  // Each frame: a directory, its entries, the next index, and the chain of ancestor refs.
  // One set of the directories on the current path: added on push, removed on pop (copying it per
  // level would make deep trees quadratic).
  type Frame = { path: string; pathBytes: Uint8Array; entries: DirEntry[]; next: number; ref: number };
  const onPath = new Set<number>([start.ref]);
  const stack: Frame[] = [{ path: startPath, pathBytes: startBytes, entries: image.readdir(start), next: 0, ref: start.ref }];
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    if (f.next >= f.entries.length) {
      onPath.delete(f.ref);
      stack.pop();
      continue;
    }
    const e = f.entries[f.next++]!;
    const inode = image.entryInode(e);
    const path = f.path ? `${f.path}/${e.name}` : e.name;
    const pathBytes = f.pathBytes.length ? Buffer.concat([f.pathBytes, SLASH, e.nameBytes]) : e.nameBytes;
    yield { path, pathBytes, inode, entry: e, depth: stack.length };
    if (inode.kind === 'dir') {
      if (onPath.has(inode.ref)) throw new SquashfsError('LOOP', `directory "${path}" is its own ancestor`, 'directory table');
      if (stack.length >= MAX_DEPTH) throw new SquashfsError('CORRUPT', `directories nested deeper than ${MAX_DEPTH} levels at "${path.slice(0, 200)}…"`, 'directory table');
      onPath.add(inode.ref);
      stack.push({ path, pathBytes, entries: image.readdir(inode), next: 0, ref: inode.ref });
    }
  }
}
