/**
 * `distri demo`: the README's main command. Builds the demo package store (fixtures/demo-store,
 * packed by this project's own writer) into a temp dir unless it is there already, mounts it the
 * way distri mounts /ro (a background daemon), shows /ro and /ro/bin, runs a program through an
 * exchange link, prints the lazy-load figures (images known vs opened, before and after), and
 * unmounts. Everything it starts is stopped and removed again, also when a step fails.
 */
import { execFile, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { ctlRequest } from '../../vfs/ctl';

const STEP_MS = 30_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = STEP_MS): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? (err as unknown as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function repoRoot(): string {
  // dist/src/cli/commands/demo.js → the repository root
  return path.resolve(__dirname, '..', '..', '..', '..');
}

/** The demo store directory for the current fixture sources (rebuilt when they change). */
function storeDir(fixtures: string): string {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(fixtures).sort()) h.update(f).update(fs.readFileSync(path.join(fixtures, f)));
  return path.join(os.tmpdir(), `distri-demo-store-${h.digest('hex').slice(0, 12)}`);
}

async function buildStore(fixtures: string, out: string, say: (s: string) => void): Promise<void> {
  if (fs.existsSync(path.join(out, '.built'))) return;
  say(`building the demo store into ${out} (fixtures/demo-store/build.sh)`);
  const tmp = `${out}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const r = await run('sh', [path.join(fixtures, 'build.sh'), tmp], 120_000);
  if (r.code !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`building the demo store failed: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  if (r.stderr.trim()) process.stderr.write(r.stderr);
  fs.writeFileSync(path.join(tmp, '.built'), '');
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('build a small package store, mount it like /ro, look around, run a program from it, show the lazy-load figures, unmount')
    .option('--store <dir>', 'use this store instead of building the demo store')
    .action(async (flags: { store?: string }) => {
      const cli = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
      const fixtures = path.join(repoRoot(), 'fixtures', 'demo-store');
      const say = (s: string) => process.stdout.write(s + '\n');
      const show = async (label: string, cmd: string, args: string[]) => {
        say(`\n$ ${label}`);
        const r = await run(cmd, args);
        process.stdout.write(r.stdout);
        if (r.stderr) process.stdout.write(r.stderr);
        if (r.code !== 0) throw new Error(`${label}: exit status ${r.code}`);
        return r;
      };
      let mnt: string | undefined;
      let pid: number | undefined;
      const pidFile = path.join(os.tmpdir(), `distri-demo-${process.pid}.pid`);
      try {
        const store = flags.store ? path.resolve(flags.store) : storeDir(fixtures);
        if (!flags.store) await buildStore(fixtures, store, say);
        mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-demo-ro-'));
        say(`$ distri fuse --store ${store} ${mnt}`);
        const t0 = performance.now();
        const child = spawn(process.execPath, [cli, 'fuse', '--store', store, mnt, '--pid-file', pidFile], { stdio: ['ignore', 'inherit', 'inherit'] });
        const code = await new Promise<number | null>((resolve) => {
          const timer = setTimeout(() => {
            child.kill('SIGTERM');
            resolve(null);
          }, STEP_MS);
          child.on('exit', (c) => {
            clearTimeout(timer);
            resolve(c);
          });
        });
        if (code !== 0) throw new Error(`distri fuse failed (${code === null ? 'timed out' : `status ${code}`})`);
        pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
        say(`mounted and ready in ${(performance.now() - t0).toFixed(0)} ms (Node start-up included); daemon pid ${pid}`);
        const sock = fs.readlinkSync(path.join(mnt, 'ctl'));
        const stats = async () => (await ctlRequest(sock, { op: 'stats' })).stats as Record<string, number>;

        await show(`ls ${mnt}`, 'ls', [mnt]);
        await show(`ls -l ${mnt}/bin ${mnt}/lib/pkgconfig`, 'ls', ['-l', path.join(mnt, 'bin'), path.join(mnt, 'lib', 'pkgconfig')]);
        const before = await stats();
        say(`\nimages known: ${before.imagesKnown}, opened so far: ${before.imagesOpenedTotal}   (listing /ro and /ro/bin opened nothing)`);
        await show(`${mnt}/bin/hello one two`, path.join(mnt, 'bin', 'hello'), ['one', 'two']);
        await show(`${mnt}/bin/greet`, path.join(mnt, 'bin', 'greet'), []);
        await show(`cat ${mnt}/include/demo.h`, 'cat', [path.join(mnt, 'include', 'demo.h')]);
        const afterRun = await stats();
        say(`\nimages known: ${afterRun.imagesKnown}, opened: ${afterRun.imagesOpenedTotal} (only the packages touched), decoder cache hits/misses: ${afterRun.cacheHits}/${afterRun.cacheMisses}`);
        await show(`distri fusectl ${mnt} stats`, process.execPath, [cli, 'fusectl', mnt, 'stats']);
      } catch (e) {
        process.stderr.write(`distri: demo: ${(e as Error).message}\n`);
        process.exitCode = 1;
      } finally {
        if (mnt) {
          say(`\n$ distri unmount ${mnt}`);
          const u = await run(process.execPath, [cli, 'unmount', mnt]);
          if (u.code !== 0) {
            process.stderr.write(u.stderr);
            await run(process.execPath, [cli, 'unmount', '--lazy', mnt]);
          }
          if (pid !== undefined && !(await waitGone(pid, 5000))) {
            process.kill(pid, 'SIGTERM');
            await waitGone(pid, 3000);
          }
          try {
            fs.rmdirSync(mnt);
          } catch (e) {
            process.stderr.write(`distri: demo: ${mnt}: ${(e as Error).message}\n`);
            process.exitCode = 1;
          }
        }
        fs.rmSync(pidFile, { force: true });
      }
    });
}
