/**
 * Standard output for the commands, written with write(2) on file descriptor 1 instead of through
 * `process.stdout`. Touching `process.stdout` makes Node load its stream machinery (some twenty
 * internal modules: readable, writable, duplex, pipeline, …), a few milliseconds of every short
 * command's start-up (bench/README-cli.md), for output that Node writes synchronously on Linux
 * anyway (files, pipes and terminals alike). The bytes and their order are the same.
 *
 * Two cases keep Node's stream: a descriptor that is non-blocking (another process set O_NONBLOCK
 * on a pipe we share) answers EAGAIN, and from then on everything goes through `process.stdout`,
 * which waits for the pipe to drain, so that the order of the output stays as written. A reader
 * that went away (EPIPE, `distri cat … | head`) ends the process with status 0, as before.
 */
import * as fs from 'node:fs';

/** Set once a write met EAGAIN: from then on Node's stream writes (and orders) everything. */
let viaStream = false;

function streamWrite(chunk: Uint8Array | string): Promise<void> {
  if (process.stdout.listenerCount('error') === 0) {
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  return new Promise((resolve, reject) => {
    process.stdout.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

/** Writes all of buf; returns how much was written before the descriptor said EAGAIN. */
function writeAll(buf: Uint8Array): number {
  let done = 0;
  while (done < buf.length) {
    try {
      done += fs.writeSync(1, buf, done, buf.length - done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return done;
      if (code === 'EPIPE') process.exit(0); // the reader left, we are done
      throw e;
    }
  }
  return done;
}

/**
 * Writes one chunk. The promise settles once the bytes are with the kernel (at once, unless the
 * descriptor is non-blocking and full): a caller may then reuse the memory of the chunk.
 */
export function writeOut(chunk: Uint8Array | string): Promise<void> {
  if (viaStream) return streamWrite(chunk);
  const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
  const done = writeAll(buf);
  if (done === buf.length) return Promise.resolve();
  viaStream = true;
  return streamWrite(buf.subarray(done));
}

/** Writes views that are valid only until the caller's next read, in order (DataReader.stream). */
export async function writeOutAll(chunks: readonly Uint8Array[]): Promise<void> {
  for (const c of chunks) await writeOut(c);
}
