/**
 * The daemon process of a background `distri mount`. The command parses the command line, then
 * spawns this script instead of the whole CLI, with the parsed options as JSON in
 * DISTRI_MOUNT_OPTIONS and the readiness pipe on fd 3 (daemon.ts). It loads only what serving one
 * image needs: no command-line parser and no other command. The user's arguments follow on its
 * command line only so that ps shows what is mounted.
 *
 * Or it is started before the command parsed anything (../cli/daemon-first.ts), with the user's
 * command line and no options: then it parses that itself, with the CLI's parser and only the
 * `mount` command (the bundle holds no other).
 */
import { mark, OPTIONS_ENV } from './mount-env';

mark('daemon entry');
const raw = process.env[OPTIONS_ENV];
delete process.env[OPTIONS_ENV];
if (raw === undefined && process.argv.slice(2).find((a) => !a.startsWith('-')) === 'mount') {
  // Started by the command before it parsed anything (../cli/daemon-first.ts): this thread reads
  // the command line and runs the `mount` command's own action (the same checks and words as the
  // command), which runs the daemon in this process. A plain command line is read without
  // commander; any other goes to the CLI's parser. The serving thread is not started before that
  // (prestartServingThread), unlike in `distri fuse`'s daemon: here the reading takes a few
  // milliseconds, and starting the isolate beside it cost ~45 ms more CPU per mount, measured
  // (bench/README-fuse.md), where two processes share two cores.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const command = require('../cli/commands/mount') as typeof import('../cli/commands/mount');
  const plain = command.plainMountCommandLine(process.argv.slice(2));
  if (plain) void command.mountAction(plain.image, plain.mountpoint, plain.flags);
  else {
    // The parser runs from tsc's output (this bundle leaves it out), with its own copy of the
    // mount command and the daemon.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('../cli/program') as typeof import('../cli/program')).run();
  }
} else runFromOptions(raw);

function runFromOptions(raw: string | undefined): void {
  let opts: import('./daemon').MountOptions | undefined;
  try {
    opts = raw ? (JSON.parse(raw) as import('./daemon').MountOptions) : undefined;
  } catch {
    opts = undefined;
  }
  if (!opts || typeof opts.image !== 'string' || typeof opts.mountpoint !== 'string') {
    process.stderr.write(`distri mount: ${process.argv[1]} is the daemon of \`distri mount\` and is started by it (no usable ${OPTIONS_ENV})\n`);
    process.exit(1);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runDaemon } = require('./daemon') as typeof import('./daemon');
  runDaemon(opts).then(
    // The native FUSE thread holds the event loop open after unmounting: end the process here.
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`distri mount: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
