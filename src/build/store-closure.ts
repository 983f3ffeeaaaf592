/**
 * Which packages of a store a root shows: names as people type them (`gcc`, `gcc-amd64`, or a full
 * name) resolved to the newest complete package (image and meta both present), then closed over the
 * metas' `runtime_dep` lists, which distri keeps as full names.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { parseMeta, type Meta } from '../store/meta';
import { parsePackageName, pkgArch, type PackageName } from '../store/package-name';
import { newest } from '../store/version';

export interface StorePackageInfo {
  name: PackageName;
  meta: Meta;
}

/** Every complete package of the store (image and meta), with its parsed meta. */
export function listStore(store: string): Map<string, StorePackageInfo> {
  let names: string[];
  try {
    names = fs.readdirSync(store);
  } catch {
    throw new SquashfsError('NOT_FOUND', `${store}: no such store directory`);
  }
  const have = new Set(names);
  const out = new Map<string, StorePackageInfo>();
  for (const f of names) {
    if (!f.endsWith('.meta.textproto')) continue;
    const full = f.slice(0, -'.meta.textproto'.length);
    const name = parsePackageName(full);
    if (!name || name.full !== full || name.upstream === '' || !have.has(`${full}.squashfs`)) continue;
    try {
      out.set(full, { name, meta: parseMeta(fs.readFileSync(path.join(store, f), 'utf8')) });
    } catch {
      // a meta that does not parse: the package is skipped, as /ro skips it
    }
  }
  return out;
}

/** The full name `want` means in the store: itself, or the newest `<pkg>-<arch>` / `<pkg>` revision. */
export function resolveName(pkgs: Map<string, StorePackageInfo>, want: string): string | undefined {
  if (pkgs.has(want)) return want;
  const candidates = [...pkgs.values()].map((p) => p.name).filter((n) => pkgArch(n) === want || n.pkg === want);
  return newest(candidates)?.full;
}

/** The named packages and all their runtime deps (full names, sorted). Unknown names throw NOT_FOUND. */
export function closure(pkgs: Map<string, StorePackageInfo>, wanted: string[]): string[] {
  const seen = new Set<string>();
  const stack: string[] = [];
  for (const w of wanted) {
    const full = resolveName(pkgs, w);
    if (!full) throw new SquashfsError('NOT_FOUND', `no package ${JSON.stringify(w)} in the store`);
    stack.push(full);
  }
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const d of pkgs.get(f)?.meta.runtimeDep ?? []) if (pkgs.has(d)) stack.push(d);
  }
  return [...seen].sort();
}

/** The newest glibc among `fulls`, for /lib64. */
export function glibcOf(pkgs: Map<string, StorePackageInfo>, fulls: Iterable<string>): string | undefined {
  return newest([...fulls].map((f) => pkgs.get(f)?.name).filter((n): n is PackageName => n !== undefined && n.pkg === 'glibc'))?.full;
}
