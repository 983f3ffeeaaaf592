/**
 * What a build step sees: its environment, the `${DISTRI_…}` substitutions in its argv, and the
 * builder's default steps. All paths are the ones inside the sandbox (src/build/sandbox.ts lays it
 * out): the source at /usr/src/<full>, the install destination at /dest/tmp, the package's own
 * prefix /ro/<full>/out.
 *
 * Search paths are built over the build deps plus the package itself, newest revision of each
 * package first, and only with dirs that exist (the package's own always: it installs them during
 * the build). glibc's include dir is left out of CPATH: gcc must find it last, as its system
 * directory (/usr/include → /ro/include), or `#include_next` in gcc's own headers breaks (distri
 * does the same). LDFLAGS points the dynamic linker at glibc's package and the rpath at the
 * package's lib farm, so every program finds its libraries under /ro without ld.so.conf.
 */
import { parsePackageName } from '../store/package-name';
import { comparePackageVersions } from '../store/version';
import type { Builder } from './recipe';

export const CONFIGURE_HOST = 'x86_64-pc-linux-gnu';
export const DEST_INSIDE = '/dest/tmp';

export interface StepContext {
  fullName: string;
  pkg: string;
  /** Inside paths. */
  sourceDir: string;
  buildDir: string;
  destDir: string;
  jobs: number;
  /** Build-dep closure (full names); DISTRI_RESOLVE looks names up here. */
  deps: readonly string[];
}

export function prefixOf(fullName: string): string {
  return `/ro/${fullName}/out`;
}

/** Newest revision of each package first; packages keep the order of their first appearance. */
export function newerRevisionFirst(names: readonly string[]): string[] {
  const groups = new Map<string, string[]>();
  for (const n of names) {
    const p = parsePackageName(n);
    const key = p ? `${p.pkg}-${p.arch}` : n;
    const g = groups.get(key) ?? [];
    if (!g.includes(n)) g.push(n);
    groups.set(key, g);
  }
  const out: string[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => comparePackageVersions(parsePackageName(b)!, parsePackageName(a)!));
    out.push(...g);
  }
  return out;
}

/** `${DISTRI_RESOLVE:<name>}` table: pkg and pkg-arch → newest full name among the deps. */
export function resolveTable(deps: readonly string[]): Map<string, string> {
  const t = new Map<string, string>();
  for (const d of deps) {
    const p = parsePackageName(d);
    if (!p) continue;
    const cur = t.get(p.pkg);
    if (cur === undefined || comparePackageVersions(p, parsePackageName(cur)!) > 0) {
      t.set(p.pkg, d);
      t.set(`${p.pkg}-${p.arch}`, d);
    }
  }
  return t;
}

/** Replaces every `${DISTRI_…}` variable in s. Unknown `${DISTRI_RESOLVE:x}` stay as written. */
export function substitute(s: string, c: StepContext, table = resolveTable(c.deps)): string {
  const vars: Record<string, string> = {
    DISTRI_DESTDIR: c.destDir,
    DISTRI_PREFIX: prefixOf(c.fullName),
    DISTRI_BUILDDIR: c.buildDir,
    DISTRI_SOURCEDIR: c.sourceDir,
    DISTRI_FULLNAME: c.fullName,
    DISTRI_JOBS: String(c.jobs),
    DISTRI_CONFIGURE_HOST: CONFIGURE_HOST,
  };
  return s.replace(/\$\{(DISTRI_[A-Z_]+)(?::([^}]*))?\}/g, (whole, name: string, arg: string | undefined) => {
    if (name === 'DISTRI_RESOLVE' && arg !== undefined) return table.get(arg) ?? whole;
    return arg === undefined && name in vars ? vars[name]! : whole;
  });
}

export function substituteArgv(argv: readonly string[], c: StepContext): string[] {
  const table = resolveTable(c.deps);
  return argv.map((a) => substitute(a, c, table));
}

/** The builder's default steps, before substitution. */
export function defaultSteps(builder: Builder, o: { jobs: number; writableSourcedir: boolean; inTreeBuild: boolean }): string[][] {
  const j = String(o.jobs);
  switch (builder.kind) {
    case 'cbuilder': {
      const steps: string[][] = [];
      if (builder.autoreconf) {
        // autoreconf rewrites the source tree: only possible on a writable copy, built in place.
        if (!o.writableSourcedir || !o.inTreeBuild) throw new Error('cbuilder: autoreconf needs writable_sourcedir: true and in_tree_build: true');
        steps.push(['mkdir', '-p', 'm4'], ['/bin/sh', '-c', 'ACLOCAL_PATH=/ro/share/aclocal autoreconf --force --install']);
      }
      steps.push(
        ['${DISTRI_SOURCEDIR}/configure', '--host=${DISTRI_CONFIGURE_HOST}', '--prefix=${DISTRI_PREFIX}', '--sysconfdir=/etc', '--disable-dependency-tracking', ...builder.extraConfigureFlag],
        ['make', `-j${j}`, 'V=1', ...builder.extraMakeFlag],
        ['make', 'install', 'DESTDIR=${DISTRI_DESTDIR}', 'PREFIX=${DISTRI_PREFIX}', ...builder.extraMakeFlag],
      );
      return steps;
    }
    case 'cmakebuilder':
      return [
        ['cmake', '${DISTRI_SOURCEDIR}', '-DCMAKE_INSTALL_PREFIX:PATH=${DISTRI_PREFIX}', '-DCMAKE_VERBOSE_MAKEFILE:BOOL=ON', '-G', 'Ninja', ...builder.extraCmakeFlag],
        ['ninja', '-v', '-j', j],
        ['/bin/sh', '-c', `DESTDIR=\${DISTRI_DESTDIR} ninja -v -j ${j} install`],
      ];
    case 'mesonbuilder':
      return [
        ['meson', '--prefix=${DISTRI_PREFIX}', '--sysconfdir=/etc', '--localstatedir=/var', '.', '${DISTRI_SOURCEDIR}', ...builder.extraMesonFlag],
        ['ninja', '-v', '-j', j],
        ['/bin/sh', '-c', `DESTDIR=\${DISTRI_DESTDIR} ninja -v -j ${j} install`],
      ];
    case 'perlbuilder':
      // distri ran `make -j8` whatever the machine (**fix**: --jobs).
      return [
        ['cp', '-T', '-ar', '${DISTRI_SOURCEDIR}/', '.'],
        ['perl', 'Makefile.PL', 'INSTALL_BASE=${DISTRI_PREFIX}', 'PREREQ_FATAL=true', ...builder.extraMakefileFlag],
        ['make', `-j${j}`, 'V=1'],
        ['make', 'install', 'DESTDIR=${DISTRI_DESTDIR}'],
      ];
    case 'pythonbuilder':
      return [
        ['cp', '-T', '-ar', '${DISTRI_SOURCEDIR}/', '.'],
        ['python3', 'setup.py', 'install', '--prefix=${DISTRI_PREFIX}', '--root=${DISTRI_DESTDIR}'],
      ];
    case 'gomodbuilder':
      return [['/bin/sh', '-c', 'd=${DISTRI_DESTDIR}/${DISTRI_PREFIX}/gopath/; mkdir -p $d && cp -r ${DISTRI_SOURCEDIR}/* $d']];
    case 'gobuilder':
      throw new Error('gobuilder: not supported (distri used it only for its own Go packages); use gomodbuilder or build_step');
    case 'none':
      return [];
  }
}

export interface EnvInput {
  fullName: string;
  pkg: string;
  /** Build-dep closure. */
  deps: readonly string[];
  /** Whether `/ro/<full>/<rel>` exists (and is not empty) in the sandbox's /ro. */
  dirExists(full: string, rel: string): boolean;
  /** Python site-packages dirs of a package, relative to it (`out/lib/python3.11/site-packages`). */
  pythonDirs(full: string): string[];
  glibc: string | undefined;
  extraLdflag: readonly string[];
  builder: Builder['kind'];
  sourceDateEpoch: number;
}

/** The build environment (see the module comment). */
export function buildEnv(i: EnvInput): Record<string, string> {
  const lib: string[] = [];
  const cpath: string[] = [];
  const pc: string[] = [];
  const perl: string[] = [];
  const py: string[] = [];
  for (const d of newerRevisionFirst([...i.deps, i.fullName])) {
    const self = d === i.fullName;
    const add = (list: string[], rel: string) => {
      if (self || i.dirExists(d, rel)) list.push(`/ro/${d}/${rel}`);
    };
    add(lib, 'out/lib');
    add(lib, 'out/lib64');
    add(pc, 'out/lib/pkgconfig');
    add(pc, 'out/share/pkgconfig');
    if (parsePackageName(d)?.pkg !== 'glibc') {
      add(cpath, 'out/include');
      add(cpath, 'out/include/x86_64-linux-gnu');
    }
    add(perl, 'out/lib/perl5');
    for (const p of i.pythonDirs(d)) py.push(`/ro/${d}/${p}`);
  }
  const env: Record<string, string> = {
    PATH: '/ro/bin:/bin',
    LIBRARY_PATH: lib.join(':'),
    LD_LIBRARY_PATH: lib.join(':'),
    CPATH: cpath.join(':'),
    PKG_CONFIG_PATH: pc.join(':'),
    PERL5LIB: perl.join(':'),
    PYTHONPATH: py.join(':'),
    SOURCE_DATE_EPOCH: String(i.sourceDateEpoch),
  };
  // glibc itself must not be linked against a glibc package's loader.
  if (i.pkg !== 'glibc' && i.glibc) {
    env.LDFLAGS = [`-Wl,-rpath=/ro/${i.fullName}/lib`, `-Wl,--dynamic-linker=/ro/${i.glibc}/out/lib/ld-linux-x86-64.so.2`, ...i.extraLdflag].join(' ');
  }
  if (i.builder === 'cbuilder') env.DESTDIR = DEST_INSIDE;
  return env;
}

/**
 * The environment a wrapper in bin/ prepends before exec'ing the real program: over the package
 * and its RUNTIME deps (distri used the build deps: **fix**), only dirs that exist.
 */
export function runtimeEnv(fullName: string, runtimeDeps: readonly string[], dirExists: (full: string, rel: string) => boolean, pythonDirs: (full: string) => string[]): Record<string, string> {
  const bin: string[] = [];
  const lib: string[] = [];
  const perl: string[] = [];
  const py: string[] = [];
  for (const d of newerRevisionFirst([fullName, ...runtimeDeps])) {
    const add = (list: string[], rel: string) => {
      if (dirExists(d, rel)) list.push(`/ro/${d}/${rel}`);
    };
    add(bin, 'bin');
    add(lib, 'out/lib');
    add(lib, 'out/lib64');
    add(perl, 'out/lib/perl5');
    for (const p of pythonDirs(d)) py.push(`/ro/${d}/${p}`);
  }
  const env: Record<string, string> = {};
  if (bin.length) env.PATH = bin.join(':');
  if (lib.length) env.LD_LIBRARY_PATH = lib.join(':');
  if (perl.length) env.PERL5LIB = perl.join(':');
  if (py.length) env.PYTHONPATH = py.join(':');
  return env;
}
