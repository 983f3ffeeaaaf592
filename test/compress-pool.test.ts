/**
 * The compression pool of the writer (src/writer/compress-pool.ts) on real worker threads and
 * real codecs: a finished block is seen through shared memory while the packing thread never
 * returns to its event loop (the design it replaced answered by messages, which waited for the
 * event loop), more blocks than slots come out in order and equal the codec's own blocks, a worker
 * that cannot start fails the wait instead of hanging it, and lz4's compressInto writes the same
 * block as compress straight into shared memory. Closing either pool (this one, and the reader's
 * decompression pool) asks its threads to leave instead of terminating them: Node aborts the
 * whole process when a thread is terminated between creating a zlib stream and initialising it,
 * which a pack failing halfway through with gzip did (about once in 300 closes, measured).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { codecByName } from '../src/codec';
import { CompressPool } from '../src/writer/compress-pool';
import { DecompressPool } from '../src/reader/decompress-pool';

/** Half text, half random: compressible, and not all blocks equal. */
function block(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  const line = Buffer.from(`block ${i}: the quick brown fox jumps over the lazy squashfs inode table\n`);
  for (let p = 0; p < size / 2; p += line.length) line.copy(b, p);
  randomBytes(size / 2).copy(b, size / 2);
  return b;
}

/** Sleeps the calling thread (not the event loop) for `ms`. */
const sleepThread = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

describe('compression pool', () => {
  test('a finished block is seen without returning to the event loop', async () => {
    const pool = new CompressPool('lz4', { blockSize: 65536 }, 1);
    try {
      const slot = pool.acquire()!;
      const input = block(1, 65536);
      slot.input.set(input);
      pool.submit(slot, input.length);
      // A synchronous poll with a deadline: no await, so no message could be delivered meanwhile.
      const deadline = Date.now() + 30_000;
      while (!pool.done(slot) && Date.now() < deadline) sleepThread(5);
      assert.ok(pool.done(slot), 'the worker finished the block within 30 s while this thread never yielded');
      const r = pool.result(slot);
      assert.equal(r.compressed, true);
      assert.deepEqual(Buffer.from(codecByName('lz4').decompress(r.bytes, 65536)), input);
    } finally {
      await pool.close();
    }
  });

  test('more blocks than slots, two workers: each result is the codec’s own block', async () => {
    for (const codec of ['lz4', 'gzip'] as const) {
      const pool = new CompressPool(codec, { blockSize: 16384 }, 2, 4);
      try {
        const inFlight: Array<{ slot: NonNullable<ReturnType<CompressPool['acquire']>>; input: Buffer }> = [];
        for (let i = 0; i < 40; i++) {
          let slot = pool.acquire();
          if (!slot) {
            const oldest = inFlight.shift()!;
            await pool.whenDone(oldest.slot);
            const r = pool.result(oldest.slot);
            const own = codecByName(codec).compress!(oldest.input);
            // Random blocks do not get smaller: stored as they are.
            assert.deepEqual(Buffer.from(r.bytes), own ? Buffer.from(own) : oldest.input, `${codec}: the block as the codec makes it`);
            assert.equal(r.compressed, own !== null);
            pool.release(oldest.slot);
            slot = pool.acquire()!;
          }
          const input = i % 7 === 3 ? randomBytes(16384) : block(i, 16384);
          slot.input.set(input);
          pool.submit(slot, input.length);
          inFlight.push({ slot, input });
        }
        for (const { slot, input } of inFlight) {
          await pool.whenDone(slot);
          const r = pool.result(slot);
          assert.deepEqual(Buffer.from(r.compressed ? codecByName(codec).decompress(r.bytes, 16384) : r.bytes), input);
        }
      } finally {
        await pool.close();
      }
    }
  });

  test('a worker that cannot compress fails the wait with the reason instead of hanging', async () => {
    // lzma (legacy) has a decoder only: its worker throws as it starts.
    const pool = new CompressPool('lzma', { blockSize: 4096 }, 1);
    try {
      const slot = pool.acquire()!;
      slot.input.set(block(0, 4096));
      pool.submit(slot, 4096);
      await assert.rejects(pool.whenDone(slot), /cannot compress/);
    } finally {
      await pool.close();
    }
  });

  test('closed with blocks queued (a pack that failed): the workers leave by themselves, never terminated', async () => {
    const pool = new CompressPool('gzip', { blockSize: 16384 }, 2, 16);
    const queued: Array<NonNullable<ReturnType<CompressPool['acquire']>>> = [];
    for (let slot = pool.acquire(); slot; slot = pool.acquire()) {
      slot.input.set(block(queued.length, 16384));
      pool.submit(slot, 16384);
      queued.push(slot);
    }
    // The pool starts a second worker only when the queue outgrows the first.
    await pool.whenDone(queued[0]!);
    const codes = await pool.close();
    // A terminated worker exits with code 1; one that ended its loop on STOP, with 0.
    assert.deepEqual(codes, [0, 0]);
    assert.throws(() => pool.submit(queued[0]!, 16384), /pool closed/);
    // A wait on a block no worker will finish ends instead of hanging.
    const unfinished = queued.find((s) => !pool.done(s));
    if (unfinished) await assert.rejects(pool.whenDone(unfinished), /closed/);
  });

  test('the decompression pool, closed with requests in flight: answers them, then its workers leave by themselves', async () => {
    const gzip = codecByName('gzip');
    const inputs = Array.from({ length: 12 }, (_, i) => block(i, 65536));
    const pool = new DecompressPool(2);
    const answers = inputs.map((b) => pool.decompress(gzip.id, gzip.compress!(b)!, 65536));
    const closed = pool.close();
    assert.deepEqual(
      (await Promise.all(answers)).map((b) => Buffer.from(b)),
      inputs,
      'requests posted before the close are answered',
    );
    assert.deepEqual(await closed, [0, 0], 'exit code 0: not terminated');
    await assert.rejects(pool.decompress(gzip.id, gzip.compress!(inputs[0]!)!, 65536), /closed/);
  });

  test('lz4 compressInto: the block compress makes, written into shared memory', () => {
    const lz4 = codecByName('lz4');
    assert.ok(lz4.compressInto, 'lz4 has compressInto');
    const shared = new SharedArrayBuffer(2 * 131072);
    for (const [i, input] of [block(5, 131072), randomBytes(131072), Buffer.alloc(131072)].entries()) {
      const inView = Buffer.from(shared, 0, input.length);
      input.copy(inView);
      const out = Buffer.from(shared, 131072, 131072);
      const n = lz4.compressInto!(inView, out);
      const own = lz4.compress!(input);
      if (own === null) assert.equal(n, -1, `input ${i}: not smaller`);
      else assert.deepEqual(Buffer.from(out.subarray(0, n)), Buffer.from(own), `input ${i}`);
    }
  });
});
