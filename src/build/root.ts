/**
 * A distri-style root to run programs in: the machine's view of a store the way a distri VM (or
 * distri's build sandbox) has it. Two pieces:
 *
 *  - mountStore(): the store's /ro, served by our own `distri fuse` daemon (a child process: this
 *    process must never read a FUSE mount it serves itself) on a fresh private mountpoint, showing
 *    only the packages asked for. stop() kills the daemon, waits until the mount is gone and
 *    removes the mountpoint.
 *  - runInRoot(): one program in new mount and PID namespaces (util-linux `unshare`), chrooted into
 *    a root built on a tmpfs: /ro is a bind of the mounted store, and the usual top-level paths are
 *    symlinks into it, so `/usr/bin/gcc`, `/lib64/ld-linux-x86-64.so.2` and `#!/bin/sh` all resolve
 *    inside the store and the host's own /usr is never visible:
 *
 *      /bin /sbin /usr/bin /usr/sbin → /ro/bin     /lib /usr/lib → /ro/lib
 *      /usr/include → /ro/include                  /usr/share → /ro/share
 *      /lib64 → /ro/<glibc>/out/lib (or /ro/lib)   /etc/passwd, /etc/group (one root line each)
 *      /dev/{null,zero,full,random,urandom} bound from the host, /dev/fd → /proc/self/fd
 *      /proc (of the new PID namespace), tmpfs /tmp and /dev/shm
 *
 * Everything the root consists of is mounted inside the new mount namespace (private propagation,
 * unshare's default), so it disappears with the namespace when the program — PID 1 of its PID
 * namespace — exits; nothing is left on the host but an empty temp directory, which is removed.
 * The namespace lets go of its copies of the host's other mounts before the program starts, so a
 * long build never keeps someone else's FUSE daemon or loop device alive.
 *
 * The setup runs as a small /bin/sh script of the host inside the new namespaces (mount, mkdir,
 * ln), then `env -i` sets exactly the caller's environment and a second `unshare --root --wd`
 * chroots and changes directory: that avoids needing a shell inside the root.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SquashfsError } from '../errors';

export interface StoreMount {
  mountpoint: string;
  stop(): Promise<void>;
}

export interface RootSpec {
  /** Host path of a mounted /ro, bound at <root>/ro. */
  roMount: string;
  /** Full name of the glibc package: /lib64 → /ro/<glibc>/out/lib (default /lib64 → /ro/lib). */
  glibc?: string;
  /** Extra binds, mounted after /ro in the order given (so one may go below /ro). */
  binds?: { host: string; inside: string; rw?: boolean }[];
  /** Contents of /etc/passwd and /etc/group; default one root line each. */
  passwd?: string;
  group?: string;
}

export interface RunSpec {
  argv: string[];
  /** The whole environment of the program (nothing of this process's is passed on). */
  env: Record<string, string>;
  /** Working directory inside the root. */
  cwd: string;
  /** 'inherit' (default): the program shares our stdin/stdout/stderr. 'pipe': stdin is /dev/null,
   *  stdout and stderr are collected, interleaved as they arrive, into `output`. */
  stdio?: 'inherit' | 'pipe';
  onOutput?(chunk: Buffer): void;
  /** Aborting kills the whole namespace (its PID 1 dies, and with it every process inside). */
  abort?: AbortSignal;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  output?: Buffer;
}

/** The CLI's entry point, beside this module in dist/ (dist/src/build → dist/src/cli/main.js). */
export function cliMain(): string {
  return path.join(__dirname, '..', 'cli', 'main.js');
}

/** Whether `dir` is a mountpoint in this process's mount namespace. */
export function isMounted(dir: string): boolean {
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  for (const line of info.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined && unescapeMountinfo(field) === dir) return true;
  }
  return false;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 50 ms until it holds or `ms` have passed; returns whether it held. */
async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Mounts `store` like /ro on a fresh private mountpoint, showing only `pkgs` (full names; their
 * exchange dirs too) or every package when `pkgs` is absent. Resolves once the mount is ready.
 */
export async function mountStore(o: { store: string; pkgs?: string[] }): Promise<StoreMount> {
  const store = path.resolve(o.store);
  if (!fs.statSync(store, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SquashfsError('NOT_FOUND', `${store}: no such store directory`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-ro-'));
  const mountpoint = path.join(tmp, 'ro');
  const pidFile = path.join(tmp, 'daemon.pid');
  fs.mkdirSync(mountpoint);
  const args = [cliMain(), 'fuse', '--store', store, '--pid-file', pidFile];
  if (o.pkgs) {
    // An empty list would mean "every package" to the CLI; a root with nothing in it is asked for.
    args.push('--pkgs', o.pkgs.length > 0 ? o.pkgs.join(',') : '-none-');
  }
  args.push(mountpoint);
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => resolve({ code: null, stderr: e.message }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    let pid: number | undefined;
    try {
      pid = Number(fs.readFileSync(pidFile, 'utf8').trim()) || undefined;
    } catch {
      // the daemon never got as far as writing it, or removed it while exiting
    }
    // SIGTERM: the daemon unmounts (lazily when busy) and exits.
    if (pid !== undefined && pidAlive(pid)) process.kill(pid, 'SIGTERM');
    let gone = await waitUntil(() => !isMounted(mountpoint) && (pid === undefined || !pidAlive(pid)), 10_000);
    if (!gone) {
      if (isMounted(mountpoint)) spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
      if (pid !== undefined && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      gone = await waitUntil(() => !isMounted(mountpoint), 5_000);
    }
    if (!isMounted(mountpoint)) fs.rmSync(tmp, { recursive: true, force: true });
    if (!gone) throw new SquashfsError('IO', `could not unmount the store at ${mountpoint}`);
  };
  if (r.code !== 0) {
    await stop().catch(() => undefined);
    throw new SquashfsError('IO', `mounting the store ${store} failed: ${r.stderr.trim().replace(/^distri: /, '') || `status ${r.code}`}`);
  }
  return { mountpoint, stop };
}

/** Every process below the `roots` (children, their children, …), from /proc. */
function descendants(roots: number[]): number[] {
  const parentOf = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The field after the command (which may hold spaces and parentheses) is the state, then ppid.
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(name), ppid);
    } catch {
      // the process ended meanwhile
    }
  }
  const out: number[] = [];
  const want = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parentOf) {
      if (want.has(pp) && !want.has(p)) {
        want.add(p);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

/** Single-quoted for /bin/sh. */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function which(name: string): string {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  throw new SquashfsError('NOT_FOUND', `${name} not found on this machine (util-linux provides it)`);
}

function insidePath(p: string, what: string): string {
  if (!p.startsWith('/') || p.split('/').includes('..')) {
    throw new SquashfsError('INVALID_ARGUMENT', `${what} must be an absolute path without "..", got ${JSON.stringify(p)}`);
  }
  return path.posix.normalize(p).replace(/^\/+/, '');
}

/** The setup script run by the host's /bin/sh inside the new namespaces; "$@" is the final exec. */
function setupScript(root: string, spec: RootSpec, etcDir: string): string {
  const R = shq(root);
  const lines = [
    'set -e',
    `mount -t tmpfs -o mode=0755 distri-root ${R}`,
    `cd ${R}`,
    'mkdir -p ro usr etc dev proc tmp',
    `mount --bind ${shq(path.resolve(spec.roMount))} ro`,
    'ln -s /ro/bin bin',
    'ln -s /ro/bin sbin',
    'ln -s /ro/bin usr/bin',
    'ln -s /ro/bin usr/sbin',
    'ln -s /ro/lib lib',
    'ln -s /ro/lib usr/lib',
    'ln -s /ro/include usr/include',
    'ln -s /ro/share usr/share',
    `ln -s ${shq(spec.glibc ? `/ro/${spec.glibc}/out/lib` : '/ro/lib')} lib64`,
    `cp ${shq(path.join(etcDir, 'passwd'))} ${shq(path.join(etcDir, 'group'))} etc/`,
    'mount -t proc -o nosuid,nodev,noexec proc proc',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs tmp',
    'mkdir dev/shm',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs dev/shm',
    'for d in null zero full random urandom; do touch dev/$d; mount --bind /dev/$d dev/$d; done',
    'ln -s /proc/self/fd dev/fd',
    'ln -s /proc/self/fd/0 dev/stdin',
    'ln -s /proc/self/fd/1 dev/stdout',
    'ln -s /proc/self/fd/2 dev/stderr',
  ];
  for (const b of spec.binds ?? []) {
    const inside = insidePath(b.inside, "a bind's inside path");
    const host = path.resolve(b.host);
    const st = fs.statSync(host, { throwIfNoEntry: false });
    if (!st) throw new SquashfsError('NOT_FOUND', `${host}: no such file or directory to bind at ${b.inside}`);
    const target = shq(inside);
    if (st.isDirectory()) lines.push(`mkdir -p ${target}`);
    else lines.push(`mkdir -p ${shq(path.posix.dirname(inside))}`, `[ -e ${target} ] || touch ${target}`);
    lines.push(`mount --bind ${shq(host)} ${target}`);
    if (!b.rw) lines.push(`mount -o remount,bind,ro ${target}`);
  }
  // The new namespace began as a copy of every mount of the host. Let go of those the root does not
  // use (all but the root's own, its ancestors, and the kernel's /proc, /sys, /dev): a copy would
  // keep another FUSE daemon serving, or a loop device attached, after the host unmounted it, for
  // as long as the program runs. Deepest first; a name mountinfo escapes (\040) is left alone.
  lines.push(
    `awk '{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do`,
    `  case "$m" in /|${R}|${R}/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac`,
    `  case ${shq(root + '/')} in "$m"/*) continue ;; esac`,
    '  umount -l "$m" 2>/dev/null || true',
    'done',
  );
  lines.push('cd /', 'exec env -i "$@"');
  return lines.join('\n');
}

/**
 * Runs argv in new mount + PID namespaces, chrooted into a fresh distri-style root (see the module
 * header). Resolves with the program's exit status, or the signal that ended it. A failure to set
 * up the root is reported like the program's own failure (status and output of the setup).
 */
export function runInRoot(root: RootSpec, run: RunSpec): Promise<RunResult> {
  if (run.argv.length === 0) throw new SquashfsError('INVALID_ARGUMENT', 'runInRoot: argv is empty');
  const cwd = '/' + insidePath(run.cwd, 'the working directory');
  const unshare = which('unshare');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-root-'));
  const rootDir = path.join(tmp, 'root');
  const etcDir = path.join(tmp, 'etc');
  fs.mkdirSync(rootDir);
  fs.mkdirSync(etcDir);
  fs.writeFileSync(path.join(etcDir, 'passwd'), root.passwd ?? 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(etcDir, 'group'), root.group ?? 'root:x:0:\n');
  let script: string;
  try {
    script = setupScript(rootDir, root, etcDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const envArgs = Object.entries(run.env).map(([k, v]) => {
    if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
      throw new SquashfsError('INVALID_ARGUMENT', `runInRoot: bad environment variable ${JSON.stringify(k)}`);
    }
    return `${k}=${v}`;
  });
  const argv = [
    '--mount',
    '--pid',
    '--fork',
    '--kill-child',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    script,
    'distri-root-setup',
    ...envArgs,
    unshare,
    `--root=${rootDir}`,
    `--wd=${cwd}`,
    '--',
    ...run.argv,
  ];
  const pipe = run.stdio === 'pipe';
  return new Promise((resolve, reject) => {
    const child = spawn(unshare, argv, {
      stdio: pipe ? ['ignore', 'pipe', 'pipe'] : 'inherit',
      // Only for the host-side setup tools (mount, cp, env); the program gets run.env alone.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    });
    const chunks: Buffer[] = [];
    const take = (d: Buffer) => {
      chunks.push(d);
      run.onOutput?.(d);
    };
    // unshare --kill-child takes PID 1 of the namespace along, but only once its child has armed
    // that (after the fork): an abort in the first moments would leave the child running with our
    // pipes open. So every descendant is killed too, found through /proc, until none is left.
    const kill = () => {
      if (child.pid === undefined) return;
      // Found before unshare dies: after that its children belong to init and cannot be traced.
      let found = descendants([child.pid]);
      child.kill('SIGKILL');
      for (let round = 0; round < 5 && found.length > 0; round++) {
        for (const pid of found) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        found = descendants(found); // anything they forked meanwhile
      }
    };
    run.abort?.addEventListener('abort', kill, { once: true });
    if (run.abort?.aborted) kill();
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('error', (e) => {
      fs.rmSync(tmp, { recursive: true, force: true });
      reject(new SquashfsError('IO', `could not start unshare: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      run.abort?.removeEventListener('abort', kill);
      // The namespace (and every mount of the root) died with its PID 1; the host keeps an empty
      // directory. rmdir, never a recursive remove, in case a mount had somehow survived.
      try {
        fs.rmdirSync(rootDir);
        fs.rmSync(tmp, { recursive: true, force: true });
      } catch {
        // left for the operator: a mount that outlived its namespace would be a bug worth seeing
      }
      resolve({ code, signal, ...(pipe ? { output: Buffer.concat(chunks) } : {}) });
    });
  });
}
