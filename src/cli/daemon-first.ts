/**
 * A background `distri mount` or `distri fuse` starts its daemon before anything else: before
 * loading the command-line parser or any command, from a look at argv alone. The command and the
 * daemon are two Node processes; started one after the other, the daemon's start-up waited for
 * the command's module loading and parsing. Started this way, the daemon parses the same command
 * line with the same code while the command only waits, and on two cores the serving thread, the
 * daemon's main thread and the command each have a core most of the time (bench/README-fuse.md has
 * the figures).
 *
 * The daemon does every check (usage, -o options, the mountpoint, the image) and prints every
 * failure in the command's words; this side relays its stderr until it reports on the readiness
 * pipe (fd 3, as spawnDaemon in ./commands/mount.ts), then exits 0, or, when it failed, with the
 * daemon's own exit status once its last word is relayed. Runs that print something on stdout or
 * stay in the foreground (--help, --version, -f, -d, -o debug) never come here: the command runs
 * them itself, as do runs with `--` (positional words that look like options) and any run with
 * DISTRI_NO_EARLY_DAEMON=1 (benchmarks compare both ways).
 *
 * Loads node:child_process and two modules that load only node:fs and node:path.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { DAEMON_BUNDLE, bundleOr, fuseDirOf } from '../fuse/bundles';
import { EARLY_ENV, READY_ENV, mark, writeNotifyFailure } from '../fuse/mount-env';
import { hasLong, hasShort, lastLong, optionItems, scanArgv } from '../util/argv-scan';

/** How long the command waits for the daemon to say it is mounted (as spawnDaemon). */
const READY_WAIT_MS = 30_000;
/** After the daemon exited, how long its stderr may stay open (a child of its holding it). */
const DRAIN_WAIT_MS = 2000;

/** Options that print, or keep the command in the foreground: the command handles those itself. */
const COMMAND_OWN = new Set(['help', 'version', 'foreground', 'debug']);

/** The command whose daemon to start first (mount or fuse), or undefined to run the command line as usual. */
export function daemonFirstCommand(argv: readonly string[], env: NodeJS.ProcessEnv): 'mount' | 'fuse' | undefined {
  if (env[READY_ENV] !== undefined || env.DISTRI_NO_EARLY_DAEMON) return undefined;
  const words = scanArgv(argv);
  const first = words.find((w) => w.kind === 'operand');
  if (first?.kind !== 'operand' || (first.text !== 'mount' && first.text !== 'fuse')) return undefined;
  if (words.some((w) => w.kind === 'end')) return undefined; // operands that look like options: the parser's call
  if (words.some((w) => w.kind === 'long' && COMMAND_OWN.has(w.name.slice(2)))) return undefined;
  if (hasShort(words, 'fdhV')) return undefined; // -f, -d, -h, in clusters too
  if (optionItems(words).includes('debug')) return undefined; // -o debug: libfuse's debug output, in the foreground
  return first.text;
}

/**
 * Whether this process will serve the mount itself: it is the daemon (`distri fuse`'s is the CLI),
 * or -f/-d keep it in the foreground. Its serving thread can then start before the command line is
 * parsed (prestartServingThread in ../fuse/kernel/transport.ts). --help never serves.
 */
export function servesHere(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  const words = scanArgv(argv);
  if (hasLong(words, '--help') || hasShort(words, 'h')) return false;
  if (env[READY_ENV] !== undefined) return true;
  return hasLong(words, '--foreground', '--debug') || hasShort(words, 'fd');
}

/**
 * The notify_pipe FIFO named on the command line (`-o notify_pipe=F` for mount, among other -o
 * items; `--notify-pipe F` for fuse), resolved against this directory, as the daemon resolves it.
 */
export function notifyPipeIn(argv: readonly string[]): string | undefined {
  const words = scanArgv(argv);
  const item = optionItems(words)
    .filter((i) => i.startsWith('notify_pipe='))
    .pop()
    ?.slice('notify_pipe='.length);
  const found = item ?? lastLong(words, '--notify-pipe');
  return found ? path.resolve(found) : undefined;
}

/**
 * Spawns the daemon of `command` with this process's arguments and relays until it reports.
 * `cliMain` is the CLI's entry (main.js): `distri fuse`'s daemon is the CLI itself.
 */
export function runDaemonFirst(command: 'mount' | 'fuse', cliMain: string): void {
  mark('spawning the daemon');
  const fuseDir = fuseDirOf(path.dirname(cliMain));
  const plain = path.join(fuseDir, 'mount-daemon.js');
  const script = command === 'mount' ? bundleOr(path.join(fuseDir, DAEMON_BUNDLE), plain, plain) : cliMain;
  const env: NodeJS.ProcessEnv = { ...process.env, [READY_ENV]: '3', [EARLY_ENV]: '1' };
  // Node parses NODE_EXTRA_CA_CERTS at every start (~40 ms here); a daemon serving a filesystem
  // never speaks TLS (as spawnDaemon).
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    detached: true, // its own session, like daemon(3): it outlives this command
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env,
  });
  const ready = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  let done = false;
  const finish = (code: number, message?: string) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    mark('daemon reported');
    if (message) process.stderr.write(`distri: ${command}: ${message}\n`);
    child.stderr!.removeAllListeners('data');
    child.stderr!.destroy();
    ready.destroy();
    child.removeAllListeners();
    child.unref();
    process.exitCode = code;
  };
  // A daemon that reports a failure writes 'f' itself; one that never reported cannot.
  const notifyPipe = notifyPipeIn(process.argv.slice(2));
  const timer = setTimeout(() => {
    child.kill('SIGTERM');
    writeNotifyFailure(notifyPipe);
    finish(1, `the daemon did not report within ${READY_WAIT_MS / 1000} s`);
  }, READY_WAIT_MS);
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  let line = '';
  ready.on('data', (d: Buffer) => {
    line += d.toString();
    const nl = line.indexOf('\n');
    if (nl < 0) return;
    let ok = false;
    try {
      ok = (JSON.parse(line.slice(0, nl)) as { ok: boolean }).ok === true;
    } catch {
      // an unreadable report is a failure; the daemon's exit below says more
    }
    // On a failure the daemon has printed why and is leaving: relay the rest, then its status.
    if (ok) finish(0);
  });
  // A failure ends with the daemon's exit; 'close' comes once its stderr is relayed to the end.
  let exited: NodeJS.Timeout | undefined;
  const ended = (code: number | null, signal: NodeJS.Signals | null) => {
    clearTimeout(exited);
    if (done) return;
    if (signal || code === 0) writeNotifyFailure(notifyPipe);
    if (signal) finish(1, `the daemon was killed (${signal}) before mounting`);
    else if (code === 0) finish(1, 'the daemon exited before mounting without a message');
    else finish(code ?? 1);
  };
  child.on('exit', (code, signal) => {
    exited = setTimeout(() => ended(code, signal), DRAIN_WAIT_MS);
  });
  child.on('close', ended);
  child.on('error', (e) => {
    writeNotifyFailure(notifyPipe);
    finish(1, `could not start the daemon: ${e.message}`);
  });
}
