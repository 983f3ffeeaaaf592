/**
 * The time and memory a bad image costs the reader, printed (never asserted). robustness.md bounds
 * a bad image at ~250 ms without a memory blow-up; test/robustness.test.ts checks the same cases
 * deterministically, as counted work within a budget derived from the image, and this benchmark
 * shows what that work costs on this machine:
 *
 *   npm run build && node dist/bench/robustness.js [--mutations 300] [--seed 1]
 *
 * Cases: the deepest tree a path can name (MAX_DEPTH - 1 levels, reads) and 10,000 levels (a typed
 * error), the images in fixtures/crashers/, and — when mksquashfs is installed — a small
 * uncompressed mksquashfs image, each of its 512-byte truncations, and random byte mutations of
 * it. Each image is read as the tests read it (test/craft/exercise.ts: open, walk, stat, read every
 * file, symlink and xattr). Per group: median and largest time, largest growth of resident memory,
 * and the largest share of the work budget used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { MAX_DEPTH } from '../src/reader/walk';
import { xorshift32 } from '../src/util/xorshift';
import { noWork, outcome, workBudget, type Work } from '../test/craft/exercise';
import { UNCOMPRESSED, mksquashfs, sh, tempDir } from '../test/craft/image';
import { deepImage } from '../test/craft/writer';
import { arg, have, median, repo, table } from './lib';

interface Sample {
  ms: number;
  rssGrowth: number;
  budgetShare: number;
  ok: boolean;
}

function measure(buf: Uint8Array): Sample {
  const work: Work = noWork();
  const rss = process.memoryUsage().rss;
  const t0 = performance.now();
  const o = outcome(buf, work);
  const ms = performance.now() - t0;
  const rssGrowth = process.memoryUsage().rss - rss;
  const budget = workBudget(buf);
  const budgetShare = Math.max(...(Object.keys(budget) as Array<keyof Work>).map((k) => work[k] / budget[k]));
  return { ms, rssGrowth, budgetShare, ok: o.ok };
}

function main(): void {
  const mutations = Number(arg('mutations', '300'));
  const rand = xorshift32(Number(arg('seed', '1')));
  const next = () => rand() / 0x100000000; // [0, 1)
  const groups: Array<[string, Uint8Array[]]> = [
    [`${MAX_DEPTH - 1} levels (reads)`, [deepImage(MAX_DEPTH - 1)]],
    ['10,000 levels (typed error)', [deepImage(10_000)]],
  ];
  const crashers = path.join(repo, 'fixtures', 'crashers');
  const files = fs.existsSync(crashers) ? fs.readdirSync(crashers).filter((f) => /\.sqfs(\.gz)?$/.test(f)) : [];
  groups.push([
    'fixtures/crashers',
    files.map((f) => {
      const raw = fs.readFileSync(path.join(crashers, f));
      return f.endsWith('.gz') ? zlib.gunzipSync(raw) : raw;
    }),
  ]);
  const tmp = tempDir('distri-bench-robust-');
  try {
    if (have('mksquashfs')) {
      const src = path.join(tmp.dir, 'src');
      fs.mkdirSync(src);
      sh(`printf 'hello\\n' > aa; head -c 10000 /dev/urandom > big; mkdir -p d/e && printf 'deep\\n' > d/e/f; ln -s aa lnk`, src);
      const seed = mksquashfs(src, path.join(tmp.dir, 'seed.sqfs'), [...UNCOMPRESSED, '-b', '4096']);
      groups.push(['mksquashfs seed (reads)', [seed]]);
      const truncations: Uint8Array[] = [];
      for (let n = 0; n < seed.length; n += 512) truncations.push(seed.subarray(0, n));
      groups.push(['its 512-byte truncations', truncations]);
      const mutated: Uint8Array[] = [];
      for (let i = 0; i < mutations; i++) {
        const b = Buffer.from(seed);
        // 1–4 random bytes inside the used part: superblock, tables and data alike.
        for (let k = 1 + Math.floor(next() * 4); k > 0; k--) b[Math.floor(next() * Math.min(b.length, 8192))] = Math.floor(next() * 256);
        mutated.push(b);
      }
      groups.push([`${mutations} random byte mutations of it`, mutated]);
    } else {
      process.stdout.write('mksquashfs is not installed: the seed, truncation and mutation groups are left out\n');
    }
    const rows: string[][] = [];
    for (const [name, images] of groups) {
      if (images.length === 0) continue;
      const s = images.map(measure);
      rows.push([
        name,
        String(images.length),
        String(s.filter((x) => !x.ok).length),
        median(s.map((x) => x.ms)).toFixed(2),
        Math.max(...s.map((x) => x.ms)).toFixed(2),
        (Math.max(...s.map((x) => x.rssGrowth)) / 1048576).toFixed(1),
        (100 * Math.max(...s.map((x) => x.budgetShare))).toFixed(1),
      ]);
    }
    process.stdout.write(`\nReading bad images (bound in robustness.md: ~250 ms each, no memory blow-up); Node ${process.version}\n\n`);
    process.stdout.write(table(['images', 'count', 'typed errors', 'median ms', 'max ms', 'max RSS growth MiB', 'max % of work budget'], rows) + '\n');
  } finally {
    tmp.cleanup();
  }
}

main();
