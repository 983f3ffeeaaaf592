/**
 * errno values at the FUSE edge: the one place where SquashfsError codes become Linux errno
 * numbers, shared by both transports. Nothing below src/fuse knows errno.
 */
import { SquashfsError, type ErrorCode } from '../errors';

/** errno values on Linux (positive; replies carry them negated). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  EPROTO: 71,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;

const ERRNO_BY_CODE: Record<ErrorCode, number> = {
  NOT_FOUND: Errno.ENOENT,
  NOT_A_DIRECTORY: Errno.ENOTDIR,
  IS_A_DIRECTORY: Errno.EISDIR,
  LOOP: Errno.ELOOP,
  UNSAFE_PATH: Errno.EACCES,
  // Everything that means "this image (or its storage) is broken" is an I/O error for that request
  // only, never ENOENT (that would make corruption look like a missing file) and never EPERM.
  BAD_MAGIC: Errno.EIO,
  UNSUPPORTED: Errno.EIO,
  CORRUPT: Errno.EIO,
  OUT_OF_BOUNDS: Errno.EIO,
  OVERFLOW: Errno.EIO,
  DECOMPRESS_FAILED: Errno.EIO,
  IO: Errno.EIO,
  // The caller's mistakes, as squashfuse and the kernel driver answer them.
  INVALID_ARGUMENT: Errno.EINVAL,
  NOT_A_FILE: Errno.EINVAL,
  NOT_A_SYMLINK: Errno.EINVAL,
  BAD_HANDLE: Errno.EBADF,
};

/** The positive errno for a failure: a SquashfsError by its code; anything else (a bug) is EIO. */
export function errnoOf(e: unknown): number {
  if (e instanceof SquashfsError) return ERRNO_BY_CODE[e.code] ?? Errno.EIO;
  return Errno.EIO;
}
