/**
 * The persisted store index: for every package image, the entries of its exchange source
 * directories (`bin/`, `out/lib/`, `out/share/`, …), the fields of its meta that /ro needs, and
 * whether it has xattrs. With it, mounting a store and listing `/ro/bin` open no image at all: the
 * exchange directories are assembled from the index alone, and an image is opened only when
 * something inside its package directory is first touched.
 *
 * Where: `<store>/.distri-index/`, next to the images it describes (a store copied or moved keeps
 * its index; the directory watcher ignores dot-names, and the index lives one level down so
 * rewriting it does not wake the watcher). When the store is not writable (a read-only mirror),
 * `$XDG_CACHE_HOME/distri/store-index/<sha256 of the store's real path>/` (default `~/.cache`)
 * instead. It is only a cache: deleting it costs one rebuild.
 *
 * Two files, so that mounting reads only the small one:
 * - `summary-v1.json`: per package the file keys, superblock figures, meta fields, xattr flag and
 *   error — what deciding "is this package served" and runtime_union need (~200 bytes a package);
 * - `entries-v1.json`: per package its image key and exchange entries — read after the mount is
 *   ready (or by the first exchange-dir request, whichever comes first). An entries record whose
 *   image key differs from the summary's (a crash between the two writes) is rebuilt.
 *
 * The summary also keeps the store directory's stamp (mtime, ctime, inode) from the last full scan
 * that found a record for every complete package and none for anything else. While the directory
 * still has that stamp, its records *are* the store's packages, and the daemon answers the mount's
 * first requests from them without reading the directory (StoreFs firstFromIndex); its full scan
 * after the mount is ready checks them against the files as below.
 *
 * Never trusted blindly:
 * - a record is used only while the image's and the meta's (size, mtime, inode number) equal what
 *   is on disk now; anything else is rebuilt from the files;
 * - every record is shape-checked on load (a damaged or foreign file is ignored as a whole);
 * - each record carries the image superblock's bytes_used, inode count and creation time; when the
 *   image is opened for serving, those are compared with the real superblock, and a mismatch (a file
 *   rewritten in place with the same size and mtime) throws the record away and re-indexes it.
 *
 * Building a record opens the image with small caches, walks only the exchange source directories
 * (iteratively, with the reader's loop and depth guards), and closes it again. A corrupt image or an
 * unparsable meta becomes a record with `error` set, so that it is reported once and not re-read on
 * every mount until the file changes.
 */
import type * as Crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { Image } from '../reader/image';
import { walk } from '../reader/walk';
import { EXCHANGE_DIRS, type ImageEntry } from '../store/exchange';
import { parseMeta, type RuntimeUnion } from '../store/meta';
import { dirStamp, fileKey, sameKey, sameStamp, type DirStamp, type FileKey, type ScannedPackage } from './store-scan';

export const INDEX_FORMAT = 'distri-store-index/1';
const INDEX_DIR = '.distri-index';
const SUMMARY_FILE = 'summary-v1.json';
const ENTRIES_FILE = 'entries-v1.json';

export interface IndexRecord {
  image: FileKey;
  meta: FileKey;
  /** Superblock bytes_used, inode_count, mkfs_time: checked when the image is opened. */
  sb: [number, number, number];
  runtimeDep: string[];
  sourcePkg: string;
  version: string;
  runtimeUnion: RuntimeUnion[];
  hasXattrs: boolean;
  /**
   * Paths at the image root that look meant for an exchange dir but can never reach one (a
   * `share/` beside `out/` instead of inside it), each with the reason: /ro shows the package,
   * and `fusectl scan` warns. Absent in records written before it existed.
   */
  misplaced?: string[];
  /** Why the package is skipped (corrupt image, unreadable meta). */
  error?: string;
}

/** A package's exchange entries, kept apart from the summary (see the module comment). */
export interface EntriesRecord {
  image: FileKey;
  /** `\0`-separated, directories with a trailing `/` (names never hold NUL). */
  entries: string;
}

/** Cache sizes for the short-lived open that builds a record. */
const INDEX_OPEN_OPTIONS = { metadataCacheBytes: 1 << 20, dataCacheBytes: 256 << 10, fragmentCacheBytes: 256 << 10, inodeCacheEntries: 256, dirCacheBytes: 256 << 10 };

function describe(e: unknown): string {
  return e instanceof SquashfsError ? e.describe() : e instanceof Error ? e.message : String(e);
}

/** Lists the entries of an image's exchange source dirs (`bin`, `bin/less`, `out/lib/pkgconfig`, …). */
export function exchangeEntries(image: Image): ImageEntry[] {
  const out: ImageEntry[] = [];
  const root = image.root();
  for (const { image: source } of EXCHANGE_DIRS) {
    // Resolve component by component without following symlinks: an exchange dir that is a
    // symlink (distri's `debug`) is a non-directory, which the exchange rules ignore.
    let inode = root as ReturnType<Image['root']> | ReturnType<Image['entryInode']>;
    let found = true;
    for (const c of source.split('/')) {
      if (inode.kind !== 'dir') {
        found = false;
        break;
      }
      const e = image.lookup(inode, c);
      if (!e) {
        found = false;
        break;
      }
      inode = image.entryInode(e);
    }
    if (!found) continue;
    if (inode.kind !== 'dir') {
      out.push({ path: source, type: 'other' });
      continue;
    }
    for (const item of walk(image, inode, source)) out.push({ path: item.path, type: item.inode.kind === 'dir' ? 'dir' : 'other' });
  }
  return out;
}

/**
 * Root entries of a package image that were meant for an exchange dir and can never appear in one:
 * a tree packed from `out/` (or from a filesystem root) instead of the package root. Only `bin/`
 * and the `out/…` dirs feed /ro's exchange dirs; a root `lib/` is the package's own farm of
 * symlinks to the libraries its programs use, so anything else in it is misplaced too.
 */
export function misplacedPaths(image: Image): string[] {
  const out: string[] = [];
  const root = image.root();
  for (const e of image.readdir(root)) {
    const name = e.name;
    const feeds = EXCHANGE_DIRS.find((d) => d.image === `out/${name}`);
    if (feeds && name !== 'lib') out.push(`${name}/: at the image root, never in /ro/${feeds.virtual} (only out/${name} is)`);
    else if (name === 'sbin') out.push('sbin/: at the image root, never in /ro/bin (only bin/ is: one wrapper or symlink per program of out/bin and out/sbin)');
    else if (name === 'usr') out.push('usr/: a filesystem root was packed; a package holds out/ (its installed tree) and bin/');
    else if (name === 'lib' && e.type === 1) {
      const lib = image.entryInode(e);
      const stray = image.readdir(lib).find((c) => c.type !== 3);
      if (stray) out.push(`lib/${stray.name}: the root lib/ holds only symlinks (the library farm); libraries go in out/lib, which feeds /ro/lib`);
    }
  }
  return out;
}

export function encodeEntries(entries: readonly ImageEntry[]): string {
  return entries.map((e) => (e.type === 'dir' ? e.path + '/' : e.path)).join('\0');
}

export function decodeEntries(s: string): ImageEntry[] {
  if (s === '') return [];
  return s.split('\0').map((p) => (p.endsWith('/') ? { path: p.slice(0, -1), type: 'dir' as const } : { path: p, type: 'other' as const }));
}

/** Builds the records of one complete package from its files. Never throws: failures become `error`. */
export function buildRecord(p: ScannedPackage): IndexRecord & { entries: string } {
  const rec: IndexRecord & { entries: string } = { image: p.image, meta: p.meta!, sb: [0, 0, 0], runtimeDep: [], sourcePkg: '', version: '', runtimeUnion: [], hasXattrs: false, entries: '' };
  try {
    const meta = parseMeta(fs.readFileSync(p.metaPath, 'utf8'));
    rec.runtimeDep = [...meta.runtimeDep];
    rec.sourcePkg = meta.sourcePkg;
    rec.version = meta.version;
    rec.runtimeUnion = meta.runtimeUnion.map((u) => ({ dir: u.dir, pkg: u.pkg }));
  } catch (e) {
    rec.error = `meta ${p.metaPath}: ${describe(e)}`;
    return rec;
  }
  let image: Image | undefined;
  try {
    image = Image.open(p.imagePath, INDEX_OPEN_OPTIONS);
    const sb = image.superblock;
    rec.sb = [sb.bytesUsed, sb.inodeCount, sb.modificationTime];
    rec.hasXattrs = image.hasXattrs;
    rec.entries = encodeEntries(exchangeEntries(image));
    const misplaced = misplacedPaths(image);
    if (misplaced.length) rec.misplaced = misplaced;
  } catch (e) {
    rec.error = `image ${p.imagePath}: ${describe(e)}`;
    rec.entries = '';
  } finally {
    image?.close();
  }
  return rec;
}

function isKey(v: unknown): v is FileKey {
  const k = v as FileKey;
  return typeof k === 'object' && k !== null && Number.isFinite(k.size) && Number.isFinite(k.mtimeMs) && Number.isFinite(k.ino);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/** Shape check of one record read from disk. */
function isRecord(v: unknown): v is IndexRecord {
  const r = v as IndexRecord;
  return (
    typeof r === 'object' &&
    r !== null &&
    isKey(r.image) &&
    isKey(r.meta) &&
    Array.isArray(r.sb) &&
    r.sb.length === 3 &&
    r.sb.every((n) => Number.isSafeInteger(n)) &&
    isStringArray(r.runtimeDep) &&
    typeof r.sourcePkg === 'string' &&
    typeof r.version === 'string' &&
    Array.isArray(r.runtimeUnion) &&
    r.runtimeUnion.every((u) => typeof u === 'object' && u !== null && typeof u.dir === 'string' && typeof u.pkg === 'string') &&
    typeof r.hasXattrs === 'boolean' &&
    (r.misplaced === undefined || isStringArray(r.misplaced)) &&
    (r.error === undefined || typeof r.error === 'string')
  );
}

function isEntries(v: unknown): v is EntriesRecord {
  const r = v as EntriesRecord;
  return typeof r === 'object' && r !== null && isKey(r.image) && typeof r.entries === 'string';
}

interface Doc {
  packages: Record<string, unknown>;
  /** Summary only: the store directory's stamp when the records were last complete (StoreIndex.stamp). */
  store?: unknown;
}

function readDoc(file: string): Doc | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined; // missing or unreadable: rebuilt as needed
  }
  const d = doc as { format?: unknown; packages?: unknown; store?: unknown };
  if (typeof d !== 'object' || d === null || d.format !== INDEX_FORMAT || typeof d.packages !== 'object' || d.packages === null) return undefined;
  return d as Doc;
}

function isStamp(v: unknown): v is DirStamp {
  const k = v as DirStamp;
  return typeof k === 'object' && k !== null && Number.isFinite(k.mtimeMs) && Number.isFinite(k.ctimeMs) && Number.isFinite(k.ino);
}

function writeDoc(file: string, records: Map<string, unknown>, store?: DirStamp): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const packages: Record<string, unknown> = {};
    for (const [k, v] of [...records].sort((a, b) => (a[0] < b[0] ? -1 : 1))) packages[k] = v;
    fs.writeFileSync(tmp, JSON.stringify({ format: INDEX_FORMAT, ...(store && { store }), packages }));
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export interface IndexStats {
  /** Records loaded from disk at start. */
  loaded: number;
  /** Records used as they were (keys matched). */
  hits: number;
  /** Records (re)built from the files. */
  built: number;
  /** Records thrown away because the superblock disagreed. */
  invalidated: number;
  /** Exchange-entry records rebuilt because they were missing or stale. */
  entriesBuilt: number;
  /** Milliseconds spent loading the entries file (0 until it is needed). */
  entriesLoadMs: number;
  /** The directory the index is read from and written to. */
  dir: string;
  /** Last write failure, if any. */
  writeError?: string;
}

/** The index of one store: records by full package name, loaded once, saved when changed. */
export class StoreIndex {
  private records = new Map<string, IndexRecord>();
  /** Loaded on first need; until then only `fresh` (records built this session) is known. */
  private entries: Map<string, EntriesRecord> | undefined;
  private fresh = new Map<string, EntriesRecord>();
  private dirty = false;
  private entriesDirty = false;
  private storeStamp: DirStamp | undefined;
  readonly stats: IndexStats;

  constructor(readonly store: string) {
    this.stats = { loaded: 0, hits: 0, built: 0, invalidated: 0, entriesBuilt: 0, entriesLoadMs: 0, dir: StoreIndex.locate(store) };
    const doc = readDoc(path.join(this.stats.dir, SUMMARY_FILE));
    let whole = true;
    for (const [full, rec] of Object.entries(doc?.packages ?? {})) {
      if (isRecord(rec)) this.records.set(full, rec);
      else whole = false;
    }
    // A record dropped by the shape check leaves a hole: the records no longer describe the store.
    if (whole && isStamp(doc?.store)) this.storeStamp = doc.store;
    this.stats.loaded = this.records.size;
  }

  /**
   * The store directory's stamp when a full scan last found a record for every complete package
   * it listed, and nothing else: while the directory still has that stamp, the records are the
   * store's packages (each still to be checked against its files, as always). Undefined when
   * unknown, or when a record has been dropped since.
   */
  get stamp(): DirStamp | undefined {
    return this.storeStamp;
  }

  /** Set by a full scan (undefined when its records are not the whole store); saved with the summary. */
  setStamp(stamp: DirStamp | undefined): void {
    if (stamp === undefined ? this.storeStamp === undefined : sameStamp(stamp, this.storeStamp)) return;
    this.storeStamp = stamp;
    this.dirty = true;
  }

  /** Whether the store directory still has the saved stamp (one stat; false when unknown). */
  matchesStore(): boolean {
    if (this.storeStamp === undefined) return false;
    try {
      return sameStamp(dirStamp(fs.statSync(this.store)), this.storeStamp);
    } catch {
      return false;
    }
  }

  /** Whether there is a record for this full name (of a complete package, when the stamp is set). */
  has(full: string): boolean {
    return this.records.has(full);
  }

  /** Every summary record, by full name. */
  summaries(): IterableIterator<[string, IndexRecord]> {
    return this.records.entries();
  }

  /** The index directory: in the store when it is writable, else in the user's cache directory. */
  static locate(store: string): string {
    const inStore = path.join(store, INDEX_DIR);
    try {
      fs.accessSync(fs.existsSync(inStore) ? inStore : store, fs.constants.W_OK);
      return inStore;
    } catch {
      let real: string;
      try {
        real = fs.realpathSync(store);
      } catch {
        real = path.resolve(store);
      }
      const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
      // node:crypto only here: loading it costs the serving thread ~10 ms of its start-up.
      const crypto = require('node:crypto') as typeof Crypto;
      return path.join(cache, 'distri', 'store-index', crypto.createHash('sha256').update(real).digest('hex'));
    }
  }

  private keep(full: string, built: IndexRecord & { entries: string }): IndexRecord {
    const { entries, ...summary } = built;
    this.records.set(full, summary);
    const e = { image: summary.image, entries };
    if (this.entries) this.entries.set(full, e);
    else this.fresh.set(full, e);
    this.dirty = true;
    this.entriesDirty = true;
    return summary;
  }

  /** The summary record for a complete package, reused when its keys match, else built (and kept). */
  get(p: ScannedPackage): IndexRecord {
    const full = p.name.full;
    const r = this.records.get(full);
    // A quick scan did not stat the meta (p.meta undefined): the image key decides until the full
    // scan that follows.
    if (r && sameKey(r.image, p.image) && (p.meta === undefined || sameKey(r.meta, p.meta))) {
      this.stats.hits++;
      return r;
    }
    this.stats.built++;
    let meta = p.meta;
    if (meta === undefined) {
      try {
        meta = fileKey(fs.statSync(p.metaPath));
      } catch {
        meta = { size: -1, mtimeMs: -1, ino: -1 };
      }
    }
    return this.keep(full, buildRecord({ ...p, meta }));
  }

  private loadEntries(): Map<string, EntriesRecord> {
    if (this.entries) return this.entries;
    const t0 = performance.now();
    const map = new Map<string, EntriesRecord>();
    for (const [full, rec] of Object.entries(readDoc(path.join(this.stats.dir, ENTRIES_FILE))?.packages ?? {})) if (isEntries(rec)) map.set(full, rec);
    for (const [full, rec] of this.fresh) map.set(full, rec);
    this.fresh.clear();
    this.entries = map;
    this.stats.entriesLoadMs = performance.now() - t0;
    return map;
  }

  /**
   * The exchange entries of a package whose summary is `rec`; rebuilt from the image when the
   * stored ones are missing or belong to another version of the file.
   */
  entriesOf(p: { full: string; imagePath: string; metaPath: string; record: IndexRecord }): string {
    const fresh = this.fresh.get(p.full);
    if (fresh && sameKey(fresh.image, p.record.image)) return fresh.entries;
    const map = this.loadEntries();
    const e = map.get(p.full);
    if (e && sameKey(e.image, p.record.image)) return e.entries;
    this.stats.entriesBuilt++;
    const name = { full: p.full } as ScannedPackage['name'];
    const built = buildRecord({ name, imagePath: p.imagePath, metaPath: p.metaPath, image: p.record.image, hasMeta: true, meta: p.record.meta });
    map.set(p.full, { image: p.record.image, entries: built.entries });
    this.entriesDirty = true;
    return built.entries;
  }

  /** The superblock of an opened image disagrees with the record: forget it (rebuilt on next get). */
  invalidate(full: string): void {
    if (this.records.delete(full)) {
      this.stats.invalidated++;
      this.dirty = true;
      this.storeStamp = undefined; // the records no longer cover the store
    }
  }

  /** Drops records of packages no longer in the store. */
  retain(present: ReadonlySet<string>): void {
    for (const full of this.records.keys()) {
      if (!present.has(full)) {
        this.records.delete(full);
        this.fresh.delete(full);
        this.entries?.delete(full);
        this.dirty = true;
        this.entriesDirty = true;
        this.storeStamp = undefined; // the directory changed; the next full scan stamps it anew
      }
    }
  }

  get needsSave(): boolean {
    return this.dirty || this.entriesDirty;
  }

  /** Writes what changed, atomically (temp file + rename). Failures are recorded, not thrown. */
  save(): void {
    if (!this.needsSave) return;
    try {
      // Creating the index directory in the store changes the store directory after the scan
      // took its stamp: the next full scan stamps it again.
      if (fs.mkdirSync(this.stats.dir, { recursive: true }) !== undefined && this.storeStamp) {
        this.storeStamp = undefined;
        this.dirty = true;
      }
      if (this.entriesDirty) {
        // Merge with what is on disk before writing (entries may not have been loaded yet).
        const map = this.loadEntries();
        for (const full of map.keys()) if (!this.records.has(full)) map.delete(full);
        writeDoc(path.join(this.stats.dir, ENTRIES_FILE), map);
        this.entriesDirty = false;
      }
      if (this.dirty) {
        writeDoc(path.join(this.stats.dir, SUMMARY_FILE), this.records, this.storeStamp);
        this.dirty = false;
      }
      this.stats.writeError = undefined;
    } catch (e) {
      this.stats.writeError = (e as Error).message;
    }
  }
}
