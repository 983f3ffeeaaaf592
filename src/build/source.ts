/**
 * The source tree of a build, in `_build/<pkg>/`:
 *
 *   _build/<pkg>/<archive>          the download (kept: a rebuild does not download again)
 *   _build/<pkg>/<archive-stem>/    the unpacked tree the sandbox binds at /usr/src/<full>
 *
 * SOURCE_DATE_EPOCH is the newest mtime in the archive's tree (before patches), kept in the stamp.
 *
 * The archive's sha256 is checked against the recipe on EVERY build, also when the unpacked tree
 * is already there (distri trusted an existing tree: **fix**); a tree whose stamp names another
 * hash or other patches is unpacked again. Unpacking: `tar` with the first path component
 * stripped (every release tarball has one top directory), then `cherry_pick` patches applied with
 * `patch -p1` in order, then `extra_file`s copied into the root, all in a temp dir renamed into
 * place at the end, so a failed unpack never leaves a half tree behind.
 *
 * `empty://` gives an empty tree. `distri+source://<pkg>` is resolved by the caller (another
 * package's recipe) before it gets here.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { trimArchiveSuffix } from '../store/scaffold';
import { fetchToFile, sha256File, type FetchProgress } from './fetch';

export interface SourceInput {
  source: string;
  hash: string;
  /** `_build/<pkg>` */
  workDir: string;
  /** The package dir (pkgs/<pkg>): patches and extra files are relative to it. */
  pkgDir: string;
  cherryPick: readonly string[];
  extraFile: readonly string[];
  log(line: string): void;
  progress?: FetchProgress;
}

export interface PreparedSource {
  /** Host path of the unpacked tree. */
  dir: string;
  /** The newest mtime of any file in the tree (whole seconds): SOURCE_DATE_EPOCH. */
  newestMtime: number;
}

const STAMP = '.distri-source';

function run(argv: string[], cwd: string, what: string, input?: Buffer): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, input, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  if (r.error) throw new SquashfsError('IO', `${what}: cannot run ${argv[0]} (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`, 'source');
  if (r.status !== 0) {
    const out = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.trim().split('\n').slice(-8).join('\n');
    throw new SquashfsError('IO', `${what}: ${argv.join(' ')} failed (exit ${r.status})${out ? `:\n${out}` : ''}`, 'source');
  }
}

/** The archive's file name in the work dir (the URL's last component). */
export function archiveName(source: string): string {
  const u = source.replace(/[?#].*$/, '');
  return decodeURIComponent(u.slice(u.lastIndexOf('/') + 1));
}

/** Newest mtime (seconds) below dir, symlinks by their own mtime; 0 for an empty tree. */
export function newestMtime(dir: string): number {
  let newest = 0;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === STAMP) continue;
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      newest = Math.max(newest, Math.floor(st.mtimeMs / 1000));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return newest;
}

export async function prepareSource(i: SourceInput): Promise<PreparedSource> {
  fs.mkdirSync(i.workDir, { recursive: true });
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(i.source)?.[1]?.toLowerCase();
  if (scheme === 'empty') {
    const dir = path.join(i.workDir, 'empty');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
    return { dir, newestMtime: 0 };
  }
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'file') {
    throw new SquashfsError('INVALID_ARGUMENT', `source ${JSON.stringify(i.source)}: http://, https://, file:// or empty:// expected`, 'build.textproto');
  }
  if (!/^[0-9a-f]{64}$/.test(i.hash))
    throw new SquashfsError('INVALID_ARGUMENT', `hash ${JSON.stringify(i.hash)}: want the lower-case hex sha256 of the source (distri scaffold writes it)`, 'build.textproto');
  const name = archiveName(i.source);
  const archive = path.join(i.workDir, name);
  let got: string;
  if (fs.existsSync(archive)) {
    got = await sha256File(archive);
    if (got !== i.hash) {
      i.log(`${name}: sha256 ${got} does not match the recipe; downloading again`);
      got = await fetchToFile(i.source, archive, i.progress);
    }
  } else {
    i.log(`downloading ${i.source}`);
    got = await fetchToFile(i.source, archive, i.progress);
  }
  if (got !== i.hash) throw new SquashfsError('CORRUPT', `${i.source}: sha256 is ${got}, but the recipe's hash says ${i.hash}`, 'source');

  // What the unpacked tree was made from: reused only when all of it is the same.
  const stamp = createHash('sha256').update(i.hash);
  for (const p of i.cherryPick) stamp.update(`\0patch ${p}\0`).update(readPkgFile(i.pkgDir, p, 'cherry_pick'));
  for (const p of i.extraFile) stamp.update(`\0extra ${p}\0`).update(readPkgFile(i.pkgDir, p, 'extra_file'));
  const want = stamp.digest('hex');
  const dir = path.join(i.workDir, trimArchiveSuffix(name));
  try {
    const [hash, mtime] = fs.readFileSync(path.join(dir, STAMP), 'utf8').split('\n');
    if (hash === want && Number.isSafeInteger(Number(mtime))) return { dir, newestMtime: Number(mtime) };
  } catch {
    // not unpacked yet
  }
  const tmp = fs.mkdtempSync(path.join(i.workDir, '.unpack-'));
  try {
    i.log(`unpacking ${name}`);
    run(['tar', '--no-same-owner', '--strip-components=1', '-xf', archive, '-C', tmp], i.workDir, `unpacking ${name}`);
    // Taken before patches and extra files (which get the time of unpacking), so that every unpack
    // of the same archive gives the same SOURCE_DATE_EPOCH.
    const mtime = newestMtime(tmp);
    for (const p of i.cherryPick) {
      i.log(`applying ${p}`);
      run(['patch', '-p1', '--batch', '--forward', '-i', path.resolve(i.pkgDir, p)], tmp, `cherry_pick ${p}`);
    }
    for (const p of i.extraFile) fs.copyFileSync(path.resolve(i.pkgDir, p), path.join(tmp, path.basename(p)));
    fs.writeFileSync(path.join(tmp, STAMP), `${want}\n${mtime}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    return { dir, newestMtime: mtime };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function readPkgFile(pkgDir: string, rel: string, field: string): Buffer {
  try {
    return fs.readFileSync(path.resolve(pkgDir, rel));
  } catch {
    throw new SquashfsError('NOT_FOUND', `${field} ${JSON.stringify(rel)}: no such file in ${pkgDir}`, 'build.textproto');
  }
}
