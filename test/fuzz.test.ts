/**
 * Fuzzing the decoder (robustness.md: "a typed error ... never a RangeError, TypeError, stack
 * overflow, hang or process exit"). fast-check mutates seed images (bit flips, byte writes,
 * interesting integers spliced into the superblock and tables, truncations) and every mutant is
 * opened, walked, stat'ed, read to the end, with every symlink and xattr: it must read or throw a
 * SquashfsError. Runs in a worker thread watched by a timer, so a hang is reported with the exact
 * mutations instead of wedging the test run. Deterministic: a fixed fast-check seed, overridable
 * with DISTRI_FUZZ_SEED; DISTRI_FUZZ_RUNS scales the number of runs per seed (default 2: ~7,000 cases, ~10 s).
 *
 * A failure prints the seed image's name and the mutation list (JSON): applyMutations() of
 * test/craft/mutate.ts replays it. Save the result as fixtures/crashers/<CODE>-<what>.sqfs once
 * the decoder gives the right error (robustness.test.ts loads every file there).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot, skipUnless } from './oracle/tools';
import { UNCOMPRESSED, mksquashfs, sh, tempDir } from './craft/image';
import { seedOf, type FuzzSeed, type Mutation } from './craft/mutate';
import { deepImage } from './craft/writer';

const SEED = Number(process.env.DISTRI_FUZZ_SEED ?? 20240611);
const SCALE = Number(process.env.DISTRI_FUZZ_RUNS ?? 2);
/** No message from the worker for this long: it is stuck in one case. */
const HANG_MS = 15_000;

let tmp: ReturnType<typeof tempDir>;
const seeds: FuzzSeed[] = [];
const runs: Record<string, number> = {};
const ready = skipUnless('fuzzing (needs seeds from mksquashfs)', 'mksquashfs');

before(() => {
  if (ready) return;
  tmp = tempDir('distri-fuzz-');
  const src = path.join(tmp.dir, 'src');
  fs.mkdirSync(src);
  sh(
    `printf 'hello\\n' > aa; printf 'world\\n' > ab; head -c 10000 /dev/zero | tr '\\0' 'q' > big
     head -c 6000 /dev/urandom > rnd; truncate -s 20000 sparse
     mkdir -p d/e && printf 'deep\\n' > d/e/f && printf 'linked\\n' > hl1 && ln hl1 hl2 && ln -s aa lnk
     for i in $(seq 1 40); do : > d/entry-$i; done
     printf 'x\\n' > xf && setfattr -n user.x -v 1 xf && setfattr -n user.big -v 0x$(head -c 600 /dev/zero | od -An -v -tx1 | tr -d ' \\n') xf
     mkdir xd && setfattr -n user.d -v 1 xd`,
    src,
  );
  const add = (name: string, bytes: Uint8Array, n: number) => {
    seeds.push(seedOf(name, bytes));
    runs[name] = Math.max(1, Math.round(n * SCALE));
  };
  add('uncompressed-4k', mksquashfs(src, path.join(tmp.dir, 'u.sqfs'), [...UNCOMPRESSED, '-b', '4096']), 1200);
  add('uncompressed-always-fragments', mksquashfs(src, path.join(tmp.dir, 'af.sqfs'), [...UNCOMPRESSED, '-b', '4096', '-always-use-fragments']), 600);
  add('gzip-4k', mksquashfs(src, path.join(tmp.dir, 'gz.sqfs'), ['-b', '4096']), 600);
  add('crafted-deep-30', deepImage(30), 300);
  // The committed fixture images: more structure (300-entry directories with an index, devices),
  // and every codec's decoder.
  const committed = path.join(repoRoot(), 'fixtures', 'images');
  for (const f of fs.existsSync(committed) ? fs.readdirSync(committed).sort() : []) {
    if (f.endsWith('.sqfs')) add(`fixtures/${f}`, fs.readFileSync(path.join(committed, f)), f.includes('uncompressed') ? 300 : 120);
  }
});
after(() => tmp?.cleanup());

interface Failure {
  seed: string;
  muts: Mutation[];
  error: string;
}

test('mutated images read or fail with a SquashfsError, never crash or hang', { skip: ready, timeout: 180_000 }, async (t) => {
  const worker = new Worker(path.join(__dirname, 'craft', 'fuzz-worker.js'), {
    workerData: { seeds: seeds.map((s) => ({ ...s, bytes: Buffer.from(s.bytes) })), runs, seed: SEED },
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
  const failures: Failure[] = [];
  let last: { seed: string; muts: Mutation[] } | undefined;
  const casesPerSeed = new Map<string, number>();
  let lastAt = Date.now();
  let summary: { cases: number; typed: number; clean: number; codes: Record<string, number> } | undefined;
  const t0 = Date.now();
  const problem = await new Promise<string | undefined>((resolve) => {
    const watchdog = setInterval(() => {
      if (Date.now() - lastAt > HANG_MS) {
        clearInterval(watchdog);
        void worker.terminate();
        resolve(`hang: no progress for ${HANG_MS} ms on seed ${last?.seed} with mutations ${JSON.stringify(last?.muts)}`);
      }
    }, 500);
    worker.on('message', (m: { type: string } & Record<string, unknown>) => {
      lastAt = Date.now();
      if (m.type === 'case') {
        last = { seed: m.seed as string, muts: m.muts as Mutation[] };
        casesPerSeed.set(last.seed, (casesPerSeed.get(last.seed) ?? 0) + 1);
      } else if (m.type === 'fail') failures.push({ seed: m.seed as string, muts: m.muts as Mutation[], error: m.error as string });
      else if (m.type === 'done') {
        summary = m as unknown as typeof summary;
        clearInterval(watchdog);
        resolve(undefined);
      }
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      resolve(`worker crashed (stack overflow or out of memory?) on seed ${last?.seed} with mutations ${JSON.stringify(last?.muts)}: ${e.stack ?? e}`);
    });
    worker.on('exit', (code) => {
      clearInterval(watchdog);
      resolve(summary ? undefined : `worker exited with ${code} on seed ${last?.seed} with mutations ${JSON.stringify(last?.muts)}`);
    });
  });
  await worker.terminate();
  if (summary) {
    t.diagnostic(`${summary.cases} cases in ${Date.now() - t0} ms (fast-check seed ${SEED}): ${summary.clean} read, ${summary.typed} typed errors ${JSON.stringify(summary.codes)}`);
  }
  assert.equal(problem, undefined);
  // The cases ran: every seed (the committed images among them), as many times as asked, and
  // the mutations both broke images (typed errors) and left some readable.
  assert.ok(summary, 'the worker sent no summary');
  assert.ok(seeds.length >= 5 && seeds.some((s) => s.name.startsWith('fixtures/')), `seeds: ${seeds.map((s) => s.name).join(', ')}`);
  const want = Object.values(runs).reduce((a, b) => a + b, 0);
  assert.equal(summary.cases, want, 'cases run');
  assert.deepEqual(new Map([...casesPerSeed].sort()), new Map(Object.entries(runs).sort()), 'cases per seed');
  assert.ok(summary.typed > 0 && summary.clean > 0, `${summary.typed} typed errors, ${summary.clean} clean reads`);
  assert.deepEqual(
    failures.map((f) => `${f.seed}: ${JSON.stringify(f.muts)}\n  ${f.error}`),
    [],
  );
});
