/**
 * Build dependencies and runtime-dep closures, resolved against a store directory (the same
 * `<full>.squashfs` + `<full>.meta.textproto` pairs `distri fuse` serves).
 *
 * - The builder's implicit deps (distri's "builder deps") come first, then the recipe's `dep`s.
 * - A name (`glibc`, `glibc-amd64` or a full name) resolves to the newest revision in the store by
 *   the natural version order of src/store/version.ts (distri compared strings: **fix**).
 * - The closure follows every package's `runtime_dep` (already closures in well-formed metas, but
 *   followed anyway so that a hand-written meta cannot leave a gap).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { parseMeta, type Meta } from '../store/meta';
import { isBareName, parsePackageName, type PackageName } from '../store/package-name';
import { comparePackageVersions } from '../store/version';
import type { Builder } from './recipe';

export const ARCH = 'amd64';

/** The C builder's deps, which most builders include (anything that links against C). */
export const C_BUILDER_DEPS = [
  'bash',
  'coreutils',
  'sed',
  'grep',
  'gawk',
  'diffutils',
  'file',
  'pkg-config',
  'gcc-libs',
  'mpc',
  'mpfr',
  'gmp',
  'make',
  'glibc',
  'linux',
  'findutils',
  'gcc',
  'binutils',
] as const;

/** The builder's implicit build deps, as package names (without arch). */
export function builderDeps(builder: Builder): string[] {
  const c = [...C_BUILDER_DEPS];
  switch (builder.kind) {
    case 'cbuilder':
      return builder.autoreconf ? [...c, 'autoconf', 'automake', 'libtool', 'gettext'] : c;
    case 'perlbuilder':
      return ['perl', ...c];
    case 'pythonbuilder':
      return ['python3', ...c];
    case 'cmakebuilder':
      return ['cmake', 'ninja', ...c];
    case 'mesonbuilder':
      return ['meson', ...c];
    case 'gomodbuilder':
      return ['bash', 'coreutils'];
    case 'gobuilder':
      return ['bash', 'coreutils', 'golang', ...c];
    case 'none':
      return [];
  }
}

/** The language runtime a builder's output needs at run time (a runtime dep of every such package). */
export function builderRuntime(builder: Builder): string[] {
  return builder.kind === 'perlbuilder' ? ['perl'] : builder.kind === 'pythonbuilder' ? ['python3'] : [];
}

/** What a store directory holds: every package with both its image and its meta. */
export class StoreCatalog {
  private readonly byPkg = new Map<string, PackageName[]>();
  private readonly metas = new Map<string, Meta>();

  constructor(
    readonly dir: string,
    readonly names: readonly PackageName[],
  ) {
    for (const n of names) {
      const key = `${n.pkg}-${n.arch}`;
      const list = this.byPkg.get(key) ?? [];
      list.push(n);
      this.byPkg.set(key, list);
    }
  }

  static scan(dir: string): StoreCatalog {
    let files: string[];
    try {
      files = fs.readdirSync(dir);
    } catch {
      throw new SquashfsError('NOT_FOUND', `store ${dir}: no such directory`);
    }
    const set = new Set(files);
    const names: PackageName[] = [];
    for (const f of files) {
      if (!f.endsWith('.meta.textproto')) continue;
      const n = parsePackageName(f);
      if (!n || isBareName(n)) continue; // the `<pkg>-<arch>.meta.textproto` links
      if (!set.has(`${n.full}.squashfs`)) continue;
      names.push(n);
    }
    return new StoreCatalog(dir, names);
  }

  has(full: string): boolean {
    const n = parsePackageName(full);
    return !!n && (this.byPkg.get(`${n.pkg}-${n.arch}`) ?? []).some((x) => x.full === full);
  }

  /** The newest full name for `glibc`, `glibc-amd64` or a full name; undefined when absent. */
  tryResolve(name: string): string | undefined {
    const parsed = parsePackageName(name);
    if (parsed && !isBareName(parsed)) return this.has(parsed.full) ? parsed.full : undefined;
    const key = parsed ? parsed.full : `${name}-${ARCH}`;
    const list = this.byPkg.get(key);
    if (!list || list.length === 0) return undefined;
    return [...list].sort(comparePackageVersions).at(-1)!.full;
  }

  resolve(name: string, why: string): string {
    const full = this.tryResolve(name);
    if (!full) throw new SquashfsError('NOT_FOUND', `${why} ${JSON.stringify(name)} is not in the store ${this.dir}`);
    return full;
  }

  meta(full: string): Meta {
    let m = this.metas.get(full);
    if (!m) {
      const file = path.join(this.dir, `${full}.meta.textproto`);
      m = parseMeta(fs.readFileSync(file, 'utf8'));
      this.metas.set(full, m);
    }
    return m;
  }

  /**
   * `roots` and everything they need at run time, in breadth-first order (roots first).
   * A runtime dep missing from the store is an error naming who needs it.
   */
  closure(roots: readonly string[]): string[] {
    const seen = new Set<string>();
    const order: string[] = [];
    const queue: Array<{ full: string; by?: string }> = roots.map((full) => ({ full }));
    while (queue.length > 0) {
      const { full, by } = queue.shift()!;
      if (seen.has(full)) continue;
      if (!this.has(full)) throw new SquashfsError('NOT_FOUND', `${full}${by ? ` (a runtime dep of ${by})` : ''} is not in the store ${this.dir}`);
      seen.add(full);
      order.push(full);
      for (const d of this.meta(full).runtimeDep) queue.push({ full: d, by: full });
    }
    return order;
  }
}

/** The build deps of a recipe: builder deps + `dep`, resolved, then closed over runtime deps. */
export function resolveBuildDeps(catalog: StoreCatalog, builder: Builder, dep: readonly string[]): { direct: string[]; closure: string[] } {
  const names = [...builderDeps(builder), ...dep];
  const direct = [...new Set(names.map((n) => catalog.resolve(n, 'build dep')))];
  return { direct, closure: catalog.closure(direct) };
}
