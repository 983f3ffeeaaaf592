/**
 * The ELF pass of a package build: after the install step, every regular file below the package's
 * `out/` that starts with \x7fELF is read with our own reader (src/elf/elf.ts), never with `ldd`
 * (which would run the package's own loader on the host). For each:
 *
 *  - its DT_NEEDED libraries are looked up in its own `$ORIGIN` RUNPATH/RPATH dirs (inside the
 *    package: nothing to record), then, in order, in `libDirs` (the package's own out/lib and
 *    out/lib64 first, then each dependency's); the first directory holding `<soname>` wins and its
 *    package becomes a runtime dependency (the package itself excepted);
 *  - the lib farm: `lib/<soname>` in the package root, a symlink to where that library will be seen
 *    on a distri machine, `/ro/<pkg>/<dir inside the package>/<soname>`, so that a program's RPATH of
 *    `/ro/<full>/lib` finds exactly the libraries it was linked against;
 *  - with `debug` asked for (binutils among the build deps), each file with a build-id and
 *    .debug_* sections is listed in `debugFiles`: debug-split.ts moves its debug sections to
 *    `debug/.build-id/<xx>/<rest>.debug` with the build's own objcopy, in the sandbox (this pass
 *    runs on the host and must not use the host's binutils). A file without .debug_* sections has
 *    nothing to split and is not listed.
 *
 * A file with the magic that is not valid ELF (truncated, 32-bit, garbage) is logged and skipped;
 * one that names a library found nowhere is reported in `unresolved`, not thrown.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError, isSquashfsError } from '../errors';
import { isElfFile, readElfFile, type ElfInfo } from '../elf/elf';

export interface ElfPassInput {
  /** Host dir of the package being built: has out/; lib/ and debug/ are written here. */
  pkgRoot: string;
  fullName: string;
  /**
   * Search order: the package's own out/lib, out/lib64 first, then each dep's (host paths, e.g.
   * through the mounted /ro). `rel` is the directory's path inside its package (e.g. `out/lib`);
   * by default it is taken from the host path: below pkgRoot for the package itself, otherwise
   * what follows the last `/<pkg>/` component.
   */
  libDirs: { pkg: string; dir: string; rel?: string }[];
  /** List the files whose debug info is to be split (binutils among the deps). */
  debug?: boolean;
  log(line: string): void;
}

export interface ElfPassResult {
  /** Full names providing needed libraries, minus the package itself; sorted. */
  runtimePkgs: string[];
  unresolved: { file: string; soname: string }[];
  /** Files (relative to pkgRoot) with a build-id and debug sections, when `debug` was asked for. */
  debugFiles: { rel: string; buildId: string }[];
}

/** Every regular file below `dir` (iterative; symlinks are not followed), paths relative to `base`. */
function regularFiles(dir: string, base: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) out.push(path.relative(base, p));
    }
  }
  return out.sort();
}

/** A library directory's path inside its package. */
function relInPackage(input: ElfPassInput, entry: { pkg: string; dir: string; rel?: string }): string {
  if (entry.rel !== undefined) return entry.rel.replace(/^\/+|\/+$/g, '');
  const dir = path.resolve(entry.dir);
  const own = path.resolve(input.pkgRoot);
  if (entry.pkg === input.fullName && (dir === own || dir.startsWith(own + '/'))) return path.relative(own, dir);
  const marker = `/${entry.pkg}/`;
  const at = dir.lastIndexOf(marker);
  if (at < 0) throw new SquashfsError('INVALID_ARGUMENT', `library dir ${dir} of ${entry.pkg}: cannot tell its path inside the package (give rel)`);
  return dir.slice(at + marker.length);
}

const SONAME_OK = /^[^/\0]+$/;

export function elfPass(input: ElfPassInput): ElfPassResult {
  const root = path.resolve(input.pkgRoot);
  const outDir = path.join(root, 'out');
  const dirs = input.libDirs.map((d) => ({ pkg: d.pkg, dir: path.resolve(d.dir), rel: relInPackage(input, d) }));
  const found = new Map<string, { pkg: string; target: string } | null>(); // soname → where (null: nowhere)
  const resolve = (soname: string): { pkg: string; target: string } | null => {
    const hit = found.get(soname);
    if (hit !== undefined) return hit;
    let r: { pkg: string; target: string } | null = null;
    for (const d of dirs) {
      if (fs.existsSync(path.join(d.dir, soname))) {
        r = { pkg: d.pkg, target: `/ro/${d.pkg}/${d.rel ? d.rel + '/' : ''}${soname}` };
        break;
      }
    }
    found.set(soname, r);
    return r;
  };

  const runtime = new Set<string>();
  const unresolved: { file: string; soname: string }[] = [];
  const debugFiles: { rel: string; buildId: string }[] = [];
  const farm = new Map<string, string>();
  const seenInodes = new Set<string>();
  for (const rel of regularFiles(outDir, root)) {
    const file = path.join(root, rel);
    if (!isElfFile(file)) continue;
    const st = fs.statSync(file);
    const key = `${st.dev}:${st.ino}`;
    if (seenInodes.has(key)) continue; // a hard link of a file already handled
    seenInodes.add(key);
    let info: ElfInfo;
    try {
      info = readElfFile(file);
    } catch (e) {
      if (!isSquashfsError(e)) throw e;
      input.log(`elf: skipping ${rel}: not a valid ELF64 file: ${e.describe()}`);
      continue;
    }
    // $ORIGIN entries of RUNPATH/RPATH (glibc's gconv modules find libGB.so beside themselves)
    // are searched first, within the package; other entries name paths of the machine it runs on.
    const originDirs = [...info.runpath, ...info.rpath]
      .filter((d) => /\$(ORIGIN\b|\{ORIGIN\})/.test(d))
      .map((d) => path.resolve(path.dirname(file), d.replace(/\$(\{ORIGIN\}|ORIGIN)/g, '.')))
      .filter((d) => d === root || d.startsWith(root + '/'));
    for (const soname of info.needed) {
      if (!SONAME_OK.test(soname)) {
        input.log(`elf: ${rel}: ignoring needed library ${JSON.stringify(soname)} (a path, not a name)`);
        continue;
      }
      const beside = originDirs.find((d) => fs.existsSync(path.join(d, soname)));
      if (beside !== undefined) continue; // in the package itself, found by the loader through $ORIGIN
      const r = resolve(soname);
      if (!r) {
        unresolved.push({ file: rel, soname });
        continue;
      }
      if (r.pkg !== input.fullName) runtime.add(r.pkg);
      farm.set(soname, r.target);
    }
    if (input.debug && info.buildId && info.buildId.length >= 3 && info.sections.some((s) => s.name.startsWith('.debug_'))) {
      debugFiles.push({ rel, buildId: info.buildId });
    }
  }

  if (farm.size > 0) {
    const libDir = path.join(root, 'lib');
    fs.mkdirSync(libDir, { recursive: true });
    for (const [soname, target] of [...farm].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const link = path.join(libDir, soname);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(target, link);
    }
  }
  return { runtimePkgs: [...runtime].sort(), unresolved, debugFiles };
}
