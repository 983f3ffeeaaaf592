/**
 * `distri gc` on a real store: the plan of src/store/gc.ts (keep the newest revision of every
 * package, including a newest rev-0 one, plus the runtime deps of what is kept), carried out under
 * the store lock. Each removed package loses its meta first and its image second, the reverse of
 * install, so the store scanner never sees an image without meta that it would report as broken
 * mid-way, and an interrupted gc leaves at worst an image without meta, which gc reports.
 *
 * Reported, never deleted: images without a meta (an unfinished copy, or a mistake: the daemon
 * skips them) and metas without an image. A meta that does not parse stops gc before it deletes
 * anything: that package's dependencies are unknown, so deleting could break it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { planGc, type StorePackage } from '../store/gc';
import { parseMeta } from '../store/meta';
import { scanStore } from '../vfs/store-scan';
import { rescanDaemon, type RescanOutcome } from './rescan';
import { lockStore } from './store-lock';

export interface GcResult {
  dryRun: boolean;
  keep: string[];
  /** Removed (or, with dryRun, to be removed). */
  remove: string[];
  /** Bytes of the removed images and metas. */
  bytes: number;
  imagesWithoutMeta: string[];
  metasWithoutImage: string[];
  rescan?: RescanOutcome;
}

const META = '.meta.textproto';

function sizeOf(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

export async function gcStore(store: string, opts: { dryRun?: boolean; lockWaitMs?: number; mountpoint?: string; log?(line: string): void } = {}): Promise<GcResult> {
  const dryRun = opts.dryRun ?? false;
  let st: fs.Stats;
  try {
    st = fs.statSync(store);
  } catch {
    throw new SquashfsError('NOT_FOUND', `${store}: no such store directory`);
  }
  if (!st.isDirectory()) throw new SquashfsError('NOT_A_DIRECTORY', `${store} is not a directory`);
  // A dry run changes nothing, so it takes no lock (it may run beside an install).
  const lock = dryRun ? undefined : await lockStore(store, { waitMs: opts.lockWaitMs ?? 0, cmd: 'distri gc' });
  let result: GcResult;
  try {
    const scan = scanStore(store);
    const packages: StorePackage[] = [];
    const imagesWithoutMeta: string[] = [];
    const unreadable: string[] = [];
    for (const [full, p] of [...scan.packages].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (!p.hasMeta) {
        imagesWithoutMeta.push(full);
        continue;
      }
      try {
        packages.push({ name: p.name, runtimeDep: parseMeta(fs.readFileSync(p.metaPath, 'utf8')).runtimeDep });
      } catch (e) {
        unreadable.push(`${full} (${e instanceof SquashfsError ? e.describe() : (e as Error).message})`);
      }
    }
    if (unreadable.length) {
      throw new SquashfsError('CORRUPT', `nothing deleted: the meta of ${unreadable.join(', ')} cannot be read, so what it depends on is unknown; fix or remove it first`);
    }
    const metasWithoutImage = fs
      .readdirSync(store)
      .filter((n) => !n.startsWith('.') && n.endsWith(META) && !scan.packages.has(n.slice(0, -META.length)))
      .map((n) => n.slice(0, -META.length))
      .sort();
    const plan = planGc(packages);
    let bytes = 0;
    for (const n of plan.remove) {
      const meta = path.join(store, `${n.full}${META}`);
      const image = path.join(store, `${n.full}.squashfs`);
      bytes += sizeOf(meta) + sizeOf(image);
      if (dryRun) continue;
      fs.rmSync(meta, { force: true });
      fs.rmSync(image, { force: true });
      opts.log?.(`removed ${n.full}`);
    }
    result = { dryRun, keep: plan.keep.map((n) => n.full), remove: plan.remove.map((n) => n.full), bytes, imagesWithoutMeta, metasWithoutImage };
  } finally {
    lock?.release();
  }
  if (!dryRun && result.remove.length > 0) result.rescan = await rescanDaemon(opts.mountpoint ?? path.join(path.dirname(path.resolve(store)), 'ro'), store);
  return result;
}
