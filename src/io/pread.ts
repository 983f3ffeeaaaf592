/**
 * Positional reads that fill their buffer. pread(2) on a regular file may return fewer bytes than
 * asked without being at the file's end (a signal, a read larger than the kernel hands out at
 * once), so one call is never taken as "the rest of the file"; only 0 is its end.
 */
import * as fs from 'node:fs';

/**
 * Reads `buf.length` bytes of `fd` at `position`, fewer only where the file ends first; returns how
 * many were read. Node's errors pass through (callers say them in their own words).
 */
export function preadFully(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * The words for a file that gave fewer bytes than it had when it was scanned: `distri pack`'s
 * packing thread and its compression workers, which both read the files being packed.
 */
export function shrankMessage(read: number, position: number, expected: number): string {
  return `read ${read} bytes at ${position}, expected ${expected} (did the file shrink while packing?)`;
}
