/**
 * `distri mount` (our own kernel-protocol transport, and the libfuse one as `distri-libfuse`)
 * against squashfuse_ll, squashfuse and the kernel's SquashFS driver, side by side, on the same
 * images (uncompressed, gzip, zstd, lz4, xz) of the same corpus:
 *
 *   node dist/bench/fuse.js [--reps N] [--random-reads N] [--only gzip,zstd] [--workloads seq,find]
 *                           [--mounters distri,squashfuse_ll] [--tree DIR]
 *
 * Workloads, each on a fresh mount with the page cache dropped ("cold") unless marked warm:
 *   seq      dd of a 64 MiB file (bs=1M), MB/s
 *   rand4k   N random 4 KiB preads in that file (a small C program), ops/s; also by distri-cache16,
 *            whose block cache is smaller than the file (the cache sizes are printed with the table)
 *   tree     read every file of a ~4,800-entry tree twice; the second (warm) pass, MB/s
 *   find     find -printf '%s %m %u\n' over the tree, seconds
 *   lsR      ls -lR of the tree, seconds
 *   find-warm, lsR-warm   the same, second pass on the same mount (what the kernel caches)
 *   first    mount command start → first byte of the large file read, seconds
 * Ratios are distri ÷ the other (above 1 means distri is faster, for every column).
 * The corpus: 64 MiB of this machine's shared libraries in one file, plus /usr/lib/python3.11.
 * Needs root, gcc, mksquashfs, squashfuse, squashfuse_ll. This process never serves a mount.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { median } from './lib';
import { DEFAULT_CACHE_MIB } from '../src/fuse/mount-env';
import { mountedAt } from '../test/helpers/mount';

const repo = path.resolve(__dirname, '..', '..');
/** --cli PATH: another build of the command (A/B runs against a copy of dist/). */
const cliArg = process.argv.indexOf('--cli');
const cli = cliArg >= 0 ? path.resolve(process.argv[cliArg + 1]!) : path.join(repo, 'dist', 'src', 'cli', 'main.js');
const argv = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : d;
};
/** --tree DIR: this tree instead of /usr/lib/python3.11 (e.g. a Debian root filesystem); own work dir. */
const TREE = opt('tree', '/usr/lib/python3.11');
const work = path.join(os.tmpdir(), TREE === '/usr/lib/python3.11' ? 'distri-bench-fuse' : `distri-bench-fuse-${TREE.replace(/[^A-Za-z0-9]+/g, '_')}`);
const REPS = Number(opt('reps', '1'));
const RANDOM_READS = Number(opt('random-reads', '4000'));
const ONLY = opt('only', 'uncompressed,gzip,zstd,lz4,xz').split(',');
/** --workloads seq,find,first and --mounters distri,squashfuse_ll: keep a run short. */
const WORKLOAD_NAMES = opt('workloads', '').split(',').filter(Boolean);
const MOUNTER_NAMES = opt('mounters', '').split(',').filter(Boolean);

function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout ?? '';
}
function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
function dropCaches(): void {
  spawnSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}
const sleepMs = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// ---- corpus and images ----------------------------------------------------------------------------

function buildCorpus(): string {
  const src = path.join(work, 'src');
  if (fs.existsSync(path.join(src, '.done'))) return src;
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src, { recursive: true });
  const libdir = '/usr/lib/x86_64-linux-gnu';
  const out = fs.openSync(path.join(src, 'big.bin'), 'w');
  let n = 0;
  const want = 64 << 20;
  for (const name of fs.readdirSync(libdir).sort()) {
    const p = path.join(libdir, name);
    const st = fs.lstatSync(p);
    if (!st.isFile() || !name.includes('.so')) continue;
    const data = fs.readFileSync(p).subarray(0, want - n);
    fs.writeSync(out, data);
    n += data.length;
    if (n >= want) break;
  }
  fs.closeSync(out);
  sh('cp', ['-a', TREE, path.join(src, 'tree')]);
  fs.writeFileSync(path.join(src, '.done'), '');
  return src;
}

const IMAGE_ARGS: Record<string, string[]> = {
  uncompressed: ['-noI', '-noD', '-noF', '-noX'],
  gzip: ['-comp', 'gzip'],
  zstd: ['-comp', 'zstd'],
  lz4: ['-comp', 'lz4'],
  xz: ['-comp', 'xz'],
};

function buildImage(src: string, kind: string): string {
  const img = path.join(work, `${kind}.sqfs`);
  // `-e` takes every argument after it as a name to exclude, so it goes last. Before 2026-12-05 it
  // came first, and every image (the "zstd" one too) was made with mksquashfs's defaults: gzip.
  // The arguments an image was made with are kept beside it; an image made otherwise is remade.
  const args = [src, img + '.tmp', '-noappend', '-no-progress', '-quiet', ...IMAGE_ARGS[kind]!, '-e', '.done'];
  const stamp = img + '.args';
  const want = JSON.stringify(args.slice(2));
  if (!fs.existsSync(img) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== want) {
    sh('mksquashfs', args);
    fs.renameSync(img + '.tmp', img);
    fs.writeFileSync(stamp, want);
  }
  return img;
}

function buildRandomReader(): string {
  const bin = path.join(work, 'rand4k');
  if (fs.existsSync(bin)) return bin;
  const c = `#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDONLY); if (fd < 0) { perror(argv[1]); return 1; }
  long n = atol(argv[2]); unsigned s = (unsigned) atol(argv[3]);
  struct stat st; fstat(fd, &st); long pages = st.st_size / 4096;
  char buf[4096]; struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u; long p = ((long) (s >> 8) * 4099) % pages;
    if (pread(fd, buf, 4096, p * 4096) != 4096) { perror("pread"); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.1f\\n", n / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
  return 0;
}
`;
  fs.writeFileSync(bin + '.c', c);
  sh('gcc', ['-O2', '-o', bin, bin + '.c']);
  return bin;
}

// ---- mounters -------------------------------------------------------------------------------------

interface Mounter {
  name: string;
  mount(img: string, dir: string): void;
  unmount(dir: string): void;
}

const statsFile = path.join(work, 'distri-stats.json');
const pidFile = path.join(work, 'distri.pid');

function fuseUnmount(dir: string): void {
  for (let i = 0; i < 50 && mountedAt(dir); i++) {
    if (spawnSync('fusermount', ['-u', dir]).status === 0) break;
    sleepMs(100);
  }
  if (mountedAt(dir)) sh('umount', ['-l', dir], true);
}

/**
 * Our block cache in the small-cache mounter: smaller than the 64 MiB file, as squashfuse's cache
 * is, so that the cold random-read figure compares reads, not how much of the file one cache holds.
 */
const SMALL_CACHE_MIB = 16;

/** `distri mount` over one transport (kernel: our own protocol code; libfuse: fuse-native). */
function distriMounter(name: string, transport: string, options: string[] = []): Mounter {
  return {
    name,
    mount: (img, dir) => {
      const r = spawnSync(process.execPath, [cli, 'mount', '--transport', transport, '--pid-file', pidFile, ...options.flatMap((o) => ['-o', o]), img, dir], {
        env: { ...process.env, DISTRI_FUSE_STATS: statsFile },
        encoding: 'utf8',
        timeout: 60_000,
      });
      if (r.status !== 0) throw new Error(`distri mount: ${r.stderr}`);
    },
    unmount: (dir) => {
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      fuseUnmount(dir);
      // The daemon writes its statistics as it leaves; wait for that.
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        sleepMs(50);
      }
    },
  };
}

const MOUNTERS: Mounter[] = [
  distriMounter('distri', 'kernel'),
  distriMounter('distri-libfuse', 'libfuse'),
  distriMounter(`distri-cache${SMALL_CACHE_MIB}`, 'kernel', [`cache=${SMALL_CACHE_MIB}`]),
  { name: 'squashfuse_ll', mount: (img, dir) => void sh('squashfuse_ll', [img, dir]), unmount: fuseUnmount },
  { name: 'squashfuse', mount: (img, dir) => void sh('squashfuse', [img, dir]), unmount: fuseUnmount },
  {
    name: 'kernel',
    mount: (img, dir) => void sh('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, dir]),
    unmount: (dir) => {
      sh('umount', [dir]);
    },
  },
];

// ---- workloads ------------------------------------------------------------------------------------

interface Workload {
  name: string;
  unit: string;
  /** Higher is better (rates) or lower is better (seconds). */
  higherIsBetter: boolean;
  /** Runs on a mounted, cold dir; returns the figure. */
  run(dir: string, mounter: Mounter, img: string): number;
}

let randomReader = '';
const bigSize = () => fs.statSync(path.join(work, 'src', 'big.bin')).size;
const treeBytes = () => Number(sh('du', ['-sb', '--apparent-size', path.join(work, 'src', 'tree')]).split('\t')[0]);

const WORKLOADS: Workload[] = [
  {
    name: 'seq',
    unit: 'MB/s',
    higherIsBetter: true,
    run: (dir) => bigSize() / 1e6 / seconds(() => sh('dd', [`if=${path.join(dir, 'big.bin')}`, 'of=/dev/null', 'bs=1M'])),
  },
  {
    name: 'rand4k',
    unit: 'ops/s',
    higherIsBetter: true,
    run: (dir) => Number(sh(randomReader, [path.join(dir, 'big.bin'), String(RANDOM_READS), '42']).trim()),
  },
  {
    name: 'tree-warm',
    unit: 'MB/s',
    higherIsBetter: true,
    run: (dir) => {
      const cmd = ['-c', `find ${JSON.stringify(path.join(dir, 'tree'))} -type f -exec cat {} + > /dev/null`];
      sh('sh', cmd);
      return treeBytes() / 1e6 / seconds(() => sh('sh', cmd));
    },
  },
  {
    name: 'find',
    unit: 's',
    higherIsBetter: false,
    run: (dir) => seconds(() => sh('sh', ['-c', `find ${JSON.stringify(dir)} -printf '%s %m %u\\n' > /dev/null`])),
  },
  {
    name: 'lsR',
    unit: 's',
    higherIsBetter: false,
    run: (dir) => seconds(() => sh('sh', ['-c', `ls -lR ${JSON.stringify(dir)} > /dev/null`])),
  },
  {
    name: 'find-warm',
    unit: 's',
    higherIsBetter: false,
    run: (dir) => {
      const cmd = ['-c', `find ${JSON.stringify(dir)} -printf '%s %m %u\\n' > /dev/null`];
      sh('sh', cmd);
      return seconds(() => sh('sh', cmd));
    },
  },
  {
    name: 'lsR-warm',
    unit: 's',
    higherIsBetter: false,
    run: (dir) => {
      const cmd = ['-c', `ls -lR ${JSON.stringify(dir)} > /dev/null`];
      sh('sh', cmd);
      return seconds(() => sh('sh', cmd));
    },
  },
];

/** Mount command → first byte of big.bin; measured around the mount itself, so special-cased. */
function firstByte(m: Mounter, img: string, dir: string): number {
  dropCaches();
  const t = seconds(() => {
    m.mount(img, dir);
    const fd = fs.openSync(path.join(dir, 'big.bin'), 'r');
    fs.readSync(fd, Buffer.alloc(1), 0, 1, 0);
    fs.closeSync(fd);
  });
  m.unmount(dir);
  return t;
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('run as root (mounts, drop_caches)');
  fs.mkdirSync(work, { recursive: true });
  const src = buildCorpus();
  randomReader = buildRandomReader();
  const dir = path.join(work, 'mnt');
  fs.mkdirSync(dir, { recursive: true });
  if (mountedAt(dir)) fuseUnmount(dir);

  const mounters = MOUNTERS.filter((m) => MOUNTER_NAMES.length === 0 || MOUNTER_NAMES.includes(m.name));
  const results: Array<{ image: string; workload: string; unit: string; higher: boolean; values: Record<string, number>; note?: string }> = [];
  for (const kind of ONLY) {
    const img = buildImage(src, kind);
    const all = [...WORKLOADS, { name: 'first', unit: 's', higherIsBetter: false } as Workload];
    for (const w of all.filter((x) => WORKLOAD_NAMES.length === 0 || WORKLOAD_NAMES.includes(x.name))) {
      const values: Record<string, number> = {};
      let note: string | undefined;
      for (const m of mounters) {
        const runs: number[] = [];
        for (let r = 0; r < REPS; r++) {
          if (w.name === 'first') {
            runs.push(firstByte(m, img, dir));
            continue;
          }
          fs.rmSync(statsFile, { force: true });
          m.mount(img, dir);
          try {
            dropCaches();
            runs.push(w.run(dir, m, img));
          } finally {
            m.unmount(dir);
          }
          if (m.name === 'distri' && fs.existsSync(statsFile)) {
            const st = JSON.parse(fs.readFileSync(statsFile, 'utf8')) as { ops: Record<string, number>; rssBytes?: number; cache?: { data?: { hits: number; misses: number } } };
            const total = Object.values(st.ops).reduce((a, b) => a + b, 0);
            const data = st.cache?.data;
            const rss = st.rssBytes ? `, daemon RSS ${(st.rssBytes / 2 ** 20).toFixed(0)} MiB` : '';
            note = `${note ? note + '; ' : ''}${w.name}: ${total} requests (${Object.entries(st.ops)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})${data && w.name === 'rand4k' ? `, data-block cache ${data.hits} hits / ${data.misses} misses` : ''}${rss}`;
          }
        }
        values[m.name] = median(runs);
        process.stderr.write(`${kind} ${w.name} ${m.name}: ${values[m.name]!.toFixed(3)} ${w.unit}\n`);
      }
      results.push({ image: kind, workload: w.name, unit: w.unit, higher: w.higherIsBetter, values, note });
    }
  }

  const others = mounters.filter((m) => m.name !== 'distri').map((m) => m.name);
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const lines = [
    `| image | workload | unit | distri | ${others.join(' | ')} | ${others.map((o) => `÷ ${o}`).join(' | ')} |`,
    `|---|---|---|---|${others.map(() => '---|').join('')}${others.map(() => '---|').join('')}`,
  ];
  for (const r of results) {
    const d = r.values.distri!;
    const ratios = others.map((o) => {
      const v = r.values[o]!;
      return (r.higher ? d / v : v / d).toFixed(2);
    });
    lines.push(`| ${r.image} | ${r.workload} | ${r.unit} | ${fmt(d)} | ${others.map((o) => fmt(r.values[o]!)).join(' | ')} | ${ratios.join(' | ')} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  // The cache sizes belong next to the figures: random reads in a 64 MiB file measure mostly the
  // block cache when one mounter's cache holds the whole file.
  process.stdout.write(
    `\nCaches: distri and distri-libfuse ${DEFAULT_CACHE_MIB} MiB of decompressed blocks (the default; the ${(bigSize() / 2 ** 20).toFixed(0)} MiB file fits), ` +
      `distri-cache${SMALL_CACHE_MIB} ${SMALL_CACHE_MIB} MiB (smaller than the file); squashfuse and squashfuse_ll use their own internal cache (not set here); the kernel uses the page cache.\n`,
  );
  for (const r of results) if (r.note) process.stdout.write(`- ${r.image} distri requests: ${r.note}\n`);
  fs.rmdirSync(dir);
}

main();
