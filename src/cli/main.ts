#!/usr/bin/env node
/**
 * The `distri` command line: one module per command under ./commands, each exporting
 * register(program). Exit statuses: 0 success, 1 failure (corrupt or unreadable image, I/O),
 * 2 a path that does not exist or is not a directory (inside the image, or the source of pack);
 * usage errors exit 1 with commander's message.
 */
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
  demo: () => require('./commands/demo'),
  bench: () => require('./commands/bench'),
};

/** The command named on the command line (the first argument that is not an option), if known. */
function requestedCommand(argv: string[]): string | undefined {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  return first !== undefined && first in commands ? first : undefined;
}

export function buildProgram(only?: string): Command {
  const program = new Command('distri')
    .description('Inspect, mount and pack SquashFS images; assemble a distri package store at /ro')
    .option('-v, --verbose', 'show stack traces and debugging detail on errors')
    .showHelpAfterError('(run with --help for usage)')
    .hook('preAction', (cmd) => setVerbose(Boolean(cmd.opts().verbose)));
  const modules = new Set(only ? [commands[only]!()] : Object.values(commands).map((load) => load()));
  for (const m of modules) m.register(program);
  return program;
}

if (require.main === module) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0); // `distri cat … | head`: the reader left, we are done
    throw e;
  });
  buildProgram(requestedCommand(process.argv)).parseAsync(process.argv).catch((e) => {
    process.stderr.write(`distri: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
