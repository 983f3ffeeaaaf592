/**
 * Extraction of a real tree: `distri extract` against `unsquashfs -d`, per compressor, side by side
 * in one run (alternating), with ratios (below 1.00 means distri is faster).
 *
 *   npm run build && node dist/bench/extract.js [--source /usr/include,/usr/lib/python3.11] [--rounds 3]
 *                                               [--comp none,gzip,…] [--tmp /dev/shm]
 *
 * Each image is made once with mksquashfs at its defaults (128 KiB blocks). Before timing, both
 * extractions are compared with `diff -r --no-dereference` so that only correct runs are timed.
 * Images and destinations live under --tmp (default the system temp directory). On a virtual disk
 * the write-back of 200 MiB per run dominates both tools; `--tmp /dev/shm` (tmpfs) measures the
 * tools themselves.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, cli, compare, have, sh, table } from './lib';

const sources = arg('source', '/usr/include,/usr/lib/python3.11,/usr/share/perl').split(',');
const rounds = Number(arg('rounds', '3'));
const comps = arg('comp', 'none,gzip,lz4,zstd,lzo,xz').split(',');
const tmpRoot = arg('tmp', os.tmpdir());

/**
 * diff -r, except that diff cannot compare device nodes and fifos and says so for each (a root
 * filesystem has a few in /dev): those lines are checked to name the same kind on both sides.
 */
function sameTree(a: string, b: string): void {
  const r = spawnSync('diff', ['-r', '--no-dereference', a, b], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const special = /^File (.*) is a (character special file|block special file|fifo|socket) while file (.*) is a \2$/;
  const bad = r.stdout.split('\n').filter((l) => l !== '' && !special.test(l));
  if (r.status === 2 || bad.length) throw new Error(`the extractions differ:\n${bad.slice(0, 20).join('\n')}${r.stderr}`);
}

function main(): void {
  for (const t of ['mksquashfs', 'unsquashfs', 'diff']) if (!have(t)) throw new Error(`${t} is not installed`);
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'bench-extract-'));
  try {
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    for (const s of sources) sh('cp', ['-a', s, path.join(src, path.basename(s))]);
    const files = Number(sh('sh', ['-c', `find '${src}' -type f | wc -l`]).trim());
    const mib = Number(sh('du', ['-sm', src]).split('\t')[0]);
    console.log(`tree: ${sources.join(' + ')}: ${files} files, ${mib} MiB; ${rounds} rounds, median wall time; under ${tmpRoot}\n`);
    const rows: string[][] = [];
    const ours = path.join(dir, 'ours');
    const theirs = path.join(dir, 'theirs');
    const clean = () => {
      fs.rmSync(ours, { recursive: true, force: true });
      fs.rmSync(theirs, { recursive: true, force: true });
    };
    for (const comp of comps) {
      const img = path.join(dir, `${comp}.sqfs`);
      const compArgs = comp === 'none' ? ['-noI', '-noD', '-noF', '-noX'] : ['-comp', comp];
      sh('mksquashfs', [src, img, '-noappend', '-no-progress', '-quiet', ...compArgs]);
      clean();
      sh('node', [cli, 'extract', img, '-d', ours]);
      sh('unsquashfs', ['-q', '-n', '-d', theirs, img]);
      sameTree(ours, theirs);
      const res = compare(
        [
          { name: 'distri', before: clean, run: () => sh('node', [cli, 'extract', img, '-d', ours]) },
          { name: 'unsquashfs', before: clean, run: () => sh('unsquashfs', ['-q', '-n', '-d', theirs, img]) },
        ],
        rounds,
      );
      const d = res.get('distri')!;
      const u = res.get('unsquashfs')!;
      rows.push([comp, d.toFixed(2), u.toFixed(2), (d / u).toFixed(2)]);
      console.log(rows[rows.length - 1]!.join('  '));
    }
    console.log('\n' + table(['compressor', 'distri s', 'unsquashfs s', 'ratio'], rows));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
