/**
 * Package directories of /ro: `/ro/<full>/…` is the package's image, opened on first access below
 * the package directory (never for a listing of /ro or a stat of /ro/<full>), plus runtime_union.
 *
 * Open images are pooled and bounded: at most `maxOpen` images are open, the least recently used
 * one without open files is closed when another must be opened, and each image's caches get an
 * equal share of one byte budget, so memory is bounded by the budget, not by the store's size or
 * by the number of files read. An image with open files is never closed under its readers: not by
 * eviction and not when its package leaves the store (it is closed when the last file is released;
 * its descriptor keeps an unlinked file readable until then).
 *
 * runtime_union: package P declaring `runtime_union < dir: "lib/app/modules" pkg: "app-…" >` extends
 * `/ro/app-…/out/lib/app/modules`. Every path at or below that directory is looked up first in the
 * package itself, then in each contributor's own `out/lib/app/modules/…`; directories there list the
 * union of all of them (the package's own names first, then contributors' in store order, each name
 * once). Contributors' images are opened only when such a path is touched.
 */
import { SquashfsError } from '../errors';
import { Image, type ImageOptions } from '../reader/image';
import type { ImageEntry } from '../store/exchange';
import type { PackageName } from '../store/package-name';
import { ImageVfs } from './image-vfs';
import { decodeEntries, type IndexRecord, type StoreIndex } from './store-index';
import type { VfsAttr } from './types';

/** One package of the store as /ro knows it: name, image path and its index record. */
export class StorePackage {
  private decoded: ImageEntry[] | undefined;
  constructor(
    readonly name: PackageName,
    readonly imagePath: string,
    readonly metaPath: string,
    readonly record: IndexRecord,
    private readonly index: StoreIndex,
  ) {}

  /** Exchange entries (for buildExchangeTree), from the index's entries file on first use. */
  get entries(): readonly ImageEntry[] {
    return (this.decoded ??= decodeEntries(this.index.entriesOf(this)));
  }

  get full(): string {
    return this.name.full;
  }

  /** The image file's mtime in seconds: the package directory's mtime. */
  get mtime(): number {
    return Math.floor(this.record.image.mtimeMs / 1000);
  }
}

export interface OpenPackage {
  readonly pkg: StorePackage;
  readonly image: Image;
  readonly vfs: ImageVfs;
  /** Open file handles into this image. */
  refs: number;
  /** Left the store or was evicted while files were open: close on the last release. */
  retired: boolean;
}

export interface PoolOptions {
  /** Images open at once (default 64). */
  maxOpen?: number;
  /** Bytes of decoder caches over all open images (default 256 MiB). */
  cacheBytes?: number;
  /** Called right after an image is opened (the store checks the superblock against its index). */
  onOpen?: (pkg: StorePackage, image: Image) => void;
}

type CacheCounts = { hits: number; misses: number };

/** The bounded set of open images. */
export class ImagePool {
  /** Map order is recency: the first entry is the least recently used. */
  private readonly open = new Map<StorePackage, OpenPackage>();
  /** Images kept open only for their open files. */
  private readonly retired = new Set<OpenPackage>();
  private readonly maxOpen: number;
  private readonly imageOptions: ImageOptions;
  opens = 0;
  /** Milliseconds spent opening images (total and slowest), for the benchmark. */
  openMsTotal = 0;
  openMsMax = 0;
  evictions = 0;
  openFailures = 0;
  /** Cache counters of images already closed. */
  private closedCounts: CacheCounts = { hits: 0, misses: 0 };

  constructor(private readonly options: PoolOptions = {}) {
    this.maxOpen = Math.max(1, options.maxOpen ?? 64);
    const share = Math.floor((options.cacheBytes ?? 256 << 20) / this.maxOpen);
    this.imageOptions = {
      metadataCacheBytes: Math.max(64 << 10, Math.floor(share * 0.25)),
      dataCacheBytes: Math.max(128 << 10, Math.floor(share * 0.5)),
      fragmentCacheBytes: Math.max(64 << 10, Math.floor(share * 0.125)),
      dirCacheBytes: Math.max(64 << 10, Math.floor(share * 0.125)),
      inodeCacheEntries: 4096,
    };
  }

  /** The open image of a package, opening it (and closing the least recently used) as needed. */
  acquire(pkg: StorePackage): OpenPackage {
    const hit = this.open.get(pkg);
    if (hit) {
      this.open.delete(pkg);
      this.open.set(pkg, hit);
      return hit;
    }
    const t0 = performance.now();
    let image: Image;
    try {
      image = Image.open(pkg.imagePath, this.imageOptions);
    } catch (e) {
      this.openFailures++;
      throw e;
    }
    let op: OpenPackage;
    try {
      this.options.onOpen?.(pkg, image);
      op = { pkg, image, vfs: new ImageVfs(image, { pathCacheEntries: 4096 }), refs: 0, retired: false };
    } catch (e) {
      image.close();
      throw e;
    }
    this.opens++;
    const ms = performance.now() - t0;
    this.openMsTotal += ms;
    this.openMsMax = Math.max(this.openMsMax, ms);
    this.open.set(pkg, op);
    this.evict();
    return op;
  }

  private evict(): void {
    if (this.open.size <= this.maxOpen) return;
    for (const [pkg, op] of this.open) {
      if (this.open.size <= this.maxOpen) break;
      this.open.delete(pkg);
      this.evictions++;
      if (op.refs > 0) {
        op.retired = true;
        this.retired.add(op);
      } else this.close(op);
    }
  }

  private close(op: OpenPackage): void {
    const s = op.image.cacheStats();
    for (const c of Object.values(s)) {
      this.closedCounts.hits += c.hits;
      this.closedCounts.misses += c.misses;
    }
    op.image.close();
  }

  /** A file of `op` was opened. */
  ref(op: OpenPackage): void {
    op.refs++;
  }

  /** A file of `op` was released: closes a retired image with its last file. */
  unref(op: OpenPackage): void {
    op.refs--;
    if (op.refs <= 0 && op.retired) {
      this.retired.delete(op);
      this.close(op);
    }
  }

  /** The package left the store: close its image now, or when its last file is released. */
  retire(pkg: StorePackage): void {
    const op = this.open.get(pkg);
    if (!op) return;
    this.open.delete(pkg);
    if (op.refs > 0) {
      op.retired = true;
      this.retired.add(op);
    } else this.close(op);
  }

  isOpen(pkg: StorePackage): boolean {
    return this.open.has(pkg);
  }

  get openCount(): number {
    return this.open.size;
  }

  get retiredCount(): number {
    return this.retired.size;
  }

  /** Decoder cache hits and misses over every image ever opened. */
  cacheCounts(): CacheCounts {
    const out = { ...this.closedCounts };
    for (const op of [...this.open.values(), ...this.retired]) {
      for (const c of Object.values(op.image.cacheStats())) {
        out.hits += c.hits;
        out.misses += c.misses;
      }
    }
    return out;
  }

  closeAll(): void {
    for (const op of [...this.open.values(), ...this.retired]) this.close(op);
    this.open.clear();
    this.retired.clear();
  }
}

/** A runtime_union contribution: `from`'s `out/<dir>` shown inside the target package. */
export interface UnionSource {
  /** Below `out/`, e.g. `lib/app/modules`, without leading or trailing slash. */
  readonly dir: string;
  readonly from: StorePackage;
}

/**
 * The sources that serve `rest` (a path inside a package, `/out/lib/app/modules/x`): the package
 * itself, then every contributor whose union dir contains the path.
 */
export function sourcesFor(pkg: StorePackage, rest: string, unions: readonly UnionSource[] | undefined): StorePackage[] {
  if (!unions || unions.length === 0) return [pkg];
  const out = [pkg];
  for (const u of unions) {
    const base = `/out/${u.dir}`;
    if ((rest === base || rest.startsWith(base + '/')) && !out.includes(u.from)) out.push(u.from);
  }
  return out;
}

function isNotFound(e: unknown): boolean {
  return e instanceof SquashfsError && (e.code === 'NOT_FOUND' || e.code === 'NOT_A_DIRECTORY');
}

/**
 * Runs `fn` on the first source that has `rest`: NOT_FOUND from one source moves on to the next;
 * any other failure (a corrupt image) is that request's answer. Returns the source used.
 */
export function firstSource<T>(pool: ImagePool, sources: readonly StorePackage[], fn: (op: OpenPackage) => T): { op: OpenPackage; value: T } {
  let last: unknown;
  for (const s of sources) {
    const op = pool.acquire(s);
    try {
      return { op, value: fn(op) };
    } catch (e) {
      if (!isNotFound(e) || sources.length === 1) throw e;
      last = e;
    }
  }
  throw last;
}

/** The union listing of a directory over its sources (own names first, each name once). */
export function unionReaddir(pool: ImagePool, sources: readonly StorePackage[], rest: string): string[] {
  if (sources.length === 1) return pool.acquire(sources[0]!).vfs.readdir(rest);
  const seen = new Set<string>();
  let found = false;
  let last: unknown;
  for (const s of sources) {
    let names: string[];
    try {
      names = pool.acquire(s).vfs.readdir(rest);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      last = e;
      continue;
    }
    found = true;
    for (const n of names) seen.add(n);
  }
  if (!found) throw last;
  return [...seen];
}

/** The attributes of a package directory itself, answered without opening the image. */
export function packageDirAttr(pkg: StorePackage): VfsAttr {
  return { mode: 0o40555, uid: 0, gid: 0, size: 0, mtime: pkg.mtime, nlink: 2, ino: 0, rdev: 0 };
}
