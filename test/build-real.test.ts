// distri build for real: GNU hello 2.10 (Debian's hello_2.10.orig.tar.gz, byte-identical to GNU's
// release) served by a local HTTP server, built against the bootstrap store (Debian's gcc, glibc,
// make, … as distri packages) in the sandbox; then run from /ro/bin in a distri-style root.
// Slow (configure and make through our FUSE /ro): one build of minutes, then a second for the
// byte-identity check.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { realBuildInputs, runCli } from './helpers/real-build';
import { Image } from '../src/reader/image';
import { parseMeta } from '../src/store/meta';

const HELLO_SHA = '31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b';

const inputs = realBuildInputs('build-real', 'hello', 'hello_2.10.orig.tar.gz', HELLO_SHA);
const why = inputs.why;
const store = inputs.why === undefined ? inputs.store : '';
const tarball = inputs.why === undefined ? inputs.tarball : '';
const run = runCli;

describe('distri build: GNU hello 2.10 from its real source', { skip: why }, () => {
  let server: http.Server;
  let tmp = '';
  let out1 = '';
  let out2 = '';
  let first: { status: number | null; stdout: string; stderr: string };
  const full = 'hello-amd64-2.10-1';
  const served: string[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'build-real-'));
    server = http.createServer((req, res) => {
      served.push(req.url ?? '');
      if (req.url !== '/gnu/hello/hello-2.10.tar.gz') {
        res.writeHead(404);
        res.end();
        return;
      }
      const body = fs.readFileSync(tarball);
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/gnu/hello/hello-2.10.tar.gz`;
    fs.mkdirSync(path.join(tmp, 'pkgs/hello'), { recursive: true });
    fs.writeFileSync(
      path.join(tmp, 'pkgs/hello/build.textproto'),
      [
        `source: "${url}"`,
        `hash: "${HELLO_SHA}"`,
        'version: "2.10-1"',
        '',
        'cbuilder: {',
        "  # hello's one Makefile writes lib/*.h in the build dir; only dependency tracking makes lib/ there",
        '  extra_configure_flag: "--enable-dependency-tracking"',
        '}',
        '',
      ].join('\n'),
    );
    out1 = path.join(tmp, 'out1');
    out2 = path.join(tmp, 'out2');
    first = await run(['build', '--store', store, '--jobs', '2', '--out', out1], path.join(tmp, 'pkgs/hello'));
  });
  after(() => {
    server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('downloads over HTTP, builds in the sandbox and logs as the article does', () => {
    assert.equal(first.status, 0, first.stderr.slice(-4000));
    assert.deepEqual(served, ['/gnu/hello/hello-2.10.tar.gz']);
    const lines = first.stderr.trimEnd().split('\n');
    const steps = lines.filter((l) => /^step \d+: /.test(l));
    assert.equal(steps.length, 3);
    assert.match(
      steps[0]!,
      /^step 0: [0-9.hms]+ \(command: \[\$\{DISTRI_SOURCEDIR\}\/configure --host=\$\{DISTRI_CONFIGURE_HOST\} --prefix=\$\{DISTRI_PREFIX\} --sysconfdir=\/etc --disable-dependency-tracking --enable-dependency-tracking\]\)$/,
    );
    assert.match(steps[1]!, /^step 1: [0-9.hms]+ \(command: \[make -j2 V=1\]\)$/);
    assert.match(lines.at(-2)!, /^hello runtime deps: \["glibc-amd64-[^"]+"( "[^"]+")*\]$/);
    assert.equal(lines.at(-1), `package successfully created in ${path.join(out1, `${full}.squashfs`)}`);
    for (const l of steps) console.log(`  ${l}`);
  });

  it('the image: out/bin/hello, bin/hello, the lib farm', () => {
    const img = Image.open(path.join(out1, `${full}.squashfs`));
    try {
      const hello = img.resolve('out/bin/hello');
      assert.equal(hello.kind, 'file');
      assert.equal(Buffer.from(img.read(hello, 0, 4)).toString('latin1'), '\x7fELF');
      assert.equal(img.resolve('bin/hello').kind, 'file'); // the compiled wrapper
      const libc = img.resolve('lib/libc.so.6');
      assert.equal(libc.kind, 'symlink');
      assert.match(img.readlink(libc), /^\/ro\/glibc-amd64-[^/]+\/out\/lib\/libc\.so\.6$/);
      assert.ok(img.resolve('out/share/man/man1/hello.1'));
      assert.equal(img.superblock.blockSize, 131072);
    } finally {
      img.close();
    }
  });

  it('the meta: runtime deps are the glibc package and its closure; link beside it', () => {
    const meta = parseMeta(fs.readFileSync(path.join(out1, `${full}.meta.textproto`), 'utf8'));
    const glibc = meta.runtimeDep.find((d) => d.startsWith('glibc-amd64-'));
    assert.ok(glibc, meta.runtimeDep.join(' '));
    const glibcMeta = parseMeta(fs.readFileSync(path.join(store, `${glibc}.meta.textproto`), 'utf8'));
    assert.deepEqual(meta.runtimeDep, [...new Set([glibc, ...glibcMeta.runtimeDep])].sort());
    assert.equal(meta.sourcePkg, 'hello');
    assert.equal(meta.version, '2.10-1');
    assert.match(meta.inputDigest, /^[0-9a-f]{64}$/);
    assert.equal(fs.readlinkSync(path.join(out1, 'hello-amd64.meta.textproto')), `${full}.meta.textproto`);
  });

  it('a second build gives a byte-identical image (source verified, not downloaded again)', async () => {
    const second = await run(['build', '--store', store, '--jobs', '2', '--out', out2, '--pkg', 'hello', '--distriroot', tmp]);
    assert.equal(second.status, 0, second.stderr.slice(-4000));
    assert.equal(served.length, 1, 'the verified archive is reused');
    assert.ok(fs.readFileSync(path.join(out1, `${full}.squashfs`)).equals(fs.readFileSync(path.join(out2, `${full}.squashfs`))), 'images differ');
    assert.equal(fs.readFileSync(path.join(out1, `${full}.meta.textproto`), 'utf8'), fs.readFileSync(path.join(out2, `${full}.meta.textproto`), 'utf8'));
  });

  it('hello from /ro/bin in a distri-style root prints Hello, world!', async () => {
    // The bootstrap packages plus the new one, as `distri install` would leave a store.
    const both = path.join(tmp, 'store');
    fs.mkdirSync(both);
    for (const f of fs.readdirSync(store)) if (/\.(squashfs|meta\.textproto)$/.test(f) && !fs.lstatSync(path.join(store, f)).isSymbolicLink()) fs.symlinkSync(path.join(store, f), path.join(both, f));
    for (const f of [`${full}.squashfs`, `${full}.meta.textproto`]) fs.copyFileSync(path.join(out1, f), path.join(both, f));
    const r = await run(['run', '--store', both, '--', '/ro/bin/hello']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'Hello, world!\n');
    const t = await run(['run', '--store', both, '--', 'hello', '-t']);
    assert.equal(t.stdout, 'hello, world\n'); // -t: the traditional greeting, from the same binary
  });

  it('a changed hash is refused before anything is built', async () => {
    const file = path.join(tmp, 'pkgs/hello/build.textproto');
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace(HELLO_SHA, '0'.repeat(64)));
    const r = await run(['build', '--store', store, '--out', path.join(tmp, 'out3'), '--pkg', 'hello', '--distriroot', tmp]);
    fs.writeFileSync(file, text);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /sha256 is 31e06613.*but the recipe's hash says 0{64}/);
    assert.ok(!fs.existsSync(path.join(tmp, 'out3')));
  });
});
