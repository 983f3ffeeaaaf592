/**
 * `distri install` and `distri update` as a user runs them (the built CLI in a child process),
 * against repos made with `distri pack` + `distri mirror`, read from a directory, from a real nginx
 * and from `distri export`: by unversioned name, from several repos (newest wins, compared
 * naturally), with the runtime-dep closure, verification against the index, etc/ on first install
 * only, the store lock, and installs killed mid-download (a real HTTP server that stalls after
 * some bytes).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnless } from './oracle/tools';
import { cliPath, waitFor } from './helpers/mount';
import { addRepoPackage, distri, distriOk, freePort, makeRepo, simpleTree, startExport, startNginx, storeFiles, tempDir, type Server } from './helpers/repo';

const NGINX = skipUnless('install over HTTP from nginx', 'nginx');

const temps: string[] = [];
const servers: Server[] = [];
let repoA = '';
let repoB = '';
let nginxA: Server | undefined;
let exportA: Server | undefined;
let nginxB: Server | undefined;

function newRoot(): string {
  const r = tempDir('distri-root-');
  temps.push(r);
  return r;
}

const store = (root: string) => path.join(root, 'roimg');

before(async () => {
  repoA = await makeRepo([
    { full: 'lib-amd64-1.0-1', tree: simpleTree('lib', { 'out/lib/libx.so.1': 'ELF-ish', 'etc/lib.conf': 'lib defaults\n' }) },
    {
      full: 'app-amd64-2.0-3',
      tree: simpleTree('app', { 'etc/app.conf': 'app defaults\n', 'etc/app.d/x.conf': 'x\n', 'etc/app.d/link': { symlink: 'x.conf' } }),
      runtimeDep: ['lib-amd64-1.0-1'],
    },
    { full: 'tool-amd64-99-2', tree: simpleTree('tool') },
    { full: 'plain-amd64-1', tree: simpleTree('plain') },
  ]);
  // A second repo: a tool whose upstream version sorts before 99 as text but after it naturally,
  // and an older app than repo A's.
  repoB = await makeRepo([
    { full: 'tool-amd64-100-2', tree: simpleTree('tool', { 'out/share/tool/v100': '100\n' }) },
    { full: 'app-amd64-2.0-2', tree: simpleTree('app'), runtimeDep: ['lib-amd64-1.0-1'] },
  ]);
  temps.push(repoA, repoB);
  exportA = await startExport(repoA);
  servers.push(exportA);
  if (!NGINX) {
    nginxA = await startNginx(repoA);
    nginxB = await startNginx(repoB);
    servers.push(nginxA, nginxB);
  }
});

after(async () => {
  for (const s of servers) await s.stop();
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

/** Every installed file is byte-identical to the repo's. */
function assertSameAsRepo(root: string, repo: string, files: string[]): void {
  for (const f of files) assert.ok(fs.readFileSync(path.join(store(root), f)).equals(fs.readFileSync(path.join(repo, 'pkg', f))), `${f} differs from the repo's`);
}

/** Neither temp files nor a lock are left behind. */
function assertClean(root: string): void {
  const tmp = path.join(store(root), 'tmp');
  assert.deepEqual(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], 'leftovers in roimg/tmp');
  assert.ok(!fs.existsSync(path.join(store(root), '.distri-lock')), 'the lock was left behind');
}

const APP_SET = ['app-amd64-2.0-3.meta.textproto', 'app-amd64-2.0-3.squashfs', 'lib-amd64-1.0-1.meta.textproto', 'lib-amd64-1.0-1.squashfs'];

describe('install', () => {
  test('from a directory, by unversioned name: the package and its runtime deps, etc/ copied', async () => {
    const root = newRoot();
    const out = JSON.parse(await distriOk(['install', '--root', root, '--repo', repoA, '--json', 'app']));
    assert.deepEqual(out.resolved, [{ name: 'app', full: 'app-amd64-2.0-3' }]);
    assert.deepEqual(out.installed.map((p: { full: string }) => p.full).sort(), ['app-amd64-2.0-3', 'lib-amd64-1.0-1']);
    assert.equal(out.rescan.status, 'no daemon');
    assert.deepEqual(storeFiles(store(root)), APP_SET);
    assertSameAsRepo(root, repoA, APP_SET);
    assert.equal(fs.readFileSync(path.join(root, 'etc/app.conf'), 'utf8'), 'app defaults\n');
    assert.equal(fs.readFileSync(path.join(root, 'etc/lib.conf'), 'utf8'), 'lib defaults\n');
    assert.equal(fs.readlinkSync(path.join(root, 'etc/app.d/link')), 'x.conf');
    assertClean(root);
    // Again: nothing to do.
    const again = JSON.parse(await distriOk(['install', '--root', root, '--repo', repoA, '--json', 'app-amd64']));
    assert.deepEqual(again.installed, []);
    assert.deepEqual(again.present, ['app-amd64-2.0-3', 'lib-amd64-1.0-1']);
  });

  test('over HTTP from distri export, and from nginx: the same bytes', { skip: NGINX }, async () => {
    for (const server of [exportA!, nginxA!]) {
      const root = newRoot();
      await distriOk(['install', '--root', root, '--repo', server.url, 'app-amd64-2.0-3']);
      assert.deepEqual(storeFiles(store(root)), APP_SET, server.url);
      assertSameAsRepo(root, repoA, APP_SET);
      assertClean(root);
    }
  });

  test('several repos: the newest revision over all wins, upstream compared naturally (100 > 99)', { skip: NGINX }, async () => {
    const root = newRoot();
    const out = JSON.parse(await distriOk(['install', '--root', root, '--repo', repoA, '--repo', nginxB!.url, '--json', 'tool', 'app']));
    assert.deepEqual(out.resolved, [
      { name: 'tool', full: 'tool-amd64-100-2' },
      { name: 'app', full: 'app-amd64-2.0-3' }, // repo A's rev 3 beats repo B's rev 2
    ]);
    const from = Object.fromEntries(out.installed.map((p: { full: string; repo: string }) => [p.full, p.repo]));
    assert.equal(from['tool-amd64-100-2'], nginxB!.url);
    assert.equal(from['app-amd64-2.0-3'], repoA);
    assert.ok(storeFiles(store(root)).includes('tool-amd64-100-2.squashfs'));
    assert.ok(!storeFiles(store(root)).some((f) => f.startsWith('tool-amd64-99')));
  });

  test('a name without revision (rev 0) and a full name', async () => {
    const root = newRoot();
    await distriOk(['install', '--root', root, '--repo', repoA, 'plain', 'tool-amd64-99-2']);
    assert.deepEqual(storeFiles(store(root)), ['plain-amd64-1.meta.textproto', 'plain-amd64-1.squashfs', 'tool-amd64-99-2.meta.textproto', 'tool-amd64-99-2.squashfs']);
  });

  test('unknown names and missing deps fail before anything is fetched', async () => {
    const root = newRoot();
    const r = await distri(['install', '--root', root, '--repo', repoA, 'nosuch']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^distri: install nosuch: no package nosuch-amd64 in /m);
    const broken = tempDir('distri-repo-');
    temps.push(broken);
    await addRepoPackage(broken, { full: 'needy-amd64-1-1', tree: simpleTree('needy'), runtimeDep: ['gone-amd64-1-1'] });
    await distriOk(['mirror', broken]);
    const d = await distri(['install', '--root', root, '--repo', broken, 'needy']);
    assert.equal(d.status, 2);
    assert.match(d.stderr, /needy-amd64-1-1 needs gone-amd64-1-1, which neither the store nor any repo has/);
    assert.deepEqual(storeFiles(store(root)), []);
    const noRepo = await distri(['install', '--root', root, 'app']);
    assert.equal(noRepo.status, 1);
    assert.match(noRepo.stderr, /no repo given/);
  });

  test('transport failures are said plainly and place nothing: a 404 for an index entry, no server, no index', async () => {
    const holey = tempDir('distri-repo-');
    temps.push(holey);
    fs.cpSync(repoA, holey, { recursive: true });
    fs.rmSync(path.join(holey, 'pkg', 'lib-amd64-1.0-1.squashfs'));
    const server = await startExport(holey);
    servers.push(server);
    const root = newRoot();
    const r = await distri(['install', '--root', root, '--repo', server.url, 'app']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^distri: install app: IO: http:\/\/127\.0\.0\.1:\d+\/pkg\/lib-amd64-1\.0-1\.squashfs: not found on the server \(HTTP 404\)$/m);
    assert.deepEqual(storeFiles(store(root)), []);
    assertClean(root);
    const gone = await distri(['install', '--root', root, '--repo', `http://127.0.0.1:${await freePort()}/`, 'app']);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /index-v1\.json: connection refused \(is the server running\?\)$/m);
    const noIndex = tempDir('distri-repo-');
    temps.push(noIndex);
    fs.mkdirSync(path.join(noIndex, 'pkg'));
    const d = await distri(['install', '--root', root, '--repo', noIndex, 'app']);
    assert.equal(d.status, 1);
    assert.match(d.stderr, /pkg\/index-v1\.json: no such file in the repo$/m);
  });

  test('a file that does not match the index is refused and nothing is placed', async () => {
    const bad = tempDir('distri-repo-');
    temps.push(bad);
    fs.cpSync(repoA, bad, { recursive: true });
    // Same size, one byte different: only the sha256 can tell.
    const img = path.join(bad, 'pkg', 'lib-amd64-1.0-1.squashfs');
    const bytes = fs.readFileSync(img);
    bytes[bytes.length - 1]! ^= 0xff;
    fs.writeFileSync(img, bytes);
    const root = newRoot();
    const r = await distri(['install', '--root', root, '--repo', bad, 'app']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /lib-amd64-1\.0-1\.squashfs: sha256 [0-9a-f]{64} is not the [0-9a-f]{64} the index says/);
    assert.deepEqual(storeFiles(store(root)), []);
    assert.ok(!fs.existsSync(path.join(root, 'etc', 'app.conf')), 'etc/ was copied for a failed install');
    assertClean(root);
  });

  test('etc/ only on first install, and an existing file is never replaced', async () => {
    const root = newRoot();
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'lib.conf'), 'mine\n');
    const first = JSON.parse(await distriOk(['install', '--root', root, '--repo', repoA, '--json', 'app']));
    const lib = first.installed.find((p: { full: string }) => p.full === 'lib-amd64-1.0-1');
    assert.deepEqual(lib.etc.kept, ['lib.conf']);
    assert.equal(fs.readFileSync(path.join(root, 'etc/lib.conf'), 'utf8'), 'mine\n');
    // A newer revision with a changed default and a new file: not copied, app is not new here.
    const repoC = await makeRepo([{ full: 'app-amd64-2.0-4', tree: simpleTree('app', { 'etc/app.conf': 'new defaults\n', 'etc/app.d/new.conf': 'n\n' }), runtimeDep: ['lib-amd64-1.0-1'] }]);
    temps.push(repoC);
    fs.writeFileSync(path.join(root, 'etc/app.conf'), 'edited\n');
    fs.rmSync(path.join(root, 'etc/app.d/x.conf'));
    const second = JSON.parse(await distriOk(['install', '--root', root, '--repo', repoC, '--repo', repoA, '--json', 'app']));
    assert.deepEqual(
      second.installed.map((p: { full: string; etc?: unknown }) => [p.full, p.etc]),
      [['app-amd64-2.0-4', undefined]],
    );
    assert.equal(fs.readFileSync(path.join(root, 'etc/app.conf'), 'utf8'), 'edited\n');
    assert.ok(!fs.existsSync(path.join(root, 'etc/app.d/new.conf')));
    assert.ok(!fs.existsSync(path.join(root, 'etc/app.d/x.conf')), 'a file the admin removed came back');
  });
});

describe('update', () => {
  test('installs the newest revision of every installed package, by name, with its new deps', async () => {
    const root = newRoot();
    await distriOk(['install', '--root', root, '--repo', repoA, 'app', 'tool']);
    const repoC = await makeRepo([
      { full: 'lib-amd64-1.1-2', tree: simpleTree('lib') },
      { full: 'app-amd64-2.1-5', tree: simpleTree('app'), runtimeDep: ['lib-amd64-1.1-2'] },
      { full: 'other-amd64-1-1', tree: simpleTree('other') }, // not installed: not an update
    ]);
    temps.push(repoC);
    const out = JSON.parse(await distriOk(['update', '--root', root, '--repo', repoA, '--repo', repoC, '--json']));
    assert.deepEqual(out.resolved.map((r: { full: string }) => r.full).sort(), ['app-amd64-2.1-5', 'lib-amd64-1.1-2']);
    const files = storeFiles(store(root));
    for (const f of ['app-amd64-2.0-3', 'app-amd64-2.1-5', 'lib-amd64-1.0-1', 'lib-amd64-1.1-2', 'tool-amd64-99-2']) assert.ok(files.includes(`${f}.squashfs`), `${f} missing`);
    assert.ok(!files.some((f) => f.startsWith('other-')));
    const again = await distriOk(['update', '--root', root, '--repo', repoA, '--repo', repoC]);
    assert.match(again, /everything is up to date/);
  });
});

/**
 * A real HTTP server for the repo's files that, for files whose name matches `stallOn`, sends the
 * headers and the first `stallAfter` bytes, then nothing more (the connection stays open).
 */
async function stallingServer(repo: string, stallOn: RegExp, stallAfter: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const file = path.join(repo, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Length': data.length });
    if (stallOn.test(file)) res.write(data.subarray(0, stallAfter));
    else res.end(data);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** `distri install` as a child we can signal; resolves when it exits. */
function spawnInstall(args: string[]) {
  const child = spawn(process.execPath, [cliPath(), 'install', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr };
}

/** The bytes downloaded so far into a `.part` file of `name` in the store's tmp/. */
function partBytes(root: string, name: string): number {
  const tmp = path.join(store(root), 'tmp');
  try {
    return fs
      .readdirSync(tmp)
      .filter((n) => n.includes(name) && n.endsWith('.part'))
      .reduce((sum, n) => sum + fs.statSync(path.join(tmp, n)).size, 0);
  } catch {
    return 0;
  }
}

describe('interrupted installs and the lock', () => {
  let stall: Server;
  const STALL_AFTER = 1000;

  before(async () => {
    // lib's image stalls; app's files (and lib's meta) arrive whole.
    stall = await stallingServer(repoA, /lib-amd64-1\.0-1\.squashfs$/, STALL_AFTER);
    servers.push(stall);
  });

  async function startStalledInstall(root: string) {
    const inst = spawnInstall(['--root', root, '--repo', stall.url, '--timeout', '600', 'app']);
    const reached = await waitFor(() => partBytes(root, 'lib-amd64-1.0-1.squashfs') >= STALL_AFTER && partBytes(root, 'app-amd64-2.0-3.squashfs') > 0, 30_000);
    if (!reached) {
      inst.child.kill('SIGKILL');
      throw new Error(`the install did not reach the stall: ${inst.stderr()}`);
    }
    return inst;
  }

  test('SIGKILL mid-download: the store is as it was; the next install breaks the stale lock and cleans up', async () => {
    const root = newRoot();
    await distriOk(['install', '--root', root, '--repo', repoA, 'plain']);
    const before = storeFiles(store(root));
    const inst = await startStalledInstall(root);
    inst.child.kill('SIGKILL');
    assert.equal((await inst.exited).signal, 'SIGKILL');
    assert.deepEqual(storeFiles(store(root)), before, 'the killed install changed the store');
    assert.ok(!fs.existsSync(path.join(root, 'etc', 'app.conf')));
    assert.ok(fs.existsSync(path.join(store(root), '.distri-lock')), 'a SIGKILLed install leaves its lock (this test expects to see it broken)');
    // The next install: stale lock broken, leftovers removed, and it works.
    await distriOk(['install', '--root', root, '--repo', repoA, 'app']);
    assert.deepEqual(storeFiles(store(root)), [...APP_SET, ...before].sort());
    assertClean(root);
  });

  test('SIGTERM mid-download: the store is as it was, temp files and lock gone at once', async () => {
    const root = newRoot();
    const inst = await startStalledInstall(root);
    inst.child.kill('SIGTERM');
    assert.equal((await inst.exited).signal, 'SIGTERM');
    assert.deepEqual(storeFiles(store(root)), []);
    assertClean(root);
  });

  test('a second install fails at once naming the holder, or waits for it with --lock-wait', async () => {
    const root = newRoot();
    const holder = await startStalledInstall(root);
    try {
      const r = await distri(['install', '--root', root, '--repo', repoA, 'tool']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`is locked by process ${holder.child.pid} \\(distri install\\)`));
      // gc takes the same lock.
      const gc = await distri(['gc', '--store', store(root)]);
      assert.equal(gc.status, 1);
      assert.match(gc.stderr, /is locked by process/);
      const waiter = spawnInstall(['--root', root, '--repo', repoA, '--lock-wait', '120', 'tool']);
      assert.ok(await waitFor(() => /waiting for the store lock held by process/.test(waiter.stderr()), 30_000), waiter.stderr());
      holder.child.kill('SIGTERM');
      const done = await waiter.exited;
      assert.equal(done.code, 0, waiter.stderr());
      assert.deepEqual(storeFiles(store(root)), ['tool-amd64-99-2.meta.textproto', 'tool-amd64-99-2.squashfs']);
      assertClean(root);
    } finally {
      holder.child.kill('SIGKILL');
      await holder.exited;
    }
  });
});
