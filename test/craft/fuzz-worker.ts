/**
 * The fuzz loop, run in a worker thread so that the test can stop it if a mutation makes the
 * decoder hang (a synchronous infinite loop cannot be interrupted from inside). Before each case
 * the worker tells the parent which mutations it is about to try, so a hang is reported exactly.
 *
 * Property: for every mutation list, exercising the mutated seed (open, walk, stat, read every
 * file, symlink and xattr) either succeeds or throws a SquashfsError, having done no more work than
 * the image's work budget (exercise.ts: reads, bytes, lookups and content derived from its size;
 * a count, not a clock, so a loaded machine cannot fail a case and a slow loop cannot hide).
 */
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { SquashfsError } from '../../src/errors';
import { assertWithin, noWork, outcome, workBudget } from './exercise';
import { applyMutations, mutationsArb, type FuzzSeed } from './mutate';

interface Job {
  seeds: FuzzSeed[];
  runs: Record<string, number>;
  seed: number;
}

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
    const work = noWork();
    const o = outcome(img, work);
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
    assertWithin(work, workBudget(img), o.ok ? 'read fine' : (o.error as SquashfsError).describe());
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
