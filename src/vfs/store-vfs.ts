/**
 * The /ro tree of a whole package store (distri's `distri fuse`), as a Vfs for the FUSE adapter:
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
 * image; only a lookup below /ro/<full> does. A request in flight keeps the snapshot it started with.
 *
 * Liveness is the caller's business (the `fuse` command, src/cli/commands/fuse.ts, watches the store and calls scan).
 * Kernel caching: virtual entries change on rescan, so the mount uses ~1 s entry/attr timeouts, as
 * distri did; file contents are immutable and keep the page cache (kernel_cache).
 *
 * Not done: distri's -autodownload (packages from a remote mirror); directories inside packages are
 * never merged except through runtime_union; xattrs of a package directory itself are not served
 * (answering them would open the image for every `ls -l /ro`).
 */
import { SquashfsError } from '../errors';
import type { Image } from '../reader/image';
import { buildExchangeTree, EXCHANGE_DIRS, EXCHANGE_ROOTS, type ExchangeNode, type ExchangeTree } from '../store/exchange';
import { parsePackageName, pkgArch } from '../store/package-name';
import { comparePackageVersions } from '../store/version';
import { firstSource, ImagePool, packageDirAttr, sourcesFor, StorePackage, unionReaddir, type OpenPackage, type UnionSource } from './package-dir';
import { StoreIndex } from './store-index';
import { scanStore, type ScannedPackage } from './store-scan';
import type { Vfs, VfsAttr, VfsStatfs } from './types';

export interface StoreVfsOptions {
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
  /** One line per event worth telling (skipped packages, once each). */
  log?: (message: string) => void;
}

interface Snapshot {
  /** Served packages by full name. */
  readonly packages: ReadonlyMap<string, StorePackage>;
  /** Root listing: packages sorted, then exchange dirs. */
  readonly rootNames: readonly string[];
  /** The exchange dirs, assembled on first use (see warm()). */
  readonly tree: ExchangeTree;
  /** runtime_union contributions by target package full name. */
  readonly unions: ReadonlyMap<string, readonly UnionSource[]>;
}

export interface ScanResult {
  known: number;
  added: string[];
  removed: string[];
  skipped: number;
  ms: number;
}

interface Handle {
  op: OpenPackage;
  inner: number;
}

const MAX_HANDLE = 0x7fffffff;
const DIR_ATTR = (mtime: number): VfsAttr => ({ mode: 0o40555, uid: 0, gid: 0, size: 0, mtime, nlink: 2, ino: 0, rdev: 0 });

function exchangeFilter(overlays: readonly string[] | undefined): ((top: string) => boolean) | undefined {
  if (!overlays || overlays.length === 0) return undefined;
  const allowed = new Set(overlays.map((o) => o.replace(/^\/+|\/+$/g, '')).filter((o) => o !== ''));
  for (const a of allowed) {
    if (!EXCHANGE_DIRS.some((d) => d.virtual === a)) throw new SquashfsError('NOT_FOUND', `--overlays: ${JSON.stringify(a)} is not an exchange directory (${EXCHANGE_DIRS.map((d) => '/' + d.virtual).join(', ')})`, 'options');
  }
  return (top) => allowed.has(top);
}

function packageFilter(pkgs: readonly string[] | undefined): ((p: ScannedPackage) => boolean) | undefined {
  if (!pkgs || pkgs.length === 0) return undefined;
  const wanted = new Set(pkgs.map((s) => s.trim()).filter((s) => s !== ''));
  return (p) => wanted.has(p.name.full) || wanted.has(pkgArch(p.name)) || wanted.has(p.name.pkg);
}

export class StoreVfs implements Vfs {
  readonly index: StoreIndex;
  readonly pool: ImagePool;
  private snap: Snapshot;
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private readonly mkdirs = new Set<string>();
  private readonly logged = new Set<string>();
  private readonly includeTop: ((top: string) => boolean) | undefined;
  private readonly includePkg: ((p: ScannedPackage) => boolean) | undefined;
  private readonly started = Math.floor(Date.now() / 1000);
  scans = 0;
  lastScanMs = 0;
  /** Set when an opened image disagreed with its index record: the next scan rebuilds it. */
  rescanWanted = false;

  constructor(
    readonly store: string,
    private readonly options: StoreVfsOptions = {},
  ) {
    this.includeTop = exchangeFilter(options.overlays);
    this.includePkg = packageFilter(options.pkgs);
    this.index = new StoreIndex(store);
    this.pool = new ImagePool({
      maxOpen: options.maxOpenImages,
      cacheBytes: options.cacheBytes,
      onOpen: (pkg, image) => this.checkSuperblock(pkg, image),
    });
    this.snap = { packages: new Map(), rootNames: [], tree: buildExchangeTree([]), unions: new Map() };
    // Quick: images are checked against the index, metas only by presence; whoever serves this
    // calls scan() once more right after the mount is ready (fuse.ts does).
    this.scan(true);
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
      this.rescanWanted = true;
    }
  }

  /**
   * Re-reads the store directory and replaces the snapshot. Cheap when nothing changed (a readdir,
   * two stats per package, and a tree rebuild from cached contributions); new or changed images
   * are indexed (opened briefly) here.
   */
  scan(quick = false): ScanResult {
    const t0 = performance.now();
    const listing = scanStore(this.store, quick);
    const old = this.snap.packages;
    const packages = new Map<string, StorePackage>();
    let skipped = 0;
    for (const p of listing.packages.values()) {
      if (this.includePkg && !this.includePkg(p)) continue;
      if (!p.hasMeta) {
        skipped++;
        this.logOnce(`nometa:${p.name.full}:${p.image.mtimeMs}`, `skipping ${p.name.full}: ${p.metaPath} is missing`);
        continue;
      }
      const rec = this.index.get(p);
      if (rec.error !== undefined) {
        skipped++;
        this.logOnce(`bad:${p.name.full}:${p.image.mtimeMs}:${p.image.size}`, `skipping ${p.name.full}: ${rec.error}`);
        continue;
      }
      const prev = old.get(p.name.full);
      packages.set(p.name.full, prev && prev.record === rec ? prev : new StorePackage(p.name, p.imagePath, p.metaPath, rec, this.index));
    }
    this.index.retain(new Set(listing.packages.keys()));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [full, pkg] of packages) if (old.get(full) !== pkg) added.push(full);
    for (const [full, pkg] of old) {
      if (packages.get(full) !== pkg) {
        if (!packages.has(full)) removed.push(full);
        this.pool.retire(pkg);
      }
    }

    const sorted = [...packages.values()].sort((a, b) => (a.full < b.full ? -1 : a.full > b.full ? 1 : 0));
    const unions = new Map<string, UnionSource[]>();
    // Contributors in store order; several revisions of one contributor: newest first.
    const byNewest = [...sorted].sort((a, b) => (pkgArch(a.name) === pkgArch(b.name) ? comparePackageVersions(b.name, a.name) : a.full < b.full ? -1 : 1));
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
    // The top-level exchange dirs are fixed (they exist even in an empty store).
    const tops = EXCHANGE_ROOTS.filter((r) => !r.includes('/') && (!this.includeTop || this.includeTop(r)));
    const rootNames = [...sorted.map((p) => p.full), ...tops];
    let tree: ExchangeTree | undefined;
    this.snap = {
      packages,
      rootNames,
      unions,
      // Built on first use: it needs every package's entries (the big index file), which a mount
      // does not need to be ready. The daemon calls warm() right after the mount is up.
      get tree(): ExchangeTree {
        return (tree ??= buildExchangeTree(sorted));
      },
    };
    this.scans++;
    this.lastScanMs = performance.now() - t0;
    this.rescanWanted = false;
    return { known: packages.size, added, removed, skipped, ms: this.lastScanMs };
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

  /** Assembles the exchange tree now (loading the entries index) rather than on first request. */
  warm(): number {
    const t0 = performance.now();
    void this.snap.tree.root.children;
    return performance.now() - t0;
  }

  /** `ctl mkdirall DIR`: an empty 0555 directory /ro/DIR (a build mountpoint). One component only. */
  mkdirAll(dir: string): void {
    const d = dir.replace(/^\/+|\/+$/g, '');
    if (d === '' || d.includes('/') || d === '.' || d === '..' || d.includes('\0') || Buffer.byteLength(d) > 255) {
      throw new SquashfsError('UNSAFE_PATH', `mkdirall: ${JSON.stringify(dir)} must be a single path component`, 'ctl');
    }
    if (this.snap.packages.has(d) || this.snap.rootNames.includes(d) || d === 'ctl') return;
    this.mkdirs.add(d);
  }

  get packageCount(): number {
    return this.snap.packages.size;
  }

  get openHandles(): number {
    return this.handles.size;
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
      imagesRetiredWithOpenFiles: this.pool.retiredCount,
      evictions: this.pool.evictions,
      openFailures: this.pool.openFailures,
      openFiles: this.handles.size,
      cacheHits: cache.hits,
      cacheMisses: cache.misses,
      scans: this.scans,
      lastScanMs: Math.round(this.lastScanMs * 1000) / 1000,
      index: { ...this.index.stats },
      mkdirs: [...this.mkdirs],
    };
  }

  close(): void {
    this.pool.closeAll();
    this.handles.clear();
  }

  // ---- path routing ------------------------------------------------------------------------

  /** Splits `/a/b/c` into `a` and `/b/c` (`''` when there is nothing below). */
  private static split(path: string): [string, string] {
    const slash = path.indexOf('/', 1);
    return slash < 0 ? [path.slice(1), ''] : [path.slice(1, slash), path.slice(slash)];
  }

  private exchangeNode(snap: Snapshot, top: string, path: string): ExchangeNode | undefined {
    if (this.includeTop && !this.includeTop(top)) return undefined;
    return snap.tree.lookup(path);
  }

  private notFound(path: string): never {
    throw new SquashfsError('NOT_FOUND', `no such file or directory: ${path}`, 'path');
  }

  getattr(path: string): VfsAttr {
    if (path === '/') return { ...DIR_ATTR(this.started), nlink: 2 + this.snap.rootNames.length };
    const snap = this.snap;
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (pkg) {
      if (rest === '') return packageDirAttr(pkg);
      const sources = sourcesFor(pkg, rest, snap.unions.get(pkg.full));
      return firstSource(this.pool, sources, (op) => op.vfs.getattr(rest)).value;
    }
    if (top === 'ctl' && rest === '' && this.options.ctlPath) {
      return { mode: 0o120777, uid: 0, gid: 0, size: Buffer.byteLength(this.options.ctlPath), mtime: this.started, nlink: 1, ino: 0, rdev: 0 };
    }
    const node = this.exchangeNode(snap, top, path);
    if (node) {
      if (node.kind === 'dir') return DIR_ATTR(this.started);
      return { mode: 0o120777, uid: 0, gid: 0, size: Buffer.byteLength(node.target), mtime: snap.packages.get(node.owner.full)?.mtime ?? this.started, nlink: 1, ino: 0, rdev: 0 };
    }
    if (rest === '' && this.mkdirs.has(top)) return DIR_ATTR(this.started);
    this.notFound(path);
  }

  readdir(path: string): string[] {
    const snap = this.snap;
    if (path === '/') {
      const names = [...snap.rootNames];
      if (this.options.ctlPath) names.push('ctl');
      for (const d of this.mkdirs) if (!snap.packages.has(d)) names.push(d);
      return names;
    }
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (pkg) {
      const r = rest === '' ? '/' : rest;
      return unionReaddir(this.pool, sourcesFor(pkg, r, snap.unions.get(pkg.full)), r);
    }
    const node = this.exchangeNode(snap, top, path);
    if (node) {
      if (node.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${path} is a symlink`, 'path');
      return [...node.children.keys()];
    }
    if (rest === '' && this.mkdirs.has(top)) return [];
    if (top === 'ctl' && rest === '') throw new SquashfsError('NOT_A_DIRECTORY', `${path} is a symlink`, 'path');
    this.notFound(path);
  }

  readlink(path: string): string {
    const snap = this.snap;
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (pkg) {
      if (rest === '') throw new SquashfsError('NOT_A_SYMLINK', `${path} is a directory, not a symlink`, 'path');
      return firstSource(this.pool, sourcesFor(pkg, rest, snap.unions.get(pkg.full)), (op) => op.vfs.readlink(rest)).value;
    }
    if (top === 'ctl' && rest === '' && this.options.ctlPath) return this.options.ctlPath;
    const node = this.exchangeNode(snap, top, path);
    if (node?.kind === 'link') return node.target;
    if (node) throw new SquashfsError('NOT_A_SYMLINK', `${path} is a directory, not a symlink`, 'path');
    this.notFound(path);
  }

  open(path: string): number {
    const snap = this.snap;
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (!pkg || rest === '') {
      if (pkg || this.mkdirs.has(top) || this.exchangeNode(snap, top, path)?.kind === 'dir') throw new SquashfsError('IS_A_DIRECTORY', `${path} is a directory`, 'path');
      this.notFound(path);
    }
    const { op, value: inner } = firstSource(this.pool, sourcesFor(pkg, rest, snap.unions.get(pkg.full)), (o) => o.vfs.open(rest));
    if (this.handles.size >= MAX_HANDLE) {
      op.vfs.release(inner);
      throw new SquashfsError('OVERFLOW', `${this.handles.size} open handles`, 'handles');
    }
    let h = this.nextHandle;
    while (this.handles.has(h)) h = h >= MAX_HANDLE ? 1 : h + 1;
    this.nextHandle = h >= MAX_HANDLE ? 1 : h + 1;
    this.handles.set(h, { op, inner });
    this.pool.ref(op);
    return h;
  }

  read(handle: number, buf: Uint8Array, length: number, position: number): number {
    const h = this.handles.get(handle);
    if (!h) throw new SquashfsError('IO', `read on handle ${handle}, which is not open`, 'handles');
    return h.op.vfs.read(h.inner, buf, length, position);
  }

  release(handle: number): void {
    const h = this.handles.get(handle);
    if (!h) return;
    this.handles.delete(handle);
    h.op.vfs.release(h.inner);
    this.pool.unref(h.op);
  }

  listxattr(path: string): string[] {
    const snap = this.snap;
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (!pkg || rest === '') return [];
    const sources = sourcesFor(pkg, rest, snap.unions.get(pkg.full));
    if (!sources.some((s) => s.record.hasXattrs)) return [];
    return firstSource(this.pool, sources, (op) => op.vfs.listxattr(rest)).value;
  }

  getxattr(path: string, name: string): Uint8Array | undefined {
    const snap = this.snap;
    const [top, rest] = StoreVfs.split(path);
    const pkg = snap.packages.get(top);
    if (!pkg || rest === '') return undefined;
    const sources = sourcesFor(pkg, rest, snap.unions.get(pkg.full));
    if (!sources.some((s) => s.record.hasXattrs)) return undefined;
    return firstSource(this.pool, sources, (op) => op.vfs.getxattr(rest, name)).value;
  }

  statfs(): VfsStatfs {
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
