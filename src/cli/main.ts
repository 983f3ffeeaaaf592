#!/usr/bin/env node
/**
 * The `distri` command line: one module per command under ./commands, each exporting
 * register(program). Exit statuses: 0 success, 1 failure (corrupt or unreadable image, I/O),
 * 2 a path that does not exist inside the image; usage errors exit 1 with commander's message.
 */
import { Command } from 'commander';
import { setVerbose } from './common';
import * as info from './commands/info';
import * as ls from './commands/ls';
import * as cat from './commands/cat';
import * as stat from './commands/stat';
import * as xattrs from './commands/xattrs';
import * as pack from './commands/pack';
import * as extract from './commands/extract';
import * as mount from './commands/mount';
import * as fuse from './commands/fuse';
import * as fusectl from './commands/fusectl';
import * as demo from './commands/demo';
import * as bench from './commands/bench';

// Add new commands here (one line each, in the order --help should list them).
const commands: Array<{ register(p: Command): void }> = [info, ls, cat, stat, xattrs, extract, mount, pack, fuse, fusectl, demo, bench];

export function buildProgram(): Command {
  const program = new Command('distri')
    .description('Inspect, mount and pack SquashFS images; assemble a distri package store at /ro')
    .option('-v, --verbose', 'show stack traces and debugging detail on errors')
    .showHelpAfterError('(run with --help for usage)')
    .hook('preAction', (cmd) => setVerbose(Boolean(cmd.opts().verbose)));
  for (const c of commands) c.register(program);
  return program;
}

if (require.main === module) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0); // `distri cat … | head`: the reader left, we are done
    throw e;
  });
  buildProgram().parseAsync(process.argv).catch((e) => {
    process.stderr.write(`distri: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
