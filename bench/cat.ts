/**
 * Decode throughput of one large file: `distri cat` against `unsquashfs -cat`, per compressor, in
 * one run, with ratios (below 1.00 means distri is faster).
 *
 *   npm run build && node dist/bench/cat.js [--size-mib 256] [--rounds 3] [--source DIR] [--comp none,gzip,…]
 *
 * The file is a concatenation of real binaries and text (from --source, default /usr/lib and
 * /usr/share), so that every codec sees realistic data. Images are made with mksquashfs at its
 * defaults (128 KiB blocks) in a temporary directory on the same disk.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, cli, compare, have, sh, table } from './lib';

const sizeMiB = Number(arg('size-mib', '256'));
const rounds = Number(arg('rounds', '3'));
const comps = arg('comp', 'none,gzip,lz4,zstd,xz,lzo').split(',');
const sources = arg('source', '/usr/lib/x86_64-linux-gnu,/usr/share/doc').split(',');

function main(): void {
  for (const t of ['mksquashfs', 'unsquashfs']) if (!have(t)) throw new Error(`${t} is not installed (apt-get install squashfs-tools)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cat-'));
  try {
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const out = fs.openSync(path.join(src, 'big'), 'w');
    let written = 0;
    const want = sizeMiB * 1024 * 1024;
    const stack = [...sources];
    while (stack.length && written < want) {
      const p = stack.pop()!;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) for (const n of fs.readdirSync(p).sort().reverse()) stack.push(path.join(p, n));
      else if (st.isFile() && st.size > 0) {
        const b = fs.readFileSync(p).subarray(0, want - written);
        fs.writeSync(out, b);
        written += b.length;
      }
    }
    fs.closeSync(out);
    console.log(`file: ${(written / 1048576).toFixed(0)} MiB of ${sources.join(', ')}; ${rounds} rounds, median wall time; warm page cache\n`);
    const rows: string[][] = [];
    for (const comp of comps) {
      const img = path.join(dir, `${comp}.sqfs`);
      const compArgs = comp === 'none' ? ['-noI', '-noD', '-noF', '-noX'] : ['-comp', comp];
      sh('mksquashfs', [src, img, '-noappend', '-no-progress', '-quiet', ...compArgs]);
      // Correctness first: a fast wrong answer is not a result.
      const check = spawnSync('sh', ['-c', `node '${cli}' cat '${img}' big | cmp - '${path.join(src, 'big')}'`], { encoding: 'utf8' });
      if (check.status !== 0) throw new Error(`distri cat ${comp}: output differs from the source file: ${check.stdout}${check.stderr}`);
      const res = compare(
        [
          { name: 'distri', run: () => sh('node', [cli, 'cat', img, 'big'], { stdout: 'ignore' }) },
          { name: 'unsquashfs', run: () => sh('unsquashfs', ['-cat', img, 'big'], { stdout: 'ignore' }) },
        ],
        rounds,
      );
      const d = res.get('distri')!;
      const u = res.get('unsquashfs')!;
      rows.push([comp, d.toFixed(2), u.toFixed(2), (written / 1048576 / d).toFixed(0), (written / 1048576 / u).toFixed(0), (d / u).toFixed(2)]);
      console.log(rows[rows.length - 1]!.join('  '));
    }
    console.log('\n' + table(['compressor', 'distri s', 'unsquashfs s', 'distri MiB/s', 'unsquashfs MiB/s', 'ratio'], rows));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
