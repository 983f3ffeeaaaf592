/**
 * The repository index: one JSON file, `<repo>/pkg/index-v1.json`, that describes every package a
 * repository serves, so that a client can decide what to fetch, verify what it fetched, and show a
 * package in `/ro` before it has a single byte of it. `distri mirror` writes it; `distri install`
 * and `distri fuse --repo` read it.
 *
 *   { "format": "distri-repo-index/1", "chunkSize": 262144,
 *     "packages": { "<full>": {
 *       "image": { "file": "<full>.squashfs", "size": …, "sha256": "<hex>", "chunks": ["<hex>", …] },
 *       "meta":  { "file": "<full>.meta.textproto", "size": …, "sha256": "<hex>" },
 *       "runtimeDep": […], "sourcePkg": "…", "version": "…", "runtimeUnion": [{"dir","pkg"}…],
 *       "hasXattrs": false, "sb": [bytesUsed, inodeCount, mkfsTime],
 *       "entries": "bin/\u0000bin/less\u0000…" } } }
 *
 * - `chunks`: the sha256 of every `chunkSize` piece of the image (the last one shorter), so a
 *   client that fetched only some byte ranges can check each piece before using it; `sha256` checks
 *   the whole file.
 * - The meta fields and `sb` are what the store index (src/vfs/store-index.ts) keeps per local
 *   package; `entries` are the paths below the exchange source dirs, encoded as there (`\0`
 *   between paths, directories end in `/`). With them `/ro/bin` can list a remote package's
 *   programs without opening its image.
 *
 * The index comes from the network, so it is untrusted input: parseRepoIndex checks every field's
 * shape and refuses the whole file on the first bad one (a SquashfsError CORRUPT naming where).
 * File names must be exactly `<full>.squashfs` / `<full>.meta.textproto` of a valid versioned
 * package name (never a path, so an index cannot point a client outside `pkg/`); entry paths must
 * lie below an exchange source dir with no empty, `.` or `..` component; the chunk list must cover
 * the image exactly.
 *
 * The format string carries the version; a reader refuses any other. A change that old readers
 * could misread gets a new version and a new file name (`index-v2.json`), so old and new clients
 * can be served from one repo.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { preadFully } from '../io/pread';
import { Image } from '../reader/image';
import { EXCHANGE_DIRS } from '../store/exchange';
import { parseMeta, type RuntimeUnion } from '../store/meta';
import { parsePackageName } from '../store/package-name';
import { encodeEntries, exchangeEntries } from '../vfs/store-index';
import { scanStore } from '../vfs/store-scan';

export const REPO_INDEX_FORMAT = 'distri-repo-index/1';
/** The index's file name inside `<repo>/pkg/`. */
export const REPO_INDEX_FILE = 'index-v1.json';
/** 256 KiB: two of distri's 128 KiB blocks; a partial fetch is verified in pieces this size. */
export const DEFAULT_CHUNK_SIZE = 262144;
/** Bounds on chunkSize a reader accepts (a hostile index must not make a client allocate GiBs). */
const MIN_CHUNK = 4096;
const MAX_CHUNK = 64 << 20;
const STRUCTURE = 'repo index';

export interface RepoFile {
  file: string;
  size: number;
  sha256: string;
}

export interface RepoPackage {
  full: string;
  image: RepoFile & { chunks: string[] };
  meta: RepoFile;
  runtimeDep: string[];
  sourcePkg: string;
  version: string;
  runtimeUnion: RuntimeUnion[];
  hasXattrs: boolean;
  sb: [number, number, number];
  entries: string;
}

export interface RepoIndex {
  chunkSize: number;
  packages: Map<string, RepoPackage>;
}

/** A package `buildRepoIndex` left out, and why. */
export interface SkippedPackage {
  full: string;
  why: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

function bad(origin: string, where: string, what: string): never {
  throw new SquashfsError('CORRUPT', `${origin}: ${where}: ${what}`, STRUCTURE);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A fully versioned name, exactly as given (no path, no suffix). */
function isFullName(s: string): boolean {
  const n = parsePackageName(s);
  return n !== null && n.full === s && n.upstream !== '';
}

const EXCHANGE_SOURCES = EXCHANGE_DIRS.map((d) => d.image);

/** An entry path lies at or below an exchange source dir and has only ordinary components. */
function isEntryPath(p: string): boolean {
  if (p === '' || p.split('/').some((c) => c === '' || c === '.' || c === '..')) return false;
  return EXCHANGE_SOURCES.some((s) => p === s || p.startsWith(s + '/'));
}

function checkFile(origin: string, where: string, v: unknown, expectedName: string): RepoFile {
  if (!isObject(v)) bad(origin, where, 'not an object');
  if (v.file !== expectedName) bad(origin, where, `file must be ${JSON.stringify(expectedName)}, is ${JSON.stringify(v.file)}`);
  if (!isSize(v.size)) bad(origin, where, `size ${JSON.stringify(v.size)} is not a byte count`);
  if (typeof v.sha256 !== 'string' || !HEX64.test(v.sha256)) bad(origin, where, 'sha256 is not 64 lower-case hex digits');
  return { file: v.file, size: v.size, sha256: v.sha256 };
}

function stringArray(origin: string, where: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) bad(origin, where, 'not a list of strings');
  return [...(v as string[])];
}

function checkPackage(origin: string, full: string, v: unknown, chunkSize: number): RepoPackage {
  const at = `package ${JSON.stringify(full)}`;
  if (!isFullName(full)) bad(origin, at, 'not a versioned package name <pkg>-<arch>-<version>');
  if (!isObject(v)) bad(origin, at, 'not an object');
  const image = checkFile(origin, `${at} image`, v.image, `${full}.squashfs`);
  const chunks = stringArray(origin, `${at} image.chunks`, (v.image as Record<string, unknown>).chunks);
  const want = Math.ceil(image.size / chunkSize);
  if (chunks.length !== want) bad(origin, `${at} image.chunks`, `${chunks.length} chunk hashes for ${image.size} bytes in ${chunkSize}-byte chunks (want ${want})`);
  if (!chunks.every((c) => HEX64.test(c))) bad(origin, `${at} image.chunks`, 'a chunk hash is not 64 lower-case hex digits');
  const meta = checkFile(origin, `${at} meta`, v.meta, `${full}.meta.textproto`);
  const runtimeDep = stringArray(origin, `${at} runtimeDep`, v.runtimeDep);
  for (const d of runtimeDep) if (!isFullName(d)) bad(origin, `${at} runtimeDep`, `${JSON.stringify(d)} is not a versioned package name`);
  if (typeof v.sourcePkg !== 'string') bad(origin, `${at} sourcePkg`, 'not a string');
  if (typeof v.version !== 'string') bad(origin, `${at} version`, 'not a string');
  if (!Array.isArray(v.runtimeUnion) || !v.runtimeUnion.every((u) => isObject(u) && typeof u.dir === 'string' && typeof u.pkg === 'string')) {
    bad(origin, `${at} runtimeUnion`, 'not a list of {dir, pkg} strings');
  }
  if (typeof v.hasXattrs !== 'boolean') bad(origin, `${at} hasXattrs`, 'not true or false');
  const sb = v.sb;
  if (!Array.isArray(sb) || sb.length !== 3 || !sb.every(isSize)) bad(origin, `${at} sb`, 'not [bytesUsed, inodeCount, mkfsTime]');
  const [bytesUsed, inodeCount, mkfsTime] = sb as [number, number, number];
  if (typeof v.entries !== 'string') bad(origin, `${at} entries`, 'not a string');
  if (v.entries !== '') {
    for (const e of v.entries.split('\0')) {
      const p = e.endsWith('/') ? e.slice(0, -1) : e;
      if (!isEntryPath(p)) bad(origin, `${at} entries`, `${JSON.stringify(e)} is not a path below an exchange directory`);
    }
  }
  return {
    full,
    image: { ...image, chunks },
    meta,
    runtimeDep,
    sourcePkg: v.sourcePkg,
    version: v.version,
    runtimeUnion: (v.runtimeUnion as RuntimeUnion[]).map((u) => ({ dir: u.dir, pkg: u.pkg })),
    hasXattrs: v.hasXattrs,
    sb: [bytesUsed, inodeCount, mkfsTime],
    entries: v.entries,
  };
}

/**
 * Parses an index read from `origin` (a URL or path, used in messages). Untrusted input: every
 * field is shape-checked; anything wrong throws SquashfsError CORRUPT ("repo index") naming the
 * package and field.
 */
export function parseRepoIndex(bytes: Uint8Array, origin: string): RepoIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    bad(origin, 'whole file', `not JSON (${(e as Error).message})`);
  }
  if (!isObject(doc)) bad(origin, 'whole file', 'not a JSON object');
  if (doc.format !== REPO_INDEX_FORMAT) bad(origin, 'format', `${JSON.stringify(doc.format)} is not ${JSON.stringify(REPO_INDEX_FORMAT)} (a newer or foreign index?)`);
  const chunkSize = doc.chunkSize;
  if (!isSize(chunkSize) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) bad(origin, 'chunkSize', `${JSON.stringify(chunkSize)} is not a size in ${MIN_CHUNK}..${MAX_CHUNK}`);
  if (!isObject(doc.packages)) bad(origin, 'packages', 'not an object');
  const packages = new Map<string, RepoPackage>();
  for (const [full, v] of Object.entries(doc.packages)) packages.set(full, checkPackage(origin, full, v, chunkSize));
  return { chunkSize, packages };
}

/** The index as the JSON text writeRepoIndex stores (packages sorted by name; stable output). */
export function serializeRepoIndex(index: RepoIndex): string {
  const packages: Record<string, unknown> = {};
  for (const full of [...index.packages.keys()].sort()) {
    const { full: _full, ...rest } = index.packages.get(full)!;
    packages[full] = rest;
  }
  return JSON.stringify({ format: REPO_INDEX_FORMAT, chunkSize: index.chunkSize, packages }) + '\n';
}

/** sha256 of the whole file and of each `chunkSize` piece, read once in chunk-sized pieces. */
export function hashFile(file: string, chunkSize: number): { size: number; sha256: string; chunks: string[] } {
  const whole = crypto.createHash('sha256');
  const chunks: string[] = [];
  const buf = Buffer.allocUnsafe(chunkSize);
  const fd = fs.openSync(file, 'r');
  let size = 0;
  try {
    for (;;) {
      // Fill the buffer completely (a short read is not the end of a regular file).
      const got = preadFully(fd, buf, size);
      if (got === 0) break;
      const piece = buf.subarray(0, got);
      whole.update(piece);
      chunks.push(crypto.createHash('sha256').update(piece).digest('hex'));
      size += got;
      if (got < chunkSize) break;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { size, sha256: whole.digest('hex'), chunks };
}

function describe(e: unknown): string {
  return e instanceof SquashfsError ? e.describe() : e instanceof Error ? e.message : String(e);
}

/** Cache sizes for the short open that reads a package's superblock and exchange entries. */
const OPEN_OPTIONS = { metadataCacheBytes: 1 << 20, dataCacheBytes: 256 << 10, fragmentCacheBytes: 256 << 10, inodeCacheEntries: 256, dirCacheBytes: 256 << 10 };

/** Indexes one package from its two files in `pkgDir`. Throws (with a reason) when it cannot. */
export function indexPackage(pkgDir: string, full: string, chunkSize: number): RepoPackage {
  const imagePath = path.join(pkgDir, `${full}.squashfs`);
  const metaPath = path.join(pkgDir, `${full}.meta.textproto`);
  let metaBytes: Buffer;
  try {
    metaBytes = fs.readFileSync(metaPath);
  } catch (e) {
    throw new Error(`meta: ${describe(e)}`);
  }
  let meta;
  try {
    meta = parseMeta(metaBytes.toString('utf8'));
  } catch (e) {
    throw new Error(`meta: ${describe(e)}`);
  }
  let image: Image | undefined;
  let sb: [number, number, number];
  let hasXattrs: boolean;
  let entries: string;
  try {
    image = Image.open(imagePath, OPEN_OPTIONS);
    sb = [image.superblock.bytesUsed, image.superblock.inodeCount, image.superblock.modificationTime];
    hasXattrs = image.hasXattrs;
    entries = encodeEntries(exchangeEntries(image));
  } catch (e) {
    throw new Error(`image: ${describe(e)}`);
  } finally {
    image?.close();
  }
  const hashed = hashFile(imagePath, chunkSize);
  return {
    full,
    image: { file: `${full}.squashfs`, ...hashed },
    meta: { file: `${full}.meta.textproto`, size: metaBytes.length, sha256: crypto.createHash('sha256').update(metaBytes).digest('hex') },
    runtimeDep: [...meta.runtimeDep],
    sourcePkg: meta.sourcePkg,
    version: meta.version,
    runtimeUnion: meta.runtimeUnion.map((u) => ({ dir: u.dir, pkg: u.pkg })),
    hasXattrs,
    sb,
    entries,
  };
}

/**
 * Indexes every complete package (image and meta) of `pkgDir`. A package whose image or meta
 * cannot be read, or an image without meta, is left out and passed to `onSkip`.
 */
export function buildRepoIndex(pkgDir: string, opts: { chunkSize?: number; onSkip?(s: SkippedPackage): void; onPackage?(full: string, done: number, total: number): void } = {}): RepoIndex {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) {
    throw new SquashfsError('INVALID_ARGUMENT', `chunk size ${chunkSize} is not in ${MIN_CHUNK}..${MAX_CHUNK}`);
  }
  const scan = scanStore(pkgDir);
  const packages = new Map<string, RepoPackage>();
  const names = [...scan.packages.keys()].sort();
  let done = 0;
  for (const full of names) {
    const p = scan.packages.get(full)!;
    opts.onPackage?.(full, done++, names.length);
    if (!p.hasMeta) {
      opts.onSkip?.({ full, why: `no ${full}.meta.textproto beside the image` });
      continue;
    }
    try {
      packages.set(full, indexPackage(pkgDir, full, chunkSize));
    } catch (e) {
      opts.onSkip?.({ full, why: describe(e) });
    }
  }
  return { chunkSize, packages };
}

/** Writes `<pkgDir>/index-v1.json` atomically: a hidden temp file, fsync, rename. */
export function writeRepoIndex(pkgDir: string, index: RepoIndex): void {
  const file = path.join(pkgDir, REPO_INDEX_FILE);
  const tmp = path.join(pkgDir, `.${REPO_INDEX_FILE}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeFileSync(fd, serializeRepoIndex(index));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Reads and parses `<pkgDir>/index-v1.json` from a local repo. */
export function readRepoIndex(pkgDir: string): RepoIndex {
  const file = path.join(pkgDir, REPO_INDEX_FILE);
  return parseRepoIndex(fs.readFileSync(file), file);
}
