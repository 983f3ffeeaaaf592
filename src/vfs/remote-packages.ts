/**
 * Remote packages of /ro (`distri fuse --repo URL --autodownload`): every package of the remote
 * repository's index (`<repo>/pkg/index-v1.json`, src/repo/repo-index.ts) that is not in the local
 * store appears in /ro as if it were, before a single byte of it is here:
 *
 * - its package directory and its exchange-dir links come from the index alone (the index carries
 *   each package's meta fields, superblock figures and exchange entries, exactly what the local
 *   store index keeps), so listing /ro or /ro/bin fetches nothing but the index;
 * - the first access below `/ro/<full>/` opens the image through an HttpSource
 *   (src/io/http-source.ts): only the chunks that the requests touch are fetched, each verified
 *   against the index, and kept in a cache file `<store>/.distri-remote/<full>.squashfs.part`;
 * - with `fill`, the rest of the image is fetched in the background, and once every chunk is there
 *   the meta and then the image are renamed into the store: the package is then an ordinary local
 *   one (the store watcher rescans, the local image replaces the remote package; what the kernel
 *   holds of the remote one keeps reading from the same file).
 *
 * A local package of the same name always wins. The index is fetched once when the daemon starts;
 * when that fails (repo down), the daemon serves the local store and fetches it again in the
 * background, taken by a later rescan (`distri fusectl MNT scan`, or any change of the store).
 * A repository's new packages are not picked up by a running daemon (the index is not refetched
 * once loaded).
 *
 * The cache lives inside the store (a dot-directory, ignored by the store scan) so that completing
 * an image is a rename on one filesystem; a read-only store keeps it under
 * `$XDG_CACHE_HOME/distri/remote/` and never completes into the store.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { HttpSource, httpClient, type HttpClient } from '../io/http-source';
import { Image, type ImageOptions } from '../reader/image';
import { parseRepoIndex, REPO_INDEX_FILE, type RepoIndex, type RepoPackage } from '../repo/repo-index';
import type { ImageEntry } from '../store/exchange';
import { parsePackageName } from '../store/package-name';
import { StorePackage } from './package-dir';
import { decodeEntries, type IndexRecord, type StoreIndex } from './store-index';

/** An index bigger than this is refused (a hostile or broken server must not exhaust memory). */
const MAX_INDEX_BYTES = 256 << 20;

export interface RemoteOptions {
  /** The repository's base URL (the directory holding pkg/). */
  repo: string;
  /** Where partial images are cached (default: `<store>/.distri-remote`, see the module comment). */
  cacheDir?: string;
  /** Socket silence before a request is given up, ms (default 10 s). */
  timeoutMs?: number;
  /** Chunks fetched beyond what a read needs (default 0). */
  readAhead?: number;
  /** Fetch the rest of an opened image in the background and complete it into the store. */
  fill?: boolean;
  log: (message: string) => void;
}

/** A package of the remote repository, served through the remote byte source. */
export class RemoteStorePackage extends StorePackage {
  private decodedEntries: ImageEntry[] | undefined;

  constructor(
    readonly remote: RepoPackage,
    record: IndexRecord,
    index: StoreIndex,
    private readonly owner: RemotePackages,
  ) {
    super(parsePackageName(remote.full)!, owner.urlOf(remote.image.file), owner.urlOf(remote.meta.file), record, index);
  }

  override get entries(): readonly ImageEntry[] {
    return (this.decodedEntries ??= decodeEntries(this.remote.entries));
  }

  override openImage(options: ImageOptions): Image {
    const src = this.owner.source(this);
    // Opening reads the superblock, then the tables at the end of the image (bytes_used is in the
    // index): both chunks in one round trip instead of two.
    const end = this.record.sb[0] > 0 ? this.record.sb[0] : src.size;
    src.prefetch([
      { offset: 0, length: 96 },
      { offset: Math.max(0, end - 1), length: 1 },
    ]);
    return new Image(src, options);
  }
}

export class RemotePackages {
  private index: RepoIndex | undefined;
  /** Whether the first (waiting) fetch of the index was made. */
  private tried = false;
  /** A background fetch of the index under way (after the first one failed). */
  private pending: number | undefined;
  private readonly byName = new Map<string, RemoteStorePackage>();
  private readonly base: string;
  private readonly cacheDir: string;
  /** Whether completed images may be renamed into the store (cache on the store's filesystem). */
  private readonly canComplete: boolean;
  private readonly started = Date.now();
  private client: HttpClient | undefined;

  constructor(
    private readonly store: string,
    private readonly o: RemoteOptions,
  ) {
    let u: URL;
    try {
      u = new URL(o.repo);
    } catch {
      throw new SquashfsError('INVALID_ARGUMENT', `--repo ${o.repo} is not a URL (http://host:port/path)`, 'options');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SquashfsError('INVALID_ARGUMENT', `--repo ${o.repo}: only http:// and https:// repositories can be read lazily`, 'options');
    this.base = o.repo.replace(/\/+$/, '');
    const inStore = path.join(store, '.distri-remote');
    let writable = true;
    try {
      fs.accessSync(store, fs.constants.W_OK);
    } catch {
      writable = false;
    }
    this.cacheDir =
      o.cacheDir ??
      (writable ? inStore : path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'distri', 'remote', crypto.createHash('sha256').update(path.resolve(store)).digest('hex')));
    this.canComplete = writable && path.resolve(this.cacheDir) === path.resolve(inStore);
  }

  private get http(): HttpClient {
    return (this.client ??= httpClient({ timeoutMs: this.o.timeoutMs, log: this.o.log }));
  }

  urlOf(file: string): string {
    return `${this.base}/pkg/${encodeURIComponent(file)}`;
  }

  /**
   * The index: fetched (waiting for it) by the first scan, before the mount is up. When that fails,
   * the next scan starts a new fetch in the background and a later one takes its result when it
   * is there, so a scan on the serving thread never waits for a slow repository.
   */
  private load(): void {
    if (this.index) return;
    const url = this.urlOf(REPO_INDEX_FILE);
    let bytes: Uint8Array | undefined;
    try {
      if (this.pending !== undefined) {
        bytes = this.http.collectFile(this.pending, url);
        if (bytes === undefined) return; // still under way
        this.pending = undefined;
      } else if (!this.tried) {
        this.tried = true;
        bytes = this.http.getFile(url, MAX_INDEX_BYTES);
      } else {
        // Scans are rare (a store change, SIGUSR1, fusectl scan) and at most one fetch is under
        // way at a time: no hammering of a repository that is down.
        this.pending = this.http.beginFile(url, MAX_INDEX_BYTES);
        return;
      }
      this.index = parseRepoIndex(bytes, url);
      this.o.log(`repo ${this.base}: ${this.index.packages.size} packages in the index`);
    } catch (e) {
      this.pending = undefined;
      this.o.log(`repo ${this.base}: index not loaded (${e instanceof SquashfsError ? e.message : (e as Error).message}); serving the local store, trying again on a later rescan`);
    }
  }

  /** The remote packages to show besides `local` (the names the local store serves). */
  packages(local: ReadonlySet<string>, storeIndex: StoreIndex): RemoteStorePackage[] {
    this.load();
    if (!this.index) return [];
    const out: RemoteStorePackage[] = [];
    for (const [full, rp] of this.index.packages) {
      if (local.has(full)) continue;
      let p = this.byName.get(full);
      if (!p) {
        const record: IndexRecord = {
          image: { size: rp.image.size, mtimeMs: this.started, ino: 0 },
          meta: { size: rp.meta.size, mtimeMs: this.started, ino: 0 },
          sb: rp.sb,
          runtimeDep: rp.runtimeDep,
          sourcePkg: rp.sourcePkg,
          version: rp.version,
          runtimeUnion: rp.runtimeUnion,
          hasXattrs: rp.hasXattrs,
        };
        p = new RemoteStorePackage(rp, record, storeIndex, this);
        this.byName.set(full, p);
      }
      out.push(p);
    }
    return out;
  }

  /** The byte source of a remote package's image (its cache registered on first use). */
  source(p: RemoteStorePackage): HttpSource {
    const rp = p.remote;
    const part = path.join(this.cacheDir, `${rp.full}.squashfs.part`);
    return new HttpSource(
      { url: this.urlOf(rp.image.file), size: rp.image.size, sha256: rp.image.sha256, chunkSize: this.index!.chunkSize, chunks: rp.image.chunks },
      { part, bitmap: path.join(this.cacheDir, `${rp.full}.squashfs.chunks`) },
      this.http,
      {
        label: rp.full,
        readAhead: this.o.readAhead,
        fill: this.o.fill,
        promote:
          this.o.fill && this.canComplete
            ? {
                metaUrl: this.urlOf(rp.meta.file),
                metaSize: rp.meta.size,
                metaSha256: rp.meta.sha256,
                metaDest: path.join(this.store, rp.meta.file),
                imageDest: path.join(this.store, rp.image.file),
                imageSha256: rp.image.sha256,
              }
            : undefined,
      },
    );
  }
}
