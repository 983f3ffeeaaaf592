/**
 * What every command shares: opening an image with --offset, and turning failures into one line on
 * stderr and a non-zero exit status (a stack trace only with --verbose). Exit statuses are set here,
 * at the CLI edge, with process.exitCode; nothing below calls process.exit.
 */
import * as fs from 'node:fs';
// Types only: the short commands' fast path (./short.ts) runs without commander.
import type { Command, Option } from 'commander';
import { PATH_MISTAKES, SquashfsError, type ErrorCode } from '../errors';
import type { FileKind } from '../format/constants';
import type { Inode } from '../format/inode';
import { errnoWords, isSystemError } from '../io/errno';
// Only the type: the reader is loaded by the commands that open an image (openImage), not by
// `mount`, `fuse` or `fusectl`, whose daemons load it where it serves.
import type { Image } from '../reader/image';

export function offsetOption(): Option {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Option } = require('commander') as typeof import('commander');
  return new Option('--offset <bytes>', 'the SquashFS starts this many bytes into the file (e.g. an AppImage)').argParser(parseOffset).default(0);
}

export function parseOffset(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--offset must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Opens an image file; a missing path or a directory is said plainly (exit status 2). */
export function openImage(path: string, offset = 0): Image {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SquashfsError('NOT_FOUND', 'no such file', undefined, undefined, { cause: e });
    if (code === 'ENOTDIR') throw new SquashfsError('NOT_A_DIRECTORY', 'a component of the path is not a directory', undefined, undefined, { cause: e });
    // Anything else (permission denied, …) comes out of the open below, in our words.
  }
  if (st?.isDirectory()) throw new SquashfsError('IS_A_DIRECTORY', 'is a directory, not an image', undefined, undefined);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../reader/image') as typeof import('../reader/image')).Image.open(path, { offset });
}

/** "regular file", "directory", "fifo", … as ls and stat(1) say them. */
export function kindWords(kind: FileKind): string {
  return { file: 'regular file', dir: 'directory', symlink: 'symbolic link', blockdev: 'block device', chardev: 'character device', fifo: 'fifo', socket: 'socket' }[kind];
}

/**
 * img.resolve with the caller's mistakes said plainly and the full path named: "a.txt is a
 * regular file, not a directory" (for a.txt/x), "a symbolic link to X, which is not in the image".
 * The command's error context names PATH itself.
 */
export function resolvePath(img: Image, path: string, follow: boolean): Inode {
  try {
    return img.resolve(path, follow);
  } catch (e) {
    if (!(e instanceof SquashfsError)) throw e;
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (e.code === 'NOT_A_DIRECTORY') {
      // Find the first component that is not a directory, to name it.
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        let inode: Inode;
        try {
          inode = img.resolve(prefix, true);
        } catch {
          break;
        }
        if (inode.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${prefix} is a ${kindWords(inode.kind)}, not a directory`, undefined, undefined, { cause: e });
      }
      throw new SquashfsError('NOT_A_DIRECTORY', 'a component of the path is not a directory', undefined, undefined, { cause: e });
    }
    if (e.code === 'NOT_FOUND') {
      if (follow) {
        let link: Inode | undefined;
        try {
          link = img.resolve(path, false);
        } catch {
          // not there at all
        }
        if (link?.kind === 'symlink') throw new SquashfsError('NOT_FOUND', `a symbolic link to ${img.readlink(link)}, which is not in the image`, undefined, undefined, { cause: e });
      }
      throw new SquashfsError('NOT_FOUND', 'no such file or directory in the image', undefined, undefined, { cause: e });
    }
    throw e;
  }
}

/** A path that must be a regular file (symlinks followed): anything else is the caller's mistake. */
export function regularFile(img: Image, path: string): Inode {
  const inode = resolvePath(img, path, true);
  if (inode.kind === 'dir') throw new SquashfsError('IS_A_DIRECTORY', 'is a directory, not a regular file');
  if (inode.kind !== 'file') throw new SquashfsError('NOT_A_FILE', `is a ${kindWords(inode.kind)}, not a regular file`);
  return inode;
}

let verbose = false;
export function setVerbose(v: boolean): void {
  verbose = v;
}

/**
 * The caller's mistakes, not the image's: said plainly (no code, structure or offset), since the
 * image is fine. The path ones exit 2, like a path that does not exist; the rest 1, like a usage
 * error.
 */
const CALLER_MISTAKES: Partial<Record<ErrorCode, number>> = {
  ...Object.fromEntries([...PATH_MISTAKES].map((code) => [code, 2])),
  INVALID_ARGUMENT: 1,
  BAD_HANDLE: 1,
};

/** The exit status for a failure: 2 a path that is missing or of the wrong type, 1 anything else. */
export function exitStatus(e: unknown): number {
  return e instanceof SquashfsError ? (CALLER_MISTAKES[e.code] ?? 1) : 1;
}

/** One line, without the `distri: <context>: ` head. */
export function errorText(e: unknown): string {
  if (e instanceof SquashfsError) {
    if (e.code in CALLER_MISTAKES) return e.message.replace(/^inode \d+ /, ''); // the context names the path
    // Node's "EACCES: permission denied, open '/x'" inside our message: in our words.
    if (e.code === 'IO' && isSystemError(e.cause) && e.message.includes(e.cause.message)) {
      return e.message.replace(e.cause.message, errnoWords(e.cause)) + (e.offset !== undefined ? ` (reading at 0x${e.offset.toString(16)})` : '');
    }
    return e.describe();
  }
  if (isSystemError(e)) return (e.path ? `${e.path}: ` : '') + errnoWords(e);
  return e instanceof Error ? e.message : String(e);
}

/**
 * A failure inside one entry of a longer operation (a file being extracted): reported with the
 * entry named after the context, like `cat` names its path. Recognised by shape, so that lower
 * layers need not import the CLI.
 */
interface EntryFailure {
  entry: string;
  reason: unknown;
}
function isEntryFailure(e: unknown): e is EntryFailure {
  return e instanceof Error && typeof (e as Partial<EntryFailure>).entry === 'string' && 'reason' in e;
}

/** Runs fn; a failure is reported as being at `entry` (after the image): `distri: IMG: ENTRY: …`. */
export function atPath<T>(entry: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw Object.assign(new Error(`${entry}: ${errorText(e)}`, { cause: e }), { entry, reason: e });
  }
}

/** Prints a failure as `distri: <context>: <what is wrong>` and sets the exit status. */
export function reportError(context: string, e: unknown): void {
  if (isEntryFailure(e)) return reportError(`${context}: ${e.entry}`, e.reason);
  let text = errorText(e);
  if (text.startsWith(`${context}: `)) text = text.slice(context.length + 2); // named once is enough
  process.stderr.write(`distri: ${context}: ${text}\n`);
  process.exitCode = exitStatus(e);
  if (verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
}

/** Wraps a command action so that any failure becomes reportError(context). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function action<A extends any[]>(context: (...args: any[]) => string, fn: (...args: A) => void | Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      reportError(context(...args), e);
    }
  };
}

// Output goes through ./stdout (write(2) on fd 1, Node's stream only when it must).
export { writeOut, writeOutAll } from './stdout';

export type CommandModule = (program: Command) => void;
