// The pure store logic: package names, "newest", meta.textproto, exchange directories, gc and
// scaffold guesses. Cases named "case N" are the numbered cases of docs/distri.md.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { SquashfsError } from '../src/errors';
import { formatPackageName, isBareName, parsePackageName, pkgArch, type PackageName } from '../src/store/package-name';
import { comparePackageVersions, compareUpstream, newest, newestByPackage } from '../src/store/version';
import { formatMeta, parseMeta, type Meta } from '../src/store/meta';
import { parseTextProto } from '../src/store/textproto';
import { buildExchangeTree, exchangePath, EXCHANGE_ROOTS, type ExchangePackage, type ExchangeTree, type ImageEntry } from '../src/store/exchange';
import { planGc } from '../src/store/gc';
import { guessFromUrl } from '../src/store/scaffold';

function name(s: string): PackageName {
  const n = parsePackageName(s);
  assert.ok(n, `${s} should parse`);
  return n;
}

describe('package names (case 1)', () => {
  const table: [string, string, string, string, number][] = [
    // input, pkg, arch, upstream, rev
    ['glibc-amd64-2.31-4', 'glibc', 'amd64', '2.31', 4],
    ['less-amd64-530', 'less', 'amd64', '530', 0],
    ['bash-amd64', 'bash', 'amd64', '', 0],
    ['gcc-i686-amd64-8.2.0-3', 'gcc-i686', 'amd64', '8.2.0', 3],
    ['less-amd64-530-17.squashfs.gz', 'less', 'amd64', '530', 17],
    ['../libxslt-amd64-1.1.32-1/bin/xslt-config', 'libxslt', 'amd64', '1.1.32', 1],
    ['#!/ro/perl-amd64-5.30.2-5/bin/perl', 'perl', 'amd64', '5.30.2', 5],
    ['foo-amd64-1.2.3-08', 'foo', 'amd64', '1.2.3-08', 0],
    // suffixes and the other architectures
    ['less-amd64-530-2.squashfs', 'less', 'amd64', '530', 2],
    ['/roimg/glibc-amd64-2.31-4.meta.textproto', 'glibc', 'amd64', '2.31', 4],
    ['build/nano-amd64-4.3-1.log', 'nano', 'amd64', '4.3', 1],
    ['zlib-i686-1.2.11-3', 'zlib', 'i686', '1.2.11', 3],
    ['zlib-arm64-1.2.11-3', 'zlib', 'arm64', '1.2.11', 3],
    ['/ro/bash-amd64/bin/bash', 'bash', 'amd64', '', 0],
    // a bare `-0` is not a revision; a version of one part has no revision
    ['foo-amd64-1.2-0', 'foo', 'amd64', '1.2-0', 0],
    ['foo-amd64-5', 'foo', 'amd64', '5', 0],
    ['go-amd64-1.14-rc1-12', 'go', 'amd64', '1.14-rc1', 12],
    ['#!/ro/perl-amd64-5.30.2-5/bin/perl -w', 'perl', 'amd64', '5.30.2', 5],
  ];
  for (const [input, pkg, arch, upstream, rev] of table) {
    it(`${input} → ${pkg}/${arch}/${JSON.stringify(upstream)}/${rev}`, () => {
      const n = name(input);
      assert.deepEqual([n.pkg, n.arch, n.upstream, n.rev], [pkg, arch, upstream, rev]);
    });
  }

  it('full is the name without file suffixes', () => {
    assert.equal(name('less-amd64-530-17.squashfs.gz').full, 'less-amd64-530-17');
    assert.equal(name('../libxslt-amd64-1.1.32-1/bin/xslt-config').full, 'libxslt-amd64-1.1.32-1');
    assert.equal(name('bash-amd64').full, 'bash-amd64');
  });

  it('a transport suffix is only stripped after a store-file suffix', () => {
    assert.equal(name('foo-amd64-1.0.gz').upstream, '1.0.gz');
  });

  for (const bad of ['README', '', 'amd64-1-2', '-amd64-1', 'foo-x86-1-2', 'bin/less', 'foo-amd64x-1', 'bash-amd64-']) {
    it(`${JSON.stringify(bad)} is not a package name`, () => assert.equal(parsePackageName(bad), null));
  }

  it('pkgArch and formatPackageName', () => {
    const n = name('glibc-amd64-2.31-4');
    assert.equal(pkgArch(n), 'glibc-amd64');
    assert.equal(formatPackageName(n), 'glibc-amd64-2.31-4');
    assert.equal(formatPackageName(name('less-amd64-530')), 'less-amd64-530');
    assert.equal(formatPackageName(name('bash-amd64')), 'bash-amd64');
    assert.equal(isBareName(name('bash-amd64')), true);
    assert.equal(isBareName(name('less-amd64-530')), false);
  });

  it('a versioned component wins over an earlier bare one', () => {
    assert.equal(name('/ro/bash-amd64/../bash-amd64-5.0-4/bin/bash').full, 'bash-amd64-5.0-4');
  });

  it('property: a formatted name parses back (revisioned names)', () => {
    const part = fc.stringMatching(/^[a-z0-9][a-z0-9+._]{0,8}$/);
    fc.assert(
      fc.property(
        fc.array(part, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('amd64', 'i686', 'arm64' as const),
        fc.array(part, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (pkgParts, arch, upParts, rev) => {
          const pkg = pkgParts.join('-');
          const upstream = upParts.join('-');
          const full = formatPackageName({ pkg, arch, upstream, rev });
          assert.deepEqual(parsePackageName(full), { pkg, arch, upstream, rev, full });
          assert.deepEqual(parsePackageName(`/roimg/${full}.squashfs`), { pkg, arch, upstream, rev, full });
        },
      ),
    );
  });
});

describe('version order', () => {
  it('natural upstream compare', () => {
    const ascending = ['1.0~rc1', '1.0-beta2', '1.0rc1', '1.0', '1.0a', '1.0.1', '1.2', '1.9', '1.10', '7', '99', '100'];
    for (let i = 0; i + 1 < ascending.length; i++) {
      assert.equal(compareUpstream(ascending[i]!, ascending[i + 1]!), -1, `${ascending[i]} < ${ascending[i + 1]}`);
      assert.equal(compareUpstream(ascending[i + 1]!, ascending[i]!), 1, `${ascending[i + 1]} > ${ascending[i]}`);
    }
    const shuffled = [...ascending].reverse();
    assert.deepEqual(shuffled.sort(compareUpstream), ascending);
  });

  it('long digit runs compare numerically beyond 2^53', () => {
    assert.equal(compareUpstream('123456789012345678901', '99999999999999999999'), 1);
  });

  it('99-1 < 100-2 (fix: not plain string order)', () => {
    assert.equal(comparePackageVersions(name('foo-amd64-99-1'), name('foo-amd64-100-2')), -1);
    assert.equal(newest([name('foo-amd64-100-2'), name('foo-amd64-99-1')])!.full, 'foo-amd64-100-2');
  });

  it('rev 0 names: ordered by upstream naturally', () => {
    assert.equal(newest([name('foo-amd64-99'), name('foo-amd64-100'), name('foo-amd64-1.9')])!.full, 'foo-amd64-100');
    assert.equal(newest([name('foo-amd64-1.10'), name('foo-amd64-1.9')])!.full, 'foo-amd64-1.10');
  });

  it('rev wins over upstream', () => {
    assert.equal(newest([name('foo-amd64-2.0-3'), name('foo-amd64-1.0-5')])!.full, 'foo-amd64-1.0-5');
    assert.equal(newest([name('less-amd64-530-2'), name('less-amd64-999')])!.full, 'less-amd64-530-2');
  });

  it('ties on rev go to the higher upstream', () => {
    assert.equal(newest([name('foo-amd64-1.10-4'), name('foo-amd64-1.9-4')])!.full, 'foo-amd64-1.10-4');
  });

  it('newest of nothing is undefined; newestByPackage groups by pkg-arch', () => {
    assert.equal(newest([]), undefined);
    const m = newestByPackage(['less-amd64-530', 'less-amd64-530-2', 'less-i686-530-1', 'bash-amd64-5.0-3'].map(name));
    assert.deepEqual([...m].map(([k, v]) => [k, v.full]).sort(), [
      ['bash-amd64', 'bash-amd64-5.0-3'],
      ['less-amd64', 'less-amd64-530-2'],
      ['less-i686', 'less-i686-530-1'],
    ]);
  });

  const version = fc.stringMatching(/^[0-9a-zA-Z.~+_-]{0,10}$/);
  it('property: compareUpstream is a total order (antisymmetric, transitive, 0 only for equal)', () => {
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        const ab = compareUpstream(a, b);
        assert.equal(ab, -compareUpstream(b, a) || 0);
        assert.equal(ab === 0, a === b);
        if (ab <= 0 && compareUpstream(b, c) <= 0) assert.ok(compareUpstream(a, c) <= 0, `${a} ≤ ${b} ≤ ${c}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('property: sorting is independent of the input order', () => {
    fc.assert(
      fc.property(fc.array(version, { maxLength: 12 }), (vs) => {
        const a = [...vs].sort(compareUpstream);
        const b = [...vs].reverse().sort(compareUpstream);
        assert.deepEqual(a, b);
      }),
    );
  });

  it('property: comparePackageVersions is antisymmetric and rev dominates', () => {
    const pkgName = fc
      .tuple(
        version.filter((v) => v !== '' && !/-[1-9][0-9]*$/.test(v)),
        fc.integer({ min: 0, max: 50 }),
      )
      .map(([up, rev]) => name(formatPackageName({ pkg: 'p', arch: 'amd64', upstream: up, rev })));
    fc.assert(
      fc.property(pkgName, pkgName, (a, b) => {
        const ab = comparePackageVersions(a, b);
        assert.equal(ab, -comparePackageVersions(b, a) || 0);
        if (a.rev !== b.rev) assert.equal(ab, a.rev < b.rev ? -1 : 1);
      }),
    );
  });
});

function assertCorrupt(fn: () => unknown, position: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SquashfsError, `want SquashfsError, got ${String(e)}`);
    assert.equal(e.code, 'CORRUPT');
    assert.equal(e.structure, 'meta.textproto');
    assert.ok(e.message.startsWith(position + ': '), `message ${JSON.stringify(e.message)} should start with ${position}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

describe('meta.textproto', () => {
  it('reads the fields that matter, in distri’s layout', () => {
    const m = parseMeta(
      [
        'runtime_dep: "glibc-amd64-2.31-4"      # the closure',
        'runtime_dep: "ncurses-amd64-6.1-5"',
        'source_pkg: "bash"',
        'version: "5.0-4"',
        'runtime_union: < dir: "lib/irssi/modules" pkg: "irssi-amd64-1.1.1-3" >',
        'input_digest: "00ff"',
        '',
      ].join('\n'),
    );
    assert.deepEqual(m, {
      runtimeDep: ['glibc-amd64-2.31-4', 'ncurses-amd64-6.1-5'],
      sourcePkg: 'bash',
      version: '5.0-4',
      runtimeUnion: [{ dir: 'lib/irssi/modules', pkg: 'irssi-amd64-1.1.1-3' }],
      inputDigest: '00ff',
    });
  });

  it('empty document: defaults', () => {
    assert.deepEqual(parseMeta('# nothing\n'), { runtimeDep: [], sourcePkg: '', version: '', runtimeUnion: [], inputDigest: '' });
  });

  it('runtime_union in every message form; lists; separators; single quotes', () => {
    const m = parseMeta(`
      runtime_union { dir: 'a' pkg: "p-amd64-1-1" }
      runtime_union: { dir: "b", pkg: "q-amd64-1-1"; };
      runtime_union < pkg: "r-amd64-1-1" >
      runtime_union: [ { dir: "d" }, < dir: "e" > ]
      runtime_dep: ["x-amd64-1-1", 'y-amd64-1-1'],
      runtime_dep: []
    `);
    assert.deepEqual(m.runtimeUnion, [
      { dir: 'a', pkg: 'p-amd64-1-1' },
      { dir: 'b', pkg: 'q-amd64-1-1' },
      { dir: '', pkg: 'r-amd64-1-1' },
      { dir: 'd', pkg: '' },
      { dir: 'e', pkg: '' },
    ]);
    assert.deepEqual(m.runtimeDep, ['x-amd64-1-1', 'y-amd64-1-1']);
  });

  it('ignores unknown fields: scalars, nested messages in both forms, repeated, extensions', () => {
    const m = parseMeta(`
      unknown_int: -42
      unknown_float: 1.5e-3f
      unknown_hex: 0x1F
      unknown_enum: FOO_BAR
      unknown_bool: true
      unknown_inf: -inf
      unknown_str: "x" 'y'
      unknown_list: [1, 2, 3]
      unknown_msg { a: 1 inner < b: "}" c { } > }
      unknown_msg: < d: [ { e: 1 }, { e: 2 } ] >
      [some.extension]: 5
      [type.googleapis.com/pkg.Any] { x: 1 }
      runtime_union: < dir: "lib" pkg: "p-amd64-1-1" extra { deep { deeper: "z" } } >
      version: "1-1"
    `);
    assert.equal(m.version, '1-1');
    assert.deepEqual(m.runtimeUnion, [{ dir: 'lib', pkg: 'p-amd64-1-1' }]);
  });

  it('string escapes', () => {
    const m = parseMeta(String.raw`source_pkg: "q\"b\\s\n\t\101\x41\x4a\'\?\u00e9\U0001F600" version: 'it\'s' input_digest: "caf\303\251"`);
    assert.equal(m.sourcePkg, 'q"b\\s\n\tAAJ\'?é😀');
    assert.equal(m.version, "it's");
    assert.equal(m.inputDigest, 'café');
  });

  it('adjacent strings concatenate; non-ASCII passes through', () => {
    assert.equal(parseMeta('source_pkg: "a" "b"\n  \'c\'').sourcePkg, 'abc');
    assert.equal(parseMeta('source_pkg: "ünïcødé 😀"').sourcePkg, 'ünïcødé 😀');
  });

  it('comments anywhere, including inside messages; # inside strings is text', () => {
    const m = parseMeta('# head\nruntime_union < # c\n dir: "a#b" # c\n pkg: "p" > # tail');
    assert.deepEqual(m.runtimeUnion, [{ dir: 'a#b', pkg: 'p' }]);
  });

  describe('malformed input → CORRUPT with line:column', () => {
    const cases: [string, string, string, RegExp?][] = [
      ['unterminated string', 'version: "5.0', '1:10', /unterminated/],
      ['newline in string', 'source_pkg: "a\nb"', '1:13', /unterminated/],
      ['missing value', 'version:', '1:9', /expected a value/],
      ['missing colon before scalar', 'version "1"', '1:9', /expected ":"/],
      ['unclosed message', 'runtime_union < dir: "a"', '1:25', /close the message/],
      ['mismatched close', 'runtime_union { dir: "a" >', '1:26', /field name/],
      ['stray close', '\n\n  }', '3:3', /field name/],
      ['bad character', 'version: "1"\n  @', '2:3', /unexpected character/],
      ['unknown escape', 'version: "a\\qb"', '1:12', /unknown escape \\q/],
      ['octal above 255', 'version: "\\777"', '1:11', /\\377/],
      ['invalid UTF-8 from escapes', 'version: "\\xff"', '1:10', /UTF-8/],
      ['surrogate escape', 'version: "\\ud800"', '1:11', /Unicode/],
      ['string for a message field', 'runtime_union: "x"', '1:1', /runtime_union/],
      ['number for a string field', '\n  version: 5', '2:3', /wants a string/],
      ['message for a string field', 'runtime_dep { }', '1:1', /wants a string/],
      ['singular field twice', 'version: "1"\nversion: "2"', '2:1', /given twice/],
      ['singular field twice inside runtime_union', 'runtime_union < dir: "a" dir: "b" >', '1:26', /given twice/],
      ['list without comma', 'runtime_dep: ["a" "b" 5]', '1:23', /expected ","/],
      ['unknown field with broken nesting', 'foo { bar < }', '1:13', /field name/],
    ];
    for (const [what, text, pos, pattern] of cases) it(what, () => assertCorrupt(() => parseMeta(text), pos, pattern));
  });

  it('parseTextProto keeps field positions', () => {
    const fields = parseTextProto('a: 1\n  b { c: "x" }', 'build.textproto');
    assert.deepEqual(
      fields.map((f) => [f.name, f.line, f.column]),
      [
        ['a', 1, 1],
        ['b', 2, 3],
      ],
    );
  });

  it('formatMeta writes distri’s layout', () => {
    const text = formatMeta({
      runtimeDep: ['glibc-amd64-2.31-4'],
      sourcePkg: 'bash',
      version: '5.0-4',
      runtimeUnion: [{ dir: 'lib/irssi/modules', pkg: 'irssi-amd64-1.1.1-3' }],
      inputDigest: 'ab',
    });
    assert.equal(text, 'runtime_dep: "glibc-amd64-2.31-4"\nsource_pkg: "bash"\nversion: "5.0-4"\n' + 'runtime_union: < dir: "lib/irssi/modules" pkg: "irssi-amd64-1.1.1-3" >\ninput_digest: "ab"\n');
  });

  it('property: parseMeta(formatMeta(m)) equals m', () => {
    const str = fc.string({ unit: 'binary', maxLength: 12 });
    const meta: fc.Arbitrary<Meta> = fc.record({
      runtimeDep: fc.array(str, { maxLength: 4 }),
      sourcePkg: str,
      version: str,
      runtimeUnion: fc.array(fc.record({ dir: str, pkg: str }), { maxLength: 3 }),
      inputDigest: str,
    });
    // fast-check records have a null prototype; compare plain copies.
    const plain = (m: Meta): Meta => ({ ...m, runtimeUnion: m.runtimeUnion.map((u) => ({ ...u })) });
    fc.assert(
      fc.property(meta, (m) => assert.deepEqual(parseMeta(formatMeta(m)), plain(m))),
      { numRuns: 500 },
    );
  });

  it('property: arbitrary text either parses or throws CORRUPT (never another error)', () => {
    const alphabet = fc.constantFrom(...'ab_: "\'\\{}<>[],;#\n-.x0127/'.split(''));
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 40 }).map((cs) => cs.join('')),
        (text) => {
          try {
            parseMeta(text);
          } catch (e) {
            assert.ok(e instanceof SquashfsError && e.code === 'CORRUPT' && /^\d+:\d+: /.test(e.message), String(e));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

/** A package for the exchange tests: files (`other`) and dirs given by image path. */
function pkg(full: string, files: string[], dirs: string[] = []): ExchangePackage {
  const entries: ImageEntry[] = [...dirs.map((path) => ({ path, type: 'dir' as const })), ...files.map((path) => ({ path, type: 'other' as const }))];
  return { name: name(full), entries };
}

function readlink(tree: ExchangeTree, path: string): string | undefined {
  const node = tree.lookup(path);
  return node?.kind === 'link' ? node.target : undefined;
}

describe('exchange directories', () => {
  it('image path → virtual path', () => {
    const table: [string, string | null][] = [
      ['bin/less', 'bin/less'],
      ['out/lib/libz.so.1', 'lib/libz.so.1'],
      ['out/lib64/x', 'lib64/x'],
      ['out/include/zlib.h', 'include/zlib.h'],
      ['out/share/man/man1', 'share/man/man1'],
      ['out/gopath/src/x', 'gopath/src/x'],
      ['debug/x', 'debug/x'],
      ['out/lib/gio/modules/m.so', 'lib/gio/modules/m.so'],
      ['out/bin/less', null],
      ['lib/libz.so.1', null],
      ['etc/less', null],
      ['out/libexec/x', null],
      ['binary', null],
      ['out/library/x', null],
    ];
    for (const [image, virtual] of table) assert.equal(exchangePath(image), virtual, image);
  });

  it('case 2: the newest revision owns the link; older revisions stay', () => {
    const tree = buildExchangeTree([pkg('less-amd64-530', ['bin/less']), pkg('less-amd64-530-2', ['bin/less'])]);
    assert.equal(readlink(tree, 'bin/less'), '../less-amd64-530-2/bin/less');
    assert.equal(readlink(tree, '/bin/less'), '../less-amd64-530-2/bin/less');
  });

  it('case 3: add a newer revision → link moves; remove it → falls back; another package adds its own', () => {
    const less530 = pkg('less-amd64-530', ['bin/less']);
    const less2 = pkg('less-amd64-530-2', ['bin/less']);
    const less3 = pkg('less-amd64-530-3', ['bin/less']);
    const bash = pkg('bash-amd64-1', ['bin/bash']);
    assert.equal(readlink(buildExchangeTree([less530, less2, less3]), 'bin/less'), '../less-amd64-530-3/bin/less');
    assert.equal(readlink(buildExchangeTree([less530, less2]), 'bin/less'), '../less-amd64-530-2/bin/less');
    const withBash = buildExchangeTree([less530, less2, bash]);
    assert.equal(readlink(withBash, 'bin/bash'), '../bash-amd64-1/bin/bash');
    assert.equal(readlink(withBash, 'bin/less'), '../less-amd64-530-2/bin/less');
  });

  it('different packages: the first in sorted store order keeps the name, whatever the input order', () => {
    const a = pkg('busybox-amd64-1.31-2', ['bin/less']);
    const b = pkg('less-amd64-530-9', ['bin/less']);
    assert.equal(readlink(buildExchangeTree([a, b]), 'bin/less'), '../busybox-amd64-1.31-2/bin/less');
    assert.equal(readlink(buildExchangeTree([b, a]), 'bin/less'), '../busybox-amd64-1.31-2/bin/less');
  });

  it('the same package for another arch is a different package', () => {
    const tree = buildExchangeTree([pkg('less-i686-530-9', ['bin/less']), pkg('less-amd64-530-1', ['bin/less'])]);
    assert.equal(readlink(tree, 'bin/less'), '../less-amd64-530-1/bin/less');
  });

  it('per name: a file only an older revision has stays linked to it', () => {
    const tree = buildExchangeTree([pkg('less-amd64-530-1', ['bin/less', 'bin/lesspipe']), pkg('less-amd64-530-2', ['bin/less'])]);
    assert.equal(readlink(tree, 'bin/less'), '../less-amd64-530-2/bin/less');
    assert.equal(readlink(tree, 'bin/lesspipe'), '../less-amd64-530-1/bin/lesspipe');
  });

  it('the newest revision is chosen naturally (rev, then upstream)', () => {
    const tree = buildExchangeTree([pkg('foo-amd64-99-1', ['bin/foo']), pkg('foo-amd64-100-2', ['bin/foo']), pkg('foo-amd64-100', ['bin/foo'])]);
    assert.equal(readlink(tree, 'bin/foo'), '../foo-amd64-100-2/bin/foo');
  });

  it('case 4: nested directories get ../ per level', () => {
    const tree = buildExchangeTree([pkg('bash-amd64-1', ['out/lib/pkgconfig/x.pc', 'out/share/man/man1/bash.1'], ['out/lib/pkgconfig'])]);
    assert.equal(readlink(tree, 'lib/pkgconfig/x.pc'), '../../bash-amd64-1/out/lib/pkgconfig/x.pc');
    assert.equal(readlink(tree, 'share/man/man1/bash.1'), '../../../bash-amd64-1/out/share/man/man1/bash.1');
    assert.equal(tree.lookup('lib/pkgconfig')?.kind, 'dir');
    assert.equal(tree.lookup('share/man')?.kind, 'dir', 'parents exist even when only a file was listed');
  });

  it('a directory is never shadowed by a file, in either order', () => {
    const file = pkg('aaa-amd64-1-1', ['out/lib/python3', 'out/share/aclocal']);
    const dir = pkg('zzz-amd64-1-1', ['out/lib/python3/site.py'], ['out/lib/python3']);
    for (const order of [
      [file, dir],
      [dir, file],
    ]) {
      const tree = buildExchangeTree(order);
      assert.equal(tree.lookup('lib/python3')?.kind, 'dir');
      assert.equal(readlink(tree, 'lib/python3/site.py'), '../../zzz-amd64-1-1/out/lib/python3/site.py');
      assert.equal(tree.lookup('share/aclocal')?.kind, 'dir', 'a nested exchange dir stays a dir');
    }
  });

  it('the exchange directories exist in an empty store', () => {
    const tree = buildExchangeTree([]);
    for (const root of EXCHANGE_ROOTS) assert.equal(tree.lookup(root)?.kind, 'dir', root);
    assert.deepEqual([...tree.root.children.keys()], ['bin', 'lib', 'lib64', 'include', 'share', 'gopath', 'debug']);
    assert.equal(tree.lookup('share/glib-2.0/schemas')?.kind, 'dir');
  });

  it('ignores entries outside exchange dirs, bad components, and a file in place of an exchange dir', () => {
    const tree = buildExchangeTree([pkg('x-amd64-1-1', ['out/bin/x', 'etc/x.conf', 'debug', 'bin/../x', 'bin//y', 'out/lib/./z'])]);
    assert.equal(tree.lookup('debug')?.kind, 'dir');
    for (const c of ['bin', 'lib']) {
      const node = tree.lookup(c);
      assert.ok(node?.kind === 'dir' && node.children.size === (c === 'lib' ? 2 : 0), c); // lib: gio, girepository-1.0
    }
  });

  it('lookup of missing paths and through links', () => {
    const tree = buildExchangeTree([pkg('less-amd64-530-2', ['bin/less'])]);
    assert.equal(tree.lookup('bin/nope'), undefined);
    assert.equal(tree.lookup('bin/less/x'), undefined);
    assert.equal(tree.lookup('nope/x'), undefined);
    assert.equal(tree.lookup(''), tree.root);
  });

  it('property: the outcome is independent of input order and entry order', () => {
    const names = ['a-amd64-1-1', 'a-amd64-1-2', 'a-amd64-2', 'b-amd64-1-1', 'b-i686-1-3', 'c-amd64-3-1'];
    const paths = ['bin/x', 'bin/y', 'out/lib/x', 'out/lib/x/y', 'out/share/a/b', 'out/share/a'];
    const entry = fc.record({ path: fc.constantFrom(...paths), type: fc.constantFrom('dir' as const, 'other' as const) });
    const store = fc
      .uniqueArray(fc.constantFrom(...names), { minLength: 1 })
      .chain((ns) => fc.tuple(...ns.map((n) => fc.array(entry, { maxLength: 5 }).map((entries) => ({ name: name(n), entries })))));
    const dump = (t: ExchangeTree): unknown => {
      const walk = (node: ReturnType<ExchangeTree['lookup']>): unknown =>
        node?.kind === 'link' ? node.target : Object.fromEntries([...node!.children].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, walk(v)]));
      return walk(t.root);
    };
    fc.assert(
      fc.property(store, (pkgs) => {
        const reversed = [...pkgs].reverse().map((p) => ({ ...p, entries: [...p.entries].reverse() }));
        assert.deepEqual(dump(buildExchangeTree(reversed)), dump(buildExchangeTree(pkgs)));
      }),
    );
  });

  it('1,000 packages × 200 entries: a rescan rebuilds in well under 100 ms', () => {
    const store = (): ExchangePackage[] => {
      const packages: ExchangePackage[] = [];
      for (let p = 0; p < 1000; p++) {
        // Every 10th package is an older revision of the one before it, shipping the same names.
        const base = p % 10 === 1 ? p - 1 : p;
        const entries: ImageEntry[] = [
          { path: 'out/lib/pkgconfig', type: 'dir' },
          { path: `out/share/doc/pkg${base}`, type: 'dir' },
        ];
        for (let i = 0; i < 198; i++) {
          const kind = i % 4;
          const path = kind === 0 ? `bin/prog${base}-${i}` : kind === 1 ? `out/lib/libp${base}-${i}.so` : kind === 2 ? `out/share/doc/pkg${base}/f${i}` : `out/lib/pkgconfig/p${i % 50}.pc`;
          entries.push({ path, type: 'other' });
        }
        const full = base === p ? `pkg${p}-amd64-1.${p}-${p + 2}` : `pkg${base}-amd64-1.${base}-${base + 1}`;
        packages.push({ name: name(full), entries });
      }
      return packages;
    };
    const ms = (f: () => void): number => {
      const t0 = process.hrtime.bigint();
      f();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const resolveAll = (dir: ExchangeTree['root']): number => {
      let n = 0;
      for (const child of dir.children.values()) n += child.kind === 'dir' ? 1 + resolveAll(child) : 1;
      return n;
    };

    const packages = store();
    let tree = buildExchangeTree([]);
    const cold = ms(() => (tree = buildExchangeTree(packages)));
    const rebuild: number[] = [];
    const walk: number[] = [];
    let nodes = 0;
    for (let i = 0; i < 5; i++) {
      rebuild.push(ms(() => (tree = buildExchangeTree(packages))));
      walk.push(ms(() => (nodes = resolveAll(tree.root))));
    }
    console.log(
      `# exchange, 1,000 packages × 200 entries: first build ${cold.toFixed(1)} ms (groups every entry once), ` +
        `rescan median ${median(rebuild).toFixed(1)} ms, resolving all ${nodes} nodes median ${median(walk).toFixed(1)} ms`,
    );
    // The times are printed, not asserted (no clocks in tests: a shared CI machine's load is not
    // the code's fault). Resolving every directory is what a `find /ro/lib` after a rescan costs.
    assert.ok(nodes > 1000, `resolved ${nodes} nodes`);
    // Sanity: pkgconfig names are shared; the first package in store order owns p3.pc, and the
    // older revision pkg0-…-1 lost its names to pkg0-…-2.
    assert.equal(readlink(tree, 'lib/pkgconfig/p3.pc'), '../../pkg0-amd64-1.0-2/out/lib/pkgconfig/p3.pc');
    assert.equal(readlink(tree, 'bin/prog0-0'), '../pkg0-amd64-1.0-2/bin/prog0-0');
  });
});

describe('gc', () => {
  const store = (...entries: [string, string[]?][]) => entries.map(([full, deps]) => ({ name: name(full), runtimeDep: deps ?? [] }));
  const fulls = (ns: readonly PackageName[]) => ns.map((n) => n.full);

  it('case 10: only the newest revision stays', () => {
    const plan = planGc(store(['strace-amd64-5.1-4'], ['strace-amd64-5.1-5']));
    assert.deepEqual(fulls(plan.keep), ['strace-amd64-5.1-5']);
    assert.deepEqual(fulls(plan.remove), ['strace-amd64-5.1-4']);
  });

  it('case 10: a runtime dep of a kept package keeps the older revision', () => {
    const plan = planGc(store(['strace-amd64-5.1-4'], ['strace-amd64-5.1-5'], ['i3status-amd64-2.13-3', ['strace-amd64-5.1-4']]));
    assert.deepEqual(fulls(plan.keep), ['i3status-amd64-2.13-3', 'strace-amd64-5.1-4', 'strace-amd64-5.1-5']);
    assert.deepEqual(fulls(plan.remove), []);
  });

  it('fix: the newest package without a revision is kept', () => {
    const plan = planGc(store(['less-amd64-530'], ['bash-amd64-5.0'], ['bash-amd64-4.4']));
    assert.deepEqual(fulls(plan.keep), ['bash-amd64-5.0', 'less-amd64-530']);
    assert.deepEqual(fulls(plan.remove), ['bash-amd64-4.4']);
  });

  it('newest by natural order: 100-2 over 99-1', () => {
    assert.deepEqual(fulls(planGc(store(['foo-amd64-99-1'], ['foo-amd64-100-2'])).keep), ['foo-amd64-100-2']);
  });

  it('dependencies of dependencies are followed even when runtime_dep is not a closure', () => {
    const plan = planGc(store(['app-amd64-1-2', ['lib-amd64-1-1']], ['app-amd64-1-1'], ['lib-amd64-1-1', ['zlib-amd64-1-1']], ['lib-amd64-1-2'], ['zlib-amd64-1-1'], ['zlib-amd64-1-2']));
    assert.deepEqual(fulls(plan.keep), ['app-amd64-1-2', 'lib-amd64-1-1', 'lib-amd64-1-2', 'zlib-amd64-1-1', 'zlib-amd64-1-2']);
    assert.deepEqual(fulls(plan.remove), ['app-amd64-1-1']);
  });

  it('dependencies missing from the store and cycles are harmless', () => {
    const plan = planGc(store(['a-amd64-1-1', ['b-amd64-1-1', 'gone-amd64-1-1']], ['b-amd64-1-1', ['a-amd64-1-1']], ['b-amd64-1-2']));
    assert.deepEqual(fulls(plan.keep), ['a-amd64-1-1', 'b-amd64-1-1', 'b-amd64-1-2']);
  });

  it('property: keep ∪ remove is the store; the newest of each package and deps of kept are kept', () => {
    const names = ['a-amd64-1-1', 'a-amd64-1-2', 'a-amd64-3', 'b-amd64-2-1', 'b-amd64-10-1', 'c-i686-1-1', 'c-amd64-1-1'];
    const storeArb = fc.uniqueArray(fc.constantFrom(...names), { minLength: 1 }).chain((ns) => fc.tuple(...ns.map((n) => fc.subarray(names).map((deps) => ({ name: name(n), runtimeDep: deps })))));
    fc.assert(
      fc.property(storeArb, (s) => {
        const plan = planGc(s);
        const kept = new Set(fulls(plan.keep));
        assert.deepEqual([...fulls(plan.keep), ...fulls(plan.remove)].sort(), s.map((p) => p.name.full).sort());
        for (const n of newestByPackage(s.map((p) => p.name)).values()) assert.ok(kept.has(n.full));
        const present = new Set(s.map((p) => p.name.full));
        for (const p of s) if (kept.has(p.name.full)) for (const d of p.runtimeDep) if (present.has(d)) assert.ok(kept.has(d));
      }),
    );
  });
});

describe('scaffold name and version (case 12)', () => {
  const table: [string, string, string][] = [
    ['https://ftp.debian.org/debian/pool/main/w/whois/whois_5.4.2.tar.xz', 'whois', '5.4.2'],
    ['https://www.x.org/releases/individual/lib/libXxf86vm-1.1.4.tar.bz2', 'libxxf86vm', '1.1.4'],
    ['github.com/traviscross/mtr/archive/v0.92.tar.gz', 'mtr', '0.92'],
    ['https://github.com/traviscross/mtr/archive/v0.92.tar.gz', 'mtr', '0.92'],
    ['https://github.com/traviscross/mtr/archive/refs/tags/v0.92.zip', 'mtr', '0.92'],
    ['https://www.nano-editor.org/dist/v4/nano-4.3.tar.xz', 'nano', '4.3'],
    ['https://zlib.net/zlib-1.2.11.tar.gz', 'zlib', '1.2.11'],
    ['https://example.org/foo-1.0.tgz', 'foo', '1.0'],
    ['https://example.org/foo-1.0.zip', 'foo', '1.0'],
    ['https://example.org/foo-1.0.tar.zst', 'foo', '1.0'],
    ['https://example.org/foo-1.0.tar.gz?download=1#x', 'foo', '1.0'],
    ['https://example.org/font-util-1.3.2.tar.bz2', 'font-util', '1.3.2'],
    ['https://example.org/foo-1.2-rc1.tar.gz', 'foo', '1.2-rc1'],
    ['https://example.org/foo-v2.0.tar.gz', 'foo', '2.0'],
    ['https://example.org/gtk+-3.24.14.tar.xz', 'gtk+', '3.24.14'],
  ];
  for (const [url, n, v] of table) it(`${url} → ${n} ${v}`, () => assert.deepEqual(guessFromUrl(url), { name: n, version: v }));

  for (const url of ['https://example.org/noversion.tar.gz', 'https://example.org/', '']) {
    it(`${JSON.stringify(url)} → null`, () => assert.equal(guessFromUrl(url), null));
  }
});
