/**
 * `distri build`: builds one package from its recipe in a sandbox whose /ro holds only its build
 * deps (src/build/build.ts has the phases). Run in `$DISTRIROOT/pkgs/<pkg>/`, or name the package
 * with --pkg.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { SquashfsError } from '../../errors';
import { buildPackage, DEBUG_STAGES, type DebugStage } from '../../build/build';
import { defaultDistriRoot, packageFromCwd } from '../../build/distriroot';
import { action } from '../common';
import { DEFAULT_STORE } from './fuse';

interface Flags {
  pkg?: string;
  distriroot?: string;
  store: string;
  jobs?: string;
  out?: string;
  debug?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('build')
    .description('build a package from pkgs/<pkg>/build.textproto in a sandbox that sees only its build deps')
    .option('--pkg <name>', 'the package (default: the pkgs/<name> directory you are in)')
    .option('--distriroot <dir>', 'the tree holding pkgs/ and _build/ (default $DISTRIROOT, else ~/distri)')
    .option('--store <dir>', 'where the build deps come from (e.g. a store made by distri bootstrap)', DEFAULT_STORE)
    .option('--jobs <n>', 'parallel jobs for make/ninja (default: the number of CPUs)')
    .option('--out <dir>', 'write the image and meta here, e.g. straight into a store (default $DISTRIROOT/_build/distri/pkg)')
    .option('--debug <stage>', `open a shell in the sandbox at a stage: ${DEBUG_STAGES.join(', ')}`)
    .option('--json', 'print the result (full name, image, runtime deps, step timings) as JSON on stdout')
    .addHelpText(
      'after',
      [
        '',
        'What it does: downloads the source (sha256 checked every time), unpacks it into',
        "$DISTRIROOT/_build/<pkg>/, mounts the store with only the build deps (the builder's, plus `dep`,",
        'with their runtime deps) and runs each step in a fresh root (mount and PID namespaces, chroot):',
        '/ro from that mount, /usr/bin → /ro/bin and friends, the source read-only at /usr/src/<full>,',
        'the destination at /dest/tmp. Then the install directives, the ELF pass (lib/ farm, runtime',
        'deps), wrappers in bin/, and the image (uncompressed, 128 KiB blocks, mtimes clamped to',
        "SOURCE_DATE_EPOCH, so two builds give the same bytes) with its meta. Every step's output is in",
        '$DISTRIROOT/_build/<pkg>/build-amd64-<version>.log. Needs root (namespaces, FUSE).',
        '',
        'Examples:',
        '  distri scaffold https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz',
        '  distri build --pkg hello --store /roimg',
        '  cd ~/distri/pkgs/nano && distri build --store ./store --jobs 4',
        '  distri build --pkg hello --store ./store --out ./store        the result straight into the store',
        '  distri build --pkg hello --debug after-steps                  a shell in the sandbox after make install',
      ].join('\n'),
    )
    .action(
      action(
        (flags: Flags) => `build${flags.pkg ? ` ${flags.pkg}` : ''}`,
        async (flags: Flags) => {
          const here = packageFromCwd(process.cwd());
          const pkg = flags.pkg ?? here?.pkg;
          if (!pkg) throw new SquashfsError('INVALID_ARGUMENT', 'which package? run it in $DISTRIROOT/pkgs/<pkg>/ or give --pkg');
          const distriRoot = path.resolve(flags.distriroot ?? (flags.pkg ? undefined : here?.distriRoot) ?? defaultDistriRoot());
          let jobs = os.availableParallelism();
          if (flags.jobs !== undefined) {
            jobs = Number(flags.jobs);
            if (!Number.isSafeInteger(jobs) || jobs < 1) throw new SquashfsError('INVALID_ARGUMENT', `--jobs needs a positive integer, got ${JSON.stringify(flags.jobs)}`);
          }
          if (flags.debug !== undefined && !(DEBUG_STAGES as readonly string[]).includes(flags.debug)) {
            throw new SquashfsError('INVALID_ARGUMENT', `--debug ${flags.debug}: one of ${DEBUG_STAGES.join(', ')}`);
          }
          const tty = process.stderr.isTTY === true;
          let statusShown = false;
          const clear = () => {
            if (statusShown) process.stderr.write('\r\x1b[K');
            statusShown = false;
          };
          const r = await buildPackage({
            distriRoot,
            pkg,
            store: flags.store,
            jobs,
            outDir: flags.out && path.resolve(flags.out),
            debug: flags.debug as DebugStage | undefined,
            log: (line) => {
              clear();
              process.stderr.write(line + '\n');
            },
            status: tty
              ? (text) => {
                  clear();
                  if (text === undefined) return;
                  process.stderr.write(text.slice(0, (process.stderr.columns ?? 80) - 1));
                  statusShown = true;
                }
              : undefined,
          });
          if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
        },
      ),
    );
}
