/**
 * `distri run [--store DIR] [--pkgs …] -- CMD [ARGS…]`: one program inside a distri-style root, the
 * way a distri machine sees a store: /ro is the store (our own FUSE daemon, on a private mountpoint),
 * /bin, /usr/bin, /lib, /lib64, /usr/lib, /usr/include, /usr/share point into it, and the host's /usr
 * is not there (src/build/root.ts). Exits with the program's status.
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { closure, glibcOf, listStore } from '../../build/store-closure';
import { mountStore, runInRoot } from '../../build/root';
import { SquashfsError } from '../../errors';
import { reportError } from '../common';
import { DEFAULT_STORE } from './fuse';

interface RunFlags {
  store: string;
  pkgs?: string;
  cwd: string;
  env?: string[];
  bind?: string[];
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function parseBind(spec: string): { host: string; inside: string; rw: boolean } {
  const parts = spec.split(':');
  const rw = parts.length === 3 && parts[2] === 'rw';
  if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && !rw && parts[2] !== 'ro') || !parts[0] || !parts[1]?.startsWith('/')) {
    throw new SquashfsError('INVALID_ARGUMENT', `--bind wants HOST:/INSIDE[:rw], got ${JSON.stringify(spec)}`);
  }
  return { host: path.resolve(parts[0]), inside: parts[1], rw };
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run a program inside a distri-style root: /ro from a store, /bin /usr/bin /lib /lib64 /usr/lib /usr/include /usr/share pointing into it')
    .argument('<command...>', 'the program and its arguments (after --), looked up in /ro/bin')
    .option('--store <dir>', 'the package store', DEFAULT_STORE)
    .option('--pkgs <list>', 'only these packages and their runtime deps, comma-separated (gcc, gcc-amd64 or a full name); default all')
    .option('--cwd <dir>', 'working directory inside the root', '/tmp')
    .option('--env <NAME=VALUE>', 'set a variable (repeatable); the program starts with PATH=/ro/bin:/bin, HOME=/tmp and TERM only', collect)
    .option('--bind <HOST:INSIDE[:rw]>', 'make a host directory or file visible inside (read-only unless :rw; repeatable)', collect)
    .addHelpText(
      'after',
      [
        '',
        'The root lives in its own mount and PID namespaces (util-linux unshare, then chroot): /ro is the',
        'store served by our FUSE daemon on a private mountpoint; /bin, /sbin, /usr/bin → /ro/bin;',
        '/lib, /usr/lib → /ro/lib; /usr/include → /ro/include; /usr/share → /ro/share; /lib64 → the glibc',
        "package's out/lib; /proc, a tmpfs /tmp and /dev/shm, /dev/null, one-line /etc/passwd and",
        "/etc/group. Nothing of the host's /usr is visible. Everything is unmounted when the program",
        'exits. Needs root (namespaces, FUSE).',
        '',
        "Put -- before the program, so that its own options are not taken for distri's.",
        "Exit status: the program's (128+N when killed by signal N; 127 when it is not found in the",
        'root); 1 or 2 when distri itself fails (no such store, no such package).',
        '',
        'Examples:',
        '  distri bootstrap --store /tmp/store && distri run --store /tmp/store -- gcc --version',
        "  distri run --store /tmp/store --pkgs bash,coreutils -- bash -c 'ls /ro; ls -l /usr/bin/ls'",
        '  distri run --store /tmp/store --bind .:/src --cwd /src -- gcc -o /tmp/hello hello.c',
        '  distri run --store /tmp/store --bind ./out:/out:rw --cwd /out -- make',
      ].join('\n'),
    )
    .action(async (command: string[], flags: RunFlags) => {
      const store = path.resolve(flags.store);
      let code: number;
      try {
        const env: Record<string, string> = { PATH: '/ro/bin:/bin', HOME: '/tmp' };
        if (process.env.TERM) env.TERM = process.env.TERM;
        for (const kv of flags.env ?? []) {
          const eq = kv.indexOf('=');
          if (eq <= 0) throw new SquashfsError('INVALID_ARGUMENT', `--env wants NAME=VALUE, got ${JSON.stringify(kv)}`);
          env[kv.slice(0, eq)] = kv.slice(eq + 1);
        }
        const binds = (flags.bind ?? []).map(parseBind);
        if (typeof process.getuid === 'function' && process.getuid() !== 0) {
          throw new Error('needs root: the root is made with mount and PID namespaces, and /ro is a FUSE mount');
        }
        const pkgs = listStore(store);
        if (pkgs.size === 0) throw new SquashfsError('NOT_FOUND', `${store}: no packages (distri bootstrap --store ${flags.store} makes a toolchain store)`);
        const wanted = flags.pkgs
          ?.split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        const shown = wanted ? closure(pkgs, wanted) : [...pkgs.keys()];
        const glibc = glibcOf(pkgs, shown);
        const mount = await mountStore({ store, pkgs: wanted ? shown : undefined });
        // Ctrl-C reaches the program through the terminal; we stay to unmount after it.
        const abort = new AbortController();
        const onInt = () => undefined;
        const onTerm = () => abort.abort();
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
        process.on('SIGHUP', onTerm);
        try {
          const r = await runInRoot({ roMount: mount.mountpoint, glibc, binds }, { argv: command, env, cwd: flags.cwd, stdio: 'inherit', abort: abort.signal });
          code = r.code ?? 128 + (r.signal ? (require('node:os').constants.signals[r.signal] as number) : 0);
        } finally {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          process.off('SIGHUP', onTerm);
          await mount.stop();
        }
      } catch (e) {
        reportError(`run ${command[0] ?? ''}`.trim(), e);
        return;
      }
      process.exitCode = code;
    });
}
