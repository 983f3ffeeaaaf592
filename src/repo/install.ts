/**
 * `distri install` and `distri update`: packages from one or more repos into a machine's store.
 *
 * A machine root R has the store at `R/roimg`, its configuration at `R/etc` and /ro mounted at
 * `R/ro` (R is `/` on a distri machine). Installing, under the store lock (./store-lock.ts):
 *
 *  1. Resolve. A bare name (`nano`) gets `-amd64`; `nano-amd64` means the newest revision over ALL
 *     repos (rev first, then a natural upstream compare: src/store/version.ts); a full name is
 *     taken from the first repo that has it. The install set is each package plus its runtime_dep
 *     closure (followed transitively, even though a meta already lists the closure), minus what the
 *     store already has (image and meta).
 *  2. Fetch every file of the set concurrently into `R/roimg/tmp/install-<pid>-…`, each checked
 *     against the index (byte count and sha256) before it is used.
 *  3. Place, dependencies first: a package's `etc/` is copied to `R/etc` when no revision of it was
 *     in the store before (its first install; existing files are never replaced); then its meta is
 *     renamed into the store, then its image. The store scanner treats an image as whole once it
 *     is visible under its name, and skips an image without meta, so a daemon never serves half a
 *     package.
 *  4. Ask a running daemon to rescan (./rescan.ts).
 *
 * Interrupted (SIGINT/SIGTERM: the CLI aborts `signal`; a crash; SIGKILL): nothing reaches the
 * store before step 3, so the store is as it was; the temp files are removed at once, or, after a
 * SIGKILL, by the next install, which finds the dead process's stale lock. The one window in
 * step 3 — meta renamed, image not yet — is covered by a journal, `tmp/install-<pid>.placing`,
 * listing the packages being placed: the next run removes each listed meta whose image is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { parseMeta } from '../store/meta';
import { isBareName, parsePackageName, pkgArch, type PackageName } from '../store/package-name';
import { comparePackageVersions, newestByPackage } from '../store/version';
import { scanStore } from '../vfs/store-scan';
import { copyEtc, type EtcCopy } from './etc-copy';
import { DEFAULT_TIMEOUT_MS, fetchRepoIndex, fetchToFile, parseRepo, type Repo } from './fetch';
import { rescanDaemon, type RescanOutcome } from './rescan';
import type { RepoIndex, RepoPackage } from './repo-index';
import { lockStore } from './store-lock';

/** The architecture a name without one gets. */
export const DEFAULT_ARCH = 'amd64';
/** Temp names of install runs start with this (other users of tmp/ keep theirs). */
const TMP_PREFIX = 'install-';

export interface MachineLayout {
  root: string;
  store: string;
  etc: string;
  tmp: string;
  mountpoint: string;
}

export function layoutOf(root: string): MachineLayout {
  const store = path.join(root, 'roimg');
  return { root, store, etc: path.join(root, 'etc'), tmp: path.join(store, 'tmp'), mountpoint: path.join(root, 'ro') };
}

export interface Candidate {
  pkg: RepoPackage;
  repo: Repo;
}

/** The indexes of several repos, searched in the order given. */
export class RepoSet {
  private constructor(readonly repos: { repo: Repo; index: RepoIndex }[]) {}

  static async load(specs: readonly string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RepoSet> {
    if (specs.length === 0) throw new SquashfsError('INVALID_ARGUMENT', 'no repo given (--repo URL or --repo DIR)');
    const repos = specs.map(parseRepo);
    const indexes = await Promise.all(repos.map((r) => fetchRepoIndex(r, { timeoutMs })));
    return new RepoSet(repos.map((repo, i) => ({ repo, index: indexes[i]! })));
  }

  find(full: string): Candidate | undefined {
    for (const { repo, index } of this.repos) {
      const pkg = index.packages.get(full);
      if (pkg) return { pkg, repo };
    }
    return undefined;
  }

  /** The newest revision of `<pkg>-<arch>` over all repos (the first repo wins a tie of equal names). */
  newest(name: Pick<PackageName, 'pkg' | 'arch'>): Candidate | undefined {
    const key = pkgArch(name);
    let best: { c: Candidate; n: PackageName } | undefined;
    for (const { repo, index } of this.repos) {
      for (const [full, pkg] of index.packages) {
        const n = parsePackageName(full)!;
        if (pkgArch(n) !== key) continue;
        if (best === undefined || comparePackageVersions(n, best.n) > 0) best = { c: { pkg, repo }, n };
      }
    }
    return best?.c;
  }
}

/** A name as the user typed it: `nano`, `nano-amd64`, `nano-amd64-4.3-1`. */
export function parseRequest(arg: string): PackageName {
  const trimmed = arg.trim();
  if (trimmed === '' || /[\s/]/.test(trimmed)) throw new SquashfsError('INVALID_ARGUMENT', `${JSON.stringify(arg)} is not a package name`);
  for (const candidate of [trimmed, `${trimmed}-${DEFAULT_ARCH}`]) {
    const n = parsePackageName(candidate);
    if (n !== null && n.full === candidate) return n;
  }
  throw new SquashfsError('INVALID_ARGUMENT', `${JSON.stringify(arg)} is not a package name`);
}

/** Complete packages of the store (image and meta), by full name. */
function installed(store: string): Map<string, PackageName> {
  const out = new Map<string, PackageName>();
  let scan;
  try {
    scan = scanStore(store);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const [full, p] of scan.packages) if (p.hasMeta) out.set(full, p.name);
  return out;
}

/** Every `<pkg>-<arch>` that has a revision in the store, complete or not. */
function presentPkgArchs(store: string): Set<string> {
  try {
    return new Set([...scanStore(store).packages.values()].map((p) => pkgArch(p.name)));
  } catch {
    return new Set();
  }
}

/** Under the lock: undo what a killed install left behind (see the module comment). */
export function recoverInterrupted(layout: MachineLayout): string[] {
  const notes: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(layout.tmp);
  } catch {
    return notes;
  }
  for (const n of names) {
    if (!n.startsWith(TMP_PREFIX) || !n.endsWith('.placing')) continue;
    let list: unknown;
    try {
      list = JSON.parse(fs.readFileSync(path.join(layout.tmp, n), 'utf8'));
    } catch {
      list = [];
    }
    for (const full of Array.isArray(list) ? list : []) {
      if (typeof full !== 'string' || parsePackageName(full)?.full !== full) continue;
      const meta = path.join(layout.store, `${full}.meta.textproto`);
      if (fs.existsSync(meta) && !fs.existsSync(path.join(layout.store, `${full}.squashfs`))) {
        fs.rmSync(meta, { force: true });
        notes.push(`removed ${full}.meta.textproto left without its image by an interrupted install`);
      }
    }
  }
  for (const n of names) if (n.startsWith(TMP_PREFIX)) fs.rmSync(path.join(layout.tmp, n), { recursive: true, force: true });
  return notes;
}

export interface InstallProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface InstallOptions {
  root: string;
  repos: readonly string[];
  /** Names to install; with `update`, ignored (every installed package is a target). */
  names: readonly string[];
  /** Reinstall the newest revision of every installed package (by `<pkg>-<arch>`). */
  update?: boolean;
  /** Files fetched at once (default 4). */
  jobs?: number;
  timeoutMs?: number;
  /** How long to wait for another install's lock (default 0: fail at once). */
  lockWaitMs?: number;
  signal?: AbortSignal;
  onProgress?(p: InstallProgress): void;
  log?(line: string): void;
}

export interface InstalledPackage {
  full: string;
  repo: string;
  bytes: number;
  etc?: EtcCopy;
}

export interface InstallResult {
  /** What each requested name resolved to. */
  resolved: { name: string; full: string }[];
  installed: InstalledPackage[];
  /** In the install set but already in the store. */
  present: string[];
  /** update: installed packages that no repo has. */
  notInRepos: string[];
  bytes: number;
  rescan?: RescanOutcome;
  notes: string[];
}

/** Orders packages so that each comes after its runtime deps (those among `set`). */
function depsFirst(set: Map<string, Candidate>): Candidate[] {
  const out: Candidate[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (full: string): void => {
    if (state.has(full) || !set.has(full)) return; // a cycle is broken where it is met
    state.set(full, 'visiting');
    for (const d of set.get(full)!.pkg.runtimeDep) visit(d);
    state.set(full, 'done');
    out.push(set.get(full)!);
  };
  for (const full of [...set.keys()].sort()) visit(full);
  return out;
}

/** Runs `tasks` with at most `jobs` at once; the first failure aborts `ac` and is rethrown. */
async function pool(tasks: (() => Promise<void>)[], jobs: number, ac: AbortController): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && failure === undefined) {
      const t = tasks[next++]!;
      try {
        await t();
      } catch (e) {
        if (failure === undefined) failure = e;
        ac.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  if (failure !== undefined) throw failure;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SquashfsError('IO', 'interrupted');
}

export async function install(opts: InstallOptions): Promise<InstallResult> {
  const layout = layoutOf(path.resolve(opts.root));
  const log = opts.log ?? (() => undefined);
  const result: InstallResult = { resolved: [], installed: [], present: [], notInRepos: [], bytes: 0, notes: [] };
  if (!opts.update && opts.names.length === 0) throw new SquashfsError('INVALID_ARGUMENT', 'name at least one package to install');
  const requests = opts.update ? [] : opts.names.map((n) => ({ arg: n, name: parseRequest(n) }));

  fs.mkdirSync(layout.store, { recursive: true });
  const lock = await lockStore(layout.store, { waitMs: opts.lockWaitMs ?? 0, cmd: opts.update ? 'distri update' : 'distri install', onWait: (h) => log(`waiting for the store lock held by ${h}`) });
  const ours: string[] = [];
  try {
    result.notes.push(...recoverInterrupted(layout));
    const repos = await RepoSet.load(opts.repos, opts.timeoutMs);
    const have = installed(layout.store);

    // 1. Resolve the targets.
    const targets: Candidate[] = [];
    if (opts.update) {
      for (const [key, newestLocal] of newestByPackage(have.values())) {
        const c = repos.newest(newestLocal);
        if (!c) result.notInRepos.push(key);
        else if (comparePackageVersions(parsePackageName(c.pkg.full)!, newestLocal) > 0) {
          result.resolved.push({ name: key, full: c.pkg.full });
          targets.push(c);
        }
      }
    } else {
      for (const { arg, name } of requests) {
        const c = isBareName(name) ? repos.newest(name) : repos.find(name.full);
        if (!c) throw new SquashfsError('NOT_FOUND', `no package ${name.full} in ${opts.repos.join(', ')}`);
        result.resolved.push({ name: arg, full: c.pkg.full });
        targets.push(c);
      }
    }

    // The closure, minus what the store has.
    const need = new Map<string, Candidate>();
    const seen = new Set<string>();
    const queue = [...targets];
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (seen.has(c.pkg.full)) continue;
      seen.add(c.pkg.full);
      if (have.has(c.pkg.full)) result.present.push(c.pkg.full);
      else need.set(c.pkg.full, c);
      for (const dep of c.pkg.runtimeDep) {
        if (seen.has(dep)) continue;
        const d = repos.find(dep);
        if (d) queue.push(d);
        else if (have.has(dep)) {
          seen.add(dep);
          result.present.push(dep);
        } else throw new SquashfsError('NOT_FOUND', `${c.pkg.full} needs ${dep}, which neither the store nor any repo has`);
      }
    }
    result.present.sort();
    if (need.size === 0) return result;

    // 2. Fetch, concurrently, into tmp/.
    fs.mkdirSync(layout.tmp, { recursive: true });
    const ac = new AbortController();
    const onOuterAbort = () => ac.abort();
    opts.signal?.addEventListener('abort', onOuterAbort);
    const progress: InstallProgress = { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: need.size * 2 };
    const tmpOf = (file: string) => path.join(layout.tmp, `${TMP_PREFIX}${process.pid}-${file}.part`);
    const tasks: (() => Promise<void>)[] = [];
    for (const c of need.values()) {
      progress.bytesTotal += c.pkg.image.size + c.pkg.meta.size;
      for (const f of [c.pkg.meta, c.pkg.image]) {
        tasks.push(async () => {
          const dest = tmpOf(f.file);
          ours.push(dest);
          await fetchToFile(c.repo, f, dest, {
            timeoutMs: opts.timeoutMs,
            signal: ac.signal,
            onBytes: (n) => {
              progress.bytesDone += n;
              opts.onProgress?.(progress);
            },
          });
          progress.filesDone++;
          opts.onProgress?.(progress);
        });
      }
    }
    try {
      await pool(tasks, opts.jobs ?? 4, ac);
    } finally {
      opts.signal?.removeEventListener('abort', onOuterAbort);
    }
    throwIfAborted(opts.signal);

    // The metas must parse (the index vouches for the bytes, not for what a broken build wrote).
    for (const c of need.values()) {
      try {
        parseMeta(fs.readFileSync(tmpOf(c.pkg.meta.file), 'utf8'));
      } catch (e) {
        throw new SquashfsError('CORRUPT', `${c.pkg.full}: its meta does not parse: ${e instanceof SquashfsError ? e.describe() : (e as Error).message}`);
      }
    }

    // 3. Place, dependencies first.
    const wasPresent = presentPkgArchs(layout.store);
    const journal = path.join(layout.tmp, `${TMP_PREFIX}${process.pid}.placing`);
    ours.push(journal);
    const order = depsFirst(need);
    for (const c of order) {
      throwIfAborted(opts.signal);
      const name = parsePackageName(c.pkg.full)!;
      const entry: InstalledPackage = { full: c.pkg.full, repo: c.repo.spec, bytes: c.pkg.image.size + c.pkg.meta.size };
      if (!wasPresent.has(pkgArch(name))) {
        wasPresent.add(pkgArch(name));
        const staging = path.join(layout.tmp, `${TMP_PREFIX}${process.pid}-etc-${c.pkg.full}`);
        ours.push(staging);
        entry.etc = await copyEtc(tmpOf(c.pkg.image.file), layout.etc, staging);
        for (const k of entry.etc.kept) log(`${c.pkg.full}: kept the existing /etc/${k}`);
      }
      fs.writeFileSync(journal, JSON.stringify([c.pkg.full]));
      fs.renameSync(tmpOf(c.pkg.meta.file), path.join(layout.store, c.pkg.meta.file));
      fs.renameSync(tmpOf(c.pkg.image.file), path.join(layout.store, c.pkg.image.file));
      fs.rmSync(journal, { force: true });
      result.installed.push(entry);
      result.bytes += entry.bytes;
    }
    // The renames are durable once the directory is.
    const dfd = fs.openSync(layout.store, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } finally {
    for (const p of ours) fs.rmSync(p, { recursive: true, force: true });
    lock.release();
  }

  // 4. Tell the daemon (outside the lock: a slow daemon must not hold up the next install).
  result.rescan = await rescanDaemon(layout.mountpoint, layout.store);
  return result;
}
