/**
 * `distri build`: from `pkgs/<pkg>/build.textproto` to `<full>.squashfs` + meta, in named phases:
 *
 *   recipe    parse the recipe (recipe.ts); full name `<pkg>-amd64-<version>`
 *   deps      builder deps + `dep`, newest in the store, closed over runtime deps (deps.ts)
 *   source    download / verify sha256 / unpack / patch (source.ts)
 *   sandbox   the store's /ro with only the dep closure (mountStore), and per step a fresh root
 *             (runInRoot: mount + PID namespaces, chroot) with these binds:
 *               /usr/src/<full>   the source, read-only (a writable copy with writable_sourcedir)
 *               /usr/src/<full>-build  the build dir (the steps' working directory)
 *               /dest/tmp         the install destination (DESTDIR), read-write
 *               /ro/<full>        the destination's ro/<full>, bound over an empty dir made with
 *                                 the daemon's `mkdirall`, so the package sees itself at its prefix
 *             and in the destination `ro/lib`, `ro/share` → `/dest/tmp/ro/<full>/out/{lib,share}`,
 *             so a package installing "into /ro/lib" lands in its own out/lib.
 *   steps     the builder's default steps or build_step, substituted (environment.ts)
 *   install   empty dirs removed, install directives (install.ts)
 *   elf       the ELF pass (elf-pass.ts): lib farm, library packages; with binutils among the
 *             deps, the debug split (debug-split.ts) with that binutils' objcopy, in the sandbox
 *   deps      runtime deps (runtime-deps.ts) — before the wrappers, which need them (**fix**: distri
 *             wrote wrappers with the build deps' paths)
 *   wrappers  bin/<name> for out/bin and out/sbin (wrappers.ts), compiled in the sandbox
 *   split     split_package (split.ts)
 *   package   images and metas (package-output.ts), atomically into the output dir; split debug
 *             info becomes the debug image (root `<full>-debug`, holding debug/), and the main
 *             package keeps distri's relative link `debug` → `../<full>-debug/debug`
 *
 * Work files live in `_build/<pkg>/`: the archive and unpacked source (kept, verified every time),
 * `build-amd64-<version>.log` (every step's output), and `work-<full>/` (removed after success,
 * kept after a failure for a look).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { parsePackageName } from '../store/package-name';
import { ctlRequest } from '../vfs/ctl';
import { ARCH, StoreCatalog, builderRuntime, resolveBuildDeps } from './deps';
import { inputDigest } from './digest';
import { formatDuration, goList, goQuotedList } from './duration';
import { splitDebugInfo } from './debug-split';
import { elfPass } from './elf-pass';
import { DEST_INSIDE, buildEnv, defaultSteps, newerRevisionFirst, resolveTable, runtimeEnv, substitute, substituteArgv, type StepContext } from './environment';
import { applyInstall } from './install';
import { writeDebugImage, writePackage } from './package-output';
import { parseRecipe, RECIPE_FILE, type Recipe } from './recipe';
import { mountStore, runInRoot, type RootSpec, type StoreMount } from './root';
import { collectRuntimeDeps } from './runtime-deps';
import { archiveName, prepareSource } from './source';
import { splitPackages } from './split';
import { planWrappers, wrapperScript, wrapperSource, writeSimpleWrappers } from './wrappers';

export const DEBUG_STAGES = ['after-steps', 'after-install', 'after-elf', 'after-wrapper', 'on-failure'] as const;
export type DebugStage = (typeof DEBUG_STAGES)[number];

export interface BuildOptions {
  /** $DISTRIROOT: holds pkgs/ and _build/. */
  distriRoot: string;
  pkg: string;
  /** Where build deps come from. */
  store: string;
  jobs: number;
  /** Output dir for images and metas; default `<distriRoot>/_build/distri/pkg`. */
  outDir?: string;
  debug?: DebugStage;
  /** One line of the build log (also written to the log file). */
  log(line: string): void;
  /** Status for a terminal: what runs now (undefined: done). */
  status?(text: string | undefined): void;
}

export interface BuildResult {
  fullName: string;
  image: string;
  meta: string;
  runtimeDeps: string[];
  splits: { fullName: string; image: string; runtimeDeps: string[] }[];
  debugImage?: string;
  logFile: string;
  steps: { argv: string[]; ms: number }[];
  sourceDateEpoch: number;
  inputDigest: string;
}

function readRecipe(distriRoot: string, pkg: string): { recipe: Recipe; bytes: Buffer; file: string; pkgDir: string } {
  const pkgDir = path.join(distriRoot, 'pkgs', pkg);
  const file = path.join(pkgDir, RECIPE_FILE);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    throw new SquashfsError('NOT_FOUND', `${file}: no such recipe (distri scaffold URL writes one)`);
  }
  return { recipe: parseRecipe(bytes.toString('utf8'), file), bytes, file, pkgDir };
}

/** Directories of a package under the mounted /ro that hold python modules. */
function pythonDirsIn(root: string): string[] {
  const lib = path.join(root, 'out/lib');
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(lib)
      .filter((n) => /^python3(\.\d+)?$/.test(n))
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => `out/lib/${n}/site-packages`).filter((rel) => fs.existsSync(path.join(root, rel)));
}

function nonEmptyDir(p: string): boolean {
  try {
    return fs.readdirSync(p).length > 0;
  } catch {
    return false;
  }
}

export async function buildPackage(o: BuildOptions): Promise<BuildResult> {
  // ---- recipe ----
  const { recipe, bytes: recipeBytes, pkgDir } = readRecipe(o.distriRoot, o.pkg);
  const version = parsePackageName(`${o.pkg}-${ARCH}-${recipe.version}`);
  if (!recipe.version || !version || version.rev === 0) throw new SquashfsError('INVALID_ARGUMENT', `${o.pkg}: version ${JSON.stringify(recipe.version)} must be <upstream>-<revision>, e.g. "2.10-1"`);
  const fullName = `${o.pkg}-${ARCH}-${recipe.version}`;
  // distri+source://<pkg>: another package's source (and its patches) is this one's.
  let src = { source: recipe.source, hash: recipe.hash, cherryPick: recipe.cherryPick, extraFile: recipe.extraFile, pkgDir, pkg: o.pkg };
  const redirect = /^distri\+source:\/\/([^/]+)$/.exec(recipe.source);
  if (redirect) {
    const other = readRecipe(o.distriRoot, redirect[1]!);
    src = { source: other.recipe.source, hash: other.recipe.hash, cherryPick: other.recipe.cherryPick, extraFile: other.recipe.extraFile, pkgDir: other.pkgDir, pkg: redirect[1]! };
  }
  const workRoot = path.join(o.distriRoot, '_build', o.pkg);
  fs.mkdirSync(workRoot, { recursive: true });
  const logFile = path.join(workRoot, `build-${ARCH}-${recipe.version}.log`);
  const logFd = fs.openSync(logFile, 'w');
  const log = (line: string) => {
    fs.writeSync(logFd, line + '\n');
    o.log(line);
  };
  const outDir = path.resolve(o.outDir ?? path.join(o.distriRoot, '_build/distri/pkg'));
  let mount: StoreMount | undefined;
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  const work = path.join(workRoot, `work-${fullName}`);
  let ok = false;
  try {
    log(`building ${fullName}`);

    // ---- deps ----
    o.status?.('resolving build deps');
    const catalog = StoreCatalog.scan(path.resolve(o.store));
    const { direct, closure: deps } = resolveBuildDeps(catalog, recipe.builder, recipe.dep);
    log(`build deps: ${goQuotedList(direct)} (${deps.length} with their runtime deps)`);
    const table = resolveTable(deps);
    const glibc = table.get('glibc');
    const localNames = new Map<string, string>([[o.pkg, fullName], ...recipe.splitPackage.map((s) => [s.name, `${s.name}-${ARCH}-${recipe.version}`] as [string, string])]);
    const resolveRuntime = (name: string) => localNames.get(name) ?? localNames.get(name.replace(/-amd64$/, '')) ?? catalog.resolve(name, 'runtime dep');
    const declared = [...builderRuntime(recipe.builder), ...recipe.runtimeDep].map(resolveRuntime);
    const runtimeStoreDeps = catalog.closure(declared.filter((d) => catalog.has(d)));

    const digest = inputDigest({
      recipe: recipeBytes,
      buildDeps: direct,
      patches: src.cherryPick.map((p) => fs.readFileSync(path.resolve(src.pkgDir, p))),
      extraFiles: src.extraFile.map((p) => fs.readFileSync(path.resolve(src.pkgDir, p))),
      splitRuntimeDeps: recipe.splitPackage.map((s) => s.runtimeDep),
    });

    // ---- source ----
    o.status?.(`source ${src.source === 'empty://' ? 'empty' : archiveName(src.source)}`);
    const source = await prepareSource({
      source: src.source,
      hash: src.hash,
      workDir: path.join(o.distriRoot, '_build', src.pkg),
      pkgDir: src.pkgDir,
      cherryPick: src.cherryPick,
      extraFile: src.extraFile,
      log,
      progress: o.status ? (done, total) => o.status!(`downloading ${(done / 2 ** 20).toFixed(1)}${total ? ` of ${(total / 2 ** 20).toFixed(1)}` : ''} MiB`) : undefined,
    });
    const sde = source.newestMtime;
    log(`SOURCE_DATE_EPOCH=${sde}`);

    // ---- sandbox ----
    fs.rmSync(work, { recursive: true, force: true });
    const dest = path.join(work, 'dest');
    const pkgRoot = path.join(dest, 'ro', fullName);
    for (const sub of ['out/lib', 'out/share']) fs.mkdirSync(path.join(pkgRoot, sub), { recursive: true });
    for (const sub of ['lib', 'share']) fs.symlinkSync(`${DEST_INSIDE}/ro/${fullName}/out/${sub}`, path.join(dest, 'ro', sub));
    const srcInside = `/usr/src/${fullName}`;
    let hostSource = source.dir;
    let buildInside = `/usr/src/${fullName}-build`;
    let hostBuild = path.join(work, 'build');
    const binds: NonNullable<RootSpec['binds']> = [];
    if (recipe.writableSourcedir) {
      hostSource = path.join(work, 'source');
      fs.cpSync(source.dir, hostSource, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
      binds.push({ host: hostSource, inside: srcInside, rw: true });
      if (recipe.inTreeBuild) {
        buildInside = srcInside;
        hostBuild = hostSource;
      } else {
        buildInside = `${srcInside}/build`;
        hostBuild = path.join(hostSource, 'build');
        fs.mkdirSync(hostBuild, { recursive: true });
      }
    } else {
      fs.mkdirSync(hostBuild, { recursive: true });
      binds.push({ host: hostSource, inside: srcInside }, { host: hostBuild, inside: buildInside, rw: true });
    }
    binds.push({ host: dest, inside: DEST_INSIDE, rw: true }, { host: pkgRoot, inside: `/ro/${fullName}`, rw: true });
    const hostPath = (p: string): string => {
      for (const b of [...binds].sort((a, c) => c.inside.length - a.inside.length)) {
        if (p === b.inside || p.startsWith(b.inside + '/')) return path.join(b.host, p.slice(b.inside.length));
      }
      throw new SquashfsError('INVALID_ARGUMENT', `${p}: not a path of the build sandbox (source, build dir or destination)`);
    };

    o.status?.('mounting the build deps');
    mount = await mountStore({ store: catalog.dir, pkgs: [...new Set([...deps, ...runtimeStoreDeps])] });
    // Ctrl-C or a kill must not leave the deps' /ro mounted: unmount, then die of the signal.
    const held = mount;
    onSignal = (signal: NodeJS.Signals) => {
      void held.stop().finally(() => {
        process.off('SIGINT', onSignal!);
        process.off('SIGTERM', onSignal!);
        process.kill(process.pid, signal);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const ro = mount.mountpoint;
    const ctl = path.resolve(ro, fs.readlinkSync(path.join(ro, 'ctl')));
    const made = await ctlRequest(ctl, { op: 'mkdirall', dir: fullName });
    if (made.ok !== true) throw new SquashfsError('IO', `mkdirall /ro/${fullName}: ${String(made.error)}`);
    const root: RootSpec = { roMount: ro, glibc, binds };
    const ctx: StepContext = { fullName, pkg: o.pkg, sourceDir: srcInside, buildDir: buildInside, destDir: DEST_INSIDE, jobs: o.jobs, deps };
    const depDir = (full: string, rel: string) => (full === fullName ? nonEmptyDir(path.join(pkgRoot, rel)) : nonEmptyDir(path.join(ro, full, rel)));
    const pyDirs = (full: string) => pythonDirsIn(full === fullName ? pkgRoot : path.join(ro, full));
    const env = buildEnv({
      fullName,
      pkg: o.pkg,
      deps,
      dirExists: depDir,
      pythonDirs: pyDirs,
      glibc,
      extraLdflag: recipe.builder.kind === 'cbuilder' ? recipe.builder.extraLdflag : [],
      builder: recipe.builder.kind,
      sourceDateEpoch: sde,
    });
    for (const [k, v] of Object.entries(env)) fs.writeSync(logFd, `env ${k}=${v}\n`);
    const shell = async (stage: DebugStage) => {
      if (o.debug !== stage) return;
      log(`--debug ${stage}: a shell in the sandbox (exit it to go on)`);
      o.status?.(undefined);
      await runInRoot(root, { argv: ['/bin/bash', '-i'], env: { ...env, PS1: `distri ${stage}# ` }, cwd: buildInside, stdio: 'inherit' });
    };

    // ---- steps ----
    const steps =
      recipe.buildStep.length > 0 ? recipe.buildStep.map((s) => s.argv) : defaultSteps(recipe.builder, { jobs: o.jobs, writableSourcedir: recipe.writableSourcedir, inTreeBuild: recipe.inTreeBuild });
    const timings: BuildResult['steps'] = [];
    for (const [n, raw] of steps.entries()) {
      const argv = substituteArgv(raw, ctx);
      fs.writeSync(logFd, `step ${n}: ${goList(argv)}\n`);
      const started = Date.now();
      let tail = Buffer.alloc(0);
      const tick = o.status ? setInterval(() => o.status!(`step ${n + 1}/${steps.length} ${formatDuration(Date.now() - started)}  ${goList(raw).slice(0, 60)}`), 1000) : undefined;
      o.status?.(`step ${n + 1}/${steps.length}  ${goList(raw).slice(0, 60)}`);
      let r;
      try {
        r = await runInRoot(root, {
          argv,
          env,
          cwd: buildInside,
          stdio: 'pipe',
          onOutput: (chunk) => {
            fs.writeSync(logFd, chunk);
            tail = Buffer.concat([tail, chunk]).subarray(-8192);
          },
        });
      } finally {
        if (tick) clearInterval(tick);
      }
      const ms = Date.now() - started;
      if (r.code !== 0) {
        const last = tail.toString('utf8').trimEnd().split('\n').slice(-25).join('\n');
        log(`step ${n} failed after ${formatDuration(ms)} (command: ${goList(raw)}): ${r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`}`);
        if (last) o.log(last);
        await shell('on-failure');
        throw new SquashfsError('IO', `${fullName}: step ${n} (${argv[0]}) failed; the whole output is in ${logFile}`);
      }
      timings.push({ argv: raw, ms });
      log(`step ${n}: ${formatDuration(ms)} (command: ${goList(raw)})`);
    }
    await shell('after-steps');

    // ---- install ----
    o.status?.('install directives');
    fs.rmSync(path.join(dest, 'ro', 'lib'), { force: true });
    fs.rmSync(path.join(dest, 'ro', 'share'), { force: true });
    if (fs.existsSync(path.join(dest, 'etc'))) fs.renameSync(path.join(dest, 'etc'), path.join(pkgRoot, 'etc'));
    applyInstall({ pkgRoot, install: recipe.install, hostPath, sourceDir: hostSource, substitute: (s) => substitute(s, ctx), log });
    await shell('after-install');

    // ---- elf ----
    o.status?.('ELF pass');
    const envOrder = newerRevisionFirst(deps);
    const libDirs = [
      { pkg: fullName, dir: path.join(pkgRoot, 'out/lib') },
      { pkg: fullName, dir: path.join(pkgRoot, 'out/lib64') },
      ...envOrder.flatMap((d) => ['out/lib', 'out/lib64'].map((rel) => ({ pkg: d, dir: path.join(ro, d, rel), rel }))),
    ];
    // Debug info is split only with binutils among the deps, and with its objcopy, in the sandbox.
    const binutils = table.get('binutils');
    const elf = elfPass({ pkgRoot, fullName, libDirs, debug: binutils !== undefined, log });
    for (const u of elf.unresolved) log(`${u.file}: needs ${u.soname}, which no build dep provides`);
    if (binutils !== undefined && elf.debugFiles.length > 0) {
      o.status?.('splitting debug info');
      await splitDebugInfo({
        pkgRoot,
        insideRoot: `/ro/${fullName}`,
        objcopy: `/ro/${binutils}/bin/objcopy`,
        files: elf.debugFiles,
        run: (argv) => runInRoot(root, { argv, env, cwd: buildInside, stdio: 'pipe' }),
        log,
      });
    }
    await shell('after-elf');

    // ---- runtime deps ----
    const closureOf = (roots: readonly string[]) => {
      const local = roots.filter((r) => !catalog.has(r));
      return [...local, ...catalog.closure(roots.filter((r) => catalog.has(r)))];
    };
    const pcProvider = (mod: string) => envOrder.find((d) => ['out/lib/pkgconfig', 'out/share/pkgconfig'].some((rel) => fs.existsSync(path.join(ro, d, rel, `${mod}.pc`))));
    const rt = collectRuntimeDeps({ fullName, pkgRoot, elfPkgs: elf.runtimePkgs, pcProvider, declared, closure: closureOf, log });

    // ---- wrappers ----
    o.status?.('wrappers');
    const plans = planWrappers({ pkgRoot, pkg: o.pkg, fullName, pkgDir, substitute: (s) => substitute(s, ctx), log });
    const programs = writeSimpleWrappers(pkgRoot, plans);
    let runtimeDeps = rt.closure;
    if (programs.length > 0) {
      const wenv = (_real: string) => runtimeEnv(fullName, runtimeDeps, depDir, pyDirs);
      if (table.has('gcc') && glibc) {
        // Compiled against the glibc package; that glibc is then a runtime dep of the wrapper.
        const wdir = path.join(hostBuild, '.distri-wrappers');
        fs.mkdirSync(wdir, { recursive: true });
        for (const p of programs) {
          fs.writeFileSync(path.join(wdir, `${p.name}.c`), wrapperSource(p.real, wenv(p.real)));
          const argv = [
            'gcc',
            '-O2',
            '-s',
            '-Wall',
            '-o',
            `/ro/${fullName}/bin/${p.name}`,
            `${buildInside}/.distri-wrappers/${p.name}.c`,
            `-Wl,--dynamic-linker=/ro/${glibc}/out/lib/ld-linux-x86-64.so.2`,
            `-Wl,-rpath=/ro/${glibc}/out/lib`,
            '-Wl,--build-id=none',
          ];
          const r = await runInRoot(root, { argv, env, cwd: buildInside, stdio: 'pipe' });
          if (r.code !== 0) throw new SquashfsError('IO', `compiling the wrapper bin/${p.name} failed: ${r.output?.toString().trim()}`);
        }
        fs.rmSync(wdir, { recursive: true, force: true });
        if (!runtimeDeps.includes(glibc)) runtimeDeps = [...new Set([...runtimeDeps, ...catalog.closure([glibc])])].sort();
      } else {
        for (const p of programs) fs.writeFileSync(path.join(pkgRoot, 'bin', p.name), wrapperScript(p.real, wenv(p.real)), { mode: 0o755 });
      }
      log(`wrappers: ${programs.map((p) => `bin/${p.name}`).join(' ')}`);
    }
    await shell('after-wrapper');

    // ---- split ----
    const splits = splitPackages({ pkgRoot, version: recipe.version, arch: ARCH, splits: recipe.splitPackage, log });
    for (const s of splits) if (s.moved.length > 0 && !runtimeDeps.includes(s.fullName)) runtimeDeps = [...runtimeDeps, s.fullName].sort();

    // ---- package ----
    o.status?.('writing images');
    const unions = recipe.runtimeUnion.map((u) => ({ dir: u.dir, pkg: resolveRuntime(u.pkg) }));
    const outputs: BuildResult['splits'] = [];
    for (const [i, s] of splits.entries()) {
      const declaredSplit = recipe.splitPackage[i]!.runtimeDep.map(resolveRuntime);
      const sdeps = [...new Set(closureOf([...rt.direct, ...declaredSplit]))].filter((d) => d !== s.fullName && d !== fullName).sort();
      log(`${s.name} runtime deps: ${goQuotedList(sdeps)}`);
      const f = await writePackage({
        root: s.root,
        fullName: s.fullName,
        pkg: s.name,
        arch: ARCH,
        meta: { runtimeDep: sdeps, sourcePkg: o.pkg, version: recipe.version, runtimeUnion: [], inputDigest: digest },
        outDir,
        sourceDateEpoch: sde,
      });
      log(`package successfully created in ${f.image}`);
      outputs.push({ fullName: s.fullName, image: f.image, runtimeDeps: sdeps });
    }
    let debugImage: string | undefined;
    if (fs.existsSync(path.join(pkgRoot, 'debug'))) {
      // As distri: debug/ moves to a sibling root `<full>-debug` (the debug image's root), and the
      // main package keeps a relative symlink `debug` → `../<full>-debug/debug` in its place.
      const droot = path.join(path.dirname(pkgRoot), `${fullName}-debug`);
      fs.rmSync(droot, { recursive: true, force: true });
      fs.mkdirSync(droot, { recursive: true });
      fs.renameSync(path.join(pkgRoot, 'debug'), path.join(droot, 'debug'));
      fs.symlinkSync(path.relative(pkgRoot, path.join(droot, 'debug')), path.join(pkgRoot, 'debug'));
      // Beside pkg/ in a repo (_build/distri/debug), below the output dir anywhere else.
      const debugDir = path.basename(outDir) === 'pkg' ? path.join(path.dirname(outDir), 'debug') : path.join(outDir, 'debug');
      debugImage = await writeDebugImage({ root: droot, fullName, outDir: debugDir, sourceDateEpoch: sde });
      log(`debug info in ${debugImage}`);
    }
    log(`${o.pkg} runtime deps: ${goQuotedList(runtimeDeps)}`);
    const main = await writePackage({
      root: pkgRoot,
      fullName,
      pkg: o.pkg,
      arch: ARCH,
      meta: { runtimeDep: runtimeDeps, sourcePkg: o.pkg, version: recipe.version, runtimeUnion: unions, inputDigest: digest },
      outDir,
      sourceDateEpoch: sde,
    });
    log(`package successfully created in ${main.image}`);
    ok = true;
    return { fullName, image: main.image, meta: main.meta, runtimeDeps, splits: outputs, debugImage, logFile, steps: timings, sourceDateEpoch: sde, inputDigest: digest };
  } finally {
    o.status?.(undefined);
    if (mount) await mount.stop().catch((e: Error) => o.log(`could not unmount the build deps: ${e.message}`));
    if (onSignal) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (ok) fs.rmSync(work, { recursive: true, force: true });
    else if (fs.existsSync(work)) o.log(`the build's files are kept in ${work}`);
    fs.closeSync(logFd);
  }
}
