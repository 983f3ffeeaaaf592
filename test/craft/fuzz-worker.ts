/**
 * The fuzz loop, run in a worker thread so that the test can stop it if a mutation makes the
 * decoder hang (a synchronous infinite loop cannot be interrupted from inside). Before each case
 * the worker tells the parent which mutations it is about to try, so a hang is reported exactly.
 *
 * Property: for every mutation list, exercising the mutated seed (open, walk, stat, read every
 * file, symlink and xattr) either succeeds or throws a SquashfsError, within SLOW_MS.
 */
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { SquashfsError } from '../../src/errors';
import { outcome } from './exercise';
import { applyMutations, mutationsArb, type FuzzSeed } from './mutate';

interface Job {
  seeds: FuzzSeed[];
  runs: Record<string, number>;
  seed: number;
}

export const SLOW_MS = 2000;

const job = workerData as Job;
const port = parentPort!;
let cases = 0;
let typed = 0;
let clean = 0;
const codes: Record<string, number> = {};

for (const s of job.seeds) {
  const buf = Buffer.from(s.bytes);
  const prop = fc.property(mutationsArb(s), (muts) => {
    port.postMessage({ type: 'case', seed: s.name, muts });
    cases++;
    const img = applyMutations(buf, muts);
    const t0 = performance.now();
    const o = outcome(img);
    const took = performance.now() - t0;
    if (!o.ok) {
      const e = o.error;
      if (!(e instanceof SquashfsError)) {
        const err = e as Error;
        throw new Error(`not a SquashfsError: ${err?.constructor?.name}: ${err?.message}\n${err?.stack?.split('\n').slice(0, 8).join('\n')}`);
      }
      typed++;
      codes[e.code] = (codes[e.code] ?? 0) + 1;
    } else {
      clean++;
    }
    if (took > SLOW_MS) throw new Error(`took ${took.toFixed(0)} ms`);
  });
  const d = fc.check(prop, { numRuns: job.runs[s.name] ?? 500, seed: job.seed, endOnFailure: false });
  if (d.failed) {
    port.postMessage({
      type: 'fail',
      seed: s.name,
      muts: d.counterexample?.[0],
      error: String((d.errorInstance as Error)?.message ?? d.errorInstance),
      fcSeed: d.seed,
      path: d.counterexamplePath,
    });
  }
}
port.postMessage({ type: 'done', cases, typed, clean, codes });
