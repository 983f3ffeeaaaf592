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

/** One entry of the walk: its inode, the entry that named it, how deep below the start. */
export interface TreeItem {
  inode: Inode;
  /** The entry that named it (undefined for the start directory). */
  entry?: DirEntry;
  /** 0 for the start, 1 for its entries, and so on. */
  depth: number;
}

export interface WalkItem extends TreeItem {
  /** Path relative to the start directory, '/'-separated; '' for the start itself. */
  path: string;
}

/**
 * Pre-order walk: a directory is yielded before its children, children in sorted order. No paths
 * are built (an extraction keeps names as bytes, one per depth): `walk` adds them. `startPath`
 * names the start in error messages.
 */
export function* walkTree(image: Image, start: Inode = image.root(), startPath = ''): Generator<TreeItem> {
  yield { inode: start, depth: 0 };
  if (start.kind !== 'dir') return;
  // Each frame: a directory, its entries, the next index, its ref and the entry that named it.
  // One set of the directories on the current path: added on push, removed on pop (copying it per
  // level would make deep trees quadratic).
  type Frame = { entries: DirEntry[]; next: number; ref: number; entry?: DirEntry };
  const onPath = new Set<number>([start.ref]);
  const stack: Frame[] = [{ entries: image.readdir(start), next: 0, ref: start.ref }];
  /** The path of `e` below the start, for messages only. */
  const pathOf = (e: DirEntry) => [...(startPath ? [startPath] : []), ...stack.slice(1).map((f) => f.entry!.name), e.name].join('/');
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    if (f.next >= f.entries.length) {
      onPath.delete(f.ref);
      stack.pop();
      continue;
    }
    const e = f.entries[f.next++]!;
    const inode = image.entryInode(e);
    yield { inode, entry: e, depth: stack.length };
    if (inode.kind === 'dir') {
      if (onPath.has(inode.ref)) throw new SquashfsError('LOOP', `directory "${pathOf(e)}" is its own ancestor`, 'directory table');
      if (stack.length >= MAX_DEPTH) throw new SquashfsError('CORRUPT', `directories nested deeper than ${MAX_DEPTH} levels at "${pathOf(e).slice(0, 200)}…"`, 'directory table');
      onPath.add(inode.ref);
      stack.push({ entries: image.readdir(inode), next: 0, ref: inode.ref, entry: e });
    }
  }
}

/** walkTree with each item's path (`startPath` for the start, then '/'-joined names below it). */
export function* walk(image: Image, start: Inode = image.root(), startPath = ''): Generator<WalkItem> {
  /** The path of the directory at each depth on the current branch. */
  const dirs: string[] = [startPath];
  for (const it of walkTree(image, start, startPath)) {
    if (it.depth === 0) {
      yield { ...it, path: startPath };
      continue;
    }
    const parent = dirs[it.depth - 1]!;
    const path = parent ? `${parent}/${it.entry!.name}` : it.entry!.name;
    if (it.inode.kind === 'dir') dirs[it.depth] = path;
    yield { ...it, path };
  }
}
