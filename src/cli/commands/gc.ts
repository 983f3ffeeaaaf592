/** `distri gc [--dry-run] [--store DIR] [--json]`: old revisions out of a store (src/repo/gc-store.ts). */
import { Command } from 'commander';
import { gcStore } from '../../repo/gc-store';
import { describeRescan } from '../../repo/rescan';
import { action } from '../common';
import { DEFAULT_STORE } from './fuse';

export function register(program: Command): void {
  program
    .command('gc')
    .description('delete every package revision that is neither the newest of its package nor a runtime dep of one kept')
    .option('--store <dir>', 'the package store', DEFAULT_STORE)
    .option('-n, --dry-run', 'only say what would be deleted')
    .option('--mountpoint <dir>', 'where the store is mounted, to ask the daemon to rescan (default: ro beside the store)')
    .option('--lock-wait <seconds>', 'wait this long for a running install or update', '0')
    .option('--json', 'print {dryRun, keep, remove, bytes, imagesWithoutMeta, metasWithoutImage, rescan}')
    .addHelpText(
      'after',
      `
Kept: the newest revision of every <pkg>-<arch> (a name without revision counts too) and every
runtime dep of what is kept. Deleted: the rest, meta first, then image. Images without meta and
metas without image are reported, not deleted. A meta that does not parse stops gc before it
deletes anything.

Examples:
  distri gc --dry-run
  distri gc --store /mnt/new/roimg --json | jq .remove`,
    )
    .action(
      action(
        () => 'gc',
        async (flags: { store: string; dryRun?: boolean; mountpoint?: string; lockWait: string; json?: boolean }) => {
          const wait = Number(flags.lockWait);
          if (!Number.isFinite(wait) || wait < 0) throw new Error(`--lock-wait wants seconds, got ${JSON.stringify(flags.lockWait)}`);
          const r = await gcStore(flags.store, { dryRun: flags.dryRun, lockWaitMs: wait * 1000, mountpoint: flags.mountpoint });
          if (flags.json) {
            process.stdout.write(JSON.stringify(r) + '\n');
            return;
          }
          const verb = r.dryRun ? 'would remove' : 'removed';
          const lines = r.remove.map((f) => `${verb} ${f}`);
          lines.push(
            `${verb} ${r.remove.length} package${r.remove.length === 1 ? '' : 's'} (${(r.bytes / 2 ** 20).toFixed(1)} MiB), ${r.keep.length} kept${r.rescan ? `; ${describeRescan(r.rescan)}` : ''}`,
          );
          for (const f of r.imagesWithoutMeta) lines.push(`image without meta (not served, left alone): ${f}.squashfs`);
          for (const f of r.metasWithoutImage) lines.push(`meta without image (left alone): ${f}.meta.textproto`);
          process.stdout.write(lines.map((l) => l + '\n').join(''));
        },
      ),
    );
}
