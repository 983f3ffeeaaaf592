/**
 * The repository index written by `distri mirror`: sizes and hashes recomputed here from the files,
 * exchange entries compared with unsquashfs's listing of the same image, packages that cannot be
 * indexed left out and named; and parseRepoIndex, which reads an index from the network, refusing
 * every malformed one with a SquashfsError (never another exception, never a path outside pkg/).
 */
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SquashfsError } from '../src/errors';
import { parseRepoIndex, REPO_INDEX_FORMAT } from '../src/repo/repo-index';
import { skipUnless } from './oracle/tools';
import { addRepoPackage, distri, distriOk, simpleTree, tempDir } from './helpers/repo';

let repo = '';
const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

before(async () => {
  repo = tempDir('distri-repo-');
  const big = Buffer.alloc(700_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  await addRepoPackage(repo, {
    full: 'nano-amd64-4.3-1',
    tree: simpleTree('nano', {
      'out/lib/pkgconfig/nano.pc': 'x\n',
      'out/share/nano/big.bin': big,
      'out/include/nano.h': '',
      'etc/nanorc': 'set x\n',
      'lib/libfoo.so': { symlink: '../out/lib/libfoo.so' },
    }),
    runtimeDep: ['ncurses-amd64-6.1-5', 'glibc-amd64-2.31-4'],
  });
  await addRepoPackage(repo, { full: 'ncurses-amd64-6.1-5', tree: simpleTree('ncurses') });
});

after(() => {
  if (repo) fs.rmSync(repo, { recursive: true, force: true });
});

/** A JSON document the tests take apart and break at will. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function readIndex(): Record<string, Json> {
  return JSON.parse(fs.readFileSync(path.join(repo, 'pkg', 'index-v1.json'), 'utf8'));
}

test('mirror: sizes, whole and per-chunk sha256 and meta fields match the files', async () => {
  const out = JSON.parse(await distriOk(['mirror', repo, '--json', '--chunk-size', '64K']));
  assert.deepEqual(out.packages, ['nano-amd64-4.3-1', 'ncurses-amd64-6.1-5']);
  const doc = readIndex();
  assert.equal(doc.format, REPO_INDEX_FORMAT);
  assert.equal(doc.chunkSize, 65536);
  const p = doc.packages['nano-amd64-4.3-1'];
  const image = fs.readFileSync(path.join(repo, 'pkg', 'nano-amd64-4.3-1.squashfs'));
  const meta = fs.readFileSync(path.join(repo, 'pkg', 'nano-amd64-4.3-1.meta.textproto'));
  assert.deepEqual(p.image.size, image.length);
  assert.equal(p.image.sha256, sha(image));
  const chunks = [];
  for (let off = 0; off < image.length; off += 65536) chunks.push(sha(image.subarray(off, off + 65536)));
  assert.ok(chunks.length > 10);
  assert.deepEqual(p.image.chunks, chunks);
  assert.deepEqual(p.meta, { file: 'nano-amd64-4.3-1.meta.textproto', size: meta.length, sha256: sha(meta) });
  assert.deepEqual(p.runtimeDep, ['ncurses-amd64-6.1-5', 'glibc-amd64-2.31-4']);
  assert.equal(p.version, '4.3-1');
  assert.equal(p.sourcePkg, 'nano');
  // Round trip through the untrusted-input parser.
  const parsed = parseRepoIndex(fs.readFileSync(path.join(repo, 'pkg', 'index-v1.json')), 'test');
  assert.equal(parsed.packages.get('nano-amd64-4.3-1')!.image.chunks.length, chunks.length);
  assert.deepEqual(
    fs.readdirSync(path.join(repo, 'pkg')).filter((n) => n.startsWith('.')),
    [],
    'a temp file was left',
  );
});

test('mirror: the exchange entries are the paths unsquashfs lists below the exchange dirs', { skip: skipUnless('unsquashfs listing', 'unsquashfs') }, async () => {
  await distriOk(['mirror', repo]);
  const entries: string[] = readIndex().packages['nano-amd64-4.3-1'].entries.split('\0');
  const ls = spawnSync('unsquashfs', ['-lls', '-d', '', path.join(repo, 'pkg', 'nano-amd64-4.3-1.squashfs')], { encoding: 'utf8' });
  assert.equal(ls.status, 0, ls.stderr);
  const expected: string[] = [];
  for (const line of ls.stdout.split('\n')) {
    const m = /^([dl-])\S+\s+\S+\s+\d+\s+\S+\s+\S+\s+\/(\S+?)(?: -> .*)?$/.exec(line);
    if (!m) continue;
    const p = m[2]!;
    if (!['bin', 'out/lib', 'out/lib64', 'out/include', 'out/share', 'out/gopath', 'debug'].some((d) => p === d || p.startsWith(d + '/'))) continue;
    expected.push(m[1] === 'd' ? p + '/' : p);
  }
  assert.ok(expected.includes('bin/nano') && expected.includes('out/lib/pkgconfig/nano.pc'));
  assert.deepEqual([...entries].sort(), expected.sort());
  assert.ok(!entries.some((e) => e.startsWith('etc') || e.startsWith('lib/')), 'non-exchange paths listed');
});

test('mirror: an image without meta and a corrupt image are left out and named', async () => {
  const r0 = tempDir('distri-repo-');
  try {
    await addRepoPackage(r0, { full: 'ok-amd64-1-1', tree: simpleTree('ok') });
    fs.copyFileSync(path.join(r0, 'pkg', 'ok-amd64-1-1.squashfs'), path.join(r0, 'pkg', 'lonely-amd64-1-1.squashfs'));
    fs.writeFileSync(path.join(r0, 'pkg', 'junk-amd64-1-1.squashfs'), crypto.randomBytes(5000));
    fs.writeFileSync(path.join(r0, 'pkg', 'junk-amd64-1-1.meta.textproto'), 'version: "1-1"\n');
    const r = await distri(['mirror', r0]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^distri: mirror: skipped junk-amd64-1-1: image: BAD_MAGIC/m);
    assert.match(r.stderr, /^distri: mirror: skipped lonely-amd64-1-1: no lonely-amd64-1-1\.meta\.textproto beside the image$/m);
    assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(path.join(r0, 'pkg', 'index-v1.json'), 'utf8')).packages), ['ok-amd64-1-1']);
    const none = await distri(['mirror', path.join(r0, 'nope')]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no such directory \(a repo keeps its packages in pkg\/\)/);
  } finally {
    fs.rmSync(r0, { recursive: true, force: true });
  }
});

/** A valid index document to break in the tests below. */
function validDoc(): Json {
  const h = 'a'.repeat(64);
  return {
    format: REPO_INDEX_FORMAT,
    chunkSize: 4096,
    packages: {
      'x-amd64-1-1': {
        image: { file: 'x-amd64-1-1.squashfs', size: 5000, sha256: h, chunks: [h, h] },
        meta: { file: 'x-amd64-1-1.meta.textproto', size: 10, sha256: h },
        runtimeDep: ['y-amd64-2-1'],
        sourcePkg: 'x',
        version: '1-1',
        runtimeUnion: [{ dir: 'lib/x', pkg: 'y-amd64-2-1' }],
        hasXattrs: false,
        sb: [4000, 10, 1700000000],
        entries: 'bin/\0bin/x\0out/lib/\0out/lib/libx.so',
      },
    },
  };
}

test('parseRepoIndex refuses what a hostile or broken server could send, naming the field', () => {
  const enc = (d: unknown) => Buffer.from(typeof d === 'string' ? d : JSON.stringify(d));
  assert.equal(parseRepoIndex(enc(validDoc()), 'ok').packages.size, 1);
  const cases: [string, (d: Json) => unknown, RegExp][] = [
    ['not JSON', () => '{"format": ', /not JSON/],
    ['another format', (d) => ((d.format = 'distri-repo-index/2'), d), /format: "distri-repo-index\/2" is not/],
    ['a path as image file', (d) => ((d.packages['x-amd64-1-1'].image.file = '../../etc/passwd'), d), /image: file must be "x-amd64-1-1.squashfs"/],
    ['a path as meta file', (d) => ((d.packages['x-amd64-1-1'].meta.file = '/etc/shadow'), d), /meta: file must be/],
    ['a name that is no package', (d) => ((d.packages['../x-amd64-1-1'] = d.packages['x-amd64-1-1']), d), /not a versioned package name/],
    ['too few chunk hashes', (d) => (d.packages['x-amd64-1-1'].image.chunks.pop(), d), /1 chunk hashes for 5000 bytes in 4096-byte chunks \(want 2\)/],
    ['a bad hash', (d) => ((d.packages['x-amd64-1-1'].image.sha256 = 'AA'), d), /sha256 is not 64 lower-case hex digits/],
    ['a negative size', (d) => ((d.packages['x-amd64-1-1'].meta.size = -1), d), /size -1 is not a byte count/],
    ['an entry with ..', (d) => ((d.packages['x-amd64-1-1'].entries = 'bin/../../etc/passwd'), d), /is not a path below an exchange directory/],
    ['an entry outside the exchange dirs', (d) => ((d.packages['x-amd64-1-1'].entries = 'etc/passwd'), d), /is not a path below an exchange directory/],
    ['a dependency that is no name', (d) => ((d.packages['x-amd64-1-1'].runtimeDep = ['/bin/sh']), d), /runtimeDep: "\/bin\/sh" is not a versioned package name/],
    ['a huge chunk size', (d) => ((d.chunkSize = 2 ** 40), d), /chunkSize: .* is not a size/],
    ['sb of the wrong shape', (d) => ((d.packages['x-amd64-1-1'].sb = [1, 2]), d), /sb: not \[bytesUsed/],
    ['runtimeUnion of strings', (d) => ((d.packages['x-amd64-1-1'].runtimeUnion = ['x']), d), /runtimeUnion: not a list/],
    ['packages as a list', (d) => ((d.packages = []), d), /packages: not an object/],
  ];
  for (const [what, mutate, message] of cases) {
    assert.throws(
      () => parseRepoIndex(enc(mutate(validDoc())), 'http://repo/pkg/index-v1.json'),
      (e: unknown) => e instanceof SquashfsError && e.code === 'CORRUPT' && message.test(e.message) && e.message.startsWith('http://repo/pkg/index-v1.json: '),
      what,
    );
  }
});

test('parseRepoIndex on random damage: a SquashfsError or a valid index, nothing else', () => {
  const base = Buffer.from(JSON.stringify(validDoc()));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
      const b = Buffer.from(base);
      for (const [i, v] of edits) b[i] = v;
      try {
        const idx = parseRepoIndex(b, 'fuzz');
        for (const p of idx.packages.values()) assert.equal(p.image.file, `${p.full}.squashfs`);
      } catch (e) {
        if (!(e instanceof SquashfsError)) throw e;
      }
    }),
    { numRuns: 500 },
  );
});
