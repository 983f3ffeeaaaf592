/**
 * A build recipe: `pkgs/<pkg>/build.textproto`, distri's Build message in the protobuf text format.
 * Every field of distri's schema is known here, with its type; the text is read by our textproto
 * module (src/store/textproto.ts) and then checked against the schema below. Unlike meta.textproto
 * (which ignores unknown fields, as protobuf readers do), a recipe is written by hand: an unknown
 * field, a string where a message belongs, a singular field given twice or two builders are
 * mistakes, reported as `<file>:<line>:<column>: field <name>: …` so the author can fix them.
 *
 *   source: "https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"   # or empty://, file://, distri+source://
 *   hash: "31e0…"                                               # sha256 of the download
 *   version: "2.10-1"                                           # <upstream>-<rev>
 *   cherry_pick: "fix-build.patch"                              # patch -p1, in order
 *   extra_file: "config.h"                                      # copied into the source root
 *   dep: "ncurses"                                              # build deps beyond the builder's
 *   cbuilder: { extra_configure_flag: "--disable-nls" }         # exactly one builder (or none)
 *   build_step: { argv: "make" argv: "install" }                # replaces the builder's steps
 *   runtime_dep: "ncurses"
 *   install: { symlink: { oldname: "bin/a" newname: "bin/b" } chmod: { setuid: true name: "bin/x" } }
 *   split_package: { name: "gcc-libs" claim: { glob: "out/lib64/libgcc_s.so*" } }
 *   runtime_union: { dir: "lib/app/modules" pkg: "app" }
 *
 * Booleans are written `true`/`false` (also `t`/`f`, `True`/`False`, `1`/`0`, as protobuf's text
 * parser accepts).
 */
import { SquashfsError } from '../errors';
import { parseTextProto, type TextField } from '../store/textproto';

export const RECIPE_FILE = 'build.textproto';

export interface CBuilder {
  extraConfigureFlag: string[];
  extraMakeFlag: string[];
  autoreconf: boolean;
  extraLdflag: string[];
}
export interface GoBuilder {
  install: string;
  importPath: string;
  goEnv: string[];
}

/** The one builder a recipe names; `none` when it names none (then build_step must do the work). */
export type Builder =
  | { kind: 'none' }
  | ({ kind: 'cbuilder' } & CBuilder)
  | { kind: 'cmakebuilder'; extraCmakeFlag: string[] }
  | { kind: 'mesonbuilder'; extraMesonFlag: string[] }
  | { kind: 'perlbuilder'; extraMakefileFlag: string[] }
  | { kind: 'pythonbuilder' }
  | { kind: 'gomodbuilder' }
  | ({ kind: 'gobuilder' } & GoBuilder);
export type BuilderKind = Builder['kind'];

export interface Install {
  systemdUnit: string[];
  symlink: { oldname: string; newname: string }[];
  emptyDir: string[];
  chmod: { setuid: boolean; name: string }[];
  capability: { capability: string; filename: string }[];
  file: { srcpath: string; destpath: string }[];
  rename: { oldname: string; newname: string }[];
  delete: string[];
}

export interface SplitPackage {
  name: string;
  claim: { glob: string; dir: string }[];
  runtimeDep: string[];
}

export interface Pull {
  debianPackages: string;
  releasesUrl: string;
  releaseRegexp: string;
  releaseReplaceAll: { expr: string; repl: string } | undefined;
  forceSemver: boolean;
}

export interface Recipe {
  source: string;
  hash: string;
  version: string;
  pull: Pull | undefined;
  extraFile: string[];
  cherryPick: string[];
  writableSourcedir: boolean;
  inTreeBuild: boolean;
  ackMissingDwarf: string;
  dep: string[];
  buildStep: { argv: string[] }[];
  builder: Builder;
  runtimeDep: string[];
  install: Install;
  splitPackage: SplitPackage[];
  runtimeUnion: { dir: string; pkg: string }[];
}

// ---- the schema: field name → type, as in distri's pb/build.proto ----

type FieldType = 'string' | 'bool' | Schema;
interface FieldSpec {
  type: FieldType;
  repeated?: boolean;
}
interface Schema {
  name: string;
  fields: Record<string, FieldSpec>;
}

const s = (repeated = false): FieldSpec => ({ type: 'string', repeated });
const b = (): FieldSpec => ({ type: 'bool' });
const m = (schema: Schema, repeated = false): FieldSpec => ({ type: schema, repeated });

const BUILD_STEP: Schema = { name: 'BuildStep', fields: { argv: s(true) } };
const CBUILDER: Schema = { name: 'CBuilder', fields: { extra_configure_flag: s(true), extra_make_flag: s(true), autoreconf: b(), extra_ldflag: s(true) } };
const CMAKEBUILDER: Schema = { name: 'CMakeBuilder', fields: { extra_cmake_flag: s(true) } };
const MESONBUILDER: Schema = { name: 'MesonBuilder', fields: { extra_meson_flag: s(true) } };
const PERLBUILDER: Schema = { name: 'PerlBuilder', fields: { extra_makefile_flag: s(true) } };
const PYTHONBUILDER: Schema = { name: 'PythonBuilder', fields: {} };
const GOMODBUILDER: Schema = { name: 'GomodBuilder', fields: {} };
const GOBUILDER: Schema = { name: 'GoBuilder', fields: { install: s(), import_path: s(), go_env: s(true) } };
const PAIR = (name: string, a: string, c: string): Schema => ({ name, fields: { [a]: s(), [c]: s() } });
const INSTALL: Schema = {
  name: 'Install',
  fields: {
    systemd_unit: s(true),
    symlink: m(PAIR('Install.Symlink', 'oldname', 'newname'), true),
    empty_dir: s(true),
    chmod: m({ name: 'Install.Chmod', fields: { setuid: b(), name: s() } }, true),
    capability: m(PAIR('Install.Cap', 'capability', 'filename'), true),
    file: m(PAIR('Install.File', 'srcpath', 'destpath'), true),
    rename: m(PAIR('Install.Rename', 'oldname', 'newname'), true),
    delete: s(true),
  },
};
const CLAIM: Schema = PAIR('Claim', 'glob', 'dir');
const SPLIT_PACKAGE: Schema = { name: 'SplitPackage', fields: { name: s(), claim: m(CLAIM, true), runtime_dep: s(true) } };
const UNION: Schema = PAIR('Union', 'dir', 'pkg');
const PULL: Schema = {
  name: 'Pull',
  fields: { debian_packages: s(), releases_url: s(), release_regexp: s(), release_replace_all: m(PAIR('RegexpReplaceAll', 'expr', 'repl')), force_semver: b() },
};
const BUILDERS: Record<string, Schema> = {
  cbuilder: CBUILDER,
  cmakebuilder: CMAKEBUILDER,
  mesonbuilder: MESONBUILDER,
  perlbuilder: PERLBUILDER,
  pythonbuilder: PYTHONBUILDER,
  gomodbuilder: GOMODBUILDER,
  gobuilder: GOBUILDER,
};
const BUILD: Schema = {
  name: 'Build',
  fields: {
    source: s(),
    pull: m(PULL),
    hash: s(),
    version: s(),
    extra_file: s(true),
    cherry_pick: s(true),
    writable_sourcedir: b(),
    in_tree_build: b(),
    ack_missing_dwarf: s(),
    dep: s(true),
    build_step: m(BUILD_STEP, true),
    ...Object.fromEntries(Object.entries(BUILDERS).map(([k, v]) => [k, m(v)])),
    runtime_dep: s(true),
    install: m(INSTALL),
    split_package: m(SPLIT_PACKAGE, true),
    runtime_union: m(UNION, true),
  },
};

/** A checked message: field name → values (strings, booleans or nested messages), in order. */
interface Decoded {
  [field: string]: Array<string | boolean | Decoded>;
}

const TRUE = new Set(['true', 't', 'True', '1']);
const FALSE = new Set(['false', 'f', 'False', '0']);

function decode(fields: readonly TextField[], schema: Schema, fail: (f: TextField, msg: string) => never): Decoded {
  const out: Decoded = {};
  for (const f of fields) {
    const spec = schema.fields[f.name];
    if (!spec) fail(f, `unknown field in ${schema.name} (known: ${Object.keys(schema.fields).join(', ') || 'none'})`);
    const list = (out[f.name] ??= []);
    if (!spec.repeated && list.length > 0) fail(f, `given twice, but ${schema.name}.${f.name} is not repeated`);
    const v = f.value;
    if (spec.type === 'string') {
      if (v.kind !== 'string') fail(f, `wants a quoted string, got ${v.kind === 'message' ? 'a message' : v.text}`);
      list.push(v.value);
    } else if (spec.type === 'bool') {
      if (v.kind !== 'literal' || !(TRUE.has(v.text) || FALSE.has(v.text)))
        fail(f, `wants true or false, got ${v.kind === 'message' ? 'a message' : v.kind === 'string' ? JSON.stringify(v.value) : v.text}`);
      list.push(TRUE.has(v.text));
    } else {
      if (v.kind !== 'message') fail(f, `wants a message { … } (${spec.type.name}), got ${v.kind === 'string' ? JSON.stringify(v.value) : v.text}`);
      list.push(decode(v.fields, spec.type, fail));
    }
  }
  return out;
}

const str = (d: Decoded | undefined, k: string): string => (d?.[k]?.[0] as string | undefined) ?? '';
const strs = (d: Decoded | undefined, k: string): string[] => (d?.[k] as string[] | undefined) ?? [];
const bool = (d: Decoded | undefined, k: string): boolean => (d?.[k]?.[0] as boolean | undefined) ?? false;
const msg = (d: Decoded | undefined, k: string): Decoded | undefined => d?.[k]?.[0] as Decoded | undefined;
const msgs = (d: Decoded | undefined, k: string): Decoded[] => (d?.[k] as Decoded[] | undefined) ?? [];

function builderOf(d: Decoded): Builder {
  const kind = Object.keys(BUILDERS).find((k) => d[k]);
  const c = kind ? msg(d, kind) : undefined;
  switch (kind) {
    case 'cbuilder':
      return { kind, extraConfigureFlag: strs(c, 'extra_configure_flag'), extraMakeFlag: strs(c, 'extra_make_flag'), autoreconf: bool(c, 'autoreconf'), extraLdflag: strs(c, 'extra_ldflag') };
    case 'cmakebuilder':
      return { kind, extraCmakeFlag: strs(c, 'extra_cmake_flag') };
    case 'mesonbuilder':
      return { kind, extraMesonFlag: strs(c, 'extra_meson_flag') };
    case 'perlbuilder':
      return { kind, extraMakefileFlag: strs(c, 'extra_makefile_flag') };
    case 'pythonbuilder':
    case 'gomodbuilder':
      return { kind };
    case 'gobuilder':
      return { kind, install: str(c, 'install'), importPath: str(c, 'import_path'), goEnv: strs(c, 'go_env') };
    default:
      return { kind: 'none' };
  }
}

/** The recipe's error: `<file>:<line>:<column>: field <name>: <what>`, a mistake of the author's. */
export function recipeError(file: string, line: number, column: number, message: string): SquashfsError {
  return new SquashfsError('INVALID_ARGUMENT', `${file}:${line}:${column}: ${message}`, RECIPE_FILE);
}

/**
 * Parses build.textproto text. `file` names it in errors. Throws SquashfsError INVALID_ARGUMENT
 * `<file>:<line>:<column>: …` for a syntax error, an unknown field, a wrong type, a repeated
 * singular field, two builders, or a missing required field of a nested message.
 */
export function parseRecipe(text: string, file = RECIPE_FILE): Recipe {
  let fields: TextField[];
  try {
    fields = parseTextProto(text, RECIPE_FILE);
  } catch (e) {
    if (e instanceof SquashfsError) {
      const at = /^(\d+):(\d+): (.*)$/s.exec(e.message);
      if (at) throw recipeError(file, Number(at[1]), Number(at[2]), at[3]!);
    }
    throw e;
  }
  const fail = (f: TextField, message: string): never => {
    throw recipeError(file, f.line, f.column, `field ${f.name}: ${message}`);
  };
  const d = decode(fields, BUILD, fail);
  const builders = fields.filter((f) => f.name in BUILDERS);
  if (builders.length > 1) fail(builders[1]!, `a recipe names one builder, but ${builders[0]!.name} is given too (line ${builders[0]!.line})`);
  // Fields the rest of the pipeline cannot do without, checked where they were written.
  const requireIn = (parent: string, names: string[]): void => {
    for (const f of fields.filter((x) => x.name === parent)) {
      if (f.value.kind !== 'message') continue;
      for (const n of names) {
        if (!f.value.fields.some((x) => x.name === n)) fail(f, `${n} is required`);
      }
    }
  };
  requireIn('split_package', ['name', 'claim']);
  requireIn('runtime_union', ['dir', 'pkg']);
  for (const f of fields.filter((x) => x.name === 'split_package' && x.value.kind === 'message')) {
    for (const c of (f.value as { fields: readonly TextField[] }).fields.filter((x) => x.name === 'claim' && x.value.kind === 'message')) {
      if (!(c.value as { fields: readonly TextField[] }).fields.some((x) => x.name === 'glob')) fail(c, 'glob is required');
    }
  }
  const pull = msg(d, 'pull');
  const install = msg(d, 'install');
  const pairs = <A extends string, B extends string>(list: Decoded[], a: A, c: B) => list.map((x) => ({ [a]: str(x, a), [c]: str(x, c) }) as Record<A | B, string>);
  return {
    source: str(d, 'source'),
    hash: str(d, 'hash'),
    version: str(d, 'version'),
    pull: pull && {
      debianPackages: str(pull, 'debian_packages'),
      releasesUrl: str(pull, 'releases_url'),
      releaseRegexp: str(pull, 'release_regexp'),
      releaseReplaceAll: msg(pull, 'release_replace_all') && { expr: str(msg(pull, 'release_replace_all'), 'expr'), repl: str(msg(pull, 'release_replace_all'), 'repl') },
      forceSemver: bool(pull, 'force_semver'),
    },
    extraFile: strs(d, 'extra_file'),
    cherryPick: strs(d, 'cherry_pick'),
    writableSourcedir: bool(d, 'writable_sourcedir'),
    inTreeBuild: bool(d, 'in_tree_build'),
    ackMissingDwarf: str(d, 'ack_missing_dwarf'),
    dep: strs(d, 'dep'),
    buildStep: msgs(d, 'build_step').map((x) => ({ argv: strs(x, 'argv') })),
    builder: builderOf(d),
    runtimeDep: strs(d, 'runtime_dep'),
    install: {
      systemdUnit: strs(install, 'systemd_unit'),
      symlink: pairs(msgs(install, 'symlink'), 'oldname', 'newname'),
      emptyDir: strs(install, 'empty_dir'),
      chmod: msgs(install, 'chmod').map((x) => ({ setuid: bool(x, 'setuid'), name: str(x, 'name') })),
      capability: pairs(msgs(install, 'capability'), 'capability', 'filename'),
      file: pairs(msgs(install, 'file'), 'srcpath', 'destpath'),
      rename: pairs(msgs(install, 'rename'), 'oldname', 'newname'),
      delete: strs(install, 'delete'),
    },
    splitPackage: msgs(d, 'split_package').map((x) => ({
      name: str(x, 'name'),
      claim: pairs(msgs(x, 'claim'), 'glob', 'dir'),
      runtimeDep: strs(x, 'runtime_dep'),
    })),
    runtimeUnion: pairs(msgs(d, 'runtime_union'), 'dir', 'pkg'),
  };
}

/** The schema's field names, per message (for tests and `--help`). */
export function recipeFieldNames(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const visit = (sch: Schema): void => {
    if (out[sch.name]) return;
    out[sch.name] = Object.keys(sch.fields);
    for (const f of Object.values(sch.fields)) if (typeof f.type === 'object') visit(f.type);
  };
  visit(BUILD);
  return out;
}
