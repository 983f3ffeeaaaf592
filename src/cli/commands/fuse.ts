/**
 * `distri fuse [--store DIR] MOUNTPOINT`: every package image of a store under one mount, the way
 * distri's /ro works (src/vfs/store-fs.ts has the tree). Returns once the mount is ready, like
 * `distri mount`; with -f it stays in the foreground.
 *
 * The daemon keeps the tree in step with the store without being told (src/fuse/store-source.ts).
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { readyEnvName, runDaemon, type MountOptions } from '../../fuse/daemon';
import { storeSource, type StoreDaemonOptions } from '../../fuse/store-source';
import { spawnDaemon, startedFirst } from './mount';

export const DEFAULT_STORE = '/roimg';
function list(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

interface FuseFlags {
  store: string;
  foreground?: boolean;
  debug?: boolean;
  notifyPipe?: string;
  overlays?: string;
  pkgs?: string;
  pidFile?: string;
  maxOpen?: string;
  cacheMb?: string;
  allowOther: boolean;
  nosuid?: boolean;
  defaultPermissions: boolean;
  transport: string;
  repo?: string;
  autodownload?: boolean;
  remoteTimeout?: string;
  readAhead?: string;
  fillInBackground?: boolean;
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export function register(program: Command): void {
  program
    .command('fuse')
    .description("mount every package of a store at MOUNTPOINT (distri's /ro): lazy package dirs, exchange dirs, ctl; returns once ready unless -f")
    .argument('<mountpoint>', 'an existing directory, e.g. /ro')
    .option('--store <dir>', 'the package store: <full>.squashfs + <full>.meta.textproto files', DEFAULT_STORE)
    .option('-f, --foreground', 'stay in the foreground until unmounted (Ctrl-C unmounts)')
    .option('-d, --debug', 'libfuse debug output on stderr (implies -f)')
    .option('--notify-pipe <fifo>', 'write "s" to FIFO once mounted, "f" if mounting failed')
    .option('--overlays <list>', 'only these exchange dirs, comma-separated (e.g. /bin,/lib); default all')
    .option('--pkgs <list>', 'only these packages, comma-separated: full names, <pkg>-<arch> or <pkg>; default all')
    .option('--max-open <n>', 'images open at once (least recently used closed first)', '64')
    .option('--cache-mb <n>', 'decoder cache budget over all open images, MiB', '256')
    .option('--no-allow-other', 'only the mounting user may enter (default: every user, as /ro on a distri machine)')
    .option('--allow-other', 'every user may enter (the default; non-root needs user_allow_other in /etc/fuse.conf)')
    .option('--nosuid', 'ignore setuid/setgid bits of package programs (default: they take effect, as on distri)')
    .option('--no-default-permissions', "let every caller past the mode bits (default: the kernel checks each inode's mode)")
    .option(
      '--transport <name>',
      'kernel (our own FUSE protocol code, needs root) or libfuse (fuse-native); default $DISTRI_TRANSPORT, else kernel where it works',
      process.env.DISTRI_TRANSPORT ?? 'auto',
    )
    .option('--pid-file <file>', 'write the daemon pid here while mounted')
    .option('--repo <url>', 'a package repository (http://…, the directory holding pkg/index-v1.json); needs --autodownload')
    .option('--autodownload', "show the repository's packages in /ro before they are local; read them lazily over HTTP ranges")
    .option('--remote-timeout <ms>', 'give up on a silent HTTP connection after this long (a read then fails with EIO)', '10000')
    .option('--read-ahead <chunks>', 'remote chunks fetched beyond what a read needs', '0')
    .option('--fill-in-background', 'fetch the rest of an opened remote image in the background; once complete it becomes a local store image')
    .addHelpText(
      'after',
      [
        '',
        'The store is live: images added or removed show up within about a second (directory watch;',
        'SIGUSR1 and `distri fusectl MNT scan` also rescan). The index of exchange entries is kept in',
        '<store>/.distri-index/ (or ~/.cache/distri/store-index/ for a read-only store).',
        '',
        'Mounted the way distri mounts /ro: allow_other (every user reads it), suid (setuid programs in',
        "packages run as such), default_permissions (the kernel enforces each file's mode), nodev.",
        '',
        "With --repo URL --autodownload, every package of the repository's index that the store lacks is",
        'listed in /ro and its exchange dirs at once; the first access to it fetches only the chunks',
        'it needs (verified against the index, cached under <store>/.distri-remote/). A read whose',
        'chunks cannot be fetched fails with EIO and works again once the repository is back.',
        '',
        'As root the daemon speaks the FUSE protocol itself (--transport kernel): the kernel caches names,',
        'attributes, symlinks and pages for a day, and is told at once when a rescan changes /ro.',
        '',
        'Examples:',
        '  distri fuse --store /roimg /ro && ls /ro/bin',
        '  distri fuse --store ./store --pkgs bash-amd64,coreutils-amd64 --overlays /bin /tmp/ro',
        '  distri fuse --store /roimg --repo http://repo.example:7080 --autodownload /ro',
        '  distri fusectl /ro stats',
        '  distri unmount /ro',
      ].join('\n'),
    )
    .action(async (mountpoint: string, flags: FuseFlags) => {
      let store: StoreDaemonOptions;
      try {
        if (!['auto', 'kernel', 'libfuse'].includes(flags.transport)) throw new Error(`--transport must be kernel, libfuse or auto, got ${JSON.stringify(flags.transport)}`);
        store = {
          store: path.resolve(flags.store),
          pkgs: list(flags.pkgs),
          overlays: list(flags.overlays),
          maxOpenImages: positiveInt('--max-open', flags.maxOpen),
          cacheBytes: (positiveInt('--cache-mb', flags.cacheMb) ?? 256) << 20,
        };
        if (flags.autodownload && !flags.repo) throw new Error('--autodownload needs --repo URL');
        if (flags.repo && !flags.autodownload) throw new Error('--repo is only used with --autodownload (installing from a repo: distri install)');
        if (flags.repo) {
          const readAhead = Number(flags.readAhead);
          if (!Number.isSafeInteger(readAhead) || readAhead < 0) throw new Error(`--read-ahead needs a chunk count (0 or more), got ${JSON.stringify(flags.readAhead)}`);
          store.remote = { repo: flags.repo, timeoutMs: positiveInt('--remote-timeout', flags.remoteTimeout), readAhead, fill: flags.fillInBackground ?? false };
        }
      } catch (e) {
        process.stderr.write(`distri: fuse: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const foreground = flags.foreground || flags.debug;
      const opts: MountOptions = {
        image: store.store,
        mountpoint: path.resolve(mountpoint),
        notifyPipe: flags.notifyPipe && path.resolve(flags.notifyPipe),
        pidFile: flags.pidFile && path.resolve(flags.pidFile),
        allowOther: flags.allowOther,
        suid: !flags.nosuid,
        dev: false,
        defaultPermissions: flags.defaultPermissions,
        debug: flags.debug,
        logName: 'distri fuse',
        transport: flags.transport as MountOptions['transport'],
        // The failure line, where the daemon prints it itself (see mount.ts).
        failurePrefix: foreground || startedFirst() ? `distri: fuse ${store.store} on ${mountpoint}: ` : undefined,
      };
      if (foreground || process.env[readyEnvName] !== undefined) {
        const code = await runDaemon(opts, () => storeSource(store));
        process.exit(code); // the native FUSE thread keeps the loop alive after unmounting
      }
      const r = await spawnDaemon(process.argv.slice(1), opts);
      if (!r.ok) {
        process.stderr.write(`distri: fuse ${store.store} on ${mountpoint}: ${r.message ?? 'failed'}\n`);
        process.exitCode = r.status ?? 1;
      }
    });
}
