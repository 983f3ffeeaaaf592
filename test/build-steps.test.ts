// The parts of `distri build` between the recipe and the image, each on real files: substitutions,
// environment and default steps, install directives (capability checked against setcap(8)),
// pkg-config Requires, shebangs, runtime deps and their closure over a store, split packages, the
// input digest, and the log's durations.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { skipUnless } from './oracle/tools';
import { buildEnv, defaultSteps, newerRevisionFirst, runtimeEnv, substitute, substituteArgv, type StepContext } from '../src/build/environment';
import { applyInstall, encodeCapability } from '../src/build/install';
import { collectRuntimeDeps, pcFileRequires, pkgConfigRequires, shebangDeps } from '../src/build/runtime-deps';
import { StoreCatalog, builderDeps, resolveBuildDeps } from '../src/build/deps';
import { globPaths, splitPackages } from '../src/build/split';
import { inputDigest } from '../src/build/digest';
import { formatDuration, goQuotedList, parseDuration } from '../src/build/duration';
import { planWrappers, wrapperScript, wrapperSource } from '../src/build/wrappers';
import { parseRecipe, type Install } from '../src/build/recipe';
import { formatMeta } from '../src/store/meta';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'build-steps-'));
}

const CTX: StepContext = {
  fullName: 'hello-amd64-2.10-1',
  pkg: 'hello',
  sourceDir: '/usr/src/hello-amd64-2.10-1',
  buildDir: '/usr/src/hello-amd64-2.10-1-build',
  destDir: '/dest/tmp',
  jobs: 3,
  deps: ['glibc-amd64-2.31-4', 'glibc-amd64-2.31-5', 'gcc-amd64-9.1.0-2', 'ncurses-amd64-6.1-5'],
};

describe('substitutions', () => {
  it('every ${DISTRI_…} variable', () => {
    assert.deepEqual(
      substituteArgv(['${DISTRI_DESTDIR}', '${DISTRI_PREFIX}', '${DISTRI_BUILDDIR}', '${DISTRI_SOURCEDIR}', '${DISTRI_FULLNAME}', '-j${DISTRI_JOBS}', '--host=${DISTRI_CONFIGURE_HOST}'], CTX),
      ['/dest/tmp', '/ro/hello-amd64-2.10-1/out', '/usr/src/hello-amd64-2.10-1-build', '/usr/src/hello-amd64-2.10-1', 'hello-amd64-2.10-1', '-j3', '--host=x86_64-pc-linux-gnu'],
    );
  });
  it('DISTRI_RESOLVE gives the newest full name among the deps, by pkg or pkg-arch', () => {
    assert.equal(substitute('/ro/${DISTRI_RESOLVE:glibc}/out/lib', CTX), '/ro/glibc-amd64-2.31-5/out/lib');
    assert.equal(substitute('${DISTRI_RESOLVE:ncurses-amd64}', CTX), 'ncurses-amd64-6.1-5');
    assert.equal(substitute('${DISTRI_RESOLVE:nope} ${OTHER}', CTX), '${DISTRI_RESOLVE:nope} ${OTHER}');
  });
  it('several in one argument, and inside custom wrapper text', () => {
    assert.equal(substitute('d=${DISTRI_DESTDIR}/${DISTRI_PREFIX}/gopath/', CTX), 'd=/dest/tmp//ro/hello-amd64-2.10-1/out/gopath/');
  });
});

describe('builders', () => {
  it('cbuilder: configure, make, make install with the extra flags', () => {
    const r = parseRecipe('cbuilder: { extra_configure_flag: "--without-x" extra_make_flag: "V=0" }');
    assert.deepEqual(defaultSteps(r.builder, { jobs: 4, writableSourcedir: false, inTreeBuild: false }), [
      ['${DISTRI_SOURCEDIR}/configure', '--host=${DISTRI_CONFIGURE_HOST}', '--prefix=${DISTRI_PREFIX}', '--sysconfdir=/etc', '--disable-dependency-tracking', '--without-x'],
      ['make', '-j4', 'V=1', 'V=0'],
      ['make', 'install', 'DESTDIR=${DISTRI_DESTDIR}', 'PREFIX=${DISTRI_PREFIX}', 'V=0'],
    ]);
  });
  it('cbuilder autoreconf wants a writable in-tree source', () => {
    const r = parseRecipe('cbuilder: { autoreconf: true }');
    assert.throws(() => defaultSteps(r.builder, { jobs: 1, writableSourcedir: false, inTreeBuild: false }), /autoreconf needs writable_sourcedir/);
    assert.equal(defaultSteps(r.builder, { jobs: 1, writableSourcedir: true, inTreeBuild: true }).length, 5);
    assert.deepEqual(builderDeps(r.builder).slice(-4), ['autoconf', 'automake', 'libtool', 'gettext']);
  });
  it('cmake, meson, perl (--jobs, not -j8), python, gomod', () => {
    const steps = (t: string) => defaultSteps(parseRecipe(t).builder, { jobs: 2, writableSourcedir: false, inTreeBuild: false });
    assert.deepEqual(steps('cmakebuilder: {}')[0]!.slice(0, 3), ['cmake', '${DISTRI_SOURCEDIR}', '-DCMAKE_INSTALL_PREFIX:PATH=${DISTRI_PREFIX}']);
    assert.deepEqual(steps('cmakebuilder: {}')[1], ['ninja', '-v', '-j', '2']);
    assert.deepEqual(steps('mesonbuilder: {}')[0], ['meson', '--prefix=${DISTRI_PREFIX}', '--sysconfdir=/etc', '--localstatedir=/var', '.', '${DISTRI_SOURCEDIR}']);
    assert.deepEqual(steps('perlbuilder: {}')[2], ['make', '-j2', 'V=1']);
    assert.deepEqual(steps('pythonbuilder: {}')[1], ['python3', 'setup.py', 'install', '--prefix=${DISTRI_PREFIX}', '--root=${DISTRI_DESTDIR}']);
    assert.equal(steps('gomodbuilder: {}').length, 1);
    assert.deepEqual(builderDeps(parseRecipe('gomodbuilder: {}').builder), ['bash', 'coreutils']);
    assert.deepEqual(builderDeps(parseRecipe('perlbuilder: {}').builder)[0], 'perl');
  });
});

describe('environment', () => {
  const deps = ['ncurses-amd64-6.1-5', 'glibc-amd64-2.31-4', 'glibc-amd64-2.31-5', 'zlib-amd64-1.2.11-3'];
  const have = new Set([
    'ncurses-amd64-6.1-5/out/lib',
    'ncurses-amd64-6.1-5/out/include',
    'glibc-amd64-2.31-4/out/lib',
    'glibc-amd64-2.31-5/out/lib',
    'glibc-amd64-2.31-5/out/include',
    'ncurses-amd64-6.1-5/out/lib/pkgconfig',
    'ncurses-amd64-6.1-5/bin',
  ]);
  const env = buildEnv({
    fullName: 'nano-amd64-4.3-1',
    pkg: 'nano',
    deps,
    dirExists: (f, rel) => have.has(`${f}/${rel}`),
    pythonDirs: () => [],
    glibc: 'glibc-amd64-2.31-5',
    extraLdflag: ['-lm'],
    builder: 'cbuilder',
    sourceDateEpoch: 1234,
  });
  it('newest revision first, only dirs that exist, the package itself always', () => {
    assert.equal(env.LIBRARY_PATH, '/ro/ncurses-amd64-6.1-5/out/lib:/ro/glibc-amd64-2.31-5/out/lib:/ro/glibc-amd64-2.31-4/out/lib:/ro/nano-amd64-4.3-1/out/lib:/ro/nano-amd64-4.3-1/out/lib64');
    assert.equal(env.LD_LIBRARY_PATH, env.LIBRARY_PATH);
    assert.equal(env.PKG_CONFIG_PATH, '/ro/ncurses-amd64-6.1-5/out/lib/pkgconfig:/ro/nano-amd64-4.3-1/out/lib/pkgconfig:/ro/nano-amd64-4.3-1/out/share/pkgconfig');
  });
  it('glibc stays out of CPATH (gcc finds it last, as /usr/include)', () => {
    assert.equal(env.CPATH, '/ro/ncurses-amd64-6.1-5/out/include:/ro/nano-amd64-4.3-1/out/include:/ro/nano-amd64-4.3-1/out/include/x86_64-linux-gnu');
  });
  it('PATH, LDFLAGS with the lib farm rpath and glibc loader, DESTDIR, SOURCE_DATE_EPOCH', () => {
    assert.equal(env.PATH, '/ro/bin:/bin');
    assert.equal(env.LDFLAGS, '-Wl,-rpath=/ro/nano-amd64-4.3-1/lib -Wl,--dynamic-linker=/ro/glibc-amd64-2.31-5/out/lib/ld-linux-x86-64.so.2 -lm');
    assert.equal(env.DESTDIR, '/dest/tmp');
    assert.equal(env.SOURCE_DATE_EPOCH, '1234');
  });
  it('newer revision first keeps packages in their order', () => {
    assert.deepEqual(newerRevisionFirst(['b-amd64-1-1', 'a-amd64-1-1', 'b-amd64-1-10', 'b-amd64-1-9']), ['b-amd64-1-10', 'b-amd64-1-9', 'b-amd64-1-1', 'a-amd64-1-1']);
  });
  it('wrapper env: over the runtime deps only', () => {
    const r = runtimeEnv(
      'nano-amd64-4.3-1',
      ['ncurses-amd64-6.1-5'],
      (f, rel) => have.has(`${f}/${rel}`) || (f.startsWith('nano') && rel === 'bin'),
      () => [],
    );
    assert.deepEqual(r, { PATH: '/ro/nano-amd64-4.3-1/bin:/ro/ncurses-amd64-6.1-5/bin', LD_LIBRARY_PATH: '/ro/ncurses-amd64-6.1-5/out/lib' });
    assert.match(wrapperSource('/ro/nano-amd64-4.3-1/out/bin/nano', r), /execv\("\/ro\/nano-amd64-4.3-1\/out\/bin\/nano", argv\)/);
    assert.match(wrapperScript('/ro/x/out/bin/y', r), /^#!\/bin\/sh\n.*exec '\/ro\/x\/out\/bin\/y' "\$@"\n$/s);
  });
});

describe('install directives', () => {
  const none: Install = { systemdUnit: [], symlink: [], emptyDir: [], chmod: [], capability: [], file: [], rename: [], delete: [] };
  it("in distri's order, relative to out/; empty lib and share go", () => {
    const t = tmpdir();
    const root = path.join(t, 'pkg');
    const src = path.join(t, 'src');
    fs.mkdirSync(path.join(root, 'out/bin'), { recursive: true });
    fs.mkdirSync(path.join(root, 'out/lib'));
    fs.mkdirSync(path.join(root, 'out/share'));
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'x.service'), '[Unit]\n');
    fs.writeFileSync(path.join(src, 'README'), 'readme');
    fs.writeFileSync(path.join(root, 'out/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(root, 'out/bin/junk'), '');
    fs.writeFileSync(path.join(root, 'out/bin/old'), 'o');
    const lines: string[] = [];
    applyInstall({
      pkgRoot: root,
      install: {
        ...none,
        delete: ['bin/junk'],
        systemdUnit: ['${DISTRI_SOURCEDIR}/x.service'],
        file: [{ srcpath: 'README', destpath: 'share/doc/README' }],
        symlink: [{ oldname: 'tool', newname: 'bin/tool2' }],
        chmod: [{ setuid: true, name: 'bin/tool' }],
        emptyDir: ['var/empty'],
        // a rename after the symlink: distri's order
        rename: [{ oldname: 'bin/old', newname: 'libexec/new' }],
      },
      hostPath: (p) => p.replace('/usr/src/x', src),
      sourceDir: src,
      substitute: (s) => s.replace('${DISTRI_SOURCEDIR}', '/usr/src/x'),
      log: (l) => lines.push(l),
    });
    const out = path.join(root, 'out');
    assert.ok(!fs.existsSync(path.join(out, 'bin/junk')));
    assert.ok(!fs.existsSync(path.join(out, 'lib/systemd')) || fs.existsSync(path.join(out, 'lib/systemd/system/x.service')));
    assert.equal(fs.readFileSync(path.join(out, 'lib/systemd/system/x.service'), 'utf8'), '[Unit]\n');
    assert.equal(fs.readFileSync(path.join(out, 'share/doc/README'), 'utf8'), 'readme');
    assert.equal(fs.readlinkSync(path.join(out, 'bin/tool2')), 'tool');
    assert.equal(fs.statSync(path.join(out, 'bin/tool')).mode & 0o7777, 0o4755);
    assert.ok(fs.statSync(path.join(out, 'var/empty')).isDirectory());
    assert.equal(fs.readFileSync(path.join(out, 'libexec/new'), 'utf8'), 'o');
    assert.deepEqual(
      lines.map((l) => l.split(' ')[0]),
      ['deleting', 'installing', 'installing', 'symlinking', 'setting', 'creating', 'renaming'],
    );
    fs.rmSync(t, { recursive: true });
  });
  it('empty out/lib and out/share are removed, full ones kept', () => {
    const t = tmpdir();
    fs.mkdirSync(path.join(t, 'out/lib'), { recursive: true });
    fs.mkdirSync(path.join(t, 'out/share/x'), { recursive: true });
    applyInstall({ pkgRoot: t, install: none, hostPath: (p) => p, sourceDir: t, substitute: (s) => s, log: () => undefined });
    assert.ok(!fs.existsSync(path.join(t, 'out/lib')));
    assert.ok(fs.existsSync(path.join(t, 'out/share/x')));
    fs.rmSync(t, { recursive: true });
  });
  it('a path leaving out/ is refused', () => {
    const t = tmpdir();
    fs.mkdirSync(path.join(t, 'out'));
    assert.throws(
      () => applyInstall({ pkgRoot: t, install: { ...none, emptyDir: ['../../x'] }, hostPath: (p) => p, sourceDir: t, substitute: (s) => s, log: () => undefined }),
      /leaves the package's out\//,
    );
    fs.rmSync(t, { recursive: true });
  });
  it('capability: the security.capability bytes setcap(8) writes', { skip: skipUnless('capability vs setcap', 'setcap', 'getfattr') }, () => {
    const t = tmpdir();
    const out = path.join(t, 'out');
    fs.mkdirSync(out);
    const hex = (f: string) => /security\.capability=0x([0-9a-f]+)/.exec(spawnSync('getfattr', ['-e', 'hex', '-n', 'security.capability', f], { encoding: 'utf8' }).stdout)?.[1];
    for (const cap of ['cap_net_raw+ep', 'cap_net_admin+p', 'cap_net_bind_service,cap_sys_admin=eip', 'cap_bpf+ep']) {
      fs.writeFileSync(path.join(out, 'ours'), '');
      fs.writeFileSync(path.join(out, 'theirs'), '');
      applyInstall({ pkgRoot: t, install: { ...none, capability: [{ capability: cap, filename: 'ours' }] }, hostPath: (p) => p, sourceDir: t, substitute: (s) => s, log: () => undefined });
      const r = spawnSync('setcap', [cap, path.join(out, 'theirs')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(hex(path.join(out, 'ours')), hex(path.join(out, 'theirs')), cap);
    }
    // distri.md case 7: cap_net_admin, effective
    assert.equal(encodeCapability('cap_net_admin+ep').subarray(0, 7).toString('hex'), '01000002001000');
    assert.throws(() => encodeCapability('cap_nonsense+ep'), /not a Linux capability/);
    fs.rmSync(t, { recursive: true });
  });
});

describe('pkg-config Requires', () => {
  const cases: [string, string[]][] = [
    ['gdk cairo', ['gdk', 'cairo']],
    ['gdk  cairo\n atk', ['gdk', 'cairo', 'atk']],
    ['gdk-3.0 atk >= 2.15.1 cairo', ['gdk-3.0', 'atk', 'cairo']],
    ['gdk-3.0 atk >= 2.15.1 cairo,cairo-gobject', ['gdk-3.0', 'atk', 'cairo', 'cairo-gobject']],
    ['epoxy >= 1.4', ['epoxy']],
    ['glib-2.0>=2.50, gio-2.0 = 2.60 ,x11 != 1 ,y < 2, z <= 3, w > 4', ['glib-2.0', 'gio-2.0', 'x11', 'y', 'z', 'w']],
    ['', []],
  ];
  for (const [v, want] of cases) it(JSON.stringify(v), () => assert.deepEqual(pkgConfigRequires(v), want));
  it('a .pc file: Requires and Requires.private, variables expanded, continuation lines', () => {
    const pc = 'prefix=/ro/x\nglibver=glib-2.0\nName: x\nRequires: ${glibver} >= 2.0, \\\n  gobject-2.0\nRequires.private: epoxy >= 1.4\nLibs: -lx\n';
    assert.deepEqual(pcFileRequires(pc), ['glib-2.0', 'gobject-2.0', 'epoxy']);
  });
});

/** A store directory with real meta files (the catalog reads metas, never the images). */
function makeStore(pkgs: Record<string, string[]>): string {
  const dir = tmpdir();
  for (const [full, deps] of Object.entries(pkgs)) {
    fs.writeFileSync(path.join(dir, `${full}.squashfs`), '');
    fs.writeFileSync(path.join(dir, `${full}.meta.textproto`), formatMeta({ runtimeDep: deps, sourcePkg: full.split('-amd64-')[0]!, version: '', runtimeUnion: [], inputDigest: '' }));
  }
  return dir;
}

describe('deps and runtime deps', () => {
  const store = makeStore({
    'glibc-amd64-2.31-4': [],
    'glibc-amd64-2.31-5': [],
    'pkg-config-amd64-0.29.2-3': ['glibc-amd64-2.31-4'],
    'perl-amd64-5.30.2-5': ['glibc-amd64-2.31-5'],
    'libepoxy-amd64-1.5.4-2': ['glibc-amd64-2.31-5', 'libx11-amd64-1.6-1'],
    'libx11-amd64-1.6-1': ['glibc-amd64-2.31-5'],
    'gcc-amd64-9.1.0-2': ['glibc-amd64-2.31-5'],
    'gcc-amd64-10.1.0-1': ['glibc-amd64-2.31-5'],
  });
  const catalog = StoreCatalog.scan(store);
  after(() => fs.rmSync(store, { recursive: true, force: true }));
  it('newest revision by natural order; unknown names are errors naming the store', () => {
    assert.equal(catalog.resolve('glibc', 'x'), 'glibc-amd64-2.31-5');
    assert.equal(catalog.resolve('gcc-amd64', 'x'), 'gcc-amd64-9.1.0-2'); // revision decides
    assert.throws(() => catalog.resolve('nope', 'build dep'), /build dep "nope" is not in the store/);
  });
  it('the closure of a build dep set follows runtime deps', () => {
    const r = resolveBuildDeps(catalog, { kind: 'none' }, ['libepoxy']);
    assert.deepEqual(r.closure, ['libepoxy-amd64-1.5.4-2', 'glibc-amd64-2.31-5', 'libx11-amd64-1.6-1']);
  });
  it('case 11: runtime_dep pkg-config, a #!/ro/perl shebang and Requires.private: epoxy >= 1.4', () => {
    const root = tmpdir();
    fs.mkdirSync(path.join(root, 'out/bin'), { recursive: true });
    fs.mkdirSync(path.join(root, 'out/lib/pkgconfig'), { recursive: true });
    fs.writeFileSync(path.join(root, 'out/bin/script'), '#!/ro/perl-amd64-5.30.2-5/bin/perl\nprint 1;\n');
    fs.writeFileSync(path.join(root, 'out/bin/sh-script'), '#!/bin/sh\n');
    fs.writeFileSync(path.join(root, 'out/lib/pkgconfig/foo.pc'), 'Name: foo\nRequires: foo-private\nRequires.private: epoxy >= 1.4\n');
    fs.writeFileSync(path.join(root, 'out/lib/pkgconfig/foo-private.pc'), 'Name: foo-private\n');
    assert.deepEqual(shebangDeps(root), ['perl-amd64-5.30.2-5']);
    const logs: string[] = [];
    const r = collectRuntimeDeps({
      fullName: 'foo-amd64-1-1',
      pkgRoot: root,
      elfPkgs: ['glibc-amd64-2.31-5', 'foo-amd64-1-1'],
      pcProvider: (m) => (m === 'epoxy' ? 'libepoxy-amd64-1.5.4-2' : undefined),
      declared: [catalog.resolve('pkg-config', 'runtime dep')],
      closure: (roots) => catalog.closure(roots),
      log: (l) => logs.push(l),
    });
    assert.deepEqual(r.direct, ['glibc-amd64-2.31-5', 'libepoxy-amd64-1.5.4-2', 'perl-amd64-5.30.2-5', 'pkg-config-amd64-0.29.2-3']);
    // pkg-config's own runtime dep (the older glibc) and epoxy's libx11 come with the closure
    assert.deepEqual(r.closure, ['glibc-amd64-2.31-4', 'glibc-amd64-2.31-5', 'libepoxy-amd64-1.5.4-2', 'libx11-amd64-1.6-1', 'perl-amd64-5.30.2-5', 'pkg-config-amd64-0.29.2-3']);
    fs.rmSync(root, { recursive: true });
  });
});

describe('split packages', () => {
  it('claimed files move, a relative symlink stays, the dirs are siblings', () => {
    const t = tmpdir();
    const root = path.join(t, 'foo-amd64-1-1');
    fs.mkdirSync(path.join(root, 'out/lib'), { recursive: true });
    fs.mkdirSync(path.join(root, 'out/bin'), { recursive: true });
    fs.writeFileSync(path.join(root, 'out/lib/libfoo.so.1'), 'lib');
    fs.symlinkSync('libfoo.so.1', path.join(root, 'out/lib/libfoo.so'));
    fs.writeFileSync(path.join(root, 'out/lib/other.a'), 'a');
    fs.writeFileSync(path.join(root, 'out/bin/foo'), 'bin');
    assert.deepEqual(globPaths(root, 'out/lib/libfoo.so*'), ['out/lib/libfoo.so', 'out/lib/libfoo.so.1']);
    const r = splitPackages({
      pkgRoot: root,
      version: '1-1',
      arch: 'amd64',
      log: () => undefined,
      splits: [
        {
          name: 'foo-libs',
          claim: [
            { glob: 'out/lib/libfoo.so*', dir: '' },
            { glob: 'out/bin/foo', dir: 'out/libexec' },
          ],
          runtimeDep: [],
        },
      ],
    });
    assert.equal(r[0]!.fullName, 'foo-libs-amd64-1-1');
    assert.deepEqual(r[0]!.moved, ['out/lib/libfoo.so', 'out/lib/libfoo.so.1', 'out/bin/foo']);
    assert.equal(fs.readlinkSync(path.join(root, 'out/lib/libfoo.so.1')), '../../../foo-libs-amd64-1-1/out/lib/libfoo.so.1');
    assert.equal(fs.readFileSync(path.join(root, 'out/lib/libfoo.so.1'), 'utf8'), 'lib'); // resolves through the sibling
    assert.equal(fs.readFileSync(path.join(t, 'foo-libs-amd64-1-1/out/libexec/foo'), 'utf8'), 'bin');
    assert.equal(fs.readFileSync(path.join(root, 'out/lib/other.a'), 'utf8'), 'a');
    fs.rmSync(t, { recursive: true });
  });
});

describe('wrappers', () => {
  it('custom wrappers win; bash gets symlinks; out/bin wins a clash with out/sbin', () => {
    const t = tmpdir();
    const root = path.join(t, 'root');
    const pkgDir = path.join(t, 'pkgdir');
    fs.mkdirSync(path.join(root, 'out/bin'), { recursive: true });
    fs.mkdirSync(path.join(root, 'out/sbin'), { recursive: true });
    fs.mkdirSync(path.join(pkgDir, 'wrappers'), { recursive: true });
    for (const n of ['bash', 'sh', 'a', 'b']) fs.writeFileSync(path.join(root, 'out/bin', n), '');
    fs.writeFileSync(path.join(root, 'out/sbin/a'), '');
    fs.writeFileSync(path.join(pkgDir, 'wrappers/b'), 'exec ${DISTRI_PREFIX}/bin/b');
    const plans = planWrappers({ pkgRoot: root, pkg: 'bash', fullName: 'bash-amd64-5-1', pkgDir, substitute: (s) => s.replace('${DISTRI_PREFIX}', '/ro/bash-amd64-5-1/out'), log: () => undefined });
    assert.deepEqual(plans, [
      { name: 'a', kind: 'program', real: '/ro/bash-amd64-5-1/out/bin/a' },
      { name: 'b', kind: 'custom', text: 'exec /ro/bash-amd64-5-1/out/bin/b' },
      { name: 'bash', kind: 'symlink', target: '../out/bin/bash' },
      { name: 'sh', kind: 'symlink', target: '../out/bin/sh' },
    ]);
    fs.rmSync(t, { recursive: true });
  });
});

describe('input digest and the log', () => {
  const base = { recipe: Buffer.from('source: "empty://"\n'), buildDeps: ['glibc-amd64-2.31-5'], patches: [Buffer.from('p1')] };
  it('changes with the recipe, the resolved deps and the patches; not otherwise', () => {
    const d = inputDigest(base);
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.equal(inputDigest({ ...base }), d);
    assert.notEqual(inputDigest({ ...base, recipe: Buffer.from('source: "empty://" ') }), d);
    assert.notEqual(inputDigest({ ...base, buildDeps: ['glibc-amd64-2.31-4'] }), d);
    assert.notEqual(inputDigest({ ...base, patches: [Buffer.from('p2')] }), d);
    // parts cannot run together: one patch "ab" is not two patches "a", "b"
    assert.notEqual(inputDigest({ ...base, patches: [Buffer.from('ab')] }), inputDigest({ ...base, patches: [Buffer.from('a'), Buffer.from('b')] }));
  });
  it('durations as Go prints them; runtime deps as %q', () => {
    assert.equal(formatDuration(151500), '2m31.5s');
    assert.equal(formatDuration(18100), '18.1s');
    assert.equal(formatDuration(3723000), '1h2m3s');
    assert.equal(formatDuration(512), '512ms');
    assert.equal(goQuotedList(['file-amd64-5.34-3', 'glibc-amd64-2.27-3']), '["file-amd64-5.34-3" "glibc-amd64-2.27-3"]');
  });
  it('durations read back from the log (the build benchmark does)', () => {
    for (const ms of [512, 18100, 151500, 3723000, 60000, 3600000]) assert.equal(parseDuration(formatDuration(ms)), ms);
    for (const bad of ['', 's', '1x', '1m2', 'ms', '1.5']) assert.equal(parseDuration(bad), undefined, bad);
  });
});
