/**
 * What every command shares: opening an image with --offset, and turning failures into one line on
 * stderr and a non-zero exit status (a stack trace only with --verbose). Exit statuses are set here,
 * at the CLI edge, with process.exitCode; nothing below calls process.exit.
 */
import { Command, Option } from 'commander';
import { SquashfsError } from '../errors';
import { Image } from '../reader/image';

export function offsetOption(): Option {
  return new Option('--offset <bytes>', 'the SquashFS starts this many bytes into the file (e.g. an AppImage)').argParser(parseOffset).default(0);
}

export function parseOffset(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--offset must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

export function openImage(path: string, offset = 0): Image {
  return Image.open(path, { offset });
}

let verbose = false;
export function setVerbose(v: boolean): void {
  verbose = v;
}

/** Prints a failure as `distri: <context>: <what is wrong>` and sets the exit status. */
export function reportError(context: string, e: unknown): void {
  if (e instanceof SquashfsError) {
    process.stderr.write(`distri: ${context}: ${e.describe()}\n`);
    process.exitCode = e.code === 'NOT_FOUND' || e.code === 'NOT_A_DIRECTORY' ? 2 : 1;
  } else {
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(`distri: ${context}: ${err?.message ?? String(e)}\n`);
    process.exitCode = 1;
  }
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

/** Writes to stdout, waiting when the pipe is full, and ignoring EPIPE (`distri cat x | head`). */
export function writeOut(chunk: Uint8Array | string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(chunk)) resolve();
    else process.stdout.once('drain', resolve);
  });
}

export type CommandModule = (program: Command) => void;
