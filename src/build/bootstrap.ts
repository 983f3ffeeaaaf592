/**
 * `distri bootstrap`: a toolchain store made from Debian's binary packages, so that hermetic builds
 * have gcc, binutils, glibc, make, bash, coreutils and the rest of the C builder's deps in /ro
 * before anything has been built by distri itself.
 *
 * For every distri package of the mapping (src/build/debian-map.ts):
 *  1. `apt-get download` its .debs into the cache (with the machine's package lists; when those do
 *     not know a package or its version is gone from the mirror, with a private list directory under
 *     the cache, refreshed by `apt-get update` there — the machine's own apt state is never touched);
 *     each .deb is checked against the sha256 apt's lists give, and reused from the cache next time;
 *  2. `dpkg-deb -x` them into one tree, and move every path into distri's layout (mapDebianPath);
 *     symlinks are re-aimed at the moved target: relative within the package, `/ro/<full>/…` into
 *     another package. A *relative* symlink whose target lands in another distri package is a mistake
 *     in the mapping (Debian split a link from its target) and is reported;
 *  3. GNU ld scripts (`libc.so`: `GROUP ( /lib/x86_64-linux-gnu/libc.so.6 … )`) get their Debian
 *     paths replaced by the `/ro/<full>/out/lib/…` paths, since /lib/x86_64-linux-gnu does not exist
 *     in a distri root;
 *  4. `bin/<name>` for every program of out/bin and out/sbin: a relative symlink (the real wrappers
 *     with environment are `distri build`'s; Debian's programs find their libraries through /lib);
 *  5. the ELF pass (src/build/elf-pass.ts) over every package's out/lib: the lib farm and the runtime
 *     deps, plus the mapping's declared deps, closed transitively;
 *  6. the image with our own writer in distri's layout (uncompressed, 128 KiB blocks, no fragments,
 *     all files root's; directories and links dated like the newest file, so the same .debs give
 *     the same bytes), then the meta, each renamed into place; a stamp last.
 *
 * A store whose stamp matches the mapping and whose files are all present is reused as it is.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { formatMeta } from '../store/meta';
import { pack } from '../writer/pack';
import { DEBIAN_MAP, DROPPED_PREFIXES, fullNameOf, mapDebianPath, type DistriFromDebian } from './debian-map';
import { elfPass } from './elf-pass';

export const STAMP_FILE = '.distri-bootstrap.json';
/** Bumped when the way packages are made changes (the mapping itself is hashed separately). */
const BOOTSTRAP_FORMAT = 1;

export interface BootstrapOptions {
  store: string;
  cache: string;
  /** Progress lines (a terminal shows them). */
  progress?(line: string): void;
  /** Problems worth a human's eye: mapping mistakes, unresolved libraries. */
  warn?(line: string): void;
}

export interface BootstrappedPackage {
  name: string;
  full: string;
  debs: { name: string; version: string; file: string }[];
  runtimeDep: string[];
  imageBytes: number;
}

export interface BootstrapResult {
  store: string;
  reused: boolean;
  packages: BootstrappedPackage[];
  problems: string[];
  downloadedBytes: number;
  debBytes: number;
  seconds: number;
}

interface Stamp {
  format: number;
  mapping: string;
  packages: BootstrappedPackage[];
  problems: string[];
}

export function mappingDigest(): string {
  return crypto.createHash('sha256').update(JSON.stringify({ BOOTSTRAP_FORMAT, DEBIAN_MAP, DROPPED_PREFIXES })).digest('hex');
}

/** The store's stamp when it is complete and made from the current mapping, else undefined. */
export function completeStamp(store: string): Stamp | undefined {
  let stamp: Stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(path.join(store, STAMP_FILE), 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
  if (stamp.format !== BOOTSTRAP_FORMAT || stamp.mapping !== mappingDigest() || !Array.isArray(stamp.packages)) return undefined;
  for (const p of stamp.packages) {
    for (const suffix of ['.squashfs', '.meta.textproto']) {
      if (!fs.existsSync(path.join(store, p.full + suffix))) return undefined;
    }
  }
  return stamp;
}

function run(cmd: string, args: string[], opts: { cwd?: string; what: string }): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.error) throw new SquashfsError('IO', `${opts.what}: could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout || '')
      .trim()
      .split('\n')
      .filter((l) => !/^W: Download is performed unsandboxed/.test(l))
      .slice(-6)
      .join('\n');
    throw new SquashfsError('IO', `${opts.what}: ${cmd} ${args.slice(0, 3).join(' ')}… failed (status ${r.status}): ${msg}`);
  }
  return r.stdout;
}

interface DebUri {
  url: string;
  file: string;
  size: number;
  sha256: string;
  name: string;
  version: string;
}

/** apt-get download --print-uris: what apt would fetch, with sizes and hashes from the lists. */
function printUris(debs: string[], aptOpts: string[], cwd: string): DebUri[] {
  const out = run('apt-get', [...aptOpts, 'download', '--print-uris', ...debs], { cwd, what: 'looking up the Debian packages' });
  const uris: DebUri[] = [];
  for (const line of out.split('\n')) {
    const m = /^'([^']+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$/.exec(line.trim());
    if (!m) continue;
    const file = m[2]!;
    const parts = file.replace(/\.deb$/, '').split('_');
    if (parts.length !== 3) throw new SquashfsError('CORRUPT', `apt named an unexpected file ${JSON.stringify(file)}`);
    uris.push({ url: m[1]!, file, size: Number(m[3]), sha256: m[4]!, name: parts[0]!, version: decodeURIComponent(parts[1]!) });
  }
  return uris;
}

function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Downloads (or finds in the cache) every .deb; returns them by Debian package name. */
function fetchDebs(debs: string[], cache: string, progress: (l: string) => void): { byName: Map<string, DebUri>; downloaded: number } {
  const debDir = path.join(cache, 'debs');
  fs.mkdirSync(debDir, { recursive: true });
  const base = ['-q', '-o', 'APT::Sandbox::User=root'];
  const privateLists = path.join(cache, 'apt-lists');
  const privateOpts = [...base, '-o', `Dir::State::Lists=${privateLists}`];
  // apt-get download --print-uris stays silent about files already in its working directory, so it
  // is asked from an empty one.
  const queryDir = path.join(cache, 'apt-query');
  fs.mkdirSync(queryDir, { recursive: true });
  const attempt = (opts: string[]) => {
    const uris = printUris(debs, opts, queryDir);
    const missing = debs.filter((d) => !uris.some((u) => u.name === d));
    if (missing.length > 0) throw new SquashfsError('NOT_FOUND', `apt knows no package ${missing.join(', ')}`);
    let downloaded = 0;
    const need = uris.filter((u) => {
      const f = path.join(debDir, u.file);
      return !(fs.existsSync(f) && fs.statSync(f).size === u.size && sha256File(f) === u.sha256);
    });
    if (need.length > 0) {
      progress(`downloading ${need.length} .deb files (${(need.reduce((s, u) => s + u.size, 0) / 1e6).toFixed(1)} MB)`);
      run('apt-get', [...opts, 'download', ...need.map((u) => `${u.name}=${u.version}`)], { cwd: debDir, what: 'downloading the Debian packages' });
      for (const u of need) {
        const f = path.join(debDir, u.file);
        if (!fs.existsSync(f) || sha256File(f) !== u.sha256) throw new SquashfsError('CORRUPT', `${u.file}: sha256 does not match apt's lists`);
        downloaded += u.size;
      }
    }
    return { byName: new Map(uris.map((u) => [u.name, u])), downloaded };
  };
  // The machine's lists first (nothing to fetch for them); a private copy when they fall short.
  const usePrivate = fs.existsSync(path.join(privateLists, 'lock'));
  if (!usePrivate) {
    try {
      return attempt(base);
    } catch (e) {
      progress(`the machine's apt lists did not do (${(e as Error).message.split('\n')[0]}); fetching private ones`);
    }
  }
  const refresh = () => {
    fs.mkdirSync(path.join(privateLists, 'partial'), { recursive: true });
    progress('apt-get update (private lists under the cache)');
    run('apt-get', [...privateOpts, 'update'], { what: 'apt-get update into the cache' });
  };
  if (!usePrivate) refresh();
  try {
    return attempt(privateOpts);
  } catch (e) {
    if (!usePrivate) throw e;
    refresh(); // stale private lists: a version left the mirror
    return attempt(privateOpts);
  }
}

export interface Entry {
  /** Debian path, relative (no leading slash). */
  deb: string;
  kind: 'dir' | 'file' | 'symlink';
  pkg: string;
  /** Path inside the distri package. */
  mapped: string;
}

/** Every entry below `root`, parents before children. */
function walk(root: string): { rel: string; kind: Entry['kind'] }[] {
  const out: { rel: string; kind: Entry['kind'] }[] = [];
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const names = fs.readdirSync(path.join(root, rel)).sort().reverse();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        out.push({ rel: r, kind: 'dir' });
        stack.push(r);
      } else if (st.isSymbolicLink()) out.push({ rel: r, kind: 'symlink' });
      else out.push({ rel: r, kind: 'file' });
    }
  }
  return out;
}

const LD_SCRIPT = '/* GNU ld script';

export async function bootstrap(o: BootstrapOptions): Promise<BootstrapResult> {
  const started = Date.now();
  const store = path.resolve(o.store);
  const cache = path.resolve(o.cache);
  const progress = o.progress ?? (() => undefined);
  const problems: string[] = [];
  const problem = (line: string) => {
    problems.push(line);
    o.warn?.(line);
  };
  fs.mkdirSync(store, { recursive: true });
  const existing = completeStamp(store);
  if (existing) {
    return { store, reused: true, packages: existing.packages, problems: existing.problems, downloadedBytes: 0, debBytes: 0, seconds: (Date.now() - started) / 1000 };
  }
  for (const tool of ['apt-get', 'dpkg-deb']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) throw new SquashfsError('NOT_FOUND', `${tool} not found: distri bootstrap unpacks Debian's packages and needs apt and dpkg`);
  }

  // 1. The .debs.
  const allDebs = DEBIAN_MAP.flatMap((p) => p.debs);
  const dup = allDebs.find((d, i) => allDebs.indexOf(d) !== i);
  if (dup) throw new SquashfsError('INVALID_ARGUMENT', `the mapping names the Debian package ${dup} twice`);
  fs.mkdirSync(cache, { recursive: true });
  const { byName, downloaded } = fetchDebs(allDebs, cache, progress);
  const full = new Map<string, string>(DEBIAN_MAP.map((p) => [p.name, fullNameOf(p.name, byName.get(p.debs[0]!)!.version)]));
  const fullOf = (name: string): string => {
    const f = full.get(name);
    if (!f) throw new SquashfsError('INVALID_ARGUMENT', `the mapping names a dep ${name} that it does not make`);
    return f;
  };

  const work = fs.mkdtempSync(path.join(cache, 'work-'));
  try {
    // 2. Unpack, index every Debian path, then move into distri's layout.
    const index = new Map<string, Entry>();
    const entries = new Map<string, Entry[]>();
    for (const [i, p] of DEBIAN_MAP.entries()) {
      progress(`[${i + 1}/${DEBIAN_MAP.length}] unpacking ${p.name} (${p.debs.join(' ')})`);
      const debRoot = path.join(work, p.name, 'deb');
      fs.mkdirSync(debRoot, { recursive: true });
      for (const d of p.debs) run('dpkg-deb', ['-x', path.join(cache, 'debs', byName.get(d)!.file), debRoot], { what: `unpacking ${d}` });
      const list: Entry[] = [];
      for (const e of walk(debRoot)) {
        const mapped = mapDebianPath(e.rel);
        if (mapped === null) continue;
        const entry: Entry = { deb: e.rel, kind: e.kind, pkg: p.name, mapped };
        list.push(entry);
        const other = index.get(e.rel);
        if (other && other.kind !== 'dir' && other.pkg !== p.name) problem(`/${e.rel} is in both ${other.pkg} and ${p.name}; ${other.pkg}'s is kept`);
        if (!other || (other.kind === 'dir' && e.kind !== 'dir')) index.set(e.rel, entry);
      }
      entries.set(p.name, list);
    }

    const roots = new Map<string, string>();
    for (const p of DEBIAN_MAP) {
      const debRoot = path.join(work, p.name, 'deb');
      const root = path.join(work, p.name, 'pkg');
      roots.set(p.name, root);
      fs.mkdirSync(path.join(root, 'out'), { recursive: true });
      const placed = new Map<string, string>();
      for (const e of entries.get(p.name)!) {
        const dest = path.join(root, e.mapped);
        if (e.kind === 'dir') {
          fs.mkdirSync(dest, { recursive: true });
          continue;
        }
        const first = placed.get(e.mapped);
        if (first !== undefined) {
          problem(`${p.name}: /${first} and /${e.deb} both map to ${e.mapped}; /${first} is kept`);
          continue;
        }
        placed.set(e.mapped, e.deb);
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        if (e.kind === 'file') {
          fs.renameSync(path.join(debRoot, e.deb), dest);
          continue;
        }
        const target = fs.readlinkSync(path.join(debRoot, e.deb));
        const newTarget = retarget(p, e, target, index, fullOf, problem);
        if (newTarget !== null) fs.symlinkSync(newTarget, dest);
      }
      for (const [link, target] of p.links ?? []) {
        const dest = path.join(root, link);
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.rmSync(dest, { force: true });
        fs.symlinkSync(target, dest);
      }
      rewriteLdScripts(root, index, fullOf);
      writeBinLinks(root);
      fs.rmSync(debRoot, { recursive: true, force: true });
    }

    // 5. ELF pass: every other bootstrap package's out/lib and out/lib64 are the search path.
    const libDirs = (self: string) => {
      const order = [self, ...DEBIAN_MAP.map((p) => p.name).filter((n) => n !== self)];
      return order.flatMap((n) => ['out/lib', 'out/lib64'].filter((rel) => fs.existsSync(path.join(roots.get(n)!, rel))).map((rel) => ({ pkg: fullOf(n), dir: path.join(roots.get(n)!, rel), rel })));
    };
    const direct = new Map<string, Set<string>>();
    for (const p of DEBIAN_MAP) {
      progress(`ELF pass: ${p.name}`);
      const r = elfPass({ pkgRoot: roots.get(p.name)!, fullName: fullOf(p.name), libDirs: libDirs(p.name), log: () => undefined });
      for (const u of r.unresolved) problem(`${fullOf(p.name)}: ${u.file} needs ${u.soname}, which no bootstrap package has`);
      direct.set(fullOf(p.name), new Set([...r.runtimePkgs, ...(p.deps ?? []).map(fullOf)]));
    }
    const closure = (f: string): string[] => {
      const seen = new Set<string>();
      const stack = [...(direct.get(f) ?? [])];
      while (stack.length > 0) {
        const d = stack.pop()!;
        if (seen.has(d) || d === f) continue;
        seen.add(d);
        stack.push(...(direct.get(d) ?? []));
      }
      return [...seen].sort();
    };

    // 6. Images and metas.
    const packages: BootstrappedPackage[] = [];
    let debBytes = 0;
    for (const [i, p] of DEBIAN_MAP.entries()) {
      const f = fullOf(p.name);
      progress(`[${i + 1}/${DEBIAN_MAP.length}] packing ${f}`);
      const image = path.join(store, `${f}.squashfs`);
      settleTimes(roots.get(p.name)!); // after the ELF pass, which adds lib/
      const r = await pack(roots.get(p.name)!, image, { compression: 'none', fragments: 'none', blockSize: 128 * 1024, allRoot: true, reproducible: true, xattrs: false, warn: () => undefined });
      const debs = p.debs.map((d) => {
        const u = byName.get(d)!;
        debBytes += u.size;
        return { name: d, version: u.version, file: u.file };
      });
      const runtimeDep = closure(f);
      const meta =
        `# made by distri bootstrap from Debian's ${debs.map((d) => `${d.name} ${d.version}`).join(', ')}\n` +
        formatMeta({
          runtimeDep,
          sourcePkg: p.name,
          version: f.slice(`${p.name}-amd64-`.length),
          runtimeUnion: [],
          inputDigest: crypto
            .createHash('sha256')
            .update(JSON.stringify(debs.map((d) => byName.get(d.name)!.sha256)))
            .digest('hex'),
        });
      const metaPath = path.join(store, `${f}.meta.textproto`);
      fs.writeFileSync(`${metaPath}.tmp`, meta);
      fs.renameSync(`${metaPath}.tmp`, metaPath);
      packages.push({ name: p.name, full: f, debs, runtimeDep, imageBytes: r.fileSize });
    }
    const stamp: Stamp = { format: BOOTSTRAP_FORMAT, mapping: mappingDigest(), packages, problems };
    fs.writeFileSync(path.join(store, `${STAMP_FILE}.tmp`), JSON.stringify(stamp, null, 1) + '\n');
    fs.renameSync(path.join(store, `${STAMP_FILE}.tmp`), path.join(store, STAMP_FILE));
    return { store, reused: false, packages, problems, downloadedBytes: downloaded, debBytes, seconds: (Date.now() - started) / 1000 };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The new target of a symlink moved into distri's layout, or null to drop it. Relative within the
 * package; `/ro/<full>/…` when the target is in another package (and a relative link that does so
 * is reported: the mapping split a link from its target).
 */
export function retarget(p: DistriFromDebian, e: Entry, target: string, index: Map<string, Entry>, fullOf: (n: string) => string, problem: (l: string) => void): string | null {
  const abs = target.startsWith('/') ? path.posix.normalize(target) : path.posix.normalize(path.posix.join('/', path.posix.dirname(e.deb), target));
  const debTarget = abs.replace(/^\/+/, '');
  const hit = index.get(debTarget);
  if (!hit) {
    if (mapDebianPath(debTarget) === null) return null; // into dropped documentation
    problem(`${p.name}: /${e.deb} → ${target} points at a path no bootstrap package has; left out`);
    return null;
  }
  if (hit.pkg === p.name) {
    const rel = path.posix.relative(path.posix.dirname(e.mapped), hit.mapped);
    return rel === '' ? '.' : rel;
  }
  if (!target.startsWith('/')) {
    problem(`mapping mistake: ${p.name}: relative symlink /${e.deb} → ${target} points into ${hit.pkg} (put them in one package)`);
  }
  return `/ro/${fullOf(hit.pkg)}/${hit.mapped}`;
}

/** GNU ld scripts in out/lib: Debian's absolute library paths → /ro/<full>/… paths. */
function rewriteLdScripts(root: string, index: Map<string, Entry>, fullOf: (n: string) => string): void {
  const lib = path.join(root, 'out', 'lib');
  if (!fs.existsSync(lib)) return;
  for (const name of fs.readdirSync(lib)) {
    const f = path.join(lib, name);
    const st = fs.lstatSync(f);
    if (!st.isFile() || st.size > 64 * 1024 || !/\.(so|a)$/.test(name)) continue;
    const text = fs.readFileSync(f, 'latin1');
    if (!text.startsWith(LD_SCRIPT)) continue;
    const out = text.replace(/\/[^\s()]+/g, (p) => {
      const hit = index.get(p.replace(/^\/+/, ''));
      return hit && hit.kind !== 'dir' ? `/ro/${fullOf(hit.pkg)}/${hit.mapped}` : p;
    });
    if (out !== text) {
      fs.writeFileSync(f, out, 'latin1');
      fs.utimesSync(f, st.atime, st.mtime); // Debian's date, for reproducible images
    }
  }
}

/** bin/<name> → ../out/bin/<name> (and out/sbin) for every program; out/bin wins a name clash. */
function writeBinLinks(root: string): void {
  const bin = path.join(root, 'bin');
  for (const dir of ['out/sbin', 'out/bin']) {
    const full = path.join(root, dir);
    if (!fs.existsSync(full)) continue;
    for (const name of fs.readdirSync(full)) {
      fs.mkdirSync(bin, { recursive: true });
      const link = path.join(bin, name);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(`../${dir}/${name}`, link);
    }
  }
}

/**
 * Directories and symlinks made here get the newest mtime of the package's files (Debian's build
 * time) instead of today's, so that bootstrapping the same .debs again gives the same image bytes.
 */
function settleTimes(root: string): void {
  const all = walk(root);
  let newest = 0;
  for (const e of all) if (e.kind === 'file') newest = Math.max(newest, Math.floor(fs.lstatSync(path.join(root, e.rel)).mtimeMs / 1000));
  for (const e of all.reverse()) {
    if (e.kind === 'file') continue;
    const p = path.join(root, e.rel);
    if (e.kind === 'dir') fs.utimesSync(p, newest, newest);
    else fs.lutimesSync(p, newest, newest);
  }
  fs.utimesSync(root, newest, newest);
}

/** The default cache: ~/.cache/distri/bootstrap (XDG_CACHE_HOME respected). */
export function defaultCache(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'distri', 'bootstrap');
}
