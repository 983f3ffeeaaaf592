/**
 * Store garbage collection (`distri gc`): which packages of a store to keep. Kept are the newest
 * revision of every `<pkg>-<arch>` and everything a kept package depends on at run time; the rest
 * goes. **fix**: distri deleted the newest package when its name had no revision (rev 0); here the
 * newest is chosen by the same order as everywhere else (version.ts), so it is always kept.
 *
 * runtime_dep in a package's meta is already the transitive closure, but the walk below follows
 * dependencies of dependencies anyway, so a store with hand-made or older metas stays consistent.
 * A dependency that names no package in the store is not an error here: there is nothing to keep
 * (and a bare `<pkg>-<arch>` would mean the newest revision, which is kept regardless).
 */
import type { PackageName } from './package-name';
import { newestByPackage } from './version';

export interface StorePackage {
  readonly name: PackageName;
  /** The package's runtime_dep (full names), from its meta; empty when unknown. */
  readonly runtimeDep: readonly string[];
}

export interface GcPlan {
  /** Sorted by full name. */
  readonly keep: readonly PackageName[];
  /** Sorted by full name. */
  readonly remove: readonly PackageName[];
}

function byFull(a: PackageName, b: PackageName): number {
  return a.full < b.full ? -1 : a.full > b.full ? 1 : 0;
}

/** Splits a store into what gc keeps and what it removes. Pure: deletes nothing. */
export function planGc(store: readonly StorePackage[]): GcPlan {
  const byName = new Map<string, StorePackage>();
  for (const p of store) if (!byName.has(p.name.full)) byName.set(p.name.full, p);
  const newest = newestByPackage([...byName.values()].map((p) => p.name));

  const kept = new Set<string>();
  const queue: string[] = [];
  const keep = (full: string): void => {
    if (kept.has(full) || !byName.has(full)) return;
    kept.add(full);
    queue.push(full);
  };
  for (const n of newest.values()) keep(n.full);
  while (queue.length > 0) {
    for (const dep of byName.get(queue.pop()!)!.runtimeDep) keep(dep);
  }

  const all = [...byName.values()].map((p) => p.name).sort(byFull);
  return { keep: all.filter((n) => kept.has(n.full)), remove: all.filter((n) => !kept.has(n.full)) };
}
