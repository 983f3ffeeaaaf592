/**
 * The `distri` command line: one module per command under ./commands, each exporting
 * register(program). ./main.ts is the entry point that runs it (from the bundle for the short
 * read commands). Exit statuses: 0 success, 1 failure (corrupt or unreadable image, I/O),
 * 2 a path that does not exist or is of the wrong type (inside the image, the image itself, or the
 * source of pack); usage errors exit 1. Every error line starts `distri:`, commander's included.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { setVerbose } from './common';
// Every command, in the order --help lists them. Modules are loaded on demand: a run of one
// command loads only its module (the codecs, the FUSE binding and the writer cost ~100 ms of
// start-up together, which every `distri mount` and `distri fuse` would otherwise pay).
const commands: Record<string, () => { register(p: Command): void }> = {
  info: () => require('./commands/info'),
  ls: () => require('./commands/ls'),
  cat: () => require('./commands/cat'),
  stat: () => require('./commands/stat'),
  xattrs: () => require('./commands/xattrs'),
  extract: () => require('./commands/extract'),
  mount: () => require('./commands/mount'),
  unmount: () => require('./commands/mount'),
  umount: () => require('./commands/mount'),
  pack: () => require('./commands/pack'),
  fuse: () => require('./commands/fuse'),
  fusectl: () => require('./commands/fusectl'),
  run: () => require('./commands/run'),
  bootstrap: () => require('./commands/bootstrap'),
  scaffold: () => require('./commands/scaffold'),
  build: () => require('./commands/build'),
  demo: () => require('./commands/demo'),
  mirror: () => require('./commands/mirror'),
  export: () => require('./commands/export'),
  install: () => require('./commands/install'),
  update: () => require('./commands/install'),
  gc: () => require('./commands/gc'),
  bench: () => require('./commands/bench'),
};

/**
 * Commander's Command, with one more hint: an option spelled with one dash the way mksquashfs and
 * unsquashfs spell theirs (`-comp xz`, `-no-fragments`) is pointed at its two-dash name.
 */
class DistriCommand extends Command {
  override createCommand(name?: string): Command {
    return new DistriCommand(name);
  }

  // Not in commander's typings, but the method its parser calls for an unknown option.
  unknownOption(flag: string): void {
    if (/^-[A-Za-z][\w-]+$/.test(flag)) {
      const long = `-${flag}`;
      for (let c: Command | null = this; c; c = c.parent) {
        if (c.options.some((o) => o.long === long)) {
          this.error(`error: unknown option '${flag}' (did you mean '${long}'? distri spells long options with two dashes)`, { code: 'commander.unknownOption' });
        }
      }
    }
    (Command.prototype as unknown as { unknownOption(flag: string): void }).unknownOption.call(this, flag);
  }
}

/**
 * mksquashfs spellings that commander cannot parse as they are (`-ef FILE` would read as `-e f`;
 * `-Xbcj x86` as an unknown option), turned into their long names.
 */
function mksquashfsAliases(argv: string[]): string[] {
  const command = requestedCommand(argv);
  // `distri scaffold --version 2.10 URL`: the program's own --version would answer first.
  if (command === 'scaffold') return argv.map((a) => (a === '--version' ? '--upstream-version' : a.startsWith('--version=') ? `--upstream-version=${a.slice(10)}` : a));
  if (command !== 'pack') return argv;
  const long = new Map([
    ['-ef', '--exclude-file'],
    ['-Xbcj', '--xz-bcj'],
    ['-Xdict-size', '--xz-dict-size'],
    ['-Xhc', '--lz4-hc'],
  ]);
  return argv.map((a) => long.get(a) ?? a);
}

/** The version in package.json (dist/src/cli → the package root). */
function packageVersion(): string {
  for (const p of [path.join(__dirname, '../../../package.json'), path.join(__dirname, '../../package.json')]) {
    try {
      return (JSON.parse(fs.readFileSync(p, 'utf8')) as { version: string }).version;
    } catch {
      // try the next
    }
  }
  return 'unknown';
}

const EXAMPLES = `
Examples:
  distri info pkg.squashfs                      the superblock: compressor, block size, counts
  distri ls -lR pkg.squashfs out/bin            a directory inside the image, long and recursive
  distri cat pkg.squashfs out/bin/tool > tool   one file, byte for byte
  distri extract pkg.squashfs -d /tmp/pkg       everything, like unsquashfs -d
  distri pack --comp zstd rootfs/ root.sqfs     a new image, like mksquashfs rootfs root.sqfs -comp zstd
  distri mount pkg.squashfs /mnt/pkg            one image through FUSE, like squashfuse
  distri <command> --help                       each command's options and examples`;

/** The command named on the command line (the first argument that is not an option), if known. */
function requestedCommand(argv: string[]): string | undefined {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  return first !== undefined && first in commands ? first : undefined;
}

export function buildProgram(only?: string): Command {
  const program = new DistriCommand('distri')
    .description('Inspect, mount and pack SquashFS images; assemble a distri package store at /ro')
    .version(packageVersion(), '--version', 'print the version of distri')
    .option('-v, --verbose', 'show stack traces and debugging detail on errors')
    // Commander says "error: …"; every error line of ours starts "distri: ".
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /gm, 'distri: ')) })
    .addHelpText('after', EXAMPLES)
    .hook('preAction', (cmd) => setVerbose(Boolean(cmd.opts().verbose)));
  program.showHelpAfterError(`distri: see 'distri --help'`);
  const modules = new Set(only ? [commands[only]!()] : Object.values(commands).map((load) => load()));
  for (const m of modules) m.register(program);
  for (const c of program.commands) c.showHelpAfterError(`distri: see 'distri ${c.name()} --help'`);
  return program;
}

/** Runs the command line of this process. */
export function run(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0); // `distri cat … | head`: the reader left, we are done
    throw e;
  });
  buildProgram(requestedCommand(process.argv))
    .parseAsync(mksquashfsAliases(process.argv))
    .catch((e) => {
      process.stderr.write(`distri: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    });
}
