// distri scaffold: the doc's URL cases, a new recipe, an existing one updated (revision bumped,
// comments kept) and a second run that changes nothing; the source served by a real local HTTP
// server, so the download and its sha256 really happen.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { guessFromUrl } from '../src/store/scaffold';
import { isCpanUrl, newRecipeText, updateRecipeText } from '../src/build/scaffold-recipe';
import { parseRecipe } from '../src/build/recipe';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');

describe('scaffold: name and version from the URL', () => {
  const cases: [string, string, string][] = [
    ['https://ftp.debian.org/debian/pool/main/w/whois/whois_5.4.2.tar.xz', 'whois', '5.4.2'],
    ['https://www.x.org/releases/individual/lib/libXxf86vm-1.1.4.tar.bz2', 'libxxf86vm', '1.1.4'],
    ['https://github.com/traviscross/mtr/archive/v0.92.tar.gz', 'mtr', '0.92'],
    ['http://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz', 'hello', '2.10'],
    ['https://www.nano-editor.org/dist/v4/nano-4.3.tar.xz', 'nano', '4.3'],
  ];
  for (const [url, name, version] of cases) it(`${url} → ${name} ${version}`, () => assert.deepEqual(guessFromUrl(url), { name, version }));
  it('CPAN URLs get the perl builder', () => {
    assert.ok(isCpanUrl('https://cpan.metacpan.org/authors/id/E/ET/ETHER/Try-Tiny-0.30.tar.gz'));
    assert.ok(!isCpanUrl('https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz'));
  });
});

describe('scaffold: the recipe text', () => {
  const base = { source: 'https://h/hello-2.10.tar.gz', hash: 'a'.repeat(64), version: '2.10' };
  it('a new recipe is version <ver>-1 with cbuilder and parses', () => {
    const text = newRecipeText({ ...base, builder: 'cbuilder' });
    const r = parseRecipe(text);
    assert.equal(r.version, '2.10-1');
    assert.equal(r.builder.kind, 'cbuilder');
    assert.match(text, /# build dependencies:/);
  });
  it('an existing recipe: source, hash, version replaced, revision bumped, the rest kept', () => {
    const old = `# my comment\nsource: "https://h/hello-2.9.tar.gz"  # old\nhash: "${'b'.repeat(64)}"\nversion: "2.9-4"\n\ncbuilder: { extra_configure_flag: "--x" }\ndep: "zlib"\n`;
    const { text, changed } = updateRecipeText(old, base);
    assert.ok(changed);
    assert.equal(text, `# my comment\nsource: "https://h/hello-2.10.tar.gz"  # old\nhash: "${'a'.repeat(64)}"\nversion: "2.10-5"\n\ncbuilder: { extra_configure_flag: "--x" }\ndep: "zlib"\n`);
    const again = updateRecipeText(text, base);
    assert.equal(again.changed, false);
    assert.equal(again.text, text);
  });
  it('a changed hash alone bumps the revision too', () => {
    const cur = newRecipeText({ ...base, builder: 'cbuilder' });
    assert.match(updateRecipeText(cur, { ...base, hash: 'c'.repeat(64) }).text, /version: "2\.10-2"/);
  });
});

describe('distri scaffold (CLI, real HTTP server)', () => {
  let server: http.Server;
  let url = '';
  let tmp = '';
  const body = Buffer.from('not really a tarball, but bytes to hash\n'.repeat(1000));
  let requests = 0;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scaffold-test-'));
    server = http.createServer((req, res) => {
      requests++;
      if (req.url === '/old/foo-1.0.tar.gz') {
        res.writeHead(302, { location: '/foo-1.0.tar.gz' });
        res.end();
      } else if (req.url === '/foo-1.0.tar.gz' || req.url === '/foo-1.1.tar.gz') {
        res.writeHead(200, { 'content-length': body.length });
        res.end(body);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  // Asynchronous: the server answering the CLI lives on this process's event loop.
  const run = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'scaffold', '--distriroot', tmp, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  const sha = createHash('sha256').update(body).digest('hex');

  it('writes a new recipe with the sha256 of the download (following a redirect)', async () => {
    const r = await run('--json', `${url}/old/foo-1.0.tar.gz`);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.name, out.version, out.hash, out.changed], ['foo', '1.0', sha, true]);
    const recipe = parseRecipe(fs.readFileSync(path.join(tmp, 'pkgs/foo/build.textproto'), 'utf8'));
    assert.equal(recipe.hash, sha);
    assert.equal(recipe.version, '1.0-1');
    assert.ok(fs.existsSync(path.join(tmp, '_build/foo/foo-1.0.tar.gz')), 'the download is kept where distri build looks');
  });
  it('a second run changes nothing', async () => {
    const file = path.join(tmp, 'pkgs/foo/build.textproto');
    const before_ = fs.readFileSync(file, 'utf8');
    const r = await run('--json', `${url}/old/foo-1.0.tar.gz`);
    assert.equal(JSON.parse(r.stdout).changed, false);
    assert.equal(fs.readFileSync(file, 'utf8'), before_);
  });
  it('a new version updates it with the revision bumped; --dry-run writes nothing', async () => {
    const file = path.join(tmp, 'pkgs/foo/build.textproto');
    const dry = await run('--dry-run', '--name', 'foo', `${url}/foo-1.1.tar.gz`);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /version: "1\.1-2"/);
    assert.match(fs.readFileSync(file, 'utf8'), /version: "1\.0-1"/);
    const r = await run('--version', '1.1', '--name', 'foo', `${url}/foo-1.1.tar.gz`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(fs.readFileSync(file, 'utf8'), /version: "1\.1-2"/);
  });
  it('a missing file is said in our words', async () => {
    const r = await run(`${url}/nope-1.0.tar.gz`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^distri: scaffold: .*the server answered 404/m);
    assert.ok(requests > 0);
  });
});
