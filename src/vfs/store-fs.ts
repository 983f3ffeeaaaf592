/**
 * The /ro tree of a whole package store (distri's `distri fuse`), as a NodeFs:
 *
 *   /ro/                       one directory per package, the exchange dirs, ctl, mkdirall dirs
 *   /ro/<full>/…               the package's image (opened on first access below it)
 *   /ro/bin/less, /ro/lib/…    exchange dirs: relative symlinks into the packages (src/store/exchange)
 *   /ro/ctl                    a symlink to the control socket (src/vfs/ctl.ts)
 *
 * What is in /ro is one immutable *snapshot* (packages by name, their exchange tree, runtime_union
 * contributions), replaced as a whole by `scan()`. A scan lists the store (src/vfs/store-scan),
 * takes each package's exchange entries from the persisted index (src/vfs/store-index, building the
 * records of new or changed images), and rebuilds the exchange tree (cheap: per-package work is
 * cached by object, see exchange.ts). So neither mounting nor listing /ro or /ro/bin opens an
 * image; only a lookup below /ro/<full> does. The daemon's first snapshot does not even read the
 * store directory when the saved index still describes it (`firstFromIndex`): /ro is listed from
 * the index until the full scan that follows the mount replaces it, telling the kernel what changed.
 *
 * Nodes. Every node but the root comes from one NodeTable, under a key that says what the node *is*,
 * so that something that changes on a rescan becomes a new node rather than a node that changes:
 * - `d:<path>` an exchange directory (`d:bin`, `d:lib/pkgconfig`); `m:<name>` a mkdirall dir;
 * - `l:<path>\0<target>` an exchange link: a link that moves to a new revision is a new node;
 * - `c:` the ctl link;
 * - `p:<view>` a package directory, `i:<view>:<inode reference>` a file or directory inside it, and
 *   `u:<view>:<path>` one at or below a runtime_union directory, where a path can come from several
 *   images and is resolved through them on each request (there is no one inode to name).
 * A *view* is one package image together with its runtime_union contributors as one scan saw them;
 * a rescan that changes either makes a new view, so everything inside a view is immutable: an image
 * never changes, and neither does its list of contributors. (Keying by the package's full name, the
 * first idea, would keep the kernel's cached subtree of an image rewritten in place, or of a
 * package that gained a contributor; with views the changed package directory is a new node in /ro,
 * its old dentry is invalidated, and the kernel walks the new one afresh.) A node inside a view
 * keeps its package object, so a request for it reaches the image through the pool, which reopens
 * an evicted image; inode references stay valid because the image is the same file.
 *
 * Kernel caching. Inside a view everything may be cached for a day: names, attributes, misses.
 * Virtual entries (/ro itself and the exchange dirs) change on rescan; they are cached for a day
 * too, and every scan that changes the snapshot tells the kernel exactly what changed among the
 * directories it holds (the Invalidator: each name added, removed or replaced, and the listing).
 * Without an invalidator (a transport that cannot notify) virtual names and attributes live one
 * second, as in distri.
 *
 * Remote packages (`--autodownload`): `options.remote` adds packages the store does not have, shown
 * like local ones (src/vfs/remote-packages.ts has how they are listed and opened lazily).
 *
 * Not done: directories inside packages are
 * never merged except through runtime_union; xattrs of a package directory itself are not served
 * (answering them would open the image for every `ls -l /ro`).
 */
import { SquashfsError } from '../errors';
import type { Image, Inode, InodeRef } from '../reader/image';
import { buildExchangeTree, EXCHANGE_DIRS, EXCHANGE_ROOTS, type ExchangeNode, type ExchangeTree } from '../store/exchange';
import { parsePackageName, pkgArch } from '../store/package-name';
import { comparePackageVersions } from '../store/version';
import { MODE_BY_BASIC_TYPE } from './image-fs';
import { ROOT_NODE, type Invalidator, type NodeAttr, type NodeDirEntry, type NodeEntry, type NodeFs, type NodeStatfs } from './node-fs';
import { NodeTable } from './node-table';
import { firstSource, ImagePool, inodeAtPath, packageDirAttr, sourcesFor, StorePackage, unionReaddir, type OpenPackage, type UnionSource } from './package-dir';
import { StoreIndex, type IndexRecord } from './store-index';
import { scanStore, type ScannedPackage } from './store-scan';

export interface StoreFsOptions {
  /** Only these packages: full names, `<pkg>-<arch>` (every revision) or `<pkg>`. Default all. */
  pkgs?: readonly string[];
  /** Only these exchange dirs (`bin`, `/lib`, …). Default all. */
  overlays?: readonly string[];
  /** Images open at once (default 64). */
  maxOpenImages?: number;
  /** Decoder cache bytes over all open images (default 256 MiB). */
  cacheBytes?: number;
  /** Target of /ro/ctl (the control socket); no ctl entry when unset. */
  ctlPath?: string;
  /** One line per event worth telling (skipped packages, once each; rescans that changed something). */
  log?: (message: string) => void;
  /** Packages from a remote repository, shown besides the store's own (a local one of the same name wins). */
  remote?: { packages(local: ReadonlySet<string>, index: StoreIndex): Iterable<StorePackage> };
  /**
   * Take the first snapshot from the saved index, without reading the store directory, when the
   * index still describes it (StoreIndex.matchesStore); else a quick scan as without. The caller
   * must scan right after serving starts (the daemon does, after the mount is ready): that scan
   * checks every image and meta against its record and applies what changed like any rescan.
   */
  firstFromIndex?: boolean;
}

/** One package image with its runtime_union contributors, as one scan saw them (immutable). */
class PackageView {
  constructor(
    readonly id: number,
    readonly pkg: StorePackage,
    readonly unions: readonly UnionSource[],
  ) {}
}

interface Snapshot {
  /** Served packages by full name. */
  readonly packages: ReadonlyMap<string, StorePackage>;
  /** Their views, by full name. */
  readonly views: ReadonlyMap<string, PackageView>;
  /** Root listing: packages sorted, then the top-level exchange dirs. */
  readonly rootNames: readonly string[];
  /** The top-level exchange dirs shown. */
  readonly tops: ReadonlySet<string>;
  /** The exchange dirs, assembled on first use (see warm()). */
  readonly tree: ExchangeTree;
  /** Whether `tree` was assembled: if not, the kernel cannot have seen anything inside it. */
  readonly treeBuilt: boolean;
}

/** A package of the store that /ro does not show, and why. */
export interface SkippedPackage {
  pkg: string;
  why: string;
}

export interface ScanResult {
  known: number;
  added: string[];
  removed: string[];
  skipped: number;
  /** Every skipped package with its reason (a background daemon's log is not seen by anyone). */
  skippedPackages: SkippedPackage[];
  /** --pkgs names that match no package of the store. */
  unmatchedPkgs: string[];
  /** Packages shown, but with files that can never reach an exchange dir (misplacedPaths). */
  warnings: SkippedPackage[];
  ms: number;
}

/** What a node is (see the module comment for the keys). */
type NodeValue =
  | { readonly t: 'xdir'; readonly path: string }
  | { readonly t: 'xlink'; readonly target: string; readonly mtime: number }
  | { readonly t: 'ctl' }
  | { readonly t: 'mkdir' }
  | { readonly t: 'pkg'; readonly view: PackageView }
  | { readonly t: 'inode'; readonly view: PackageView; readonly ref: InodeRef; readonly path: string }
  | { readonly t: 'union'; readonly view: PackageView; readonly path: string };

/** A node inside a package directory (the directory itself included). */
type ViewValue = Extract<NodeValue, { view: PackageView }>;

/** A name in a virtual directory: the node it stands for and its type bits. */
interface VirtualChild {
  readonly key: string;
  readonly value: NodeValue;
  readonly mode: number;
}

/** Seconds the kernel may cache what never changes (everything inside a view). */
const DAY = 86400;
/** Seconds for virtual names when the kernel cannot be told about changes (distri used 1 s). */
const UNNOTIFIED_TTL = 1;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const DIR_ATTR = (mtime: number, ino: number): NodeAttr => ({ mode: 0o40555, uid: 0, gid: 0, size: 0, mtime, nlink: 2, ino, rdev: 0 });
const LINK_ATTR = (target: string, mtime: number, ino: number): NodeAttr => ({ mode: 0o120777, uid: 0, gid: 0, size: Buffer.byteLength(target), mtime, nlink: 1, ino, rdev: 0 });

/**
 * The inode number shown for a virtual node: a hash of what it is (FNV-1a, 32 bits), above 2^32 so
 * that it never equals an image's inode number (those are 32-bit). Stable across rescans and mounts.
 */
function virtualIno(identity: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < identity.length; i++) {
    h ^= identity.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 2 ** 32 + h;
}

/**
 * st_ino of an inode inside a package: the image's inode number (1..2^32-1) moved into a range of
 * its own per package view, above the virtual inode numbers. Images number their inodes from 1,
 * so without this `libacl.so.1` and `libpcre2-8.so.0` of two packages can share an st_ino, and
 * what trusts (st_dev, st_ino) goes wrong: ld.so takes the second library for the first, already
 * loaded one ("undefined symbol"), cp -a and tar take them for hard links.
 */
function packageIno(view: PackageView, imageIno: number): number {
  return (view.id + 2) * 2 ** 32 + imageIno;
}

function withPackageIno(view: PackageView, attr: NodeAttr): NodeAttr {
  return { ...attr, ino: packageIno(view, attr.ino) };
}

function exchangeFilter(overlays: readonly string[] | undefined): ((top: string) => boolean) | undefined {
  if (!overlays || overlays.length === 0) return undefined;
  const allowed = new Set(overlays.map((o) => o.replace(/^\/+|\/+$/g, '')).filter((o) => o !== ''));
  for (const a of allowed) {
    if (!EXCHANGE_DIRS.some((d) => d.virtual === a))
      throw new SquashfsError('NOT_FOUND', `--overlays: ${JSON.stringify(a)} is not an exchange directory (${EXCHANGE_DIRS.map((d) => '/' + d.virtual).join(', ')})`, 'options');
  }
  return (top) => allowed.has(top);
}

/** The --pkgs filter; every name it matches is added to `matched` (to warn about the others). */
function packageFilter(pkgs: readonly string[] | undefined): ((p: ScannedPackage, matched: Set<string>) => boolean) | undefined {
  if (!pkgs || pkgs.length === 0) return undefined;
  const wanted = new Set(pkgs.map((s) => s.trim()).filter((s) => s !== ''));
  return (p, matched) => {
    let hit = false;
    for (const n of [p.name.full, pkgArch(p.name), p.name.pkg]) {
      if (wanted.has(n)) {
        matched.add(n);
        hit = true;
      }
    }
    return hit;
  };
}

function sameUnions(a: readonly UnionSource[], b: readonly UnionSource[]): boolean {
  return a.length === b.length && a.every((u, i) => u.dir === b[i]!.dir && u.from === b[i]!.from);
}

/** The child of an exchange directory at `dirPath` as a node. */
function exchangeChild(dirPath: string, node: ExchangeNode, ctime: number, packages: ReadonlyMap<string, StorePackage>): VirtualChild {
  if (node.kind === 'dir') return { key: `d:${node.path}`, value: { t: 'xdir', path: node.path }, mode: S_IFDIR };
  const target = node.target;
  const path = dirPath === '' ? node.name : `${dirPath}/${node.name}`;
  return { key: `l:${path}\0${target}`, value: { t: 'xlink', target, mtime: packages.get(node.owner.full)?.mtime ?? ctime }, mode: S_IFLNK };
}

export class StoreFs implements NodeFs {
  readonly index: StoreIndex;
  readonly pool: ImagePool;
  private snap: Snapshot;
  private readonly table = new NodeTable<string, NodeValue>();
  /** Nodes held per package (inside its views), to pin the image of a package that leaves. */
  private readonly held = new Map<StorePackage, number>();
  /** Images of removed packages kept open while the kernel holds nodes of them. */
  private readonly pinned = new Map<StorePackage, OpenPackage>();
  private nextView = 1;
  private readonly mkdirs = new Set<string>();
  private readonly logged = new Set<string>();
  private readonly includeTop: ((top: string) => boolean) | undefined;
  private readonly includePkg: ((p: ScannedPackage, matched: Set<string>) => boolean) | undefined;
  private readonly started = Math.floor(Date.now() / 1000);
  private inv: Invalidator | undefined;
  scans = 0;
  lastScanMs = 0;
  /** The first snapshot (at construction: a quick scan, or the saved index), and the first assembly of the exchange dirs. */
  readonly firstScanMs: number;
  /** Where the first snapshot came from. */
  readonly firstSnapshot: 'index' | 'scan';
  /** Whether a snapshot was made (the first scan makes one even of an empty store: the tops). */
  private snapped = false;
  exchangeBuildMs = 0;
  /** Set when an opened image disagreed with its index record: the next scan rebuilds it. */
  rescanWanted = false;
  /** What the last scan left out, and why (for `fusectl scan` and `stats`). */
  skippedPackages: SkippedPackage[] = [];
  /** What the last scan found misplaced in the packages it shows. */
  warnings: SkippedPackage[] = [];
  unmatchedPkgs: string[] = [];

  constructor(
    readonly store: string,
    private readonly options: StoreFsOptions = {},
  ) {
    this.includeTop = exchangeFilter(options.overlays);
    this.includePkg = packageFilter(options.pkgs);
    this.index = new StoreIndex(store);
    this.pool = new ImagePool({
      maxOpen: options.maxOpenImages,
      cacheBytes: options.cacheBytes,
      onOpen: (pkg, image) => this.checkSuperblock(pkg, image),
    });
    const empty = buildExchangeTree([]);
    this.snap = { packages: new Map(), views: new Map(), rootNames: [], tops: new Set(), tree: empty, treeBuilt: true };
    if (options.firstFromIndex && this.index.matchesStore()) {
      this.firstSnapshot = 'index';
      this.firstScanMs = this.fromIndex();
    } else {
      // Quick: images are checked against the index, metas only by presence; whoever serves this
      // scans once more right after the mount is ready (store-source.ts does).
      this.firstSnapshot = 'scan';
      this.scan(true);
      this.firstScanMs = this.lastScanMs;
    }
  }

  /**
   * The first snapshot from the index alone: no readdir, no stat of an image, no name parsed. The
   * directory has the stamp it had when a full scan last found the index complete, so the records
   * are the packages it lists (an image rewritten in place, or replaced without the directory
   * changing -- only possible through a symlink -- is what the full scan right after finds;
   * opening one meanwhile serves what is there, as between two rescans). Returns the ms it took.
   */
  private fromIndex(): number {
    const t0 = performance.now();
    const packages = new Map<string, StorePackage>();
    const skipped: SkippedPackage[] = [];
    const warnings: SkippedPackage[] = [];
    const matched = new Set<string>();
    const store = this.store.endsWith('/') ? this.store : this.store + '/';
    for (const [full, rec] of this.index.summaries()) {
      // Never a path: the index is a file anyone with write access to the store could have written.
      if (full === '' || full.startsWith('.') || full.includes('/') || full.includes('\0')) continue;
      const pkg = new StorePackage(full, `${store}${full}.squashfs`, `${store}${full}.meta.textproto`, rec, this.index);
      if (this.includePkg && !this.includePkg({ name: pkg.name } as ScannedPackage, matched)) continue;
      if (this.admit(pkg.full, rec, skipped, warnings)) packages.set(full, pkg);
    }
    this.apply(packages, skipped, warnings, matched);
    return performance.now() - t0;
  }

  /** Whether a package with this record is shown; if not, or with warnings, tells so (once). */
  private admit(full: string, rec: IndexRecord, skipped: SkippedPackage[], warnings: SkippedPackage[]): boolean {
    if (rec.error !== undefined) {
      skipped.push({ pkg: full, why: rec.error });
      this.logOnce(`bad:${full}:${rec.image.mtimeMs}:${rec.image.size}`, `skipping ${full}: ${rec.error}`);
      return false;
    }
    for (const why of rec.misplaced ?? []) {
      warnings.push({ pkg: full, why });
      this.logOnce(`misplaced:${full}:${rec.image.mtimeMs}:${why}`, `${full}: ${why}`);
    }
    return true;
  }

  setInvalidator(inv: Invalidator): void {
    this.inv = inv;
  }

  /** Seconds the kernel may keep virtual names: long when it is told about changes. */
  private get virtualTtl(): number {
    return this.inv ? DAY : UNNOTIFIED_TTL;
  }

  /** Logs a message once per key (a skipped package is told about once, not on every scan). */
  private logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    if (this.logged.size > 10_000) this.logged.clear();
    this.logged.add(key);
    this.options.log?.(message);
  }

  private checkSuperblock(pkg: StorePackage, image: Image): void {
    const sb = image.superblock;
    const [bytesUsed, inodeCount, mtime] = pkg.record.sb;
    if (sb.bytesUsed !== bytesUsed || sb.inodeCount !== inodeCount || sb.modificationTime !== mtime) {
      this.logOnce(`sb:${pkg.full}:${sb.modificationTime}`, `${pkg.imagePath}: image changed in place (superblock differs from the index); re-indexing it`);
      this.index.invalidate(pkg.full);
      if (!this.rescanWanted) this.inv?.ask?.({ op: 'scan', why: 'an image changed in place' });
      this.rescanWanted = true;
    }
  }

  // ---- scanning ------------------------------------------------------------------------------

  /**
   * Re-reads the store directory and replaces the snapshot. Cheap when nothing changed (a readdir,
   * two stats per package, and the old snapshot kept); new or changed images are indexed (opened
   * briefly) here. When the snapshot changes, the kernel is told what changed (see invalidate()).
   */
  scan(quick = false): ScanResult {
    const t0 = performance.now();
    const listing = scanStore(this.store, quick);
    const old = this.snap;
    const packages = new Map<string, StorePackage>();
    const skippedPackages: SkippedPackage[] = [];
    const warnings: SkippedPackage[] = [];
    const matched = new Set<string>();
    for (const p of listing.packages.values()) {
      if (this.includePkg && !this.includePkg(p, matched)) continue;
      if (!p.hasMeta) {
        const why = `${p.metaPath} is missing`;
        skippedPackages.push({ pkg: p.name.full, why });
        this.logOnce(`nometa:${p.name.full}:${p.image.mtimeMs}`, `skipping ${p.name.full}: ${why}`);
        continue;
      }
      const rec = this.index.get(p);
      if (!this.admit(p.name.full, rec, skippedPackages, warnings)) continue;
      const prev = old.packages.get(p.name.full);
      packages.set(p.name.full, prev && prev.record === rec ? prev : new StorePackage(p.name, p.imagePath, p.metaPath, rec, this.index));
    }
    // Records are kept for complete packages only: a package whose meta went away loses its record
    // (rebuilt when the meta is back), so that the records can stand for the store (stamp below).
    const complete = new Set<string>();
    for (const p of listing.packages.values()) if (p.hasMeta) complete.add(p.name.full);
    this.index.retain(complete);
    // The stamp says "the records are this listing", which a quick scan (metas unchecked) or one
    // restricted by --pkgs (records only for what it shows) cannot say.
    if (!quick) this.index.setStamp([...complete].every((full) => this.index.has(full)) ? listing.dir : undefined);
    const { added, removed } = this.apply(packages, skippedPackages, warnings, matched);
    this.scans++;
    this.rescanWanted = false;
    this.lastScanMs = performance.now() - t0;
    return { known: packages.size, added, removed, skipped: skippedPackages.length, skippedPackages, unmatchedPkgs: this.unmatchedPkgs, warnings, ms: this.lastScanMs };
  }

  /**
   * Adds the remote packages and makes `packages` the snapshot, telling the kernel what changed
   * (a first snapshot, from a scan or from the index, is made even when nothing is there).
   */
  private apply(packages: Map<string, StorePackage>, skippedPackages: SkippedPackage[], warnings: SkippedPackage[], matched: Set<string>): { added: string[]; removed: string[] } {
    const old = this.snap;
    for (const r of this.options.remote?.packages(new Set(packages.keys()), this.index) ?? []) {
      if (packages.has(r.full) || (this.includePkg && !this.includePkg({ name: r.name } as ScannedPackage, matched))) continue;
      packages.set(r.full, r);
    }
    const added: string[] = [];
    const removed: string[] = [];
    for (const [full, pkg] of packages) if (old.packages.get(full) !== pkg) added.push(full);
    for (const [full, pkg] of old.packages) {
      if (packages.get(full) !== pkg) {
        if (!packages.has(full)) removed.push(full);
        this.retire(pkg);
      }
    }
    if (added.length > 0 || removed.length > 0 || !this.snapped) {
      this.snap = this.snapshot(packages, old);
      this.snapped = true;
      this.invalidate(old, this.snap);
    }
    const unmatchedPkgs = (this.options.pkgs ?? []).map((n) => n.trim()).filter((n) => n !== '' && !matched.has(n));
    for (const n of unmatchedPkgs) this.logOnce(`nomatch:${n}`, `--pkgs ${n}: no package of ${this.store} has that name`);
    this.skippedPackages = skippedPackages;
    this.unmatchedPkgs = unmatchedPkgs;
    this.warnings = warnings;
    return { added, removed };
  }

  private snapshot(packages: ReadonlyMap<string, StorePackage>, old: Snapshot): Snapshot {
    const sorted = [...packages.values()].sort((a, b) => (a.full < b.full ? -1 : a.full > b.full ? 1 : 0));
    const unions = new Map<string, UnionSource[]>();
    // Contributors in store order; several revisions of one contributor: newest first. Only
    // packages with a runtime_union take part (the others' names need not even be parsed).
    const byNewest = sorted.filter((p) => p.record.runtimeUnion.length > 0).sort((a, b) => (pkgArch(a.name) === pkgArch(b.name) ? comparePackageVersions(b.name, a.name) : a.full < b.full ? -1 : 1));
    for (const from of byNewest) {
      for (const u of from.record.runtimeUnion) {
        const dir = u.dir.replace(/^\/+|\/+$/g, '');
        if (dir === '' || dir.split('/').some((c) => c === '' || c === '.' || c === '..')) continue;
        const target = this.resolveTarget(u.pkg, packages);
        if (target === undefined || target === from) continue;
        const list = unions.get(target.full) ?? [];
        list.push({ dir, from });
        unions.set(target.full, list);
      }
    }
    const views = new Map<string, PackageView>();
    for (const pkg of sorted) {
      const u = unions.get(pkg.full) ?? [];
      const prev = old.views.get(pkg.full);
      views.set(pkg.full, prev && prev.pkg === pkg && sameUnions(prev.unions, u) ? prev : new PackageView(this.nextView++, pkg, u));
    }
    // The top-level exchange dirs are fixed (they exist even in an empty store).
    const tops = EXCHANGE_ROOTS.filter((r) => !r.includes('/') && (!this.includeTop || this.includeTop(r)));
    let tree: ExchangeTree | undefined;
    return {
      packages,
      views,
      rootNames: [...sorted.map((p) => p.full), ...tops],
      tops: new Set(tops),
      // Built on first use: it needs every package's entries (the big index file), which a mount
      // does not need to be ready. The daemon calls warm() right after the mount is up.
      get tree(): ExchangeTree {
        return (tree ??= buildExchangeTree(sorted));
      },
      get treeBuilt(): boolean {
        return tree !== undefined;
      },
    };
  }

  /** A runtime_union `pkg`: a full name in the store, or a bare `<pkg>-<arch>` meaning the newest. */
  private resolveTarget(name: string, packages: ReadonlyMap<string, StorePackage>): StorePackage | undefined {
    const exact = packages.get(name);
    if (exact) return exact;
    const n = parsePackageName(name);
    if (!n || n.upstream !== '') return undefined;
    let best: StorePackage | undefined;
    for (const p of packages.values()) {
      if (pkgArch(p.name) === n.full && (!best || comparePackageVersions(p.name, best.name) > 0)) best = p;
    }
    return best;
  }

  /** A package left the store (or was replaced): close its image, unless the kernel holds nodes of it. */
  private retire(pkg: StorePackage): void {
    if ((this.held.get(pkg) ?? 0) > 0 && !this.pinned.has(pkg) && this.pool.isOpen(pkg)) {
      const op = this.pool.acquire(pkg);
      this.pool.ref(op);
      this.pinned.set(pkg, op);
    }
    this.pool.retire(pkg);
  }

  /**
   * Tells the kernel what changed between two snapshots, among what it can have cached: every name
   * of /ro and of each exchange directory it holds a node for whose meaning changed (added, removed,
   * now another node), and the listing of each such directory.
   */
  private invalidate(old: Snapshot, next: Snapshot): void {
    const inv = this.inv;
    if (!inv) return;
    const diff = (node: number, before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): void => {
      let changed = false;
      for (const [name, key] of before) {
        if (after.get(name) !== key) {
          inv.entry(node, name);
          changed = true;
        }
      }
      for (const name of after.keys()) {
        if (!before.has(name)) {
          inv.entry(node, name);
          changed = true;
        }
      }
      if (changed) inv.inode(node);
    };
    diff(ROOT_NODE, this.rootKeys(old), this.rootKeys(next));
    // Exchange dirs: the kernel holds nothing inside a tree that was never assembled.
    if (!old.treeBuilt) return;
    for (const [node, , value] of this.table.entries()) {
      if (value.t !== 'xdir') continue;
      diff(node, this.exchangeKeys(old, value.path), this.exchangeKeys(next, value.path));
    }
  }

  private rootKeys(snap: Snapshot): Map<string, string> {
    const out = new Map<string, string>();
    for (const [name, c] of this.rootChildren(snap)) out.set(name, c.key);
    return out;
  }

  private exchangeKeys(snap: Snapshot, path: string): Map<string, string> {
    const out = new Map<string, string>();
    const dir = snap.tree.lookup(path);
    if (dir?.kind === 'dir') for (const [name, n] of dir.children) out.set(name, exchangeChild(path, n, this.started, snap.packages).key);
    return out;
  }

  /** Assembles the exchange tree now (loading the entries index) rather than on first request. */
  warm(): number {
    if (this.snap.treeBuilt) return 0;
    const t0 = performance.now();
    void this.snap.tree.root.children;
    const ms = performance.now() - t0;
    if (this.exchangeBuildMs === 0) this.exchangeBuildMs = ms;
    return ms;
  }

  /** `ctl mkdirall DIR`: an empty 0555 directory /ro/DIR (a build mountpoint). One component only. */
  mkdirAll(dir: string): void {
    const d = dir.replace(/^\/+|\/+$/g, '');
    if (d === '' || d.includes('/') || d === '.' || d === '..' || d.includes('\0') || Buffer.byteLength(d) > 255) {
      throw new SquashfsError('UNSAFE_PATH', `mkdirall: ${JSON.stringify(dir)} must be a single path component`, 'ctl');
    }
    if (this.snap.packages.has(d) || this.snap.tops.has(d) || d === 'ctl' || this.mkdirs.has(d)) return;
    this.mkdirs.add(d);
    // The kernel may remember that the name did not exist.
    this.inv?.entry(ROOT_NODE, d);
    this.inv?.inode(ROOT_NODE);
  }

  /**
   * The control requests of the ctl socket (src/vfs/ctl.ts), answered synchronously:
   * `ping`, `scan` (rescan, assemble the exchange dirs, save the index), `mkdirall`, `stats`.
   */
  control(req: { op: string; [k: string]: unknown }): Record<string, unknown> {
    switch (req.op) {
      case 'ping':
        return { ok: true, pid: process.pid, store: this.store };
      case 'scan': {
        const why = typeof req.why === 'string' ? req.why : 'ctl';
        const r = this.scan();
        if (r.added.length || r.removed.length) this.options.log?.(`rescan (${why}): ${r.known} packages, +${r.added.length} -${r.removed.length} in ${r.ms.toFixed(1)} ms`);
        this.warm();
        this.index.save();
        if (this.index.stats.writeError) this.logOnce(`index:${this.index.stats.writeError}`, `index ${this.index.stats.dir}: not saved: ${this.index.stats.writeError}`);
        return { ok: true, ...r };
      }
      case 'mkdirall':
        if (typeof req.dir !== 'string') throw new SquashfsError('INVALID_ARGUMENT', 'mkdirall needs "dir": a single path component', 'ctl');
        this.mkdirAll(req.dir);
        return { ok: true };
      case 'stats':
        return { ok: true, stats: this.stats() };
      default:
        throw new SquashfsError('INVALID_ARGUMENT', `unknown op ${JSON.stringify(req.op)} (ping, scan, mkdirall, stats)`, 'ctl');
    }
  }

  get packageCount(): number {
    return this.snap.packages.size;
  }

  get nodeCount(): number {
    return this.table.size;
  }

  /** Counters for `fusectl stats` and the benchmark. */
  stats() {
    const cache = this.pool.cacheCounts();
    return {
      imagesKnown: this.snap.packages.size,
      imagesOpen: this.pool.openCount,
      imagesOpenedTotal: this.pool.opens,
      imageOpenMsMean: this.pool.opens ? Math.round((this.pool.openMsTotal / this.pool.opens) * 1000) / 1000 : 0,
      imageOpenMsMax: Math.round(this.pool.openMsMax * 1000) / 1000,
      /** Images of removed packages kept open because the kernel still holds nodes of them. */
      imagesRetiredWithOpenFiles: this.pool.retiredCount,
      evictions: this.pool.evictions,
      openFailures: this.pool.openFailures,
      /** Files are read by node, without open: what the kernel holds is `nodes`. */
      openFiles: 0,
      nodes: this.table.size,
      skippedPackages: this.skippedPackages,
      warnings: this.warnings,
      unmatchedPkgs: this.unmatchedPkgs,
      cacheHits: cache.hits,
      cacheMisses: cache.misses,
      scans: this.scans,
      lastScanMs: Math.round(this.lastScanMs * 1000) / 1000,
      firstScanMs: Math.round(this.firstScanMs * 10) / 10,
      firstSnapshot: this.firstSnapshot,
      exchangeBuildMs: Math.round(this.exchangeBuildMs * 10) / 10,
      rssBytes: process.memoryUsage().rss,
      index: { ...this.index.stats },
      mkdirs: [...this.mkdirs],
    };
  }

  close(): void {
    this.pool.closeAll();
    this.pinned.clear();
  }

  // ---- nodes ---------------------------------------------------------------------------------

  /** The names of /ro in listing order, each as the node it stands for. */
  private rootChildren(snap: Snapshot): Map<string, VirtualChild> {
    const out = new Map<string, VirtualChild>();
    for (const [full, view] of snap.views) out.set(full, { key: `p:${view.id}`, value: { t: 'pkg', view }, mode: S_IFDIR });
    for (const top of snap.tops) out.set(top, { key: `d:${top}`, value: { t: 'xdir', path: top }, mode: S_IFDIR });
    if (this.options.ctlPath && !out.has('ctl')) out.set('ctl', { key: 'c:', value: { t: 'ctl' }, mode: S_IFLNK });
    for (const d of this.mkdirs) if (!out.has(d)) out.set(d, { key: `m:${d}`, value: { t: 'mkdir' }, mode: S_IFDIR });
    return out;
  }

  /** One name of /ro, without building the listing (a package, an exchange dir, ctl, a mkdirall dir). */
  private rootChild(snap: Snapshot, name: string): VirtualChild | undefined {
    const view = snap.views.get(name);
    if (view) return { key: `p:${view.id}`, value: { t: 'pkg', view }, mode: S_IFDIR };
    if (snap.tops.has(name)) return { key: `d:${name}`, value: { t: 'xdir', path: name }, mode: S_IFDIR };
    if (name === 'ctl' && this.options.ctlPath) return { key: 'c:', value: { t: 'ctl' }, mode: S_IFLNK };
    if (this.mkdirs.has(name)) return { key: `m:${name}`, value: { t: 'mkdir' }, mode: S_IFDIR };
    return undefined;
  }

  private value(node: number): NodeValue | undefined {
    return node === ROOT_NODE ? undefined : this.table.get(node);
  }

  /** Counts one reference on the node for `key` and answers the lookup. */
  private entry(key: string, value: NodeValue, attr: NodeAttr, ttl: number): NodeEntry {
    const fresh = this.table.nodeOf(key) === undefined;
    const node = this.table.acquire(key, value);
    if (fresh && 'view' in value) this.held.set(value.view.pkg, (this.held.get(value.view.pkg) ?? 0) + 1);
    return { node, attr, entryTtl: ttl, attrTtl: ttl };
  }

  /** The open image of a package (a pinned one for a removed package); open failures are IO. */
  private open = (pkg: StorePackage): OpenPackage => {
    const pinned = this.pinned.get(pkg);
    if (pinned) return pinned;
    try {
      return this.pool.acquire(pkg);
    } catch (e) {
      if (e instanceof SquashfsError) throw e;
      throw new SquashfsError('IO', `${pkg.imagePath}: ${(e as Error).message}`, 'store', undefined, { cause: e });
    }
  };

  /** The inode behind a node inside a view, with its open image. */
  private inodeOf(v: ViewValue): { op: OpenPackage; inode: Inode } {
    switch (v.t) {
      case 'pkg': {
        const op = this.open(v.view.pkg);
        return { op, inode: op.fs.rootInode };
      }
      case 'inode': {
        const op = this.open(v.view.pkg);
        return { op, inode: op.image.inode(v.ref) };
      }
      case 'union': {
        const { op, value: inode } = firstSource(this.open, sourcesFor(v.view.pkg, v.path, v.view.unions), (o) => inodeAtPath(o.image, v.path));
        return { op, inode };
      }
    }
  }

  private virtualAttr(v: NodeValue, key: string): NodeAttr {
    switch (v.t) {
      case 'xdir':
      case 'mkdir':
        return DIR_ATTR(this.started, virtualIno(key));
      case 'xlink':
        return LINK_ATTR(v.target, v.mtime, virtualIno(key));
      case 'ctl':
        return LINK_ATTR(this.options.ctlPath ?? '', this.started, virtualIno(key));
      case 'pkg':
        return packageDirAttr(v.view.pkg, virtualIno(`p:${v.view.pkg.full}`));
      default:
        throw new SquashfsError('INVALID_ARGUMENT', `${v.t} is not a virtual node`, 'node table');
    }
  }

  lookup(parent: number, name: string): NodeEntry {
    const snap = this.snap;
    const v = this.value(parent);
    if (v === undefined) {
      const c = this.rootChild(snap, name);
      if (!c) throw new SquashfsError('NOT_FOUND', `no such file or directory: /${name}`, 'path');
      return this.entry(c.key, c.value, this.virtualAttr(c.value, c.key), this.virtualTtl);
    }
    switch (v.t) {
      case 'xdir': {
        const dir = snap.tree.lookup(v.path);
        const n = dir?.kind === 'dir' ? dir.children.get(name) : undefined;
        if (!n) throw new SquashfsError('NOT_FOUND', `no such file or directory: /${v.path}/${name}`, 'path');
        const c = exchangeChild(v.path, n, this.started, snap.packages);
        return this.entry(c.key, c.value, this.virtualAttr(c.value, c.key), this.virtualTtl);
      }
      case 'mkdir':
        throw new SquashfsError('NOT_FOUND', `no such file or directory: ${name}`, 'path');
      case 'xlink':
      case 'ctl':
        throw new SquashfsError('NOT_A_DIRECTORY', `node ${parent} is a symlink`, 'path');
      default:
        return this.viewLookup(v, name);
    }
  }

  /** A name inside a package directory: one image's inode, or a runtime_union path. */
  private viewLookup(parent: ViewValue, name: string, listed?: NodeDirEntry): NodeEntry {
    const view = parent.view;
    const path = `${parent.t === 'pkg' ? '' : parent.path}/${name}`;
    const sources = sourcesFor(view.pkg, path, view.unions);
    if (sources.length > 1) {
      const { op, value: inode } = firstSource(this.open, sources, (o) => inodeAtPath(o.image, path));
      return this.entry(`u:${view.id}:${path}`, { t: 'union', view, path }, withPackageIno(view, op.fs.attrOf(inode)), DAY);
    }
    const { op, inode: dir } = this.inodeOf(parent);
    const inode = (listed && op.fs.inodeOfDirEntry(listed)) || op.fs.child(dir, name);
    if (!inode) throw new SquashfsError('NOT_FOUND', `no such file or directory: ${view.pkg.full}${path}`, 'path');
    return this.entry(`i:${view.id}:${inode.ref}`, { t: 'inode', view, ref: inode.ref, path }, withPackageIno(view, op.fs.attrOf(inode)), DAY);
  }

  /** READDIRPLUS: an entry of an image directory becomes a node without a second name search. */
  lookupDirEntry(parent: number, e: NodeDirEntry): NodeEntry {
    const v = this.value(parent);
    if (v === undefined || v.t === 'xdir' || v.t === 'mkdir' || v.t === 'xlink' || v.t === 'ctl' || v.t === 'union') return this.lookup(parent, e.name);
    return this.viewLookup(v, e.name, e);
  }

  negativeTtl(parent: number): number {
    const v = parent === ROOT_NODE || this.table.keyOf(parent) === undefined ? undefined : this.table.get(parent);
    // Inside a view nothing ever appears; /ro and the exchange dirs are told about new names.
    return v !== undefined && 'view' in v ? DAY : this.virtualTtl;
  }

  forget(node: number, nlookup: number): void {
    if (node === ROOT_NODE) return;
    const key = this.table.keyOf(node);
    if (key === undefined) return;
    const v = this.table.get(node);
    this.table.forget(node, nlookup);
    if (this.table.nodeOf(key) !== undefined || !('view' in v)) return;
    const pkg = v.view.pkg;
    const n = (this.held.get(pkg) ?? 1) - 1;
    if (n > 0) {
      this.held.set(pkg, n);
      return;
    }
    this.held.delete(pkg);
    const op = this.pinned.get(pkg);
    if (op) {
      this.pinned.delete(pkg);
      this.pool.unref(op);
    }
  }

  getattr(node: number): { attr: NodeAttr; ttl: number } {
    const v = this.value(node);
    if (v === undefined) {
      const snap = this.snap;
      return { attr: { ...DIR_ATTR(this.started, ROOT_NODE), nlink: 2 + snap.rootNames.length + this.mkdirs.size }, ttl: this.virtualTtl };
    }
    if (v.t === 'inode' || v.t === 'union') {
      const { op, inode } = this.inodeOf(v);
      return { attr: withPackageIno(v.view, op.fs.attrOf(inode)), ttl: DAY };
    }
    // Virtual nodes are what their keys say and never change, but a transport that cannot be told
    // about a rescan gets the short time for everything virtual, as distri had it.
    return { attr: this.virtualAttr(v, this.table.keyOf(node)!), ttl: this.virtualTtl };
  }

  readlink(node: number): string {
    const v = this.value(node);
    if (v === undefined) throw new SquashfsError('NOT_A_SYMLINK', '/ is a directory, not a symlink', 'path');
    switch (v.t) {
      case 'xlink':
        return v.target;
      case 'ctl':
        return this.options.ctlPath ?? '';
      case 'xdir':
      case 'mkdir':
      case 'pkg':
        throw new SquashfsError('NOT_A_SYMLINK', `node ${node} is a directory, not a symlink`, 'path');
      default: {
        const { op, inode } = this.inodeOf(v);
        return op.image.readlink(inode);
      }
    }
  }

  readdir(node: number, cookie: number, emit: (e: NodeDirEntry) => boolean): void {
    if (!Number.isSafeInteger(cookie) || cookie < 0) throw new SquashfsError('INVALID_ARGUMENT', `directory offset ${cookie}`, 'readdir');
    const v = this.value(node);
    // Entries before the cookie are skipped without being made into nodes' keys.
    const list = <T>(children: Iterable<[string, T]>, child: (t: T) => VirtualChild): void => {
      let i = 0;
      for (const [name, t] of children) {
        if (++i <= cookie) continue;
        const c = child(t);
        const ino = c.value.t === 'pkg' ? virtualIno(`p:${c.value.view.pkg.full}`) : virtualIno(c.key);
        if (!emit({ name, ino, mode: c.mode, cookie: i })) return;
      }
    };
    if (v === undefined) return list(this.rootChildren(this.snap), (c) => c);
    switch (v.t) {
      case 'xdir': {
        const snap = this.snap;
        const dir = snap.tree.lookup(v.path);
        if (dir?.kind !== 'dir') throw new SquashfsError('NOT_FOUND', `/${v.path} is gone`, 'path');
        return list(dir.children, (n) => exchangeChild(v.path, n, this.started, snap.packages));
      }
      case 'mkdir':
        return;
      case 'xlink':
      case 'ctl':
        throw new SquashfsError('NOT_A_DIRECTORY', `node ${node} is a symlink`, 'path');
      case 'union': {
        const entries = unionReaddir(this.open, sourcesFor(v.view.pkg, v.path, v.view.unions), v.path);
        for (let i = cookie; i < entries.length; i++) {
          const e = entries[i]!;
          if (!emit({ name: e.name, nameBytes: e.nameBytes, ino: packageIno(v.view, e.inodeNumber), mode: MODE_BY_BASIC_TYPE[e.type] ?? 0, cookie: i + 1 })) return;
        }
        return;
      }
      default: {
        const { op, inode } = this.inodeOf(v);
        const view = v.view;
        op.fs.readdirInode(inode, cookie, (e) => emit({ ...e, ino: packageIno(view, e.ino) }));
      }
    }
  }

  read(node: number, buf: Uint8Array, position: number): number {
    const v = this.value(node);
    if (v === undefined || v.t === 'xdir' || v.t === 'mkdir' || v.t === 'pkg') throw new SquashfsError('IS_A_DIRECTORY', `node ${node} is a directory`, 'path');
    if (v.t === 'xlink' || v.t === 'ctl') throw new SquashfsError('NOT_A_FILE', `node ${node} is a symlink, not a regular file`, 'path');
    const { op, inode } = this.inodeOf(v);
    return op.image.readInto(inode, position, buf);
  }

  /** The node's inode when any of its sources can have xattrs at all (else none, without opening). */
  private xattrInode(node: number): { op: OpenPackage; inode: Inode } | undefined {
    const v = this.value(node);
    if (v === undefined || (v.t !== 'inode' && v.t !== 'union')) return undefined;
    const sources = v.t === 'union' ? sourcesFor(v.view.pkg, v.path, v.view.unions) : [v.view.pkg];
    if (!sources.some((s) => s.record.hasXattrs)) return undefined;
    return this.inodeOf(v);
  }

  listxattr(node: number): string[] {
    const x = this.xattrInode(node);
    return x ? x.op.image.xattrs(x.inode).map((a) => a.name) : [];
  }

  getxattr(node: number, name: string): Uint8Array | undefined {
    const x = this.xattrInode(node);
    return x ? x.op.image.xattrs(x.inode).find((a) => a.name === name)?.value : undefined;
  }

  statfs(): NodeStatfs {
    let bytes = 0;
    let files = 0;
    for (const p of this.snap.packages.values()) {
      bytes += p.record.image.size;
      files += p.record.sb[1];
    }
    return { blockSize: 131072, blocks: Math.ceil(bytes / 131072), files, nameMax: 256 };
  }

  /** The store may hold images with xattrs at any time: never let the kernel stop asking. */
  get hasXattrs(): boolean {
    return true;
  }
}
