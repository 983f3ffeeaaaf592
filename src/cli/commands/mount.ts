/**
 * `distri mount IMAGE MOUNTPOINT [-f] [-o OPTIONS]` and `distri unmount MOUNTPOINT`: one image
 * through FUSE, with squashfuse's options and habits. Without -f the command returns once the
 * mount is usable (or has failed), leaving the daemon in the background.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Command } from 'commander';
// Only types from the daemon: the command that spawns a background daemon never loads it (nor the
// FUSE binding); the foreground path and `unmount` require it when they run.
import type { MountOptions, MountResult } from '../../fuse/daemon';
import { DAEMON_BUNDLE, bundleOr, fuseDirOf } from '../../fuse/bundles';
import { DEFAULT_CACHE_MIB, EARLY_ENV, OPTIONS_ENV, READY_ENV as readyEnvName, mark, writeNotifyFailure } from '../../fuse/mount-env';
import { scanArgv } from '../../util/argv-scan';

type DaemonModule = typeof import('../../fuse/daemon');
// Loaded on a failure only: ../common loads commander, which a daemon reading a plain command line
// (plainMountCommandLine) never needs.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const reportError = () => (require('../common') as typeof import('../common')).reportError;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const daemonModule = (): DaemonModule => require('../../fuse/daemon') as DaemonModule;

/** Options accepted with -o, as squashfuse spells them. */
const KNOWN = [
  'subdir=PATH',
  'offset=BYTES',
  'timeout=SECONDS',
  'notify_pipe=FIFO',
  'uid=N',
  'gid=N',
  'allow_other',
  'cache=MIB',
  'readdirplus=always|auto',
  'suid',
  'nosuid',
  'dev',
  'nodev',
  'default_permissions',
  'nonempty',
  'ro',
  'debug',
];
/** How long the foreground command waits for the background daemon to say it is mounted. */
const READY_WAIT_MS = 30_000;

function nonNegativeInt(name: string, v: string): number {
  const n = Number(v);
  if (v === '' || !Number.isSafeInteger(n) || n < 0) throw new Error(`-o ${name}= needs a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Parses every -o list (comma-separated key[=value]) into mount options; unknown keys are errors. */
export function parseMountOptions(lists: string[]): Omit<MountOptions, 'image' | 'mountpoint'> {
  const o: Omit<MountOptions, 'image' | 'mountpoint'> = {};
  for (const list of lists) {
    for (const item of list.split(',')) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      const key = eq < 0 ? item : item.slice(0, eq);
      const value = eq < 0 ? undefined : item.slice(eq + 1);
      const needValue = () => {
        if (value === undefined) throw new Error(`-o ${key} needs a value (${key}=…)`);
        return value;
      };
      switch (key) {
        case 'subdir':
          o.subdir = needValue();
          break;
        case 'offset':
          o.offset = nonNegativeInt(key, needValue());
          break;
        case 'timeout': {
          const v = needValue();
          const n = Number(v);
          if (v === '' || !Number.isFinite(n) || n <= 0) throw new Error(`-o timeout= needs a positive number of seconds, got ${JSON.stringify(v)}`);
          o.idleTimeout = n;
          break;
        }
        case 'notify_pipe':
          o.notifyPipe = needValue();
          break;
        case 'uid':
          o.uid = nonNegativeInt(key, needValue());
          break;
        case 'gid':
          o.gid = nonNegativeInt(key, needValue());
          break;
        case 'cache': {
          const n = nonNegativeInt(key, needValue());
          if (n < 1) throw new Error('-o cache= needs at least 1 (MiB)');
          o.cacheMiB = n;
          break;
        }
        case 'readdirplus': {
          const v = needValue();
          if (v !== 'always' && v !== 'auto') throw new Error(`-o readdirplus= needs always or auto, got ${JSON.stringify(v)}`);
          o.readdirplus = v;
          break;
        }
        case 'allow_other':
          o.allowOther = true;
          break;
        case 'suid':
        case 'nosuid':
          o.suid = key === 'suid';
          break;
        case 'dev':
        case 'nodev':
          o.dev = key === 'dev';
          break;
        case 'ro': // always read-only; accepted so that fstab-style option lists work
        case 'default_permissions': // always on: the kernel checks each inode's mode
        case 'nonempty': // a non-empty mountpoint is always accepted, as by squashfuse (libfuse 3)
          break;
        case 'debug':
          o.debug = true;
          break;
        default:
          throw new Error(`unknown -o option ${JSON.stringify(item)} (known: ${KNOWN.join(', ')})`);
      }
    }
  }
  return o;
}

interface MountFlags {
  transport: string;
  foreground?: boolean;
  debug?: boolean;
  options: string[];
  pidFile?: string;
}

export function register(program: Command): void {
  program
    .command('mount')
    .description('mount a SquashFS image read-only through FUSE (like squashfuse); returns once the mount is ready unless -f')
    .argument('<image>', 'a .squashfs file')
    .argument('<mountpoint>', 'an existing directory')
    .option('-f, --foreground', 'stay in the foreground until unmounted (Ctrl-C unmounts)')
    .option('-d, --debug', 'libfuse debug output on stderr (implies -f)')
    .option('-o, --options <list>', `comma-separated: ${KNOWN.join(', ')}`, (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--pid-file <file>', 'write the daemon pid here while mounted')
    .option(
      '--transport <name>',
      'kernel (our own FUSE protocol code, needs root) or libfuse (fuse-native); default $DISTRI_TRANSPORT, else kernel where it works',
      process.env.DISTRI_TRANSPORT ?? 'auto',
    )
    .addHelpText(
      'after',
      [
        '',
        'Options (-o, comma-separated, as squashfuse):',
        '  subdir=PATH       serve this directory of the image as the root',
        '  offset=BYTES      the image starts this many bytes into the file (e.g. an AppImage)',
        '  timeout=SECONDS   unmount after this long without any access while no file is open',
        '  notify_pipe=FIFO  write "s" to FIFO once mounted, "f" if mounting failed',
        '  uid=N, gid=N      report every file as owned by N',
        '  allow_other       let other users in (non-root needs user_allow_other in /etc/fuse.conf)',
        `  cache=MIB         decompressed data blocks kept in memory (default ${DEFAULT_CACHE_MIB}; distri only)`,
        '  readdirplus=auto  attributes only with the first page of a listing (default always: every page,',
        '                    so find or ls -l of a long directory sends no lookup per entry; auto suits',
        '                    names-only listings of huge directories; our own transport only)',
        '  suid, dev         let setuid bits and device nodes take effect (default nosuid,nodev)',
        '  default_permissions, nonempty, ro   accepted; always the case here',
        '',
        'Examples:',
        '  distri mount app.sqfs /mnt/app && ls /mnt/app',
        '  distri mount -o subdir=usr/share,uid=1000,gid=1000 rootfs.sqfs ~/share',
        '  distri mount -o offset=193728 My.AppImage /tmp/app',
        '  distri mount -f -o timeout=60 pkg.squashfs /tmp/pkg      (foreground, leaves after 60 s idle)',
        '  distri unmount /mnt/app',
      ].join('\n'),
    )
    .action(mountAction);

  program
    .command('unmount')
    .alias('umount')
    .description('unmount a FUSE mount made by distri mount (the daemon then exits)')
    .argument('<mountpoint>', 'where it is mounted')
    .option('-l, --lazy', 'detach now even if busy; it goes away when no longer used')
    .addHelpText('after', '\nExamples:\n  distri unmount /mnt/app\n  distri unmount -l /mnt/app     (a shell is still inside it)')
    .action(async (mountpoint: string, opts: { lazy?: boolean }) => {
      const problem = await daemonModule().unmount(mountpoint, Boolean(opts.lazy));
      if (problem) {
        process.stderr.write(`distri: unmount ${mountpoint}: ${problem.message}\n`);
        process.exitCode = problem.status;
      }
    });
}

/** What `distri mount IMAGE MOUNTPOINT` does once its command line is parsed. */
export async function mountAction(image: string, mountpoint: string, flags: MountFlags): Promise<void> {
  let parsed: ReturnType<typeof parseMountOptions>;
  try {
    parsed = parseMountOptions(flags.options);
  } catch (e) {
    reportError()('mount', e);
    return;
  }
  if (!['auto', 'kernel', 'libfuse'].includes(flags.transport)) {
    reportError()('mount', new Error(`--transport must be kernel, libfuse or auto, got ${JSON.stringify(flags.transport)}`));
    return;
  }
  // Every path absolute now: the daemon leaves the current directory once it is in the background.
  const opts: MountOptions = {
    ...parsed,
    image: path.resolve(image),
    mountpoint: path.resolve(mountpoint),
    notifyPipe: parsed.notifyPipe && path.resolve(parsed.notifyPipe),
    pidFile: flags.pidFile && path.resolve(flags.pidFile),
    transport: flags.transport as MountOptions['transport'],
  };
  if (flags.debug) opts.debug = true;
  const foreground = flags.foreground || opts.debug;
  // The failure line, where the daemon prints it itself: in the foreground, and when the command
  // started it before parsing anything (it cannot name the image then). Otherwise the command
  // prints the daemon's report.
  if (foreground || startedFirst()) opts.failurePrefix = `distri: mount ${image} on ${mountpoint}: `;
  if (foreground || process.env[readyEnvName] !== undefined) {
    const code = await daemonModule().runDaemon(opts);
    // The native FUSE thread holds the event loop open after unmounting; this is the process
    // edge, so end it here with the daemon's status.
    process.exit(code);
  }
  // The daemon is the lean entry (fuse/mount-daemon.js, bundled: fuse/bundles.ts) with the options parsed here; the
  // user's arguments follow it so that ps shows what is mounted.
  mark('spawning the daemon');
  const fuseDir = fuseDirOf(__dirname);
  const plain = path.join(fuseDir, 'mount-daemon.js');
  const daemonScript = bundleOr(path.join(fuseDir, DAEMON_BUNDLE), plain, plain);
  const r = await spawnDaemon([daemonScript, ...process.argv.slice(2)], opts, { [OPTIONS_ENV]: JSON.stringify(opts) });
  mark('daemon reported');
  if (!r.ok) {
    process.stderr.write(`distri: mount ${image} on ${mountpoint}: ${r.message ?? 'failed'}\n`);
    process.exitCode = r.status ?? 1;
  }
}

/**
 * A command line of `distri mount` (the words after `distri`) read without commander, when it is
 * plain: `mount`, then exactly two operands and only -o/--options, --pid-file and --transport,
 * each with a value that does not start with a dash. Anything else (another option, a missing or
 * extra operand, -v before `mount`) is undefined, and the caller runs the full parser, which then
 * gives every error in its own words. The daemon that the command started before parsing anything
 * reads its command line this way: commander and the program cost it ~15 ms of CPU at every mount
 * (bench/README-fuse.md), on a path where the two processes share two cores.
 */
export function plainMountCommandLine(args: readonly string[]): { image: string; mountpoint: string; flags: MountFlags } | undefined {
  if (args[0] !== 'mount') return undefined;
  const operands: string[] = [];
  const flags: MountFlags = { transport: process.env.DISTRI_TRANSPORT ?? 'auto', options: [] };
  for (const w of scanArgv(args.slice(1))) {
    if (w.kind === 'operand') {
      operands.push(w.text);
      continue;
    }
    if (w.kind === 'end' || w.value === undefined || w.value.startsWith('-')) return undefined;
    const name = w.kind === 'short' ? `-${w.letters}` : w.name;
    if (name === '-o' || name === '--options') flags.options.push(w.value);
    else if (name === '--pid-file') flags.pidFile = w.value;
    else if (name === '--transport') flags.transport = w.value;
    else return undefined;
  }
  return operands.length === 2 ? { image: operands[0]!, mountpoint: operands[1]!, flags } : undefined;
}

/**
 * Whether this process is a daemon that the command started before parsing its arguments
 * (../daemon-first.ts): it then prints its own failures, since the command only relays them.
 * Read once; the variable goes no further (the daemon's children are no such daemons).
 */
export function startedFirst(): boolean {
  const early = process.env[EARLY_ENV] !== undefined;
  delete process.env[EARLY_ENV];
  return early;
}

/**
 * Starts a detached daemon (its own session, cwd /): argv[0] is the script (this CLI for
 * `distri fuse`, the lean fuse/mount-daemon.js for `distri mount`), `env` is added to its
 * environment. Relays its stderr until it reports on the readiness pipe, and returns what it
 * reported. A daemon that dies or stays silent past READY_WAIT_MS is a failure (and is killed in
 * the second case).
 */
export function spawnDaemon(argv: string[], opts: Pick<MountOptions, 'notifyPipe'>, env: NodeJS.ProcessEnv = {}): Promise<MountResult> {
  return new Promise((resolve) => {
    // Image and mountpoint are absolute by now because the daemon leaves the cwd.
    const child = spawn(process.execPath, [...process.execArgv, argv[0]!, ...argv.slice(1)], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      // Without NODE_EXTRA_CA_CERTS: Node parses that bundle at every start (~40 ms here), and a
      // daemon that serves a filesystem never speaks TLS.
      env: { ...withoutExtraCaCerts(process.env), ...env, [readyEnvName]: '3' },
    });
    let stderr = '';
    let done = false;
    const ready = child.stdio[3] as NodeJS.ReadableStream;
    const finish = (r: MountResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.stderr?.removeAllListeners('data');
      child.stderr?.destroy();
      (ready as unknown as { destroy(): void }).destroy();
      child.removeAllListeners('exit');
      child.unref();
      resolve(r);
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      finish({ ok: false, message: `the daemon did not report within ${READY_WAIT_MS / 1000} s${stderr ? `: ${stderr.trim()}` : ''}` });
    }, READY_WAIT_MS);
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d);
    });
    let line = '';
    ready.on('data', (d: Buffer) => {
      line += d.toString();
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(JSON.parse(line.slice(0, nl)) as MountResult);
      } catch {
        finish({ ok: false, message: `unreadable readiness report ${JSON.stringify(line.slice(0, 200))}` });
      }
    });
    child.on('exit', (code, signal) => {
      // Give the readiness pipe a moment to deliver a report written just before exiting.
      setTimeout(() => {
        if (done) return;
        writeNotifyFailure(opts.notifyPipe);
        finish({ ok: false, message: `the daemon exited (${signal ?? `status ${code}`}) before mounting${stderr ? '' : ' without a message'}` });
      }, 100);
    });
    child.on('error', (e) => finish({ ok: false, message: `could not start the daemon: ${e.message}` }));
  });
}

function withoutExtraCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}
