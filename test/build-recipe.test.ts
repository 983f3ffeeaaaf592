// build.textproto: every field of distri's Build message parsed into the typed recipe, and the
// author's mistakes (unknown field, wrong type, repeats, two builders) named with file:line:column.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SquashfsError } from '../src/errors';
import { parseRecipe, recipeFieldNames } from '../src/build/recipe';

const FULL = `
source: "https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"
hash: "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"
version: "2.10-3"
pull: { releases_url: "https://ftp.gnu.org/gnu/hello/" release_regexp: "hello-([0-9.]+)" release_replace_all: { expr: "_" repl: "." } force_semver: true debian_packages: "hello" }
extra_file: "config.site"
extra_file: "extra.h"
cherry_pick: "a.patch"
cherry_pick: "b.patch"
writable_sourcedir: true
in_tree_build: true
ack_missing_dwarf: "why"
dep: "ncurses"
dep: "zlib"
build_step: { argv: "make" argv: "-j\${DISTRI_JOBS}" }
build_step: < argv: ["make", "install"] >
cbuilder: { extra_configure_flag: "--disable-nls" extra_make_flag: "V=0" autoreconf: true extra_ldflag: "-lm" }
runtime_dep: "file"
install: {
  systemd_unit: "\${DISTRI_SOURCEDIR}/x.service"
  symlink: { oldname: "hello" newname: "bin/hi" }
  empty_dir: "var/empty"
  chmod: { setuid: true name: "bin/hello" }
  capability: { capability: "cap_net_raw+ep" filename: "bin/hello" }
  file: { srcpath: "README" destpath: "share/doc/README" }
  rename: { oldname: "bin/a" newname: "bin/b" }
  delete: "share/info/dir"
}
split_package: { name: "hello-libs" claim: { glob: "out/lib/*.so*" } claim: { glob: "out/share/x" dir: "out/y" } runtime_dep: "glibc" }
runtime_union: { dir: "lib/hello/plugins" pkg: "hello-plugins" }
`;

function fails(text: string, re: RegExp): void {
  assert.throws(
    () => parseRecipe(text, 'pkgs/x/build.textproto'),
    (e: unknown) => {
      assert.ok(e instanceof SquashfsError, String(e));
      assert.match(e.message, re);
      return true;
    },
  );
}

describe('build.textproto', () => {
  it('reads every field of the schema into the typed recipe', () => {
    const r = parseRecipe(FULL);
    assert.equal(r.source, 'https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz');
    assert.equal(r.hash, '31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b');
    assert.equal(r.version, '2.10-3');
    assert.deepEqual(r.pull, {
      debianPackages: 'hello',
      releasesUrl: 'https://ftp.gnu.org/gnu/hello/',
      releaseRegexp: 'hello-([0-9.]+)',
      releaseReplaceAll: { expr: '_', repl: '.' },
      forceSemver: true,
    });
    assert.deepEqual(r.extraFile, ['config.site', 'extra.h']);
    assert.deepEqual(r.cherryPick, ['a.patch', 'b.patch']);
    assert.equal(r.writableSourcedir, true);
    assert.equal(r.inTreeBuild, true);
    assert.equal(r.ackMissingDwarf, 'why');
    assert.deepEqual(r.dep, ['ncurses', 'zlib']);
    assert.deepEqual(r.buildStep, [{ argv: ['make', '-j${DISTRI_JOBS}'] }, { argv: ['make', 'install'] }]);
    assert.deepEqual(r.builder, { kind: 'cbuilder', extraConfigureFlag: ['--disable-nls'], extraMakeFlag: ['V=0'], autoreconf: true, extraLdflag: ['-lm'] });
    assert.deepEqual(r.runtimeDep, ['file']);
    assert.deepEqual(r.install, {
      systemdUnit: ['${DISTRI_SOURCEDIR}/x.service'],
      symlink: [{ oldname: 'hello', newname: 'bin/hi' }],
      emptyDir: ['var/empty'],
      chmod: [{ setuid: true, name: 'bin/hello' }],
      capability: [{ capability: 'cap_net_raw+ep', filename: 'bin/hello' }],
      file: [{ srcpath: 'README', destpath: 'share/doc/README' }],
      rename: [{ oldname: 'bin/a', newname: 'bin/b' }],
      delete: ['share/info/dir'],
    });
    assert.deepEqual(r.splitPackage, [
      {
        name: 'hello-libs',
        claim: [
          { glob: 'out/lib/*.so*', dir: '' },
          { glob: 'out/share/x', dir: 'out/y' },
        ],
        runtimeDep: ['glibc'],
      },
    ]);
    assert.deepEqual(r.runtimeUnion, [{ dir: 'lib/hello/plugins', pkg: 'hello-plugins' }]);
  });

  it('knows every builder of distri', () => {
    assert.deepEqual(parseRecipe('cmakebuilder: { extra_cmake_flag: "-DX=1" }').builder, { kind: 'cmakebuilder', extraCmakeFlag: ['-DX=1'] });
    assert.deepEqual(parseRecipe('mesonbuilder: { extra_meson_flag: "-Dx=true" }').builder, { kind: 'mesonbuilder', extraMesonFlag: ['-Dx=true'] });
    assert.deepEqual(parseRecipe('perlbuilder: { extra_makefile_flag: "A=1" }').builder, { kind: 'perlbuilder', extraMakefileFlag: ['A=1'] });
    assert.deepEqual(parseRecipe('pythonbuilder: {}').builder, { kind: 'pythonbuilder' });
    assert.deepEqual(parseRecipe('gomodbuilder: {}').builder, { kind: 'gomodbuilder' });
    assert.deepEqual(parseRecipe('gobuilder: { install: "x" import_path: "y" go_env: "CGO=0" }').builder, { kind: 'gobuilder', install: 'x', importPath: 'y', goEnv: ['CGO=0'] });
    assert.deepEqual(parseRecipe('source: "empty://"').builder, { kind: 'none' });
  });

  it('covers every field name of the schema in the full example', () => {
    const names = recipeFieldNames();
    for (const f of names.Build!) assert.match(FULL + 'cmakebuilder mesonbuilder perlbuilder pythonbuilder gomodbuilder gobuilder', new RegExp(`\\b${f}\\b`), `Build.${f} untested`);
    for (const f of names.Install!) assert.match(FULL, new RegExp(`\\b${f}:`), `Install.${f} untested`);
  });

  it('names file, line, column and field for an unknown field', () => {
    fails('source: "empty://"\n  sorce: "x"\n', /^pkgs\/x\/build\.textproto:2:3: field sorce: unknown field in Build/);
    fails('install: { symlinks: { oldname: "a" } }', /:1:12: field symlinks: unknown field in Install/);
  });

  it('names the field for a wrong type', () => {
    fails('version: 5', /:1:1: field version: wants a quoted string, got 5/);
    fails('writable_sourcedir: "yes"', /field writable_sourcedir: wants true or false, got "yes"/);
    fails('cbuilder: "x"', /field cbuilder: wants a message/);
    fails('dep: { x: "y" }', /field dep: wants a quoted string, got a message/);
    fails('install: { chmod: { setuid: 2 name: "x" } }', /field setuid: wants true or false, got 2/);
  });

  it('refuses repeats of singular fields and two builders', () => {
    fails('version: "1-1"\nversion: "1-2"', /:2:1: field version: given twice/);
    fails('cbuilder: {}\nmesonbuilder: {}', /:2:1: field mesonbuilder: a recipe names one builder, but cbuilder is given too/);
  });

  it('wants the required fields of split packages, claims and unions', () => {
    fails('split_package: { claim: { glob: "x" } }', /field split_package: name is required/);
    fails('split_package: { name: "x" claim: { dir: "y" } }', /field claim: glob is required/);
    fails('runtime_union: { dir: "x" }', /field runtime_union: pkg is required/);
  });

  it('reports syntax errors with the file name', () => {
    fails('source: "x', /^pkgs\/x\/build\.textproto:1:9: unterminated string/);
  });

  it('accepts protobuf text-format spellings of booleans', () => {
    assert.equal(parseRecipe('writable_sourcedir: t').writableSourcedir, true);
    assert.equal(parseRecipe('writable_sourcedir: False').writableSourcedir, false);
  });
});
