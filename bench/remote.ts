/**
 * `distri bench remote`: what reading a package lazily over HTTP ranges costs, against distri's way
 * of downloading the whole image before the first byte.
 *
 * The packages are real: Debian bookworm's coreutils, libc6, perl-base, bash, util-linux, dpkg, tar
 * and apt, taken file by file (their dpkg file lists) from the Debian root filesystem the tests
 * build under fixtures/build/rootfs, laid out the distri way (`out/` without the /usr prefix, `bin/`
 * links to the programs) and packed like distri (uncompressed, 128 KiB blocks, no fragments). They
 * form a repository (`distri mirror` writes its index) served by nginx (`distri export`'s static
 * server where nginx is not installed), behind a proxy that adds a round-trip delay
 * (test/helpers/fault-proxy.ts: every answer is held back by the delay, a new connection's first
 * answer by twice that; `tc netem` on loopback would slow every other user of the machine's
 * loopback too). The proxy is a Node process: it caps throughput well below nginx's, which makes
 * the whole-image download slower than it would be without it (see bench/README-remote.md).
 *
 * For each delay (default 0, 10, 50 ms) and read-ahead (default 0 and 1 chunk), with an empty local
 * store, a fresh `distri fuse --repo URL --autodownload` mount and an empty chunk cache each time:
 * - read one file: `cat /ro/<coreutils>/out/bin/ls` (time to the first byte and to the last);
 * - run one program: `/ro/<coreutils>/out/bin/ls --version` (time to its first output byte);
 * bytes of the image fetched and requests made are counted at the proxy (after the mount, so the
 * index, fetched once at mount, is not counted). Against, distri's way: a GET of the whole image
 * through the same proxy, hashed and written to a file, plus the same command's time to its first
 * byte on the unpacked files on local disk (a lower bound: distri then still syncs, renames and
 * opens the image). That local time is the cost of starting the process, which is in every lazy
 * figure too.
 *
 * Prints a table with ratios; --json writes every figure. Timings are printed, never asserted.
 * Every mount is unmounted again, also when a step fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFaultProxy } from '../test/helpers/fault-proxy';
import { startNginx } from '../test/helpers/repo';
import { cli, have, median, table } from './lib';

const DISTRI_FLAGS = ['-noI', '-noD', '-noF', '-noX', '-no-fragments', '-b', '131072', '-all-root', '-quiet', '-no-progress'];
/** Debian packages of the root filesystem that form the repository; the first is probed. */
const DEBIAN_PACKAGES = ['coreutils', 'libc6:amd64', 'perl-base', 'bash', 'util-linux', 'dpkg', 'tar', 'apt'];
const REPO_FORMAT = 'remote-bench-repo-v1';

export interface RemoteBenchOptions {
  work: string;
  rootfs: string;
  delays: number[];
  readAheads: number[];
  rounds: number;
  json?: string;
  log: (s: string) => void;
}

interface Built {
  full: string;
  dir: string;
  size: number;
}

/** The dpkg version as a distri full name: `<pkg>-amd64-<upstream>-1`. */
function fullName(rootfs: string, pkg: string): string {
  const status = fs.readFileSync(path.join(rootfs, 'var/lib/dpkg/status'), 'utf8');
  const bare = pkg.replace(/:amd64$/, '');
  const block = status.split('\n\n').find((b) => b.startsWith(`Package: ${bare}\n`));
  const version = /\nVersion: (.*)/.exec(block ?? '')?.[1];
  if (!version) throw new Error(`${pkg}: not in ${rootfs}'s dpkg status`);
  const upstream = version
    .replace(/^\d+:/, '')
    .replace(/-[^-]*$/, '')
    .replace(/[^A-Za-z0-9.]/g, '.');
  return `${bare}-amd64-${upstream}-1`;
}

/** Copies one Debian package's files into a distri package tree. */
function buildPackageTree(rootfs: string, pkg: string, dest: string): void {
  const list = fs
    .readFileSync(path.join(rootfs, 'var/lib/dpkg/info', `${pkg}.list`), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && l !== '/.');
  for (const p of list) {
    const src = path.join(rootfs, p);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(src);
    } catch {
      continue; // listed but removed (diversions, docs excluded by dpkg config)
    }
    if (st.isDirectory() || (st.isSymbolicLink() && fs.statSync(src, { throwIfNoEntry: false })?.isDirectory())) continue;
    const rel = p.replace(/^\/usr\//, '/').replace(/^\//, '');
    const to = rel.startsWith('etc/') ? path.join(dest, rel) : path.join(dest, 'out', rel);
    if (
      fs.existsSync(to) ||
      (() => {
        try {
          fs.lstatSync(to);
          return true;
        } catch {
          return false;
        }
      })()
    )
      continue;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), to);
    else if (st.isFile()) {
      fs.copyFileSync(src, to);
      fs.chmodSync(to, st.mode & 0o7777);
    }
  }
  for (const d of ['bin', 'sbin']) {
    const dir = path.join(dest, 'out', d);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) {
      fs.mkdirSync(path.join(dest, 'bin'), { recursive: true });
      const link = path.join(dest, 'bin', name);
      if (!fs.existsSync(link)) fs.symlinkSync(`../out/${d}/${name}`, link);
    }
  }
}

/** The repository (built once under work/, reused while its stamp matches). */
function buildRepo(o: RemoteBenchOptions): { repo: string; packages: Built[] } {
  const repo = path.join(o.work, 'repo');
  const trees = path.join(o.work, 'trees');
  const stamp = path.join(o.work, 'stamp.json');
  const fulls = DEBIAN_PACKAGES.map((p) => fullName(o.rootfs, p));
  const want = JSON.stringify({ format: REPO_FORMAT, fulls });
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== want) {
    fs.rmSync(repo, { recursive: true, force: true });
    fs.rmSync(trees, { recursive: true, force: true });
    fs.mkdirSync(path.join(repo, 'pkg'), { recursive: true });
    DEBIAN_PACKAGES.forEach((pkg, i) => {
      const full = fulls[i]!;
      o.log(`packing ${full} from ${o.rootfs}`);
      const dir = path.join(trees, full);
      buildPackageTree(o.rootfs, pkg, dir);
      const img = path.join(repo, 'pkg', `${full}.squashfs`);
      const r = spawnSync('mksquashfs', [dir, img, ...DISTRI_FLAGS], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mksquashfs ${dir}: ${r.stderr}`);
      const version = full.split('-amd64-')[1]!;
      fs.writeFileSync(path.join(repo, 'pkg', `${full}.meta.textproto`), `source_pkg: "${pkg.replace(/:amd64$/, '')}"\nversion: "${version}"\n`);
    });
    const m = spawnSync(process.execPath, [cli, 'mirror', repo], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`distri mirror: ${m.stderr}`);
    fs.writeFileSync(stamp, want);
  }
  return { repo, packages: fulls.map((full) => ({ full, dir: path.join(trees, full), size: fs.statSync(path.join(repo, 'pkg', `${full}.squashfs`)).size })) };
}

/** Runs `sh -c cmd`; milliseconds to its first stdout byte and to its exit. */
function timed(cmd: string): Promise<{ firstMs: number; totalMs: number; bytes: number; status: number | null }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const child = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let firstMs = NaN;
    let bytes = 0;
    child.stdout!.on('data', (d: Buffer) => {
      if (bytes === 0) firstMs = ms();
      bytes += d.length;
    });
    child.on('close', (status) => resolve({ firstMs, totalMs: ms(), bytes, status }));
  });
}

/**
 * distri's way: GET of the whole image on a fresh connection, hashed and written to a file as it
 * arrives (not synced, not renamed, not opened: the earliest its first byte could be served).
 */
function download(url: string, file: string): Promise<{ ms: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const h = crypto.createHash('sha256');
    const fd = fs.openSync(file, 'w');
    let bytes = 0;
    http
      .get(url, { agent: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}`));
        res.on('data', (d: Buffer) => {
          h.update(d);
          fs.writeSync(fd, d);
          bytes += d.length;
        });
        res.on('end', () => {
          fs.closeSync(fd);
          resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes, sha256: h.digest('hex') });
        });
      })
      .on('error', reject);
  });
}

interface Probe {
  name: string;
  /** The command, with MNT for the mountpoint's package dir (or the local tree). */
  cmd: (pkgDir: string) => string;
}

const PROBES: Probe[] = [
  { name: 'read one file (cat out/bin/ls)', cmd: (d) => `cat ${d}/out/bin/ls` },
  { name: 'run one program (ls --version)', cmd: (d) => `${d}/out/bin/ls --version` },
];

interface Row {
  delayMs: number;
  readAhead: number;
  probe: string;
  imageBytes: number;
  fetchedBytes: number;
  requests: number;
  firstByteMs: number;
  lastByteMs: number;
  wholeImageMs: number;
  /**
   * The whole image straight from nginx, without the proxy, plus the two round trips the delay
   * would add (connection, request): distri's best case, since the Node proxy slows a big download
   * more than the few small requests of a lazy read. NaN without nginx.
   */
  wholeDirectMs: number;
  localFirstByteMs: number;
}

export async function benchRemote(o: RemoteBenchOptions): Promise<Row[]> {
  for (const tool of ['mksquashfs']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not installed`);
  if (!fs.existsSync(path.join(o.rootfs, 'var/lib/dpkg/status'))) throw new Error(`${o.rootfs} is not a Debian root filesystem (run the tests once to build fixtures/build/rootfs, or pass --rootfs)`);
  fs.mkdirSync(o.work, { recursive: true });
  const { repo, packages } = buildRepo(o);
  const target = packages[0]!;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-bench-remote-'));
  // nginx (as the tests and a real deployment serve a repo) when installed, else distri export's server.
  const nginx = have('nginx') ? await startNginx(repo) : undefined;
  const proxy = await startFaultProxy(nginx ? { upstream: nginx.url } : { dir: repo });
  const server = nginx ? 'nginx' : "distri export's static server";
  const mounted = new Set<string>();
  const rows: Row[] = [];
  try {
    const imageUrl = `${proxy.url}/pkg/${target.full}.squashfs`;
    let n = 0;
    /** One cold lazy run: a fresh store, cache and mount; the probe; the proxy's counts. */
    const lazyRun = async (p: Probe, readAhead: number) => {
      const store = path.join(scratch, `store${++n}`);
      const mnt = path.join(scratch, `mnt${n}`);
      fs.mkdirSync(store);
      fs.mkdirSync(mnt);
      const m = spawnSync(process.execPath, [cli, 'fuse', '--store', store, '--repo', proxy.url, '--autodownload', '--read-ahead', String(readAhead), mnt], { encoding: 'utf8', timeout: 60_000 });
      if (m.status !== 0) throw new Error(`distri fuse: ${m.stderr}`);
      mounted.add(mnt);
      try {
        await proxy.resetCounters();
        const t = await timed(p.cmd(path.join(mnt, target.full)));
        if (t.status !== 0 || t.bytes === 0) throw new Error(`${p.cmd(path.join(mnt, target.full))}: status ${t.status}, ${t.bytes} bytes`);
        const c = await proxy.counters();
        return { first: t.firstMs, last: t.totalMs, bytes: c.bytes, requests: c.requests };
      } finally {
        spawnSync(process.execPath, [cli, 'unmount', mnt], { timeout: 30_000 });
        mounted.delete(mnt);
        fs.rmSync(store, { recursive: true, force: true });
        fs.rmdirSync(mnt);
      }
    };
    for (const delay of o.delays) {
      await proxy.setDelay(delay);
      // Round by round, every contender once, so that the machine's load hits all of them alike.
      const whole: number[] = [];
      const wholeDirect: number[] = [];
      const local = new Map<string, number[]>(PROBES.map((p) => [p.name, []]));
      const lazy = new Map<string, { first: number; last: number; bytes: number; requests: number }[]>();
      for (let r = 0; r < o.rounds; r++) {
        const file = path.join(scratch, 'whole.squashfs');
        const d = await download(imageUrl, file);
        fs.rmSync(file);
        if (d.bytes !== target.size) throw new Error(`whole-image download: ${d.bytes} of ${target.size} bytes`);
        whole.push(d.ms);
        if (nginx) {
          const direct = await download(`${nginx.url}pkg/${target.full}.squashfs`, file);
          fs.rmSync(file);
          wholeDirect.push(direct.ms + 2 * delay);
        }
        for (const p of PROBES) local.get(p.name)!.push((await timed(p.cmd(target.dir))).firstMs);
        for (const readAhead of o.readAheads) {
          for (const p of PROBES) {
            const k = `${readAhead}\0${p.name}`;
            lazy.set(k, [...(lazy.get(k) ?? []), await lazyRun(p, readAhead)]);
          }
        }
      }
      for (const readAhead of o.readAheads) {
        for (const p of PROBES) {
          const runs = lazy.get(`${readAhead}\0${p.name}`)!;
          const row: Row = {
            delayMs: delay,
            readAhead,
            probe: p.name,
            imageBytes: target.size,
            fetchedBytes: median(runs.map((x) => x.bytes)),
            requests: median(runs.map((x) => x.requests)),
            firstByteMs: median(runs.map((x) => x.first)),
            lastByteMs: median(runs.map((x) => x.last)),
            wholeImageMs: median(whole),
            wholeDirectMs: wholeDirect.length ? median(wholeDirect) : NaN,
            localFirstByteMs: median(local.get(p.name)!),
          };
          rows.push(row);
          o.log(
            `delay ${delay} ms, read-ahead ${readAhead}, ${p.name}: ${(row.fetchedBytes / 1024).toFixed(0)} KiB in ${row.requests} requests, first byte ${row.firstByteMs.toFixed(1)} ms (whole image ${row.wholeImageMs.toFixed(1)} + ${row.localFirstByteMs.toFixed(1)} ms)`,
          );
        }
      }
    }
  } finally {
    for (const mnt of mounted) spawnSync('umount', ['-l', mnt], { timeout: 10_000 });
    await proxy.close();
    await nginx?.stop();
    // Never recursive: a mountpoint that failed to unmount must not be walked into.
    for (const d of fs.readdirSync(scratch)) {
      try {
        fs.rmdirSync(path.join(scratch, d));
      } catch (e) {
        o.log(`left ${path.join(scratch, d)}: ${(e as Error).message}`);
      }
    }
    fs.rmdirSync(scratch);
  }

  const f1 = (x: number) => x.toFixed(1);
  process.stdout.write(
    `\ndistri bench remote — ${target.full} (${(target.size / 1048576).toFixed(1)} MiB image, uncompressed) from a repo of ${packages.length} Debian packages served by ${server} behind the delaying proxy; ` +
      `${os.cpus().length} CPUs (load average ${os.loadavg()[0]!.toFixed(1)}), Node ${process.version}; median of ${o.rounds}, contenders interleaved round by round\n` +
      `whole image: first byte = download + the same command on local files (${PROBES.map((p) => `${p.name.split(' (')[0]}: ${f1(median(rows.filter((r) => r.probe === p.name).map((r) => r.localFirstByteMs)))} ms`).join(', ')})\n\n`,
  );
  process.stdout.write(
    table(
      [
        'probe',
        'RTT ms',
        'read-ahead',
        'fetched KiB',
        'of image',
        'requests',
        'lazy: first byte ms',
        'last byte ms',
        'whole: download ms',
        'first byte ms',
        'lazy / whole',
        'whole, direct: first byte ms',
        'lazy / whole direct',
      ],
      rows.map((r) => {
        const whole = r.wholeImageMs + r.localFirstByteMs;
        const direct = r.wholeDirectMs + r.localFirstByteMs;
        return [
          r.probe,
          String(r.delayMs),
          String(r.readAhead),
          (r.fetchedBytes / 1024).toFixed(0),
          `${((100 * r.fetchedBytes) / r.imageBytes).toFixed(1)} %`,
          String(r.requests),
          f1(r.firstByteMs),
          f1(r.lastByteMs),
          f1(r.wholeImageMs),
          f1(whole),
          `${(r.firstByteMs / whole).toFixed(2)}x`,
          f1(direct),
          `${(r.firstByteMs / direct).toFixed(2)}x`,
        ];
      }),
    ) + '\n',
  );
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ image: target.full, imageBytes: target.size, packages: packages.map((p) => p.full), rows }, null, 2) + '\n');
  return rows;
}

/** `distri bench remote` (dispatched by src/cli/commands/bench.ts). */
export function register(bench: import('commander').Command): void {
  bench
    .command('remote')
    .description('lazy reads over HTTP ranges (distri fuse --repo URL --autodownload) against downloading the whole image first, at added round-trip delays')
    .option('--work <dir>', 'where the repository of real Debian packages is kept between runs', path.join(os.tmpdir(), 'distri-bench-remote'))
    .option('--rootfs <dir>', 'the Debian root filesystem the packages are taken from (the tests build it)', path.resolve(__dirname, '..', '..', 'fixtures', 'build', 'rootfs'))
    .option('--delays <ms>', 'added round-trip delays, comma-separated', '0,10,50')
    .option('--read-ahead <list>', 'read-ahead chunk counts to compare, comma-separated', '0,1')
    .option('--rounds <n>', 'runs per figure (median)', '3')
    .option('--json <file>', 'write every figure as JSON')
    .addHelpText('after', '\nExample (needs root, /dev/fuse, mksquashfs, and fixtures/build/rootfs from the tests):\n  distri bench remote --json bench/remote.json')
    .action(async (o: { work: string; rootfs: string; delays: string; readAhead: string; rounds: string; json?: string }) => {
      const ints = (name: string, v: string) => {
        const xs = v.split(',').map(Number);
        if (xs.some((n) => !Number.isSafeInteger(n) || n < 0)) throw new Error(`${name}: whole numbers, comma-separated, got ${v}`);
        return xs;
      };
      await benchRemote({
        work: path.resolve(o.work),
        rootfs: path.resolve(o.rootfs),
        delays: ints('--delays', o.delays),
        readAheads: ints('--read-ahead', o.readAhead),
        rounds: Math.max(1, Number(o.rounds) || 3),
        json: o.json && path.resolve(o.json),
        log: (s) => process.stderr.write(s + '\n'),
      });
    });
}
