/**
 * Real FUSE mounts for tests, always served by a child process (`node dist/src/cli/main.js mount`):
 * a process must never read its own FUSE mount (every request is answered on its one JavaScript
 * thread, so a synchronous read would wait for itself). Every wait is bounded, and `cleanup()`
 * always leaves nothing behind: it unmounts (lazily as a last resort), kills the daemon (SIGTERM,
 * then SIGKILL), and removes the mountpoint and temp files, even when the test failed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe } from 'node:test';
import { repoRoot, type Availability } from '../oracle/tools';

/**
 * The FUSE transports every mount test runs on. The CLI takes its --transport default from
 * DISTRI_TRANSPORT, which each transport's suite sets for the daemons it spawns.
 */
export const TRANSPORTS = ['kernel', 'libfuse'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Declares `body`'s suites once per transport, with DISTRI_TRANSPORT set while they run. */
export function forEachTransport(body: (transport: Transport) => void): void {
  for (const transport of TRANSPORTS) {
    describe(`${transport} transport`, () => {
      before(() => {
        process.env.DISTRI_TRANSPORT = transport;
      });
      after(() => {
        delete process.env.DISTRI_TRANSPORT;
      });
      body(transport);
    });
  }
}

export const cliPath = (): string => path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether FUSE mounts can work here. */
export function fuseAvailable(): Availability {
  if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
  if (!fs.existsSync('/dev/fuse')) return { ok: false, why: 'no /dev/fuse' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, why: 'not root (tests mount as root)' };
  try {
    require('fuse-native');
  } catch (e) {
    return { ok: false, why: `fuse-native does not load: ${(e as Error).message.split('\n')[0]}` };
  }
  if (!fs.existsSync(cliPath())) return { ok: false, why: `${cliPath()} missing (run tsc first)` };
  return { ok: true };
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command asynchronously (never blocking this process), killed after `timeoutMs`. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // the command may exit before reading it all
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, signal: null, stdout, stderr: stderr + e.message, timedOut });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut });
    });
  });
}

/** FUSE mounts whose mountpoint is `dir` (from /proc/self/mountinfo, without touching `dir`). */
export function mountedAt(dir: string): boolean {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length > 4 && f[4]!.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === dir) return true;
  }
  return false;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `cond()` holds, polling; false after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(stepMs);
  }
  return cond();
}

export interface Mount {
  dir: string;
  pid: number;
  /** The foreground child, when started with -f. */
  child?: ChildProcess;
  cleanup(): Promise<void>;
}

const live = new Set<Mount>();
let exitHookInstalled = false;

/** Last-resort cleanup when the test process exits with mounts still registered. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const m of live) {
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      spawnSync('umount', ['-l', m.dir], { timeout: 5000, stdio: 'ignore' });
      try {
        fs.rmdirSync(m.dir);
      } catch {
        // not empty or gone: leave it rather than risk deleting through a mount
      }
    }
  });
}

/** Registers a mount for the last-resort cleanup at exit (every spawn helper calls this). */
export function track(m: Mount): void {
  installExitHook();
  live.add(m);
}

/** Forgets a mount that was cleaned up normally. */
export function untrack(m: Mount): void {
  live.delete(m);
}

export function makeMountpoint(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fuse-'));
}

/** Unmounts `dir` if mounted, kills `pid` if alive, removes `dir`. Never throws; returns problems. */
export async function forceCleanup(dir: string, pid: number | undefined): Promise<string[]> {
  const problems: string[] = [];
  if (mountedAt(dir)) {
    const u = await run('fusermount', ['-u', dir], { timeoutMs: 10_000 });
    if (u.status !== 0 && mountedAt(dir)) {
      problems.push(`fusermount -u ${dir}: ${u.stderr.trim()}`);
      await run('umount', ['-l', dir], { timeoutMs: 10_000 });
    }
  }
  if (pid !== undefined && processAlive(pid)) {
    // The daemon leaves by itself once unmounted; give it a moment, then insist.
    if (!(await waitFor(() => !processAlive(pid), 3000))) {
      problems.push(`daemon ${pid} still alive after unmount: SIGTERM`);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      if (!(await waitFor(() => !processAlive(pid), 3000))) {
        problems.push(`daemon ${pid} ignored SIGTERM: SIGKILL`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
        await waitFor(() => !processAlive(pid), 3000);
      }
    }
  }
  if (mountedAt(dir)) await run('umount', ['-l', dir], { timeoutMs: 10_000 });
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`rmdir ${dir}: ${(e as Error).message}`);
  }
  return problems;
}

export interface SpawnMountOptions {
  /** -o options, e.g. ['subdir=sub', 'timeout=1']. */
  options?: string[];
  /** Use this mountpoint instead of a fresh temp dir (it is removed by cleanup all the same). */
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * `distri mount IMAGE DIR` in the background, as a user runs it: resolves once the command has
 * returned (the mount is ready), with the daemon's pid from --pid-file. Throws with the command's
 * stderr when mounting fails (after cleaning up).
 */
export async function spawnMount(image: string, o: SpawnMountOptions = {}): Promise<Mount> {
  installExitHook();
  const dir = o.dir ?? makeMountpoint();
  const pidFile = path.join(os.tmpdir(), `distri-fuse-pid-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const args = [cliPath(), 'mount', '--pid-file', pidFile, image, dir, ...(o.options ?? []).flatMap((x) => ['-o', x])];
  const r = await run(process.execPath, args, { timeoutMs: 40_000, env: { ...process.env, ...o.env } });
  let pid: number | undefined;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    pid = undefined;
  }
  if (r.status !== 0 || pid === undefined || !mountedAt(dir)) {
    const problems = await forceCleanup(dir, pid);
    fs.rmSync(pidFile, { force: true });
    throw new Error(`distri mount ${image} ${dir} failed (status ${r.status}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}${problems.length ? ` [cleanup: ${problems.join('; ')}]` : ''}`);
  }
  const m: Mount = {
    dir,
    pid,
    cleanup: async () => {
      live.delete(m);
      const problems = await forceCleanup(dir, pid);
      fs.rmSync(pidFile, { force: true });
      if (problems.length) console.warn(`cleanup of ${dir}: ${problems.join('; ')}`);
    },
  };
  live.add(m);
  return m;
}

/**
 * `distri mount -f IMAGE DIR -o notify_pipe=FIFO` as a child that stays in the foreground (so the
 * test can signal it): waits for 's' or 'f' on the FIFO, as squashfuse's own smoke test does.
 */
export async function spawnForegroundMount(image: string, o: SpawnMountOptions = {}): Promise<Mount & { child: ChildProcess; stderr: () => string }> {
  installExitHook();
  const dir = o.dir ?? makeMountpoint();
  const fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fifo-'));
  const fifo = path.join(fifoDir, 'notify');
  const mk = spawnSync('mkfifo', [fifo]);
  if (mk.status !== 0) throw new Error(`mkfifo: ${mk.stderr}`);
  const answer = readFifoByte(fifo, 30_000);
  const child = spawn(process.execPath, [cliPath(), 'mount', '-f', image, dir, '-o', ['notify_pipe=' + fifo, ...(o.options ?? [])].join(',')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...o.env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const byte = await answer;
  fs.rmSync(fifoDir, { recursive: true, force: true });
  const pid = child.pid!;
  const m = {
    dir,
    pid,
    child,
    stderr: () => stderr,
    cleanup: async () => {
      live.delete(m);
      const problems = await forceCleanup(dir, pid);
      if (problems.length) console.warn(`cleanup of ${dir}: ${problems.join('; ')}`);
    },
  };
  live.add(m);
  if (byte !== 's') {
    await m.cleanup();
    throw new Error(`foreground mount of ${image} reported ${JSON.stringify(byte)}: ${stderr.trim()}`);
  }
  return m;
}

/** Reads one byte from a FIFO (opened without blocking this thread); undefined on timeout or EOF. */
export function readFifoByte(fifo: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const stream = fs.createReadStream(fifo);
    const timer = setTimeout(() => {
      stream.destroy();
      // The open may still be waiting for a writer: open the write side once to release it.
      try {
        const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
        fs.closeSync(fd);
      } catch {
        // no reader left either
      }
      resolve(undefined);
    }, timeoutMs);
    let got = '';
    stream.on('data', (d) => (got += d.toString()));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      clearTimeout(timer);
      resolve(got === '' ? undefined : got[0]);
    });
  });
}
