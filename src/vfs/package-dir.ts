/**
 * Package directories of /ro: `/ro/<full>/…` is the package's image, opened on first access below
 * the package directory (never for a listing of /ro or a stat of /ro/<full>), plus runtime_union.
 *
 * Open images are pooled and bounded: at most `maxOpen` images are open, the least recently used
 * one not pinned is closed when another must be opened, and each image's caches get an
 * equal share of one byte budget, so memory is bounded by the budget, not by the store's size or
 * by the number of files read. Files are read by node, without open (see node-fs.ts), so an evicted
 * image is simply reopened by the next request for one of its nodes (its inode references stay
 * valid: images never change). A package that leaves the store while the kernel still holds nodes
 * of it is pinned instead (ref/unref): its image stays open, its descriptor keeping the unlinked
 * file readable, until the kernel forgets the last of those nodes. (One that was evicted before its
 * package left cannot be reopened once the file is gone: its nodes then answer NOT_FOUND.)
 *
 * runtime_union: package P declaring `runtime_union < dir: "lib/app/modules" pkg: "app-…" >` extends
 * `/ro/app-…/out/lib/app/modules`. Every path at or below that directory is looked up first in the
 * package itself, then in each contributor's own `out/lib/app/modules/…`; directories there list the
 * union of all of them (the package's own names first, then contributors' in store order, each name
 * once). Contributors' images are opened only when such a path is touched.
 */
import { SquashfsError } from '../errors';
import { Image, type DirEntry, type ImageOptions, type Inode } from '../reader/image';
import type { ImageEntry } from '../store/exchange';
import { parsePackageName, type PackageName } from '../store/package-name';
import { ImageFs, NAME_MAX } from './image-fs';
import type { NodeAttr } from './node-fs';
import { decodeEntries, type IndexRecord, type StoreIndex } from './store-index';

/**
 * One package of the store as /ro knows it: name, image path and its index record.
 *
 * The name may be given as the full name alone (a first listing served from the saved index, see
 * StoreFs): it is parsed on first use, since listing /ro needs only the full name and parsing a
 * thousand names cold cost that listing ~7-18 ms. A full name that does not parse (a foreign
 * index file) stands for a package of its own: pkg = the full name, no version.
 */
export class StorePackage {
  private decoded: ImageEntry[] | undefined;
  private parsed: PackageName | undefined;
  readonly full: string;
  constructor(
    name: PackageName | string,
    readonly imagePath: string,
    readonly metaPath: string,
    readonly record: IndexRecord,
    private readonly index: StoreIndex,
  ) {
    if (typeof name === 'string') this.full = name;
    else {
      this.full = name.full;
      this.parsed = name;
    }
  }

  get name(): PackageName {
    if (this.parsed) return this.parsed;
    const n = parsePackageName(this.full);
    return (this.parsed = n !== null && n.full === this.full ? n : { pkg: this.full, arch: 'amd64', upstream: '', rev: 0, full: this.full });
  }

  /** Exchange entries (for buildExchangeTree), from the index's entries file on first use. */
  get entries(): readonly ImageEntry[] {
    return (this.decoded ??= decodeEntries(this.index.entriesOf(this)));
  }

  /** The image file's mtime in seconds: the package directory's mtime. */
  get mtime(): number {
    return Math.floor(this.record.image.mtimeMs / 1000);
  }

  /** Opens the image (a remote package reads it through its repository: src/vfs/remote-packages.ts). */
  openImage(options: ImageOptions): Image {
    return Image.open(this.imagePath, options);
  }
}

export interface OpenPackage {
  readonly pkg: StorePackage;
  readonly image: Image;
  readonly fs: ImageFs;
  /** Holders that need this image kept open (the store pins a removed package's image while the kernel still holds its nodes). */
  refs: number;
  /** Left the store or was evicted while pinned: close on the last unref. */
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
      // /ro's reads copy out at once: blocks a READ takes whole stay in the kernel's page cache,
      // not in ours (see DataReader's passWholeBlocks). Not pooled: each package's cache is a
      // few blocks, and slots are only worth it in one cache that many images share.
      passWholeBlocks: true,
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
      image = pkg.openImage(this.imageOptions);
    } catch (e) {
      this.openFailures++;
      throw e;
    }
    let op: OpenPackage;
    try {
      this.options.onOpen?.(pkg, image);
      op = { pkg, image, fs: new ImageFs(image), refs: 0, retired: false };
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

  /** Someone needs `op` kept open (never evicted, not closed on retire). */
  ref(op: OpenPackage): void {
    op.refs++;
  }

  /** The reverse of ref(): closes a retired image with its last holder. */
  unref(op: OpenPackage): void {
    op.refs--;
    if (op.refs <= 0 && op.retired) {
      this.retired.delete(op);
      this.close(op);
    }
  }

  /** The package left the store: close its image now, or when its last holder lets go. */
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
 * The inode at `path` inside an image (`/out/lib/x`, `''` or `/` for the root), component by
 * component and never through a symlink: the kernel resolves symlinks itself, as with the kernel's
 * own driver. Throws NOT_FOUND or NOT_A_DIRECTORY.
 */
export function inodeAtPath(image: Image, path: string): Inode {
  let inode: Inode = image.root();
  for (const c of path.split('/')) {
    if (c === '') continue;
    if (inode.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${path}: ${c} is below a ${inode.kind}`, 'path');
    const e = Buffer.byteLength(c) > NAME_MAX ? undefined : image.lookup(inode, c);
    if (!e) throw new SquashfsError('NOT_FOUND', `no such file or directory: ${path}`, 'path');
    inode = image.entryInode(e);
  }
  return inode;
}

/**
 * Runs `fn` on the first source that has the path `fn` looks for: NOT_FOUND from one source moves
 * on to the next; any other failure (a corrupt image) is that request's answer. `open` gives a
 * source's open image (the pool's acquire, or an image kept open for a removed package).
 */
export function firstSource<T>(open: (pkg: StorePackage) => OpenPackage, sources: readonly StorePackage[], fn: (op: OpenPackage) => T): { op: OpenPackage; value: T } {
  let last: unknown;
  for (const s of sources) {
    const op = open(s);
    try {
      return { op, value: fn(op) };
    } catch (e) {
      if (!isNotFound(e) || sources.length === 1) throw e;
      last = e;
    }
  }
  throw last;
}

/** The union listing of directory `rest` over its sources (own entries first, each name once). */
export function unionReaddir(open: (pkg: StorePackage) => OpenPackage, sources: readonly StorePackage[], rest: string): DirEntry[] {
  if (sources.length === 1) {
    const { image } = open(sources[0]!);
    return image.readdir(inodeAtPath(image, rest));
  }
  const seen = new Map<string, DirEntry>();
  let found = false;
  let last: unknown;
  for (const s of sources) {
    let entries: DirEntry[];
    try {
      const { image } = open(s);
      entries = image.readdir(inodeAtPath(image, rest));
    } catch (e) {
      if (!isNotFound(e)) throw e;
      last = e;
      continue;
    }
    found = true;
    for (const e of entries) if (!seen.has(e.name)) seen.set(e.name, e);
  }
  if (!found) throw last;
  return [...seen.values()];
}

/** The attributes of a package directory itself, answered without opening the image. */
export function packageDirAttr(pkg: StorePackage, ino = 0): NodeAttr {
  return { mode: 0o40555, uid: 0, gid: 0, size: 0, mtime: pkg.mtime, nlink: 2, ino, rdev: 0 };
}
