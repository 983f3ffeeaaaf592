/**
 * install and gc tell a running `distri fuse` daemon: with the store mounted (in a child process,
 * on a private mountpoint that `<root>/ro` points to), the packages an install placed are in
 * `/ro/bin` as soon as install returns, and a revision gc removed is gone from `/ro` when gc
 * returns (the daemon's scan answers only after the kernel dropped its cached entries).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnless } from './oracle/tools';
import { fuseAvailable } from './helpers/mount';
import { sh, spawnStoreMount, type StoreMount } from './helpers/store';
import { distriOk, makeRepo, simpleTree, tempDir } from './helpers/repo';

const temps: string[] = [];
let mount: StoreMount | undefined;

after(async () => {
  await mount?.cleanup();
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

test('install and gc ask the daemon serving the store to rescan', { skip: skipUnless('a distri fuse daemon for the store', fuseAvailable()) }, async () => {
  const repo = await makeRepo([
    { full: 'lib-amd64-1.0-1', tree: simpleTree('lib') },
    { full: 'app-amd64-2.0-3', tree: simpleTree('app'), runtimeDep: ['lib-amd64-1.0-1'] },
    { full: 'app-amd64-2.0-4', tree: simpleTree('app', { 'bin/app4': { content: '#!/bin/sh\n', mode: 0o755 } }), runtimeDep: ['lib-amd64-1.0-1'] },
  ]);
  const root = tempDir('distri-root-');
  temps.push(repo, root);
  fs.mkdirSync(path.join(root, 'roimg'));
  mount = await spawnStoreMount(path.join(root, 'roimg'));
  fs.symlinkSync(mount.dir, path.join(root, 'ro'));

  const out = JSON.parse(await distriOk(['install', '--root', root, '--repo', repo, '--json', 'app-amd64-2.0-3']));
  assert.equal(out.rescan.status, 'rescanned');
  const ls = await sh(`ls ${mount.dir}/bin && readlink ${mount.dir}/bin/app`);
  assert.equal(ls.status, 0, ls.stderr);
  assert.match(ls.stdout, /^app\nlib\n\.\.\/app-amd64-2\.0-3\/bin\/app\n$/);

  await distriOk(['install', '--root', root, '--repo', repo, 'app']);
  assert.equal((await sh(`readlink ${mount.dir}/bin/app`)).stdout, '../app-amd64-2.0-4/bin/app\n');

  const gc = JSON.parse(await distriOk(['gc', '--store', path.join(root, 'roimg'), '--json']));
  assert.deepEqual(gc.remove, ['app-amd64-2.0-3']);
  assert.equal(gc.rescan.status, 'rescanned');
  const after = await sh(`ls ${mount.dir}`);
  assert.ok(!after.stdout.includes('app-amd64-2.0-3'), after.stdout);
  assert.ok(after.stdout.includes('app-amd64-2.0-4'), after.stdout);
});
