/**
 * Exchange directories: the places under `/ro` where every package contributes files, so that
 * `/ro/bin` holds every program of the store, `/ro/lib/pkgconfig` every `.pc` file, and so on.
 * Each is assembled from one directory of every image, with a leading `out/` dropped:
 *
 *   image path     virtual path        image path     virtual path
 *   bin            bin                 out/share      share
 *   out/lib        lib                 out/gopath     gopath
 *   out/lib64      lib64               debug          debug
 *   out/include    include
 *
 * They are recursive: every directory below becomes a virtual directory, every non-directory a
 * relative symlink into its package, relative to the virtual directory holding the link:
 *   /ro/bin/less              -> ../less-amd64-530-2/bin/less
 *   /ro/lib/pkgconfig/bash.pc -> ../../bash-amd64-1/out/lib/pkgconfig/bash.pc
 *
 * The nested exchange dirs (`out/lib/gio`, `out/share/aclocal`, …) lie inside `out/lib` and
 * `out/share`, which are recursive already, so they add no content. What they do add (as in
 * distri, which created every exchange dir before scanning any package) is existence: they, like
 * the seven above, are virtual directories even when no package ships them (`/ro/share/aclocal`
 * exists in an empty store: aclocal and glib look there), and so no file can ever take their name.
 *
 * Who owns a name, applied in store order (packages sorted by full name):
 *  1. A directory is never shadowed by a file: if any package has a directory at a virtual path,
 *     it is a directory, and the files other packages have at that path are not shown.
 *  2. Among revisions of one package (same `<pkg>-<arch>`), the newest revision that has the file
 *     owns the link. Rule applied per name, as distri did: a file that only an older revision has
 *     stays linked to that revision until it is garbage-collected; when the newest revision leaves
 *     the store, its links fall back to the next-newest that has the file.
 *  3. Between different packages, the package earliest in store order keeps the name.
 *     **fix**: distri scanned packages concurrently, so this owner was random.
 * The outcome does not depend on the order of the input array (it is sorted here) nor on the order
 * of entries within a package.
 *
 * How it is computed, so that a rescan is cheap. Each package's entries are grouped once by the
 * virtual directory they land in (images are immutable, so this is cached per ExchangePackage
 * object). Building a tree only files each package's groups under their directories, in store
 * order: a few operations per package, not per entry. A directory's children are resolved (the
 * rules above applied to its groups) on first access and kept for the life of that tree; lookups
 * walk resolved directories, O(depth). A tree is an immutable snapshot: a rescan builds a new one
 * while readers of the old one carry on. Measured in test/store-logic.test.ts: building for 1,000
 * packages × 200 entries, and resolving every directory of it.
 *
 * Not done here: reading images (the caller lists each package's entries once) and runtime_union
 * (a per-package view, not an exchange directory).
 */
import type { PackageName } from './package-name';
import { comparePackageVersions } from './version';

/** The exchange directories proper: image path → virtual path. Recursive. */
export const EXCHANGE_DIRS: readonly { readonly image: string; readonly virtual: string }[] = [
  { image: 'bin', virtual: 'bin' },
  { image: 'out/lib', virtual: 'lib' },
  { image: 'out/lib64', virtual: 'lib64' },
  { image: 'out/include', virtual: 'include' },
  { image: 'out/share', virtual: 'share' },
  { image: 'out/gopath', virtual: 'gopath' },
  { image: 'debug', virtual: 'debug' },
];

/** Nested exchange dirs (image paths): always-present virtual directories inside the above. */
export const NESTED_EXCHANGE_DIRS: readonly string[] = [
  'out/lib/gio',
  'out/lib/girepository-1.0',
  'out/share/aclocal',
  'out/share/gettext',
  'out/share/gir-1.0',
  'out/share/glib-2.0/schemas',
  'out/share/mime',
];

export type EntryType = 'dir' | 'other';

/** One entry of an image below an exchange source dir, e.g. `{ path: 'bin/less', type: 'other' }`. */
export interface ImageEntry {
  /** Path inside the image, `/`-separated, no leading slash. */
  readonly path: string;
  readonly type: EntryType;
}

export interface ExchangePackage {
  readonly name: PackageName;
  /** Entries anywhere in the image; those outside the exchange source dirs are ignored. */
  readonly entries: readonly ImageEntry[];
}

/** A non-directory of a package, shown in an exchange directory as a relative symlink. */
export class ExchangeLink {
  readonly kind = 'link';
  constructor(
    /** The package the link points into. */
    readonly owner: PackageName,
    /** The file's path inside the owner's image, e.g. `out/lib/pkgconfig/bash.pc`. */
    readonly imagePath: string,
    /** Its name in the virtual directory, e.g. `bash.pc`. */
    readonly name: string,
    /** Depth of the virtual directory holding the link (`lib/pkgconfig` → 2). */
    private readonly depth: number,
  ) {}

  /** Symlink target relative to the link's directory: `../../bash-amd64-1/out/lib/pkgconfig/bash.pc`. */
  get target(): string {
    return '../'.repeat(this.depth) + this.owner.full + '/' + this.imagePath;
  }
}

export type ExchangeNode = ExchangeDir | ExchangeLink;

/** Top-level exchange source dirs: under `out/`, and at the image root. */
const UNDER_OUT = ['lib', 'lib64', 'include', 'share', 'gopath'];
const AT_ROOT = ['bin', 'debug'];

/** True if `path` is `dir` or lies below it, looking from index `from`. */
function isAt(path: string, from: number, dir: string): boolean {
  if (!path.startsWith(dir, from)) return false;
  const end = from + dir.length;
  return end === path.length || path.charCodeAt(end) === 0x2f; // '/'
}

/**
 * Maps an image path to its virtual path below `/ro`, or null when the path is not inside an
 * exchange source dir: `bin/less` → `bin/less`, `out/lib/pkgconfig/x.pc` → `lib/pkgconfig/x.pc`,
 * `out/bin/less` → null (programs are exchanged through the `bin/` wrappers).
 */
export function exchangePath(imagePath: string): string | null {
  if (imagePath.startsWith('out/')) return UNDER_OUT.some((d) => isAt(imagePath, 4, d)) ? imagePath.slice(4) : null;
  return AT_ROOT.some((d) => isAt(imagePath, 0, d)) ? imagePath : null;
}

/** The virtual directories that exist in every store, even an empty one. */
export const EXCHANGE_ROOTS: readonly string[] = [...EXCHANGE_DIRS.map((d) => d.virtual), ...NESTED_EXCHANGE_DIRS.map((d) => exchangePath(d)!)];

/** An empty, `.` or `..` component anywhere in a path. */
const BAD_COMPONENT = /(?:^|\/)\.{0,2}(?:\/|$)/;

/**
 * What one contributor puts directly into one virtual directory: a subdirectory (its name) or a
 * link (which knows its name).
 */
type DirEntry = string | ExchangeLink;

/** One package's (or the always-present roots') entries, grouped by virtual directory path. */
type Contribution = ReadonlyMap<string, readonly DirEntry[]>;

function addEntry(groups: Map<string, DirEntry[]>, dir: string, entry: DirEntry): void {
  const list = groups.get(dir);
  if (list) list.push(entry);
  else groups.set(dir, [entry]);
}

/** Adds `virtual` as a directory to `groups`, with every ancestor; `seen` holds dirs already added. */
function addDir(groups: Map<string, DirEntry[]>, seen: Set<string>, virtual: string): void {
  while (!seen.has(virtual)) {
    seen.add(virtual);
    const slash = virtual.lastIndexOf('/');
    const parent = slash < 0 ? '' : virtual.slice(0, slash);
    addEntry(groups, parent, virtual.slice(slash + 1));
    if (slash < 0) return;
    virtual = parent;
  }
}

function countSlashes(s: string): number {
  let n = 0;
  for (let i = s.indexOf('/'); i >= 0; i = s.indexOf('/', i + 1)) n++;
  return n;
}

const contributions = new WeakMap<ExchangePackage, Contribution>();

/**
 * Groups a package's exchange entries by virtual directory (cached: packages are immutable).
 * Written to allocate little: this runs once per entry of every package of the store.
 */
function contributionOf(pkg: ExchangePackage): Contribution {
  const cached = contributions.get(pkg);
  if (cached !== undefined) return cached;
  const groups = new Map<string, DirEntry[]>();
  const dirs = new Set<string>();
  let parent = ''; // parent dir of the previous file: consecutive entries mostly share it
  let parentDepth = 0;
  for (const entry of pkg.entries) {
    const virtual = exchangePath(entry.path);
    if (virtual === null || BAD_COMPONENT.test(virtual)) continue;
    if (entry.type === 'dir') {
      addDir(groups, dirs, virtual);
      continue;
    }
    const slash = virtual.lastIndexOf('/');
    if (slash < 0) continue; // a non-directory in place of an exchange dir itself (e.g. a `debug` symlink): rule 1
    if (slash !== parent.length || !virtual.startsWith(parent)) {
      parent = virtual.slice(0, slash);
      parentDepth = countSlashes(parent) + 1;
      addDir(groups, dirs, parent);
    }
    addEntry(groups, parent, new ExchangeLink(pkg.name, entry.path, virtual.slice(slash + 1), parentDepth));
  }
  contributions.set(pkg, groups);
  return groups;
}

/** The always-present exchange directories, contributed before any package. */
const ROOTS: Contribution = (() => {
  const groups = new Map<string, DirEntry[]>();
  const dirs = new Set<string>();
  for (const root of EXCHANGE_ROOTS) addDir(groups, dirs, root);
  return groups;
})();

/**
 * A virtual directory of one ExchangeTree snapshot. Its children are resolved from the
 * contributions filed under its path on first access, applying the ownership rules.
 */
export class ExchangeDir {
  readonly kind = 'dir';
  private resolved: Map<string, ExchangeNode> | undefined;

  /** @param path virtual path without leading slash, `""` for the root. */
  constructor(
    readonly path: string,
    private readonly index: ReadonlyMap<string, readonly (readonly DirEntry[])[]>,
  ) {}

  /** Name → node, in first-contribution order (deterministic: contributions are in store order). */
  get children(): ReadonlyMap<string, ExchangeNode> {
    return (this.resolved ??= this.resolve());
  }

  private resolve(): Map<string, ExchangeNode> {
    const children = new Map<string, ExchangeNode>();
    for (const group of this.index.get(this.path) ?? []) {
      for (const entry of group) {
        if (typeof entry === 'string') {
          // Rule 1: a directory replaces a link and is never replaced.
          if (children.get(entry)?.kind !== 'dir') children.set(entry, new ExchangeDir(this.path === '' ? entry : `${this.path}/${entry}`, this.index));
          continue;
        }
        const current = children.get(entry.name);
        if (current !== undefined) {
          if (current.kind === 'dir') continue; // rule 1
          if (current.owner.pkg !== entry.owner.pkg || current.owner.arch !== entry.owner.arch) continue; // rule 3
          if (comparePackageVersions(entry.owner, current.owner) <= 0) continue; // rule 2
        }
        children.set(entry.name, entry);
      }
    }
    return children;
  }
}

/** The assembled exchange directories of one store: an immutable snapshot, rebuilt on rescan. */
export class ExchangeTree {
  /** The virtual root: its children are the exchange directories (`bin`, `lib`, …). */
  readonly root: ExchangeDir;

  /** Made by buildExchangeTree; `index` holds every contributor's entries by directory, in store order. */
  constructor(index: ReadonlyMap<string, readonly (readonly DirEntry[])[]>) {
    this.root = new ExchangeDir('', index);
  }

  /** Node at a virtual path like `lib/pkgconfig/x.pc` (a leading `/` is allowed; `""` is the root). O(depth). */
  lookup(virtualPath: string): ExchangeNode | undefined {
    let node: ExchangeNode = this.root;
    for (const c of virtualPath.split('/')) {
      if (c === '') continue;
      if (node.kind !== 'dir') return undefined;
      const child: ExchangeNode | undefined = node.children.get(c);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }
}

/** Sorted store order: by full name, as plain strings. */
function storeOrder(a: ExchangePackage, b: ExchangePackage): number {
  return a.name.full < b.name.full ? -1 : a.name.full > b.name.full ? 1 : 0;
}

/**
 * Assembles the exchange directories of a store from each package's image entries (in any order;
 * they are sorted here). Entries whose path has an empty, `.` or `..` component are ignored (image
 * readers reject such names already). Pass the same ExchangePackage objects again on a rescan: the
 * per-package work is cached by object.
 */
export function buildExchangeTree(packages: readonly ExchangePackage[]): ExchangeTree {
  const index = new Map<string, (readonly DirEntry[])[]>();
  const file = (c: Contribution): void => {
    for (const [dir, entries] of c) {
      const list = index.get(dir);
      if (list) list.push(entries);
      else index.set(dir, [entries]);
    }
  };
  file(ROOTS);
  for (const pkg of [...packages].sort(storeOrder)) file(contributionOf(pkg));
  return new ExchangeTree(index);
}
