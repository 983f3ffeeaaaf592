/**
 * One regular file of an extraction: created through SafeTree, its contents written, its owner,
 * mode and times set through the descriptor that created it, closed. The same code writes a file
 * whose blocks are read in order here (writeFile) and one decoded ahead in the worker pool
 * (extract.ts, for xz).
 *
 * Contents: runs of consecutive blocks that are not all zeros go out with one writev each; an
 * all-zero block (a hole in the image, or zeros stored as data) is skipped, so it becomes a hole
 * in the new file too, and ftruncate gives the file its size when it ends in one.
 */
import * as fs from 'node:fs';
import type { FileInode } from '../format/inode';
import type { Image } from '../reader/image';
import { isAllZero } from '../util/zero';
import type { SafeTree } from './safe-tree';

/**
 * A failure while extracting one entry (a corrupt block of a file): the entry is named, the cause
 * kept. The CLI reports it as `distri: IMAGE: PATH: <cause>`, as `cat` does.
 */
export class ExtractEntryError extends Error {
  override readonly name = 'ExtractEntryError';
  constructor(
    /** The entry's path inside the image (and DEST). */
    readonly entry: string,
    readonly reason: unknown,
  ) {
    super(`${entry}: ${reason instanceof Error ? reason.message : String(reason)}`, { cause: reason });
  }
}

/** What to do with one regular file, besides its contents. */
export interface FileJob {
  /** Its path below DEST, as components. */
  comps: Uint8Array[];
  /** The permission bits it ends with. */
  mode: number;
  /** Created with `mode` already (open() could give it: no fchmod). */
  modeAtOpen: boolean;
  /** chown to this (as root). */
  owner?: { uid: number; gid: number };
  mtime: number;
  /**
   * Owner, mode and mtime are set now, through the descriptor; false when a later phase still
   * needs the file writable (an unprivileged user adding user.* xattrs).
   */
  finishNow: boolean;
}

/** Writes a file's contents as they come, group by group; the views of a group die after take(). */
class ContentWriter {
  private pos = 0;
  /** Where the last byte written ends. */
  private end = 0;
  /** Consecutive blocks that are not all zeros, written with one writev. */
  private readonly run: Uint8Array[] = [];
  private runStart = 0;

  constructor(
    private readonly fd: number,
    private readonly zeros: Uint8Array,
  ) {}

  /** Bytes taken so far (holes included). */
  get bytes(): number {
    return this.pos;
  }

  take(group: readonly Uint8Array[]): void {
    for (const chunk of group) {
      if (isAllZero(chunk, this.zeros)) this.flush();
      else {
        if (this.run.length === 0) this.runStart = this.pos;
        this.run.push(chunk);
      }
      this.pos += chunk.length;
    }
    this.flush();
  }

  /** After the last group: a file that ends in a hole gets its size. */
  done(size: number): void {
    if (this.end !== size) fs.ftruncateSync(this.fd, size);
  }

  private flush(): void {
    if (this.run.length === 0) return;
    writeAllv(this.fd, this.run, this.runStart);
    this.end = this.pos;
    this.run.length = 0;
  }
}

/**
 * Owner, then mode (chown clears setuid bits, so it comes first), then mtime, through the
 * descriptor: no path is resolved again. Returns the inode number when the file is not finished
 * now (the last phase checks it before setting the mode by path).
 */
function finishFile(fd: number, job: FileJob): number | undefined {
  if (job.owner) fs.fchownSync(fd, job.owner.uid, job.owner.gid);
  if (!job.finishNow) return fs.fstatSync(fd).ino;
  if (!job.modeAtOpen) fs.fchmodSync(fd, job.mode);
  fs.futimesSync(fd, job.mtime, job.mtime);
  return undefined;
}

/**
 * A regular file being extracted: created through SafeTree, filled group by group, then ended
 * (size, owner, mode, times) or, cut short by an error, removed when closed rather than left
 * behind looking whole.
 */
export class NewFile {
  private readonly fd: number;
  private readonly out: ContentWriter;
  private ended = false;

  constructor(
    private readonly tree: SafeTree,
    private readonly job: FileJob,
    zeros: Uint8Array,
  ) {
    this.fd = tree.createFile(job.comps, job.modeAtOpen ? job.mode : 0o600);
    this.out = new ContentWriter(this.fd, zeros);
  }

  /** Writes one group of views (valid only until the next is read); returns its byte count. */
  take(group: readonly Uint8Array[]): number {
    const before = this.out.bytes;
    this.out.take(group);
    return this.out.bytes - before;
  }

  /** The contents are complete: returns the inode number when a later phase still finishes it. */
  end(size: number): number | undefined {
    this.out.done(size);
    const ino = finishFile(this.fd, this.job);
    this.ended = true;
    return ino;
  }

  /** The error that stopped it, naming the entry. */
  failure(e: unknown): ExtractEntryError {
    return new ExtractEntryError(displayPath(this.job.comps), e);
  }

  close(): void {
    fs.closeSync(this.fd);
    if (!this.ended) this.tree.removeFile(this.job.comps);
  }
}

/**
 * The whole of one regular file, its blocks read in order by `image`'s own (synchronous) pass.
 * `onBytes` hears how much was written, as it goes (progress).
 */
export function writeFile(image: Image, tree: SafeTree, inode: FileInode, job: FileJob, zeros: Uint8Array, onBytes?: (n: number) => void): number | undefined {
  const file = new NewFile(tree, job, zeros);
  try {
    for (const group of image.data.stream(inode)) onBytes?.(file.take(group));
    return file.end(inode.fileSize);
  } catch (e) {
    throw file.failure(e);
  } finally {
    file.close();
  }
}

/** A path below DEST for messages: its components as UTF-8, '/'-joined. */
function displayPath(comps: readonly Uint8Array[]): string {
  return comps.map((c) => Buffer.from(c).toString('utf8')).join('/');
}

/** writev of all of `bufs` at `pos`, continuing after short writes. */
function writeAllv(fd: number, bufs: Uint8Array[], pos: number): void {
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = bufs.length === 1 ? fs.writeSync(fd, bufs[0]!, 0, total, pos) : fs.writevSync(fd, bufs, pos);
  while (done < total) {
    // Short write (rare: a signal, a full disk about to fail): the rest, one buffer at a time.
    let skip = done;
    for (const b of bufs) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      const n = fs.writeSync(fd, b, skip, b.length - skip, pos + done);
      if (n === 0) throw new Error(`write returned 0 at ${pos + done}`);
      done += n;
      break;
    }
  }
}
