/**
 * One reader process of the FUSE load test (run as `node load-reader.js JSON`): for a bounded time,
 * picks files at random and either reads random ranges and compares them with the same ranges of
 * the source tree, or reads the whole file and compares its SHA-256 with the manifest. Prints one
 * JSON line: { ops, bytes, mismatches, errors, firstProblems }.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { xorshift32 } from '../../src/util/xorshift';

interface Job {
  mount: string;
  source: string;
  files: Array<{ path: string; size: number; sha256: string }>;
  seconds: number;
  seed: number;
}

function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x100000000;
}

function main(): void {
  const job = JSON.parse(process.argv[2]!) as Job;
  const rand = rng(job.seed);
  const end = Date.now() + job.seconds * 1000;
  const out = { ops: 0, bytes: 0, mismatches: 0, errors: 0, firstProblems: [] as string[] };
  const problem = (s: string) => {
    if (out.firstProblems.length < 5) out.firstProblems.push(s);
  };
  const buf = Buffer.allocUnsafe(1 << 20);
  const want = Buffer.allocUnsafe(1 << 20);
  while (Date.now() < end) {
    const f = job.files[Math.floor(rand() * job.files.length)]!;
    const p = path.join(job.mount, f.path);
    try {
      if (rand() < 0.2 || f.size === 0) {
        const h = createHash('sha256');
        const fd = fs.openSync(p, 'r');
        try {
          for (;;) {
            const n = fs.readSync(fd, buf, 0, buf.length, null);
            if (n === 0) break;
            h.update(buf.subarray(0, n));
            out.bytes += n;
          }
        } finally {
          fs.closeSync(fd);
        }
        const got = h.digest('hex');
        if (got !== f.sha256) {
          out.mismatches++;
          problem(`${f.path}: sha256 ${got} != ${f.sha256}`);
        }
      } else {
        const fd = fs.openSync(p, 'r');
        const src = fs.openSync(path.join(job.source, f.path), 'r');
        try {
          for (let i = 0; i < 16; i++) {
            const len = Math.min(f.size, rand() < 0.7 ? 4096 : 1 + Math.floor(rand() * 300_000));
            const pos = Math.floor(rand() * (f.size - len + 1));
            const n = fs.readSync(fd, buf, 0, len, pos);
            const m = fs.readSync(src, want, 0, len, pos);
            out.bytes += n;
            if (n !== m || buf.compare(want, 0, m, 0, n) !== 0) {
              out.mismatches++;
              problem(`${f.path}: ${len} bytes at ${pos}: got ${n} bytes, differing from the source`);
            }
          }
        } finally {
          fs.closeSync(fd);
          fs.closeSync(src);
        }
      }
      out.ops++;
    } catch (e) {
      out.errors++;
      problem(`${f.path}: ${(e as Error).message}`);
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
