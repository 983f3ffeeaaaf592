/**
 * The one error class of the engine. Every failure that comes from an image (or from the bytes
 * source below it) is a SquashfsError with a code, the on-disk structure that was being decoded and,
 * where known, the byte offset in the image. Layers above map the code: the FUSE adapter to an errno,
 * the CLI to an exit status and one line on stderr.
 */
export type ErrorCode =
  | 'BAD_MAGIC' // not a SquashFS 4.0 image at all
  | 'UNSUPPORTED' // valid but not handled: version, compressor, feature
  | 'CORRUPT' // a value that the format forbids
  | 'OUT_OF_BOUNDS' // a pointer or index outside its table or the image
  | 'OVERFLOW' // a size or count beyond what can be represented or allocated
  | 'DECOMPRESS_FAILED' // the codec rejected a block, or it inflated to the wrong size
  | 'NOT_FOUND' // a path or name that does not exist in the image
  | 'NOT_A_DIRECTORY' // a path component that is not a directory
  | 'IS_A_DIRECTORY' // a file operation on a directory
  | 'LOOP' // a directory cycle or symlink loop
  | 'UNSAFE_PATH' // extraction would write outside its destination
  | 'IO' // the byte source failed (short read, EIO from the disk)
  // The caller's mistakes, not the image's: kept apart from CORRUPT so that a read of a directory
  // or a readlink of a file never looks like a broken image (EINVAL/EISDIR/EBADF at the FUSE edge).
  | 'INVALID_ARGUMENT' // a request the operation cannot take (a bad name, offset or option)
  | 'NOT_A_FILE' // a file operation on a symlink, device, fifo or socket
  | 'NOT_A_SYMLINK' // readlink of something that is not a symlink
  | 'BAD_HANDLE'; // a handle or node id that is not open or not known

export class SquashfsError extends Error {
  override readonly name = 'SquashfsError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The structure being decoded: "superblock", "inode table", "fragment table", … */
    readonly structure?: string,
    /** Byte offset in the image (relative to the start of the SquashFS, not the host file). */
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** One line for humans: "CORRUPT in inode table at 0x1a2b: inode type 0". */
  describe(): string {
    const where = [this.structure ? `in ${this.structure}` : '', this.offset !== undefined ? `at 0x${this.offset.toString(16)}` : ''].filter(Boolean).join(' ');
    return `${this.code}${where ? ' ' + where : ''}: ${this.message}`;
  }
}

/**
 * The codes that say a path someone asked for is missing or of the wrong type: the caller's mistake,
 * not the image's (the CLI exits 2 for them and says them without the code).
 */
export const PATH_MISTAKES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['NOT_FOUND', 'NOT_A_DIRECTORY', 'IS_A_DIRECTORY', 'NOT_A_FILE', 'NOT_A_SYMLINK']);

/** A SquashfsError whose code is one of PATH_MISTAKES. */
export function isPathMistake(e: unknown): e is SquashfsError {
  return e instanceof SquashfsError && PATH_MISTAKES.has(e.code);
}

export function isSquashfsError(e: unknown): e is SquashfsError {
  return e instanceof SquashfsError;
}

/**
 * Throws a CORRUPT/OUT_OF_BOUNDS/... error unless cond holds. Keeps checks to one line each. The
 * message is built before the call even when the check passes, so per-entry and per-block paths
 * write `if (!(cond)) throw new SquashfsError(...)` instead.
 */
export function check(cond: boolean, code: ErrorCode, message: string, structure?: string, offset?: number): asserts cond {
  if (!cond) throw new SquashfsError(code, message, structure, offset);
}
