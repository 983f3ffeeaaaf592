/**
 * Byte sources: everything the reader needs from storage is positional reads. One interface sits
 * behind every way of opening an image (a file descriptor, an in-memory buffer, a window of a
 * larger file for images embedded at an offset); a remote source can be added beside these without
 * touching the decoder.
 *
 * Reads are synchronous on purpose: the FUSE binding calls into the single JavaScript thread and a
 * handler that answers synchronously is the fastest and simplest; all codecs are synchronous too.
 */
import * as fs from 'node:fs';
import { errnoWords } from './errno';
import { SquashfsError } from '../errors';

export interface ByteSource {
  /** Total bytes available. */
  readonly size: number;
  /**
   * Exactly `length` bytes starting at `offset`. The result may be a view into memory the source
   * owns (BufferSource) or a fresh buffer (FileSource); callers must not mutate it. A read past the
   * end throws OUT_OF_BOUNDS, a failing device IO.
   */
  readAt(offset: number, length: number): Uint8Array;
  /**
   * Fills `target` with the bytes at `offset` (exactly target.length of them), for callers that
   * reuse one buffer across many reads (a sequential pass over file contents) instead of
   * allocating a fresh one per read. Same errors as readAt.
   */
  readInto(offset: number, target: Uint8Array): void;
  close(): void;
}

function checkRange(src: ByteSource, offset: number, length: number, what = 'source'): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size) {
    throw new SquashfsError('OUT_OF_BOUNDS', `read of ${length} bytes at ${offset} past the end of the ${what} (${src.size} bytes)`, 'image', offset);
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly buf: Uint8Array) {
    this.size = buf.length;
  }
  readAt(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length, 'buffer');
    return this.buf.subarray(offset, offset + length);
  }
  readInto(offset: number, target: Uint8Array): void {
    checkRange(this, offset, target.length, 'buffer');
    target.set(this.buf.subarray(offset, offset + target.length));
  }
  close(): void {}
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | undefined;
  constructor(readonly path: string) {
    try {
      this.fd = fs.openSync(path, 'r');
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      const err = e as NodeJS.ErrnoException;
      throw new SquashfsError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `${path}: ${errnoWords(e)}`, 'image', undefined, { cause: e });
    }
  }
  readAt(offset: number, length: number): Uint8Array {
    const out = Buffer.allocUnsafe(length);
    this.readInto(offset, out);
    return out;
  }
  readInto(offset: number, out: Uint8Array): void {
    const length = out.length;
    checkRange(this, offset, length, 'file');
    if (this.fd === undefined) throw new SquashfsError('IO', `${this.path}: read after close`, 'image', offset);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = fs.readSync(this.fd, out, done, length - done, offset + done);
      } catch (e) {
        throw new SquashfsError('IO', `${this.path}: ${(e as Error).message}`, 'image', offset + done, { cause: e });
      }
      // The file shrank under us (truncated while open): report it as IO, not as a short buffer.
      if (n === 0) throw new SquashfsError('IO', `${this.path}: unexpected end of file at ${offset + done} (file truncated?)`, 'image', offset + done);
      done += n;
    }
  }
  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
  /** Device and inode number of the open file (which file the path named when it was opened). */
  identity(): { dev: number; ino: number } {
    if (this.fd === undefined) throw new SquashfsError('IO', `${this.path}: read after close`, 'image');
    const st = fs.fstatSync(this.fd);
    return { dev: st.dev, ino: st.ino };
  }
}

/** A window [base, base + size) of another source: an image embedded in a larger file. */
export class OffsetSource implements ByteSource {
  readonly size: number;
  constructor(
    readonly inner: ByteSource,
    readonly base: number,
  ) {
    if (!Number.isSafeInteger(base) || base < 0 || base > inner.size) {
      throw new SquashfsError('OUT_OF_BOUNDS', `offset ${base} is outside the file (${inner.size} bytes)`, 'image', base);
    }
    this.size = inner.size - base;
  }
  readAt(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length, 'image');
    return this.inner.readAt(this.base + offset, length);
  }
  readInto(offset: number, target: Uint8Array): void {
    checkRange(this, offset, target.length, 'image');
    this.inner.readInto(this.base + offset, target);
  }
  close(): void {
    this.inner.close();
  }
}
