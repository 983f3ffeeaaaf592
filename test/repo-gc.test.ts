/**
 * `distri gc` on real stores (images made by `distri pack`): the cases of the distri docs (the
 * newest revision stays; a runtime dep of a kept package stays), the fixes (a newest name without
 * revision is kept; versions compare naturally; images without meta are reported, not deleted),
 * --dry-run, --json, a meta that does not parse, and the order of deletion (meta before image),
 * watched with strace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnless } from './oracle/tools';
import { cliPath, run } from './helpers/mount';
import { addRepoPackage, distri, simpleTree, storeFiles, tempDir, type PkgSpec } from './helpers/repo';

const temps: string[] = [];
after(() => {
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

/** A store (`<dir>/pkg`) holding these packages. */
async function makeStore(specs: PkgSpec[]): Promise<string> {
  const dir = tempDir('distri-gcstore-');
  temps.push(dir);
  for (const s of specs) await addRepoPackage(dir, s);
  return path.join(dir, 'pkg');
}

const pkg = (full: string, runtimeDep: string[] = []): PkgSpec => ({ full, tree: simpleTree(full.split('-')[0]!), runtimeDep });
const names = (store: string) => [...new Set(storeFiles(store).map((f) => f.replace(/\.(squashfs|meta\.textproto)$/, '')))].sort();

async function gc(store: string, ...args: string[]) {
  const r = await distri(['gc', '--store', store, '--json', ...args]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { keep: string[]; remove: string[]; imagesWithoutMeta: string[]; metasWithoutImage: string[]; bytes: number; rescan?: { status: string } };
}

test('the newest revision stays; a runtime dep of what stays stays too (the distri docs)', async () => {
  const store = await makeStore([pkg('strace-amd64-5.1-4'), pkg('strace-amd64-5.1-5')]);
  const r = await gc(store);
  assert.deepEqual(r.remove, ['strace-amd64-5.1-4']);
  assert.deepEqual(names(store), ['strace-amd64-5.1-5']);
  assert.equal(r.rescan?.status, 'no daemon');

  const store2 = await makeStore([pkg('strace-amd64-5.1-4'), pkg('strace-amd64-5.1-5'), pkg('i3status-amd64-2.13-3', ['strace-amd64-5.1-4'])]);
  const r2 = await gc(store2);
  assert.deepEqual(r2.remove, []);
  assert.deepEqual(names(store2), ['i3status-amd64-2.13-3', 'strace-amd64-5.1-4', 'strace-amd64-5.1-5']);
});

test('fixes: a newest name without revision is kept, versions compare naturally, --dry-run deletes nothing', async () => {
  const store = await makeStore([pkg('less-amd64-529'), pkg('less-amd64-530'), pkg('foo-amd64-99'), pkg('foo-amd64-100'), pkg('bar-amd64-9.9-1'), pkg('bar-amd64-10.0-1')]);
  const dry = await gc(store, '--dry-run');
  assert.deepEqual(dry.remove, ['bar-amd64-9.9-1', 'foo-amd64-99', 'less-amd64-529']);
  assert.equal(names(store).length, 6, 'dry run deleted something');
  assert.ok(dry.bytes > 0);
  const r = await gc(store);
  assert.deepEqual(r.remove, dry.remove);
  assert.deepEqual(names(store), ['bar-amd64-10.0-1', 'foo-amd64-100', 'less-amd64-530']);
  // Nothing more to do the second time.
  assert.deepEqual((await gc(store)).remove, []);
});

test('images without meta and metas without image are reported and left alone', async () => {
  const store = await makeStore([pkg('tool-amd64-1-1'), pkg('tool-amd64-1-2')]);
  fs.copyFileSync(path.join(store, 'tool-amd64-1-1.squashfs'), path.join(store, 'orphan-amd64-1-1.squashfs'));
  fs.writeFileSync(path.join(store, 'ghost-amd64-1-1.meta.textproto'), 'source_pkg: "ghost"\n');
  const r = await gc(store);
  assert.deepEqual(r.imagesWithoutMeta, ['orphan-amd64-1-1']);
  assert.deepEqual(r.metasWithoutImage, ['ghost-amd64-1-1']);
  assert.deepEqual(r.remove, ['tool-amd64-1-1']);
  assert.ok(fs.existsSync(path.join(store, 'orphan-amd64-1-1.squashfs')));
  assert.ok(fs.existsSync(path.join(store, 'ghost-amd64-1-1.meta.textproto')));
  const text = await distri(['gc', '--store', store, '--dry-run']);
  assert.match(text.stdout, /image without meta \(not served, left alone\): orphan-amd64-1-1\.squashfs/);
});

test('a meta that does not parse stops gc before it deletes anything', async () => {
  const store = await makeStore([pkg('tool-amd64-1-1'), pkg('tool-amd64-1-2'), pkg('x-amd64-1-1')]);
  fs.writeFileSync(path.join(store, 'x-amd64-1-1.meta.textproto'), 'runtime_dep: <\n');
  const r = await distri(['gc', '--store', store]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^distri: gc: .*nothing deleted: the meta of x-amd64-1-1 .*cannot be read/m);
  assert.equal(names(store).length, 3);
});

test('each removed package loses its meta before its image (strace)', { skip: skipUnless('unlink order under strace', 'strace') }, async () => {
  const store = await makeStore([pkg('a-amd64-1-1'), pkg('a-amd64-1-2'), pkg('b-amd64-1-1'), pkg('b-amd64-1-2')]);
  const log = path.join(path.dirname(store), 'strace.log');
  const r = await run('strace', ['-f', '-qq', '-e', 'trace=unlink,unlinkat', '-o', log, process.execPath, cliPath(), 'gc', '--store', store], { timeoutMs: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = fs.readFileSync(log, 'utf8').split('\n');
  for (const full of ['a-amd64-1-1', 'b-amd64-1-1']) {
    const meta = lines.findIndex((l) => l.includes(`${full}.meta.textproto"`));
    const image = lines.findIndex((l) => l.includes(`${full}.squashfs"`));
    assert.ok(meta >= 0 && image >= 0, `no unlink of ${full} seen`);
    assert.ok(meta < image, `${full}: image unlinked before its meta`);
  }
  assert.deepEqual(names(store), ['a-amd64-1-2', 'b-amd64-1-2']);
});

test('a missing store is said plainly', async () => {
  const r = await distri(['gc', '--store', '/nonexistent/roimg']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^distri: gc: \/nonexistent\/roimg: no such store directory$/m);
});
