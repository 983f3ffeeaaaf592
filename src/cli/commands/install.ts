/**
 * `distri install [--root R] [--repo URL|DIR]… PKG…` and `distri update [--root R] [--repo …]`:
 * packages and their runtime-dep closure from repos into `R/roimg` (src/repo/install.ts has the
 * steps, the lock and what an interruption leaves).
 */
import { Command } from 'commander';
import { SquashfsError } from '../../errors';
import { install, type InstallProgress, type InstallResult } from '../../repo/install';
import { describeRescan } from '../../repo/rescan';
import { action } from '../common';

interface Flags {
  root: string;
  repo: string[];
  jobs: string;
  timeout: string;
  lockWait: string;
  json?: boolean;
  quiet?: boolean;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function number(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new SquashfsError('INVALID_ARGUMENT', `${name} wants a number ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function printResult(r: InstallResult, seconds: number, update: boolean): void {
  const lines: string[] = [];
  for (const n of r.notes) lines.push(`note: ${n}`);
  for (const p of r.installed) {
    let line = `installed ${p.full} (${mib(p.bytes)} from ${p.repo})`;
    if (p.etc && (p.etc.copied.length || p.etc.kept.length))
      line += `; etc: ${p.etc.copied.length} copied${p.etc.kept.length ? `, ${p.etc.kept.length} existing kept (${p.etc.kept.join(', ')})` : ''}`;
    lines.push(line);
  }
  if (update) {
    if (r.installed.length === 0) lines.push('everything is up to date');
    if (r.notInRepos.length) lines.push(`in no repo (left as they are): ${r.notInRepos.join(', ')}`);
  } else if (r.present.length) {
    lines.push(`already installed: ${r.present.join(', ')}`);
  }
  if (r.installed.length) lines.push(`${r.installed.length} package${r.installed.length === 1 ? '' : 's'}, ${mib(r.bytes)} in ${seconds.toFixed(2)} s; ${r.rescan ? describeRescan(r.rescan) : ''}`);
  process.stdout.write(lines.map((l) => l + '\n').join(''));
}

/** Runs an install with SIGINT/SIGTERM aborting it cleanly, then dying of the signal. */
async function run(flags: Flags, names: string[], update: boolean): Promise<void> {
  const started = Date.now();
  const ac = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    caught = sig;
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const tty = process.stderr.isTTY && !flags.json && !flags.quiet;
  let last = 0;
  const progress = (p: InstallProgress) => {
    const now = Date.now();
    if (now - last < 200 && p.filesDone < p.filesTotal) return;
    last = now;
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
    process.stderr.write(`\r\x1b[K[${'='.repeat(Math.floor(pct / 4)).padEnd(25)}] ${pct}% ${mib(p.bytesDone)}/${mib(p.bytesTotal)}, ${p.filesDone}/${p.filesTotal} files`);
  };
  let result: InstallResult;
  try {
    result = await install({
      root: flags.root,
      repos: flags.repo,
      names,
      update,
      jobs: number('--jobs', flags.jobs, 1),
      timeoutMs: number('--timeout', flags.timeout, 0.001) * 1000,
      lockWaitMs: number('--lock-wait', flags.lockWait, 0) * 1000,
      signal: ac.signal,
      onProgress: tty ? progress : undefined,
      log: flags.quiet || flags.json ? undefined : (line) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}distri: ${line}\n`),
    });
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Everything is cleaned up by now: die of the signal, as if it had not been caught.
    if (caught) process.kill(process.pid, caught);
  }
  const seconds = (Date.now() - started) / 1000;
  if (flags.json) process.stdout.write(JSON.stringify({ ...result, seconds }) + '\n');
  else if (!flags.quiet) printResult(result, seconds, update);
  if (result.rescan?.status === 'failed') process.stderr.write(`distri: ${describeRescan(result.rescan)}\n`);
}

function common(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'the machine root: store in ROOT/roimg, configuration in ROOT/etc, /ro at ROOT/ro', '/')
    .option('--repo <url|dir>', 'a repo (http://, https:// or a directory holding pkg/); repeat for several, newest revision over all wins', collect, [])
    .option('-j, --jobs <n>', 'files fetched at once', '4')
    .option('--timeout <seconds>', 'give up on a server that sends nothing for this long', '30')
    .option('--lock-wait <seconds>', 'wait this long for another install, update or gc to finish (0: fail at once)', '0')
    .option('--quiet', 'print nothing but errors')
    .option('--json', 'print one JSON object: {resolved, installed:[{full, repo, bytes, etc}], present, notInRepos, bytes, rescan, notes, seconds}');
}

export function register(program: Command): void {
  common(
    program
      .command('install')
      .description('install packages and their runtime deps from repos into ROOT/roimg, verified against the repo index')
      .argument('<pkg...>', 'nano (= nano-amd64, the newest revision), nano-amd64, or a full name nano-amd64-4.3-1'),
  )
    .addHelpText(
      'after',
      `
The newest revision over all repos wins (revision first, then the upstream version compared
naturally). Every file is checked against the repo's index (size and sha256) before it is placed;
a package's etc/ is copied to ROOT/etc on its first install only, and existing files there are
never replaced. The store is locked while installing (ROOT/roimg/.distri-lock). Interrupted, the
store stays as it was. A distri fuse daemon at ROOT/ro is asked to rescan.

Examples:
  distri install --repo https://repo.example.org/distri nano
  distri install --root /mnt/new --repo ./repo --repo http://mirror:8080 bash-amd64 coreutils
  distri install --json --repo ./repo nano-amd64-4.3-1 | jq .installed`,
    )
    .action(
      action(
        (names: string[]) => `install ${names.join(' ')}`,
        (names: string[], flags: Flags) => run(flags, names, false),
      ),
    );

  common(program.command('update').description('install the newest revision of every installed package (by name) from repos'))
    .addHelpText(
      'after',
      `
For each package in ROOT/roimg (by <pkg>-<arch>, not by source package), the newest revision over
all repos is installed with its runtime deps when it is newer than the newest installed one. Old
revisions stay until distri gc.

Examples:
  distri update --repo https://repo.example.org/distri
  distri update --root /mnt/new --repo ./repo && distri gc --store /mnt/new/roimg`,
    )
    .action(
      action(
        () => 'update',
        (flags: Flags) => run(flags, [], true),
      ),
    );
}
