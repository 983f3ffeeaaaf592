/**
 * Node's system errors in our words: "no such file" rather than "ENOENT: no such file or
 * directory, open '/x'". For messages only; the code itself stays on the error for callers.
 */
const WORDS: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  EBUSY: 'device or resource busy',
  EXDEV: 'not on the same file system',
};

/** The words for a system error's code, or its own message without Node's "CODE: " head and ", syscall 'path'" tail. */
export function errnoWords(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code && WORDS[err.code]) return WORDS[err.code]!;
  const msg = err?.message ?? String(e);
  return msg
    .replace(/^E[A-Z]+: /, '')
    .replace(/, \w+ '.*'$/, '')
    .replace(/, \w+$/, '');
}

/** True for a Node system error (it has an errno code such as ENOENT). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!);
}
