/**
 * `distri fusectl MOUNTPOINT ping|scan|mkdirall DIR|stats`: talks to the control socket of a
 * `distri fuse` mount, found through the `MOUNTPOINT/ctl` symlink (src/vfs/ctl.ts has the protocol).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { ctlRequest } from '../../vfs/ctl';

/** The control socket of the /ro mount at `mountpoint`. */
export function ctlSocket(mountpoint: string): string {
  const link = path.join(mountpoint, 'ctl');
  let target: string;
  try {
    target = fs.readlinkSync(link);
  } catch (e) {
    throw new Error(`${link}: ${(e as Error).message} (is a distri fuse mount there?)`);
  }
  return path.resolve(mountpoint, target);
}

function formatStats(s: Record<string, unknown>): string {
  const idx = (s.index ?? {}) as Record<string, unknown>;
  const lines = [
    `images known        ${s.imagesKnown}`,
    `images open         ${s.imagesOpen} (opened ${s.imagesOpenedTotal} times, ${s.evictions} closed to stay in bounds, ${s.openFailures} failed)`,
    `nodes held          ${s.nodes} (what the kernel caches of the tree)`,
    `cache hits/misses   ${s.cacheHits} / ${s.cacheMisses}`,
    `scans               ${s.scans} (last ${s.lastScanMs} ms)`,
    `index               ${idx.dir}: ${idx.loaded} loaded, ${idx.hits} reused, ${idx.built} built, ${idx.entriesBuilt} entry lists rebuilt${idx.writeError ? `, not saved: ${idx.writeError}` : ''}`,
  ];
  if (typeof s.rssBytes === 'number') lines.push(`daemon memory (RSS) ${(s.rssBytes / 2 ** 20).toFixed(1)} MiB`);
  return lines.join('\n') + '\n' + formatLeftOut(s);
}

/**
 * The packages a scan left out, one line each with the reason, --pkgs names that matched nothing,
 * and files of shown packages that can never reach an exchange dir.
 */
function formatLeftOut(s: Record<string, unknown>): string {
  const skipped = (s.skippedPackages ?? []) as Array<{ pkg: string; why: string }>;
  const unmatched = (s.unmatchedPkgs ?? []) as string[];
  const warnings = (s.warnings ?? []) as Array<{ pkg: string; why: string }>;
  return [
    ...skipped.map((k) => `skipped             ${k.pkg}: ${k.why}\n`),
    ...unmatched.map((n) => `--pkgs ${n}: matches no package of the store\n`),
    ...warnings.map((w) => `warning             ${w.pkg}: ${w.why}\n`),
  ].join('');
}

export function register(program: Command): void {
  program
    .command('fusectl')
    .description('control a distri fuse mount: ping, scan (rescan the store), mkdirall DIR, stats')
    .argument('<mountpoint>', 'where distri fuse is mounted')
    .argument('<op>', 'ping | scan | mkdirall | stats')
    .argument('[dir]', 'for mkdirall: one path component')
    .option('--json', 'print the raw answer')
    .addHelpText('after', '\nExamples:\n  distri fusectl /ro ping\n  distri fusectl /ro mkdirall build-1     (creates an empty /ro/build-1)\n  distri fusectl /ro stats --json')
    .action(async (mountpoint: string, op: string, dir: string | undefined, flags: { json?: boolean }) => {
      try {
        if (!['ping', 'scan', 'mkdirall', 'stats'].includes(op)) throw new Error(`unknown op ${JSON.stringify(op)} (ping, scan, mkdirall DIR, stats)`);
        if (op === 'mkdirall' && dir === undefined) throw new Error('mkdirall needs DIR');
        const answer = await ctlRequest(ctlSocket(path.resolve(mountpoint)), op === 'mkdirall' ? { op, dir } : { op });
        if (answer.ok !== true) throw new Error(String(answer.error ?? 'failed'));
        if (flags.json) process.stdout.write(JSON.stringify(answer, null, 1) + '\n');
        else if (op === 'stats') process.stdout.write(formatStats(answer.stats as Record<string, unknown>));
        else if (op === 'scan')
          process.stdout.write(
            `${answer.known} packages (+${(answer.added as string[]).length} -${(answer.removed as string[]).length}, ${answer.skipped} skipped) in ${Number(answer.ms).toFixed(1)} ms\n${formatLeftOut(answer)}`,
          );
        else if (op === 'ping') process.stdout.write(`ok (daemon ${answer.pid}, store ${answer.store})\n`);
      } catch (e) {
        process.stderr.write(`distri: fusectl ${op}: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
