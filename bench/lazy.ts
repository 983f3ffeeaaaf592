/**
 * `distri bench lazy`: the lazy-load benchmark of the /ro store (the CLI command dispatches here).
 *
 * Builds synthetic stores of N packages (default 10, 100, 1,000) with realistic layouts (bin/
 * entries for programs, out/lib with a shared library, its symlinks and a .pc file, headers, man
 * pages, docs, sometimes translations; file sizes spread from a few hundred bytes to megabytes),
 * packed the way distri packs (mksquashfs -noI -noD -noF -noX -no-fragments, 128 KiB blocks). The
 * packages are built once into a pool under --work and hard-linked into one store per N, so a
 * second run reuses them. Then, per N, it measures:
 *
 *  - mount-to-ready: spawning `distri fuse -f` until it reports on its notify pipe (Node start-up
 *    included), with the persisted index in place (median of --rounds), and once with the index
 *    deleted (the one-time build); plus the daemon's own view: ready at T ms after its start,
 *    its CPU time (all threads) when ready, and where its first snapshot of the store came from
 *    (the saved index, or a scan when the store directory changed since the index was saved);
 *  - first access of a package not yet opened: from a separate process, stat of a file in it
 *    (the lookups that open the image), open, first byte; and the same warm;
 *  - exchange dirs: /ro/bin/x resolved (realpath) and opened exec-style, first 4 bytes;
 *  - the daemon's memory (RSS) after mounting and after the accesses.
 *
 * Side by side in the same run, for one image of median size: squashfuse mounting it (the
 * per-image cost a store of separate mounts would pay N times), `distri mount` of it, and the
 * kernel's SquashFS driver (mount -o loop), each with the same first-byte probe.
 *
 * Prints a table, writes --json and an SVG plot of latency against N. Timings are printed, never
 * asserted. Every mount it makes is unmounted again, also when a step fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { ctlRequest } from '../src/vfs/ctl';
import { xorshift32 } from '../src/util/xorshift';
import { OpenCounter, cli, have, imageOpens, median, table } from './lib';

const DISTRI_FLAGS = ['-noI', '-noD', '-noF', '-noX', '-no-fragments', '-b', '131072', '-all-root', '-quiet', '-no-progress'];
const POOL_FORMAT = 'pool-v1';

// ---- synthetic packages ----------------------------------------------------------------------

/** Uniform in [0, 1), the same on every machine (pools must be reproducible). */
function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x1_0000_0000;
}

/** Log-uniform size between lo and hi bytes. */
function size(r: () => number, lo: number, hi: number): number {
  return Math.round(Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo))));
}

export interface SyntheticPackage {
  full: string;
  /** A file deep inside the package (for the first-byte probe). */
  probe: string;
  /** Its programs (exchange /bin names). */
  programs: string[];
}

const LANGS = ['de', 'fr', 'es', 'it', 'ja', 'nl', 'pl', 'pt_BR', 'ru', 'zh_CN'];

/** Writes package `i` into `dir` (distri layout) and returns what the probes need. */
function writeSyntheticPackage(i: number, dir: string, noise: Buffer): SyntheticPackage {
  const r = rng(0x9e3779b9 ^ (i * 2654435761));
  const name = `pkg${String(i).padStart(4, '0')}`;
  const rev = 1 + Math.floor(r() * 9);
  const full = `${name}-amd64-${1 + Math.floor(r() * 5)}.${Math.floor(r() * 20)}.${Math.floor(r() * 10)}-${rev}`;
  const root = path.join(dir, full);
  const file = (rel: string, bytes: number, mode = 0o644) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const off = Math.floor(r() * (noise.length - bytes - 1));
    fs.writeFileSync(p, noise.subarray(Math.max(0, off), Math.max(0, off) + bytes), { mode });
  };
  const link = (rel: string, target: string) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.symlinkSync(target, p);
  };
  const programs: string[] = [];
  const nprog = r() < 0.3 ? 0 : 1 + Math.floor(r() * 4);
  for (let k = 0; k < nprog; k++) {
    const prog = k === 0 ? name : `${name}-tool${k}`;
    programs.push(prog);
    file(`out/bin/${prog}`, size(r, 8 << 10, 2 << 20), 0o755);
    file(`bin/${prog}`, size(r, 1 << 10, 16 << 10), 0o755); // distri's wrapper programs
    file(`out/share/man/man1/${prog}.1`, size(r, 1 << 10, 40 << 10));
  }
  if (r() < 0.6) {
    const so = `lib${name}.so`;
    file(`out/lib/${so}.1.0.0`, size(r, 16 << 10, 4 << 20), 0o755);
    link(`out/lib/${so}.1`, `${so}.1.0.0`);
    link(`out/lib/${so}`, `${so}.1`);
    link(`lib/${so}.1`, `../out/lib/${so}.1.0.0`);
    file(`out/lib/pkgconfig/${name}.pc`, 300);
    const nh = Math.floor(r() * 20);
    for (let k = 0; k < nh; k++) file(`out/include/${name}/h${k}.h`, size(r, 300, 30 << 10));
  }
  file(`out/share/doc/${name}/README`, size(r, 500, 20 << 10));
  if (r() < 0.2) for (const l of LANGS) file(`out/share/locale/${l}/LC_MESSAGES/${name}.mo`, size(r, 2 << 10, 60 << 10));
  return { full, probe: `out/share/doc/${name}/README`, programs };
}

function runAsync(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + e.message });
    });
  });
}

/** Builds (or reuses) the pool of `n` packages under `work/pool`. */
async function buildPool(work: string, n: number, log: (s: string) => void): Promise<SyntheticPackage[]> {
  const pool = path.join(work, 'pool');
  const manifestFile = path.join(pool, 'manifest.json');
  let manifest: SyntheticPackage[] = [];
  try {
    const m = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { format: string; packages: SyntheticPackage[] };
    if (m.format === POOL_FORMAT) manifest = m.packages.filter((p) => fs.existsSync(path.join(pool, p.full + '.squashfs')));
  } catch {
    manifest = [];
  }
  if (manifest.length >= n) return manifest.slice(0, n);
  fs.mkdirSync(pool, { recursive: true });
  const noise = crypto.randomBytes(8 << 20);
  const trees = fs.mkdtempSync(path.join(work, 'trees-'));
  log(`building ${n - manifest.length} synthetic packages into ${pool} (once; reused by later runs)`);
  const t0 = performance.now();
  try {
    const todo = Array.from({ length: n - manifest.length }, (_, k) => manifest.length + k);
    const made: SyntheticPackage[] = new Array(todo.length);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const k = next++;
        const i = todo[k]!;
        const spec = writeSyntheticPackage(i, trees, noise);
        const tmp = path.join(pool, `.${spec.full}.tmp`);
        const r = await runAsync('mksquashfs', [path.join(trees, spec.full), tmp, ...DISTRI_FLAGS]);
        if (r.code !== 0) throw new Error(`mksquashfs ${spec.full}: ${r.stderr}`);
        fs.renameSync(tmp, path.join(pool, spec.full + '.squashfs'));
        fs.writeFileSync(path.join(pool, spec.full + '.meta.textproto'), `source_pkg: "${spec.full.split('-')[0]}"\nversion: "${spec.full.split('-').slice(2).join('-')}"\n`);
        fs.rmSync(path.join(trees, spec.full), { recursive: true, force: true });
        made[k] = spec;
        if ((i + 1) % 100 === 0) log(`  ${i + 1} packages`);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(4, os.cpus().length)) }, worker));
    manifest = [...manifest, ...made];
  } finally {
    fs.rmSync(trees, { recursive: true, force: true });
  }
  fs.writeFileSync(manifestFile, JSON.stringify({ format: POOL_FORMAT, packages: manifest }));
  log(`  built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return manifest.slice(0, n);
}

/** A store of the first `n` pool packages (hard links), reused when it is already complete. */
function makeStore(work: string, pkgs: SyntheticPackage[]): string {
  const store = path.join(work, `store-${pkgs.length}`);
  fs.mkdirSync(store, { recursive: true });
  const want = new Set(pkgs.flatMap((p) => [`${p.full}.squashfs`, `${p.full}.meta.textproto`]));
  for (const f of fs.readdirSync(store)) if (!f.startsWith('.') && !want.has(f)) fs.rmSync(path.join(store, f));
  for (const f of want) {
    const dst = path.join(store, f);
    if (!fs.existsSync(dst)) fs.linkSync(path.join(work, 'pool', f), dst);
  }
  return store;
}

// ---- probes ----------------------------------------------------------------------------------

/**
 * Runs in a separate process (never in a daemon's own process): per path, milliseconds for
 * lookup (stat), open, first byte; or for exchange links: realpath, open, first 4 bytes.
 */
const PROBE = `
const fs = require('fs');
const [mode, ...paths] = JSON.parse(process.argv[1]);
const ms = (f) => { const a = process.hrtime.bigint(); f(); return Number(process.hrtime.bigint() - a) / 1e6; };
const out = [];
const buf = Buffer.alloc(4);
for (const p of paths) {
  let fd; const r = {};
  try {
    r.lookup = ms(() => (mode === 'exchange' ? fs.realpathSync.native(p) : fs.statSync(p)));
    r.open = ms(() => { fd = fs.openSync(p, 'r'); });
    r.read = ms(() => fs.readSync(fd, buf, 0, mode === 'exchange' ? 4 : 1, 0));
    fs.closeSync(fd);
    r.total = r.lookup + r.open + r.read;
  } catch (e) { r.error = e.message; }
  out.push(r);
}
process.stdout.write(JSON.stringify(out));
`;

interface ProbeResult {
  lookup: number;
  open: number;
  read: number;
  total: number;
  error?: string;
}

async function probe(mode: 'file' | 'exchange', paths: string[]): Promise<ProbeResult[]> {
  const r = await runAsync(process.execPath, ['-e', PROBE, JSON.stringify([mode, ...paths])], 60_000);
  if (r.code !== 0) throw new Error(`probe: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as ProbeResult[];
  const bad = out.find((x) => x.error);
  if (bad) throw new Error(`probe: ${bad.error}`);
  return out;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

// ---- mounts ----------------------------------------------------------------------------------

interface Mounted {
  dir: string;
  pid: number;
  readyMs: number;
  /** CPU time (user + system, all threads) the daemon had used when its 's' was read. */
  cpuAtReadyMs: number;
}

function mkfifo(dir: string): string {
  const fifo = path.join(dir, 'notify');
  const r = spawnSync('mkfifo', [fifo]);
  if (r.status !== 0) throw new Error(`mkfifo: ${r.stderr}`);
  return fifo;
}

function readByte(fifo: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = fs.createReadStream(fifo);
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      try {
        fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // nobody left
      }
      resolve(undefined);
    }, timeoutMs);
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got[0]);
    });
  });
}

const live = new Set<Mounted>();

async function mountStore(store: string, scratch: string): Promise<Mounted> {
  const dir = fs.mkdtempSync(path.join(scratch, 'ro-'));
  const fifoDir = fs.mkdtempSync(path.join(scratch, 'fifo-'));
  const fifo = mkfifo(fifoDir);
  const answer = readByte(fifo, 60_000);
  const t0 = performance.now();
  const child = spawn(process.execPath, [cli, 'fuse', '--store', store, dir, '-f', '--notify-pipe', fifo], { stdio: ['ignore', 'ignore', 'inherit'], detached: false });
  const byte = await answer;
  const readyMs = performance.now() - t0;
  const cpuAtReadyMs = cpuOf(child.pid!);
  fs.rmSync(fifoDir, { recursive: true, force: true });
  const m = { dir, pid: child.pid!, readyMs, cpuAtReadyMs };
  live.add(m);
  if (byte !== 's') {
    await unmountStore(m);
    throw new Error(`distri fuse --store ${store} did not come up (${JSON.stringify(byte)})`);
  }
  return m;
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function unmountStore(m: Mounted): Promise<void> {
  live.delete(m);
  const u = await runAsync('fusermount', ['-u', m.dir], 10_000);
  if (u.code !== 0) await runAsync('umount', ['-l', m.dir], 10_000);
  if (!(await waitGone(m.pid, 5000))) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await runAsync('umount', ['-l', m.dir], 10_000);
  }
  try {
    fs.rmdirSync(m.dir);
  } catch {
    // still mounted somehow: leave it rather than delete through it
  }
}

async function stats(m: Mounted): Promise<Record<string, number>> {
  const sock = fs.readlinkSync(path.join(m.dir, 'ctl'));
  return (await ctlRequest(sock, { op: 'stats' })).stats as Record<string, number>;
}

/** utime + stime of a process from /proc/PID/stat, in ms (NaN when it is gone). */
function cpuOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Clock ticks per second for /proc times (getconf CLK_TCK; 100 on Linux everywhere we run). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

// ---- the benchmark ---------------------------------------------------------------------------

interface Row {
  n: number;
  storeBytes: number;
  coldIndexReadyMs: number;
  readyMs: number[];
  /** The daemon's CPU time when ready, per mount of readyMs. */
  readyCpuMs: number[];
  daemonReadyAtMs: number;
  firstScanMs: number;
  /** Where the measured mount's first snapshot came from: the saved index or a scan. */
  firstSnapshot: string;
  exchangeBuildMs: number;
  nodeStartMs: number;
  first: ProbeResult[];
  warm: ProbeResult[];
  exchangeFirst: ProbeResult[];
  exchangeWarm: ProbeResult[];
  imageOpenMsMean: number;
  imageOpenMsMax: number;
  /**
   * Images opened, counted where opens happen (inotify on the store directory, the helper the tests
   * use), not by the daemon's own counter: while building the index (no index present), by a mount
   * with the index in place until ready, by listing /ro, and in all after the probes.
   */
  imagesOpenedBuildingIndex: number;
  imagesOpenedAtReady: number;
  imagesOpenedAfterListing: number;
  imagesOpenedAfterProbes: number;
  rssIdle: number;
  rssAfter: number;
  /** Mounting every image of the store with its own squashfuse, one after another (measured, not extrapolated). */
  separateMountsMs?: number;
}

interface Single {
  name: string;
  readyMs: number;
  first: ProbeResult;
  warm: ProbeResult;
  error?: string;
}

async function measureStore(work: string, scratch: string, pkgs: SyntheticPackage[], rounds: number, probes: number, log: (s: string) => void): Promise<Row> {
  const store = makeStore(work, pkgs);
  const storeBytes = pkgs.reduce((n, p) => n + fs.statSync(path.join(store, p.full + '.squashfs')).size, 0);
  // Opens are counted by inotify on the store (NaN without inotifywait).
  const counter = have('inotifywait') ? await OpenCounter.start(store) : undefined;
  const opened = async (): Promise<number> => {
    if (!counter) return NaN;
    await counter.settle();
    return [...imageOpens(counter).values()].reduce((a, b) => a + b, 0);
  };
  try {
    // One mount with no index: the one-time build.
    fs.rmSync(path.join(store, '.distri-index'), { recursive: true, force: true });
    let m = await mountStore(store, scratch);
    const coldIndexReadyMs = m.readyMs;
    const imagesOpenedBuildingIndex = await opened();
    await unmountStore(m);
    const readyMs: number[] = [];
    const readyCpuMs: number[] = [];
    for (let r = 0; r < rounds - 1; r++) {
      m = await mountStore(store, scratch);
      readyMs.push(m.readyMs);
      readyCpuMs.push(m.cpuAtReadyMs);
      await unmountStore(m);
    }
    counter?.reset();
    m = await mountStore(store, scratch);
    readyMs.push(m.readyMs);
    readyCpuMs.push(m.cpuAtReadyMs);
    try {
      const imagesOpenedAtReady = await opened();
      const idle = await stats(m);
      const rssIdle = rssOf(m.pid);
      // Listing /ro and /ro/bin must open nothing.
      await runAsync('ls', ['-l', m.dir, path.join(m.dir, 'bin'), path.join(m.dir, 'lib')]);
      const imagesOpenedAfterListing = await opened();
      // Packages spread over the store, none opened yet.
      // Half the store at most, so that the exchange probe below also finds packages not yet opened.
      const k = Math.max(1, Math.min(probes, Math.floor(pkgs.length / 2)));
      const step = Math.max(1, Math.floor(pkgs.length / k));
      const chosen = pkgs.filter((_, i) => i % step === 0).slice(0, k);
      const files = chosen.map((p) => path.join(m.dir, p.full, p.probe));
      const first = await probe('file', files);
      const warm = await probe('file', files);
      // Exchange links into packages not touched above.
      const picked = new Set(chosen);
      const withPrograms = pkgs.filter((p) => p.programs.length > 0 && !picked.has(p));
      const exStep = Math.max(1, Math.floor(withPrograms.length / probes));
      const links = withPrograms
        .filter((_, i) => i % exStep === 0)
        .slice(0, probes)
        .map((p) => path.join(m.dir, 'bin', p.programs[0]!));
      const exchangeFirst = await probe('exchange', links);
      const exchangeWarm = await probe('exchange', links);
      const after = await stats(m);
      const imagesOpenedAfterProbes = await opened();
      log(
        `  N=${pkgs.length}: ready ${median(readyMs).toFixed(0)} ms (daemon CPU ${median(readyCpuMs).toFixed(0)} ms), first byte ${median(first.map((x) => x.total)).toFixed(2)} ms, images opened ${imagesOpenedAfterProbes}`,
      );
      return {
        n: pkgs.length,
        storeBytes,
        coldIndexReadyMs,
        readyMs,
        readyCpuMs,
        daemonReadyAtMs: idle.readyAtMs!,
        firstScanMs: idle.firstScanMs!,
        firstSnapshot: String((idle as Record<string, unknown>).firstSnapshot ?? 'scan'),
        exchangeBuildMs: idle.exchangeBuildMs!,
        nodeStartMs: NaN,
        first,
        warm,
        exchangeFirst,
        exchangeWarm,
        imageOpenMsMean: after.imageOpenMsMean!,
        imageOpenMsMax: after.imageOpenMsMax!,
        imagesOpenedBuildingIndex,
        imagesOpenedAtReady,
        imagesOpenedAfterListing,
        imagesOpenedAfterProbes,
        rssIdle,
        rssAfter: rssOf(m.pid),
      };
    } finally {
      await unmountStore(m);
    }
  } finally {
    counter?.stop();
  }
}

/**
 * The store as N separate mounts, the way a store without /ro would be served: every image
 * mounted by its own squashfuse, one after another, until the last is ready. All are unmounted
 * again, also when one fails. NaN when squashfuse is missing.
 */
async function measureSeparateMounts(images: string[], scratch: string, log: (s: string) => void): Promise<number> {
  if (spawnSync('sh', ['-c', 'command -v squashfuse']).status !== 0) return NaN;
  const dirs: string[] = [];
  const t0 = performance.now();
  try {
    for (const image of images) {
      const dir = fs.mkdtempSync(path.join(scratch, 'sep-'));
      const r = await runAsync('squashfuse', [image, dir], 30_000);
      if (r.code !== 0) {
        fs.rmdirSync(dir);
        throw new Error(`squashfuse ${image}: ${r.stderr.trim()}`);
      }
      dirs.push(dir);
    }
    return performance.now() - t0;
  } catch (e) {
    log(`separate mounts: ${(e as Error).message}`);
    return NaN;
  } finally {
    for (const dir of dirs) {
      const u = await runAsync('fusermount', ['-u', dir], 10_000);
      if (u.code !== 0) await runAsync('umount', ['-l', dir], 10_000);
      try {
        fs.rmdirSync(dir);
      } catch {
        // busy: leave it
      }
    }
  }
}

/** One image mounted on its own: squashfuse, distri mount, the kernel. */
async function measureSingle(name: string, image: string, probeRel: string, scratch: string): Promise<Single> {
  const dir = fs.mkdtempSync(path.join(scratch, 'one-'));
  const t0 = performance.now();
  let r: { code: number | null; stderr: string };
  if (name === 'squashfuse') r = await runAsync('squashfuse', [image, dir], 30_000);
  else if (name === 'distri mount') r = await runAsync(process.execPath, [cli, 'mount', image, dir], 30_000);
  else r = await runAsync('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, dir], 30_000);
  const readyMs = performance.now() - t0;
  try {
    if (r.code !== 0) return { name, readyMs: NaN, first: undefined as never, warm: undefined as never, error: r.stderr.trim() };
    const [first] = await probe('file', [path.join(dir, probeRel)]);
    const [warm] = await probe('file', [path.join(dir, probeRel)]);
    return { name, readyMs, first: first!, warm: warm! };
  } finally {
    if (r.code === 0) {
      const u = name === 'kernel' ? await runAsync('umount', [dir], 10_000) : await runAsync('fusermount', ['-u', dir], 10_000);
      if (u.code !== 0) await runAsync('umount', ['-l', dir], 10_000);
      await new Promise((res) => setTimeout(res, 100));
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // busy: leave it
    }
  }
}

function nodeStartMs(): number {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const mib = (x: number) => (Number.isFinite(x) ? (x / 2 ** 20).toFixed(1) : '—');

/**
 * An SVG plot of latency (ms, log scale) against N (log scale). The margins are sized from the
 * longest legend entry and axis label (at 7.5 px a character, wider than 12 px sans-serif's
 * average), so that no renderer cuts them off (checked with rsvg-convert).
 */
export function svgPlot(rows: Row[], singles: Single[]): string {
  const CHAR = 7.5;
  const PLOT_W = 460;
  const H = 440;
  const T = 30;
  const B = 50;
  const series: { name: string; color: string; ys: number[] }[] = [
    { name: 'mount-to-ready (incl. Node start-up)', color: '#1f77b4', ys: rows.map((r) => median(r.readyMs)) },
    { name: 'mount-to-ready inside the daemon', color: '#aec7e8', ys: rows.map((r) => r.daemonReadyAtMs) },
    { name: 'first byte, unopened package', color: '#d62728', ys: rows.map((r) => median(r.first.map((x) => x.total))) },
    { name: 'first byte, warm', color: '#ff9896', ys: rows.map((r) => median(r.warm.map((x) => x.total))) },
    { name: '/ro/bin/x resolve+open, first', color: '#2ca02c', ys: rows.map((r) => median(r.exchangeFirst.map((x) => x.total))) },
    { name: '/ro/bin/x resolve+open, warm', color: '#98df8a', ys: rows.map((r) => median(r.exchangeWarm.map((x) => x.total))) },
  ];
  const measuredSeparate = rows.some((r) => Number.isFinite(r.separateMountsMs ?? NaN));
  if (measuredSeparate) series.push({ name: 'N separate squashfuse mounts (measured)', color: '#7f7f7f', ys: rows.map((r) => r.separateMountsMs ?? NaN) });
  const all = series.flatMap((s) => s.ys).filter((y) => Number.isFinite(y) && y > 0);
  // Older runs (bench/lazy.json before the measurement) only have one mount to extrapolate from.
  const sq = measuredSeparate ? undefined : singles.find((s) => s.name === 'squashfuse' && Number.isFinite(s.readyMs));
  if (sq) all.push(sq.readyMs * Math.max(...rows.map((r) => r.n)));
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const yLabel = (v: number) => `${v >= 1 ? v : v.toPrecision(1)} ms`;
  const SQ_LEGEND = 'N × one squashfuse mount (extrapolated)';
  const labels = [...series.map((s) => s.name), ...(sq ? [SQ_LEGEND] : [])];
  const L = Math.ceil(Math.max(yLabel(yMin).length, yLabel(yMax).length) * CHAR) + 14;
  const R = 42 + Math.ceil(Math.max(...labels.map((l) => l.length)) * CHAR) + 12;
  const W = L + PLOT_W + R;
  const ns = rows.map((r) => r.n);
  const xMin = Math.min(...ns);
  const xMax = Math.max(...ns);
  const x = (n: number) => L + (xMax === xMin ? 0.5 : (Math.log10(n) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * (W - L - R);
  const y = (v: number) => T + (1 - (Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (H - T - B);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  out.push(`<text x="${L}" y="18" font-size="14">distri bench lazy: latency against store size N (log-log)</text>`);
  for (let v = yMin; v <= yMax * 1.0001; v *= 10) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${yLabel(v)}</text>`);
  }
  for (const n of ns) out.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${x(n)}" y="${H - B + 18}" text-anchor="middle">N = ${n}</text>`);
  out.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`);
  let ly = T + 10;
  const legend = (name: string, color: string, dash = '') => {
    out.push(`<line x1="${W - R + 12}" x2="${W - R + 36}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2" ${dash}/><text x="${W - R + 42}" y="${ly + 4}">${name}</text>`);
    ly += 20;
  };
  for (const s of series) {
    const pts = rows.map((r, i) => [x(r.n), s.ys[i]!] as const).filter(([, v]) => Number.isFinite(v) && v > 0);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map(([px, v]) => `${px.toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
    for (const [px, v] of pts) out.push(`<circle cx="${px.toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`);
    legend(s.name, s.color);
  }
  if (sq) {
    const pts = rows.map((r) => `${x(r.n).toFixed(1)},${y(sq.readyMs * r.n).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="#7f7f7f" stroke-width="2" stroke-dasharray="5,4" points="${pts}"/>`);
    legend(SQ_LEGEND, '#7f7f7f', 'stroke-dasharray="5,4"');
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Adds `lazy` to the `distri bench` command (src/cli/commands/bench.ts). */
export function register(bench: Command): void {
  bench
    .command('lazy')
    .description('lazy-load benchmark of the /ro store: mount-to-ready, first access, exchange lookups, memory, against N packages; squashfuse and the kernel side by side')
    .option('--sizes <list>', 'store sizes N, comma-separated', '10,100,1000')
    .option('--work <dir>', 'where the package pool and stores are kept between runs', path.join(os.tmpdir(), 'distri-bench-lazy'))
    .option('--rounds <n>', 'mounts per N for mount-to-ready (median)', '5')
    .option('--probes <n>', 'packages probed per N', '20')
    .option('--json <file>', 'write every figure as JSON')
    .option('--svg <file>', 'write a plot of latency against N')
    .addHelpText('after', '\nExample (needs root, /dev/fuse, mksquashfs; squashfuse optional):\n  distri bench lazy --json bench/lazy.json --svg bench/lazy.svg')
    .action(async (o: { sizes: string; work: string; rounds: string; probes: string; json?: string; svg?: string }) => {
      const log = (s: string) => process.stderr.write(s + '\n');
      const sizes = o.sizes.split(',').map(Number);
      if (sizes.some((n) => !Number.isSafeInteger(n) || n <= 0)) throw new Error(`--sizes: positive integers, got ${o.sizes}`);
      const rounds = Math.max(1, Number(o.rounds) || 5);
      const probes = Math.max(1, Number(o.probes) || 20);
      const work = path.resolve(o.work);
      fs.mkdirSync(work, { recursive: true });
      const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-bench-lazy-mnt-'));
      const onSignal = () => {
        for (const m of live) spawnSync('umount', ['-l', m.dir], { timeout: 5000 });
        process.exit(130);
      };
      process.on('SIGINT', onSignal);
      try {
        const pool = await buildPool(work, Math.max(...sizes), log);
        const node = nodeStartMs();
        const rows: Row[] = [];
        for (const n of sizes) {
          log(`measuring N=${n}`);
          const row = await measureStore(work, scratch, pool.slice(0, n), rounds, probes, log);
          row.nodeStartMs = node;
          // Every mounter here works from the same warm page cache (none drops caches).
          row.separateMountsMs = await measureSeparateMounts(
            pool.slice(0, n).map((p) => path.join(work, 'pool', p.full + '.squashfs')),
            scratch,
            log,
          );
          rows.push(row);
        }
        // One image of median size, on its own.
        const bySize = pool
          .slice(0, Math.max(...sizes))
          .map((p) => ({ p, s: fs.statSync(path.join(work, 'pool', p.full + '.squashfs')).size }))
          .sort((a, b) => a.s - b.s);
        const mid = bySize[bySize.length >> 1]!;
        const image = path.join(work, 'pool', mid.p.full + '.squashfs');
        const singles: Single[] = [];
        for (const name of ['squashfuse', 'distri mount', 'kernel']) {
          if (name === 'squashfuse' && spawnSync('sh', ['-c', 'command -v squashfuse']).status !== 0) {
            singles.push({ name, readyMs: NaN, first: undefined as never, warm: undefined as never, error: 'squashfuse not installed' });
            continue;
          }
          singles.push(await measureSingle(name, image, mid.p.probe, scratch));
        }

        const med = (xs: ProbeResult[], k: keyof ProbeResult = 'total') => median(xs.map((x) => x[k] as number));
        const p90 = (xs: ProbeResult[]) =>
          pct(
            xs.map((x) => x.total),
            0.9,
          );
        process.stdout.write(`\ndistri bench lazy — ${os.cpus().length} CPUs, ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}; images uncompressed (distri's format), page cache warm\n\n`);
        process.stdout.write(
          table(
            [
              'N',
              'store MiB',
              'ready ms (median)',
              'daemon CPU at ready ms (median)',
              'in daemon ms',
              'first snapshot ms (from)',
              'exchange build ms',
              'ready, no index ms',
              'N squashfuse mounts ms',
              'images opened: index build / ready / ls / probes',
              'first byte ms (med/p90)',
              'warm ms',
              'image open ms (mean/max)',
              '/ro/bin/x first ms',
              '/ro/bin/x warm ms',
              'RSS idle/after MiB',
            ],
            rows.map((r) => [
              String(r.n),
              mib(r.storeBytes),
              f0(median(r.readyMs)),
              f0(median(r.readyCpuMs)),
              f0(r.daemonReadyAtMs),
              `${f2(r.firstScanMs)} (${r.firstSnapshot})`,
              f2(r.exchangeBuildMs),
              f0(r.coldIndexReadyMs),
              f0(r.separateMountsMs ?? NaN),
              `${r.imagesOpenedBuildingIndex} / ${r.imagesOpenedAtReady} / ${r.imagesOpenedAfterListing} / ${r.imagesOpenedAfterProbes}`,
              `${f2(med(r.first))} / ${f2(p90(r.first))}`,
              f2(med(r.warm)),
              `${f2(r.imageOpenMsMean)} / ${f2(r.imageOpenMsMax)}`,
              f2(med(r.exchangeFirst)),
              f2(med(r.exchangeWarm)),
              `${mib(r.rssIdle)} / ${mib(r.rssAfter)}`,
            ]),
          ) + '\n',
        );
        process.stdout.write(
          `\nNode start-up alone (node -e 0): ${f0(node)} ms. First byte = stat (lookups; the first below a package opens its image) + open + read of 1 byte, from a separate process.\n`,
        );
        process.stdout.write(`\nOne image of median size (${mib(mid.s)} MiB) mounted on its own:\n\n`);
        process.stdout.write(
          table(
            ['mounter', 'mount-to-ready ms', `× N=${Math.max(...sizes)} ms`, 'first byte ms', 'warm ms'],
            singles.map((s) => (s.error ? [s.name, `— (${s.error})`, '', '', ''] : [s.name, f0(s.readyMs), f0(s.readyMs * Math.max(...sizes)), f2(s.first.total), f2(s.warm.total)])),
          ) + '\n',
        );
        const doc = {
          when: new Date().toISOString(),
          node: process.version,
          cpus: os.cpus().length,
          cpu: os.cpus()[0]?.model,
          nodeStartMs: node,
          rows,
          singles,
          medianImage: { file: path.basename(image), bytes: mid.s },
        };
        if (o.json) fs.writeFileSync(o.json, JSON.stringify(doc, null, 1) + '\n');
        if (o.svg) fs.writeFileSync(o.svg, svgPlot(rows, singles));
      } finally {
        for (const m of [...live]) await unmountStore(m);
        // Only empty directories are removed: never recurse into something that may still be mounted.
        for (const d of fs.readdirSync(scratch)) {
          try {
            fs.rmdirSync(path.join(scratch, d));
          } catch (e) {
            log(`left ${path.join(scratch, d)}: ${(e as Error).message}`);
          }
        }
        try {
          fs.rmdirSync(scratch);
        } catch {
          // reported above
        }
        process.off('SIGINT', onSignal);
      }
    });
}
