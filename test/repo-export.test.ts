/**
 * A repo over HTTP: `distri export` and nginx (started here with the README's server block) serve
 * the same repo, and both must answer what a client relies on — whole files, single byte ranges,
 * 416 beyond the end, ETag/Last-Modified revalidation, HEAD — and neither may serve anything outside
 * the repo (`..`, encoded slashes, symlinks out, dot-files).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnless } from './oracle/tools';
import { httpRequest, makeRepo, simpleTree, startExport, startNginx, type Server } from './helpers/repo';

const NGINX = skipUnless('nginx serving a repo', 'nginx');
const FULL = 'tool-amd64-1.0-1';

let repo = '';
let image = Buffer.alloc(0);
const servers: Record<string, Server | undefined> = {};

before(async () => {
  // A few hundred KiB of incompressible bytes: ranges that cross the 128 KiB blocks.
  const big = crypto.createHash('sha256');
  const data = Buffer.concat(Array.from({ length: 9000 }, (_, i) => big.update(String(i)).copy().digest()));
  repo = await makeRepo([{ full: FULL, tree: simpleTree('tool', { 'out/share/tool/data.bin': data }) }]);
  image = fs.readFileSync(path.join(repo, 'pkg', `${FULL}.squashfs`));
  // Things a server must never hand out.
  fs.symlinkSync('/etc/passwd', path.join(repo, 'pkg', 'passwd'));
  fs.symlinkSync('/etc', path.join(repo, 'pkg', 'etc'));
  fs.writeFileSync(path.join(repo, 'pkg', '.index-v1.json.123.tmp'), 'half an index');
  servers.export = await startExport(repo);
  if (!NGINX) servers.nginx = await startNginx(repo);
});

after(async () => {
  for (const s of Object.values(servers)) await s?.stop();
  if (repo) fs.rmSync(repo, { recursive: true, force: true });
});

for (const name of ['export', 'nginx'] as const) {
  describe(`${name} serves the repo`, { skip: name === 'nginx' ? NGINX : undefined }, () => {
    const url = (p: string) => servers[name]!.url.replace(/\/$/, '') + p;
    const imagePath = `/pkg/${FULL}.squashfs`;

    test('GET: the whole file, with validators and Accept-Ranges', async () => {
      const r = await httpRequest(url(imagePath));
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(image), 'body differs from the file');
      assert.ok(r.headers.etag, 'no ETag');
      assert.ok(r.headers['last-modified'], 'no Last-Modified');
      assert.equal(r.headers['accept-ranges'], 'bytes');
      const index = await httpRequest(url('/pkg/index-v1.json'));
      assert.equal(index.status, 200);
      assert.equal(JSON.parse(index.body.toString()).format, 'distri-repo-index/1');
    });

    test('HEAD: the headers of GET, no body', async () => {
      const r = await httpRequest(url(imagePath), { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(Number(r.headers['content-length']), image.length);
      assert.equal(r.body.length, 0);
    });

    test('Range: a piece across block boundaries, a suffix, an open end', async () => {
      const a = 131000;
      const b = 270000;
      const r = await httpRequest(url(imagePath), { headers: { Range: `bytes=${a}-${b}` } });
      assert.equal(r.status, 206);
      assert.equal(r.headers['content-range'], `bytes ${a}-${b}/${image.length}`);
      assert.ok(r.body.equals(image.subarray(a, b + 1)));
      const suffix = await httpRequest(url(imagePath), { headers: { Range: 'bytes=-100' } });
      assert.equal(suffix.status, 206);
      assert.ok(suffix.body.equals(image.subarray(image.length - 100)));
      const open = await httpRequest(url(imagePath), { headers: { Range: `bytes=${image.length - 10}-` } });
      assert.equal(open.status, 206);
      assert.ok(open.body.equals(image.subarray(image.length - 10)));
      // An end beyond the file is cut to the file.
      const over = await httpRequest(url(imagePath), { headers: { Range: `bytes=0-${image.length + 5000}` } });
      assert.equal(over.status, 206);
      assert.equal(over.body.length, image.length);
    });

    test('Range beyond the end: 416 with the size', async () => {
      const r = await httpRequest(url(imagePath), { headers: { Range: `bytes=${image.length}-` } });
      assert.equal(r.status, 416);
      assert.equal(r.headers['content-range'], `bytes */${image.length}`);
    });

    test('several ranges at once: the whole file (max_ranges 1)', async () => {
      const r = await httpRequest(url(imagePath), { headers: { Range: 'bytes=0-9,100-109' } });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(image));
    });

    test('revalidation: If-None-Match and If-Modified-Since give 304; a stale If-Range gives the whole file', async () => {
      const first = await httpRequest(url(imagePath), { method: 'HEAD' });
      const etag = first.headers.etag!;
      const r = await httpRequest(url(imagePath), { headers: { 'If-None-Match': etag } });
      assert.equal(r.status, 304);
      assert.equal(r.body.length, 0);
      const other = await httpRequest(url(imagePath), { headers: { 'If-None-Match': '"something-else"' } });
      assert.equal(other.status, 200);
      const ims = await httpRequest(url(imagePath), { headers: { 'If-Modified-Since': first.headers['last-modified']! } });
      assert.equal(ims.status, 304);
      const fresh = await httpRequest(url(imagePath), { headers: { Range: 'bytes=0-9', 'If-Range': etag } });
      assert.equal(fresh.status, 206);
      const stale = await httpRequest(url(imagePath), { headers: { Range: 'bytes=0-9', 'If-Range': '"an-old-version"' } });
      assert.equal(stale.status, 200);
      assert.equal(stale.body.length, image.length);
    });

    test('nothing outside the repo, no dot-files, no listings', async () => {
      const passwd = fs.readFileSync('/etc/passwd');
      for (const p of [
        '/pkg/../../../../etc/passwd',
        '/pkg/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
        '/pkg%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
        '/pkg/passwd',
        '/pkg/etc/passwd',
        '/pkg/.index-v1.json.123.tmp',
        '/pkg/',
        '/',
        '/pkg/nope.squashfs',
      ]) {
        const r = await httpRequest(url(p));
        assert.ok(r.status >= 400, `${p}: status ${r.status}`);
        assert.ok(!r.body.includes(passwd.subarray(0, 20)), `${p}: served /etc/passwd`);
        assert.ok(!r.body.includes(Buffer.from('half an index')), `${p}: served a dot-file`);
      }
    });
  });
}

describe('distri export specifics', () => {
  const url = (p: string) => servers.export!.url.replace(/\/$/, '') + p;

  test('escapes are refused with the right status; only GET and HEAD', async () => {
    assert.equal((await httpRequest(url('/pkg/../../etc/passwd'))).status, 400);
    assert.equal((await httpRequest(url('/pkg%2findex-v1.json'))).status, 400);
    assert.equal((await httpRequest(url('/pkg/%2e%2e/pkg/index-v1.json'))).status, 400);
    assert.equal((await httpRequest(url('/pkg/%zz'))).status, 400);
    assert.equal((await httpRequest(url('/pkg/passwd'))).status, 404); // a symlink out of the repo
    assert.equal((await httpRequest(url('/pkg/etc/passwd'))).status, 404); // through a symlinked dir
    assert.equal((await httpRequest(url('/pkg/.index-v1.json.123.tmp'))).status, 404);
    assert.equal((await httpRequest(url('/pkg'))).status, 404);
    const post = await httpRequest(url('/pkg/index-v1.json'), { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  test('a symlink inside the repo is served; images are immutable to caches, the index is not', async () => {
    fs.symlinkSync(`${FULL}.squashfs`, path.join(repo, 'pkg', 'alias.squashfs'));
    const r = await httpRequest(url('/pkg/alias.squashfs'));
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(image));
    assert.match(String(r.headers['cache-control']), /immutable/);
    assert.equal((await httpRequest(url('/pkg/index-v1.json'))).headers['cache-control'], 'no-cache');
  });

  test('an ETag changes when the file is rewritten, even with the same size', async () => {
    const f = path.join(repo, 'pkg', 'same-size.txt');
    fs.writeFileSync(f, 'aaaa');
    const a = (await httpRequest(url('/pkg/same-size.txt'))).headers.etag;
    fs.writeFileSync(f, 'bbbb');
    const b = await httpRequest(url('/pkg/same-size.txt'), { headers: { 'If-None-Match': a! } });
    assert.equal(b.status, 200);
    assert.equal(b.body.toString(), 'bbbb');
  });
});
