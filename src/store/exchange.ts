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
 * Not done here: reading images (the caller lists each package's entries once; images are
 * immutable, so that list can be cached for good) and runtime_union (a per-package view, not an
 * exchange directory). A rescan simply rebuilds the tree: 1,000 packages × 200 entries take a few
 * tens of milliseconds, see test/store-logic.test.ts.
 */
import { pkgArch, type PackageName } from './package-name';
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

export interface ExchangeDir {
  readonly kind: 'dir';
  /** In first-contribution order (deterministic, since packages are processed in store order). */
  readonly children: Map<string, ExchangeNode>;
}

export interface ExchangeLink {
  readonly kind: 'link';
  /** The package the link points into. */
  readonly owner: PackageName;
  /** The file's path inside the owner's image, e.g. `out/lib/pkgconfig/bash.pc`. */
  readonly imagePath: string;
  /** Symlink target relative to the link's directory: `../../bash-amd64-1/out/lib/pkgconfig/bash.pc`. */
  readonly target: string;
}

export type ExchangeNode = ExchangeDir | ExchangeLink;

const TOP_LEVEL_UNDER_OUT: ReadonlySet<string> = new Set(['lib', 'lib64', 'include', 'share', 'gopath']);
const TOP_LEVEL_AT_ROOT: ReadonlySet<string> = new Set(['bin', 'debug']);

/**
 * Maps an image path to its virtual path below `/ro`, or null when the path is not inside an
 * exchange source dir: `bin/less` → `bin/less`, `out/lib/pkgconfig/x.pc` → `lib/pkgconfig/x.pc`,
 * `out/bin/less` → null (programs are exchanged through the `bin/` wrappers).
 */
export function exchangePath(imagePath: string): string | null {
  const underOut = imagePath.startsWith('out/');
  const rest = underOut ? imagePath.slice(4) : imagePath;
  const slash = rest.indexOf('/');
  const top = slash < 0 ? rest : rest.slice(0, slash);
  return (underOut ? TOP_LEVEL_UNDER_OUT : TOP_LEVEL_AT_ROOT).has(top) ? rest : null;
}

/** The virtual directories that exist in every store, even an empty one. */
export const EXCHANGE_ROOTS: readonly string[] = [
  ...EXCHANGE_DIRS.map((d) => d.virtual),
  ...NESTED_EXCHANGE_DIRS.map((d) => exchangePath(d)!),
];

function newDir(): ExchangeDir {
  return { kind: 'dir', children: new Map() };
}

function isBadComponent(c: string): boolean {
  return c === '' || c === '.' || c === '..';
}

/** The assembled exchange directories of one store. Rebuild it (buildExchangeTree) on rescan. */
export class ExchangeTree {
  /** The virtual root: its children are the exchange directories (`bin`, `lib`, …). */
  readonly root: ExchangeDir = newDir();

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

  /** Creates the directories along `components` (rule 1: a directory replaces a link). */
  mkdirAll(components: readonly string[], count = components.length): ExchangeDir {
    let dir = this.root;
    for (let i = 0; i < count; i++) {
      const existing = dir.children.get(components[i]);
      if (existing?.kind === 'dir') {
        dir = existing;
      } else {
        const created = newDir();
        dir.children.set(components[i], created);
        dir = created;
      }
    }
    return dir;
  }

  /** Offers `owner`'s file at the virtual path `components` (rules 1–3 decide whether it shows). */
  offerLink(components: readonly string[], owner: PackageName, imagePath: string): void {
    const dir = this.mkdirAll(components, components.length - 1);
    const name = components[components.length - 1];
    const current = dir.children.get(name);
    if (current !== undefined) {
      if (current.kind === 'dir') return; // rule 1
      if (pkgArch(current.owner) !== pkgArch(owner)) return; // rule 3
      if (comparePackageVersions(owner, current.owner) <= 0) return; // rule 2
    }
    const target = '../'.repeat(components.length - 1) + owner.full + '/' + imagePath;
    dir.children.set(name, { kind: 'link', owner, imagePath, target });
  }
}

/** Sorted store order: by full name, as plain strings. */
function storeOrder(a: ExchangePackage, b: ExchangePackage): number {
  return a.name.full < b.name.full ? -1 : a.name.full > b.name.full ? 1 : 0;
}

/**
 * Assembles the exchange directories of a store from each package's image entries. Entries whose
 * path has an empty, `.` or `..` component are ignored (image readers reject such names already).
 */
export function buildExchangeTree(packages: readonly ExchangePackage[]): ExchangeTree {
  const tree = new ExchangeTree();
  for (const root of EXCHANGE_ROOTS) tree.mkdirAll(root.split('/'));
  for (const pkg of [...packages].sort(storeOrder)) {
    for (const entry of pkg.entries) {
      const virtual = exchangePath(entry.path);
      if (virtual === null) continue;
      const components = virtual.split('/');
      if (components.some(isBadComponent)) continue;
      if (entry.type === 'dir') tree.mkdirAll(components);
      else if (components.length > 1) tree.offerLink(components, pkg.name, entry.path);
      // else: a non-directory in place of an exchange dir itself (e.g. a `debug` symlink): rule 1.
    }
  }
  return tree;
}
