/**
 * Extraction of a real tree: `distri extract` against `unsquashfs -d`, per compressor, side by side
 * in one run (alternating), with ratios (below 1.00 means distri is faster).
 *
 *   npm run build && node dist/bench/extract.js [--source /usr/include,/usr/lib/python3.11] [--rounds 3]
 *                                               [--comp none,gzip,…] [--tmp /dev/shm] [--fresh-ext4 GIB]
 *
 * Each image is made once with mksquashfs at its defaults (128 KiB blocks). Before timing, both
 * extractions are compared with `diff -r --no-dereference` so that only correct runs are timed.
 * Images and destinations live under --tmp (default the system temp directory). On a virtual disk
 * the write-back of 200 MiB per run dominates both tools; `--tmp /dev/shm` (tmpfs) measures the
 * tools themselves.
 *
 * On a disk, every run extracts into a directory of its own and nothing is deleted until the whole
 * bench is over. ext4 without a journal (this VM's root filesystem) skips, at each inode it
 * allocates, every inode freed in the last 60 s (360 s while the inode table block is dirty):
 * removing the previous run's 7,000-10,000 entries just before a timed run made that run scan
 * them at every create, up to 2x its time, and the cost fell on whichever tool ran after the
 * larger deletion. On tmpfs, which has no such scan, runs reuse and remove their directories.
 * Deletions made before the bench still count (a previous run's clean-up, for 6 minutes):
 * `--fresh-ext4 GIB` (root) gives each compressor a new ext4 filesystem of that size, made with
 * mkfs.ext4's defaults (journal included) in a file under --tmp and loop-mounted, so that every
 * run starts from the same empty disk.
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
/** statfs's f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;
const freshExt4GiB = Number(arg('fresh-ext4', '0'));

/** A new, empty ext4 filesystem in a file under `dir`, loop-mounted; unmount() removes it. */
function freshExt4(dir: string, name: string): { mnt: string; unmount: () => void } {
  const file = path.join(dir, `${name}.ext4`);
  const mnt = path.join(dir, `${name}.mnt`);
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, freshExt4GiB * 2 ** 30);
  // Inode tables and journal written now, not by the kernel's lazy-init thread during the runs.
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', file]);
  fs.mkdirSync(mnt);
  sh('mount', ['-o', 'loop', file, mnt]);
  return {
    mnt,
    unmount: () => {
      spawnSync('umount', [mnt]);
      fs.rmSync(file, { force: true });
      fs.rmSync(mnt, { recursive: true, force: true });
    },
  };
}

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
    const onTmpfs = !freshExt4GiB && fs.statfsSync(dir).type === TMPFS_MAGIC;
    let out = dir; // where the extractions go
    // Where the next run of each tool extracts: the same two directories on tmpfs, removed before
    // each run; a new one per run elsewhere, all removed at the end (see the header).
    let run = 0;
    let ours = '';
    let theirs = '';
    const clean = () => {
      if (onTmpfs) {
        ours = path.join(out, 'ours');
        theirs = path.join(out, 'theirs');
        fs.rmSync(ours, { recursive: true, force: true });
        fs.rmSync(theirs, { recursive: true, force: true });
      } else {
        run++;
        ours = path.join(out, `ours-${run}`);
        theirs = path.join(out, `theirs-${run}`);
      }
    };
    if (freshExt4GiB) console.log(`(a new ${freshExt4GiB} GiB ext4 filesystem per compressor, each run in a fresh directory)\n`);
    else if (!onTmpfs) console.log('(not tmpfs: each run extracts into a fresh directory, all removed at the end)\n');
    for (const comp of comps) {
      const img = path.join(dir, `${comp}.sqfs`);
      const compArgs = comp === 'none' ? ['-noI', '-noD', '-noF', '-noX'] : ['-comp', comp];
      sh('mksquashfs', [src, img, '-noappend', '-no-progress', '-quiet', ...compArgs]);
      const disk = freshExt4GiB ? freshExt4(dir, comp) : undefined;
      if (disk) out = disk.mnt;
      let res: Map<string, number>;
      try {
        clean();
        sh('node', [cli, 'extract', img, '-d', ours]);
        sh('unsquashfs', ['-q', '-n', '-d', theirs, img]);
        sameTree(ours, theirs);
        res = compare(
          [
            { name: 'distri', before: clean, run: () => sh('node', [cli, 'extract', img, '-d', ours]) },
            { name: 'unsquashfs', before: clean, run: () => sh('unsquashfs', ['-q', '-n', '-d', theirs, img]) },
          ],
          rounds,
        );
      } finally {
        disk?.unmount();
      }
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
