/**
 * `distri bench build`: a package built in the sandbox (`distri build` against the bootstrap store,
 * every exec, header and library read through our FUSE /ro) against the same configure, make and
 * make install run directly on the host (the host's toolchain, in a temp dir), side by side in one
 * run, alternating which goes first, N repetitions.
 *
 * The host run takes the very steps the builder gives the sandbox (defaultSteps of the same
 * recipe, substituted with host paths for the source, build and destination dirs; the same prefix
 * /ro/<full>/out, --jobs, DESTDIR, SOURCE_DATE_EPOCH and the rpath part of LDFLAGS — the loader
 * part would point the host's test programs at a glibc package the host does not have), in the
 * same minimal environment (PATH, LDFLAGS, DESTDIR, SOURCE_DATE_EPOCH, nothing else).
 *
 * The sandbox run is the CLI, as a user runs it: a fresh $DISTRIROOT with the recipe, the source
 * served over HTTP from a local server (download and sha256 check included, as in a real build).
 * Its step times are the log's `step N: <duration>` lines; every stderr line is time-stamped as it
 * arrives, which splits the rest into: before step 0 (CLI start, deps, download, unpacking, up to
 * the SOURCE_DATE_EPOCH line; then mounting /ro) and after the last step (install directives, ELF
 * pass, debug split, wrappers, up to the `wrappers:` line; then the images and the unmount).
 *
 * What binds: user+sys CPU of each side from a cgroup around it (bench/cpu-group.ts), sampled every
 * 200 ms so each phase gets its share; the /ro daemon is moved into a subgroup as soon as it
 * appears, which gives its own CPU time; and its FUSE requests by operation (the daemon's
 * statistics file, DISTRI_FUSE_STATS, written as it exits).
 *
 * Prints a table of medians with ratios; --json writes every repetition. Timings are printed,
 * never asserted.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ARCH } from '../src/build/deps';
import { parseDuration } from '../src/build/duration';
import { defaultSteps, prefixOf, substituteArgv } from '../src/build/environment';
import { parseRecipe } from '../src/build/recipe';
import { newestMtime } from '../src/build/source';
import { bootstrapPaths } from '../test/helpers/bootstrap';
import { debianSourceFile } from '../test/helpers/debian-source';
import { CpuGroup, type CpuTime } from './cpu-group';
import { cli, median, table } from './lib';

interface PackageSpec {
  /** Debian source package and the upstream archive it carries (byte-identical to upstream's). */
  debian: string;
  file: string;
  sha256: string;
  version: string;
  /** The recipe's lines after source, hash and version. */
  recipe: string;
}

const PACKAGES: Record<string, PackageSpec> = {
  hello: {
    debian: 'hello',
    file: 'hello_2.10.orig.tar.gz',
    sha256: '31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b',
    version: '2.10-1',
    // hello 2.10's VPATH build needs lib/ in the build dir before make writes lib/*.h there; only
    // config.status's dependency-tracking command creates it (README, "Building packages").
    recipe: 'cbuilder: {\n  extra_configure_flag: "--enable-dependency-tracking"\n}\n',
  },
  nano: {
    debian: 'nano',
    file: 'nano_7.2.orig.tar.xz',
    sha256: '86f3442768bd2873cec693f83cdf80b4b444ad3cc14760b74361474fc87a4526',
    version: '7.2-1',
    recipe: 'cbuilder: {}\n\n# build dependencies:\ndep: "ncurses"\n',
  },
};

const SAMPLE_MS = 200;

/** A wall-clock interval with the CPU spent in it. */
interface Phase {
  name: string;
  ms: number;
  cpuMs: number;
  /** The /ro daemon's part of cpuMs (sandbox only). */
  daemonCpuMs?: number;
}

interface Rep {
  side: 'host' | 'sandbox';
  rep: number;
  /** Went first in its repetition. */
  first: boolean;
  totalMs: number;
  cpu: CpuTime;
  daemonCpu?: CpuTime;
  phases: Phase[];
  /** FUSE requests of the build's /ro daemon, by operation (sandbox only). */
  fuseOps?: Record<string, number>;
  loadAvg: number;
}

export interface BuildBenchOptions {
  pkg: string;
  store: string;
  reps: number;
  jobs: number;
  json?: string;
  keepLogs?: string;
  log(s: string): void;
}

const cpuSum = (c: CpuTime) => c.userMs + c.sysMs;

/** CPU at any moment of a run, linearly between samples. */
function cpuAt(samples: { t: number; cpu: number }[], t: number): number {
  if (samples.length === 0) return NaN;
  if (t <= samples[0]!.t) return samples[0]!.cpu;
  for (let i = 1; i < samples.length; i++) {
    const b = samples[i]!;
    if (t <= b.t) {
      const a = samples[i - 1]!;
      return b.t === a.t ? b.cpu : a.cpu + ((b.cpu - a.cpu) * (t - a.t)) / (b.t - a.t);
    }
  }
  return samples.at(-1)!.cpu;
}

function recipeText(spec: PackageSpec, source: string): string {
  return `source: "${source}"\nhash: "${spec.sha256}"\nversion: "${spec.version}"\n\n${spec.recipe}`;
}

/** configure, make, make install of the recipe's builder, directly on the host. */
function hostRun(o: BuildBenchOptions, spec: PackageSpec, tarball: string, rep: number, first: boolean, scratch: string): Rep {
  const full = `${o.pkg}-${ARCH}-${spec.version}`;
  const recipe = parseRecipe(recipeText(spec, 'http://unused/'));
  const dir = fs.mkdtempSync(path.join(scratch, 'host-'));
  const src = path.join(dir, 'src');
  const build = path.join(dir, 'build');
  const dest = path.join(dir, 'dest');
  for (const d of [src, build, dest]) fs.mkdirSync(d);
  const group = CpuGroup.create(`distri-bench-build-${process.pid}-host${rep}`);
  const logFd = fs.openSync(path.join(dir, 'host.log'), 'w');
  const phases: Phase[] = [];
  const t0 = process.hrtime.bigint();
  const run = (name: string, argv: string[], env: Record<string, string>, cwd: string) => {
    const before = group ? cpuSum(group.usage()) : NaN;
    const t = process.hrtime.bigint();
    const cmd = group ? group.wrap(argv) : argv;
    fs.writeSync(logFd, `${name}: ${argv.join(' ')}\n`);
    const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, env, stdio: ['ignore', logFd, logFd] });
    if (r.status !== 0) throw new Error(`host: ${argv.join(' ')} failed (status ${r.status ?? r.signal}); see ${path.join(dir, 'host.log')}`);
    phases.push({ name, ms: Number(process.hrtime.bigint() - t) / 1e6, cpuMs: group ? cpuSum(group.usage()) - before : NaN });
  };
  try {
    const hostPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
    run('before step 0', ['tar', '-x', '-f', tarball, '-C', src, '--strip-components=1'], { PATH: hostPath }, dir);
    const sde = newestMtime(src);
    const steps = defaultSteps(recipe.builder, { jobs: o.jobs, writableSourcedir: false, inTreeBuild: false });
    const ctx = { fullName: full, pkg: o.pkg, sourceDir: src, buildDir: build, destDir: dest, jobs: o.jobs, deps: [] };
    const env = { PATH: hostPath, LDFLAGS: `-Wl,-rpath=/ro/${full}/lib`, DESTDIR: dest, SOURCE_DATE_EPOCH: String(sde) };
    steps.forEach((raw, n) => run(`step ${n}`, substituteArgv(raw, ctx), env, build));
    if (!fs.existsSync(path.join(dest, prefixOf(full)))) throw new Error(`host: nothing installed below ${path.join(dest, prefixOf(full))}`);
    const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = group ? group.usage() : { userMs: NaN, sysMs: NaN };
    return { side: 'host', rep, first, totalMs, cpu, phases, loadAvg: os.loadavg()[0]! };
  } finally {
    fs.closeSync(logFd);
    if (o.keepLogs) fs.copyFileSync(path.join(dir, 'host.log'), path.join(o.keepLogs, `host-${rep}.log`));
    group?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether pid is a `distri fuse` daemon (its argv names the fuse command and a --store). */
function isFuseDaemon(pid: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('fuse') && argv.includes('--store');
  } catch {
    return false;
  }
}

/** `distri build` of the recipe in a fresh $DISTRIROOT, its stderr lines time-stamped. */
async function sandboxRun(o: BuildBenchOptions, spec: PackageSpec, url: string, rep: number, first: boolean, scratch: string): Promise<Rep> {
  const root = fs.mkdtempSync(path.join(scratch, 'sandbox-'));
  fs.mkdirSync(path.join(root, 'pkgs', o.pkg), { recursive: true });
  fs.writeFileSync(path.join(root, 'pkgs', o.pkg, 'build.textproto'), recipeText(spec, url));
  const statsFile = path.join(root, 'fuse-stats.json');
  const group = CpuGroup.create(`distri-bench-build-${process.pid}-sandbox${rep}`);
  const daemonGroup = group?.child('ro-daemon');
  const argv = [process.execPath, cli, 'build', '--distriroot', root, '--pkg', o.pkg, '--store', o.store, '--jobs', String(o.jobs), '--out', path.join(root, 'out')];
  const cmd = group ? group.wrap(argv) : argv;
  const samples: { t: number; cpu: number; daemon: number }[] = [];
  const lines: { t: number; line: string }[] = [];
  const t0 = process.hrtime.bigint();
  const now = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const sample = () => {
    if (!group || !daemonGroup) return;
    for (const pid of group.pids()) {
      if (isFuseDaemon(pid)) {
        try {
          daemonGroup.add(pid);
        } catch {
          // it exited meanwhile
        }
      }
    }
    samples.push({ t: now(), cpu: cpuSum(group.usage()), daemon: cpuSum(daemonGroup.usage()) });
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  let status: number | null;
  try {
    status = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, DISTRI_FUSE_STATS: statsFile }, stdio: ['ignore', 'ignore', 'pipe'] });
      let buf = '';
      child.stderr!.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines.push({ t: now(), line: buf.slice(0, nl) });
          buf = buf.slice(nl + 1);
        }
      });
      child.on('error', reject);
      child.on('close', (code) => resolve(code));
    });
  } finally {
    clearInterval(timer);
  }
  const totalMs = now();
  sample();
  try {
    if (status !== 0)
      throw new Error(
        `distri build ${o.pkg} failed (status ${status}):\n${lines
          .slice(-30)
          .map((l) => l.line)
          .join('\n')}`,
      );
    const cpu = group ? group.usage() : { userMs: NaN, sysMs: NaN };
    const daemonCpu = daemonGroup ? daemonGroup.usage() : undefined;
    const total = samples.map((s) => ({ t: s.t, cpu: s.cpu }));
    const daemon = samples.map((s) => ({ t: s.t, cpu: s.daemon }));
    const phase = (name: string, from: number, to: number): Phase => ({
      name,
      ms: to - from,
      cpuMs: cpuAt(total, to) - cpuAt(total, from),
      daemonCpuMs: cpuAt(daemon, to) - cpuAt(daemon, from),
    });
    const steps: { n: number; start: number; end: number }[] = [];
    for (const { t, line } of lines) {
      const m = /^step (\d+): (\S+) \(command: /.exec(line);
      if (!m) continue;
      const ms = parseDuration(m[2]!);
      if (ms === undefined) throw new Error(`cannot read the duration of: ${line}`);
      steps.push({ n: Number(m[1]), start: t - ms, end: t });
    }
    if (steps.length === 0) throw new Error('no `step N:` lines in the build log');
    const at = (re: RegExp) => lines.find((l) => re.test(l.line))?.t;
    const sourced = at(/^SOURCE_DATE_EPOCH=/) ?? steps[0]!.start;
    const afterElf = at(/^wrappers: /) ?? at(new RegExp(`^${o.pkg} runtime deps: `)) ?? totalMs;
    const last = steps.at(-1)!.end;
    const phases: Phase[] = [
      phase('before step 0', 0, steps[0]!.start),
      phase('  CLI start, deps, source', 0, sourced),
      phase('  mount /ro', sourced, steps[0]!.start),
      ...steps.map((s) => phase(`step ${s.n}`, s.start, s.end)),
      phase('after the last step', last, totalMs),
      phase('  install, ELF, wrappers', last, afterElf),
      phase('  images, unmount', afterElf, totalMs),
    ];
    let fuseOps: Record<string, number> | undefined;
    try {
      fuseOps = (JSON.parse(fs.readFileSync(statsFile, 'utf8')) as { ops?: Record<string, number> }).ops;
    } catch {
      o.log(`sandbox rep ${rep}: the /ro daemon left no statistics in ${statsFile}`);
    }
    return { side: 'sandbox', rep, first, totalMs, cpu, daemonCpu, phases, fuseOps, loadAvg: os.loadavg()[0]! };
  } finally {
    if (o.keepLogs) {
      const log = path.join(root, '_build', o.pkg, `build-${ARCH}-${spec.version}.log`);
      if (fs.existsSync(log)) fs.copyFileSync(log, path.join(o.keepLogs, `sandbox-${rep}.log`));
    }
    group?.remove();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Serves one file at /<name> on 127.0.0.1. */
async function serveFile(file: string): Promise<{ url: string; close(): void }> {
  const name = path.basename(file);
  const server = http.createServer((req, res) => {
    if (req.url !== `/${name}`) {
      res.writeHead(404);
      res.end();
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`, close: () => server.close() };
}

export async function benchBuild(o: BuildBenchOptions): Promise<Rep[]> {
  const spec = PACKAGES[o.pkg];
  if (!spec) throw new Error(`--pkg ${o.pkg}: one of ${Object.keys(PACKAGES).join(', ')}`);
  if (!fs.existsSync(path.join(o.store, '.distri-bootstrap.json'))) throw new Error(`${o.store}: not a bootstrap store (distri bootstrap --store ${o.store} makes one)`);
  const src = debianSourceFile(spec.debian, spec.file, spec.sha256);
  if (!('path' in src)) throw new Error(`the source of ${o.pkg}: ${src.why}`);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-bench-build-'));
  const server = await serveFile(src.path);
  const reps: Rep[] = [];
  const loadBefore = os.loadavg();
  try {
    for (let r = 0; r < o.reps; r++) {
      const hostFirst = r % 2 === 0;
      for (const side of hostFirst ? (['host', 'sandbox'] as const) : (['sandbox', 'host'] as const)) {
        const first = (side === 'host') === hostFirst;
        o.log(`rep ${r + 1}/${o.reps}: ${side} (load average ${os.loadavg()[0]!.toFixed(2)})`);
        const rep = side === 'host' ? hostRun(o, spec, src.path, r, first, scratch) : await sandboxRun(o, spec, server.url, r, first, scratch);
        o.log(`  ${(rep.totalMs / 1000).toFixed(1)} s, CPU ${(cpuSum(rep.cpu) / 1000).toFixed(1)} s${rep.daemonCpu ? ` (/ro daemon ${(cpuSum(rep.daemonCpu) / 1000).toFixed(1)} s)` : ''}`);
        reps.push(rep);
      }
    }
  } finally {
    server.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  report(o, spec, reps, loadBefore);
  return reps;
}

function report(o: BuildBenchOptions, spec: PackageSpec, reps: Rep[], loadBefore: number[]): void {
  const host = reps.filter((r) => r.side === 'host');
  const box = reps.filter((r) => r.side === 'sandbox');
  const s = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
  const med = (rs: Rep[], name: string, f: (p: Phase) => number | undefined) =>
    median(
      rs
        .map((r) => r.phases.find((p) => p.name === name))
        .map((p) => (p ? (f(p) ?? NaN) : NaN))
        .filter((x) => !Number.isNaN(x)),
    );
  const names = [...new Set(box[0]!.phases.map((p) => p.name))];
  const stepNames = names.filter((n) => n.startsWith('step '));
  const stepsSum = (r: Rep, f: (p: Phase) => number) => r.phases.filter((p) => p.name.startsWith('step ')).reduce((a, p) => a + f(p), 0);
  const rows: string[][] = names.map((n) => {
    const hw = med(host, n, (p) => p.ms);
    const bw = med(box, n, (p) => p.ms);
    const hc = med(host, n, (p) => p.cpuMs);
    const bc = med(box, n, (p) => p.cpuMs);
    return [n, s(hw), s(bw), ratio(bw, hw), s(hc), s(bc), ratio(bc, hc), s(med(box, n, (p) => p.daemonCpuMs))];
  });
  const tot = (rs: Rep[], f: (r: Rep) => number) => median(rs.map(f));
  rows.push(
    [
      'steps together',
      s(tot(host, (r) => stepsSum(r, (p) => p.ms))),
      s(tot(box, (r) => stepsSum(r, (p) => p.ms))),
      ratio(
        tot(box, (r) => stepsSum(r, (p) => p.ms)),
        tot(host, (r) => stepsSum(r, (p) => p.ms)),
      ),
      s(tot(host, (r) => stepsSum(r, (p) => p.cpuMs))),
      s(tot(box, (r) => stepsSum(r, (p) => p.cpuMs))),
      ratio(
        tot(box, (r) => stepsSum(r, (p) => p.cpuMs)),
        tot(host, (r) => stepsSum(r, (p) => p.cpuMs)),
      ),
      s(tot(box, (r) => stepsSum(r, (p) => p.daemonCpuMs ?? NaN))),
    ],
    [
      'whole build',
      s(tot(host, (r) => r.totalMs)),
      s(tot(box, (r) => r.totalMs)),
      ratio(
        tot(box, (r) => r.totalMs),
        tot(host, (r) => r.totalMs),
      ),
      s(tot(host, (r) => cpuSum(r.cpu))),
      s(tot(box, (r) => cpuSum(r.cpu))),
      ratio(
        tot(box, (r) => cpuSum(r.cpu)),
        tot(host, (r) => cpuSum(r.cpu)),
      ),
      s(tot(box, (r) => (r.daemonCpu ? cpuSum(r.daemonCpu) : NaN))),
    ],
  );
  const user = (rs: Rep[]) => tot(rs, (r) => r.cpu.userMs);
  const sys = (rs: Rep[]) => tot(rs, (r) => r.cpu.sysMs);
  const full = `${o.pkg}-${ARCH}-${spec.version}`;
  process.stdout.write(
    `\ndistri bench build — ${full} (Debian's ${spec.file}), --jobs ${o.jobs}, median of ${o.reps} (host and sandbox alternating which goes first); ` +
      `${os.cpus().length} CPUs, load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} after; Node ${process.version}\n` +
      `host: ${stepNames.length} steps with the host's toolchain in a temp dir; sandbox: distri build against ${o.store}\n\n`,
  );
  process.stdout.write(table(['phase', 'host s', 'sandbox s', 'sandbox/host', 'host CPU s', 'sandbox CPU s', 'CPU ratio', 'of which /ro daemon'], rows) + '\n');
  process.stdout.write(
    `\nCPU user/sys: host ${s(user(host))}/${s(sys(host))} s, sandbox ${s(user(box))}/${s(sys(box))} s` +
      ` (/ro daemon ${s(tot(box, (r) => r.daemonCpu?.userMs ?? NaN))}/${s(tot(box, (r) => r.daemonCpu?.sysMs ?? NaN))} s)\n`,
  );
  const ops = new Map<string, number[]>();
  for (const r of box) for (const [k, v] of Object.entries(r.fuseOps ?? {})) ops.set(k, [...(ops.get(k) ?? []), v]);
  if (ops.size > 0) {
    const byOp = [...ops].map(([k, v]) => [k, median(v)] as const).sort((a, b) => b[1] - a[1]);
    const all = byOp.reduce((a, [, v]) => a + v, 0);
    const stepsMs = tot(box, (r) => stepsSum(r, (p) => p.ms));
    process.stdout.write(
      `FUSE requests of the build's /ro daemon: ${all.toFixed(0)} (${((all / stepsMs) * 1000).toFixed(0)} per second of step time): ${byOp.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}\n`,
    );
  }
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ pkg: full, jobs: o.jobs, cpus: os.cpus().length, loadBefore, loadAfter: os.loadavg(), node: process.version, reps }, null, 2) + '\n');
}

/** `distri bench build` (dispatched by src/cli/commands/bench.ts). */
export function register(bench: Command): void {
  bench
    .command('build')
    .description("a package's configure, make and make install on the host against distri build in the sandbox (FUSE /ro), side by side")
    .option('--pkg <name>', `the package: ${Object.keys(PACKAGES).join(' or ')} (Debian's upstream archive, fetched once into fixtures/build/sources)`, 'hello')
    .option('--store <dir>', 'the bootstrap store the sandbox takes its build deps from', bootstrapPaths().store)
    .option('--reps <n>', 'repetitions of each side (median)', '3')
    .option('--jobs <n>', 'make -jN on both sides', String(os.availableParallelism()))
    .option('--keep-logs <dir>', "copy each run's full log there")
    .option('--json <file>', 'write every repetition (phases, CPU, FUSE requests) as JSON')
    .addHelpText(
      'after',
      "\nExamples (need root, /dev/fuse, unshare, the host's gcc and make, and a bootstrap store: `node test/run.js bootstrap` or `distri bootstrap` makes one):\n" +
        '  distri bench build                       # GNU hello 2.10, 3 reps each side\n' +
        '  distri bench build --pkg nano --reps 1 --json /tmp/nano.json',
    )
    .action(async (f: { pkg: string; store: string; reps: string; jobs: string; keepLogs?: string; json?: string }) => {
      const reps = Number(f.reps);
      const jobs = Number(f.jobs);
      if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps needs a positive integer, got ${f.reps}`);
      if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs needs a positive integer, got ${f.jobs}`);
      if (f.keepLogs) fs.mkdirSync(f.keepLogs, { recursive: true });
      await benchBuild({
        pkg: f.pkg,
        store: path.resolve(f.store),
        reps,
        jobs,
        json: f.json && path.resolve(f.json),
        keepLogs: f.keepLogs && path.resolve(f.keepLogs),
        log: (s) => process.stderr.write(s + '\n'),
      });
    });
}
