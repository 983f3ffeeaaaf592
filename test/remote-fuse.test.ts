// `distri fuse --repo URL --autodownload` through a real FUSE mount (a child process, on both
// transports): a package that is only in the remote repository (written by `distri mirror`, served
// by nginx behind the fault proxy) is listed in /ro and /ro/bin before it is
// local, a file is read through it with a fraction of the image fetched, and a reset connection
// gives EIO for that read only, the same read working once the server behaves again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { xorshift32 } from '../src/util/xorshift';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startNginx, tempDir, type Server } from './helpers/repo';
import { cliPath, forEachTransport, fuseAvailable, run, waitFor } from './helpers/mount';
import { addPackage, mksquashfs, sh, spawnStoreMount, writeTree, type StoreMount } from './helpers/store';
import { skipUnless } from './oracle/tools';

const skip = skipUnless('remote FUSE tests', fuseAvailable(), 'mksquashfs', 'nginx');
const REMOTE = 'tool-amd64-2.1-3';
const LOCAL = 'local-amd64-1-1';

function noise(seed: number, n: number): Buffer {
  const next = xorshift32(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(next(), i);
  return b;
}

const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

forEachTransport(() => {
  describe('distri fuse --repo URL --autodownload', { skip }, () => {
    let root: string;
    let store: string;
    let proxy: FaultProxy;
    let nginx: Server | undefined;
    let imageSize: number;
    const files: Record<string, Buffer> = {};

    before(async () => {
      root = tempDir('distri-remote-fuse-'); // nginx's workers read the repo below it
      const repo = path.join(root, 'repo');
      store = path.join(root, 'store');
      fs.mkdirSync(path.join(repo, 'pkg'), { recursive: true });
      fs.mkdirSync(store);
      for (let i = 0; i < 8; i++) files[`out/share/tool/data${i}`] = noise(100 + i, 700_000);
      files['out/share/doc/tool/README'] = Buffer.from('a remote package\n');
      const tree = { ...files, 'bin/tool': { content: '#!/bin/sh\necho remote tool\n', mode: 0o755 }, 'out/lib/pkgconfig/tool.pc': 'Name: tool\n' };
      writeTree(path.join(root, 'tree'), tree);
      mksquashfs(path.join(root, 'tree'), path.join(repo, 'pkg', `${REMOTE}.squashfs`));
      fs.writeFileSync(path.join(repo, 'pkg', `${REMOTE}.meta.textproto`), 'source_pkg: "tool"\nversion: "2.1-3"\n');
      imageSize = fs.statSync(path.join(repo, 'pkg', `${REMOTE}.squashfs`)).size;
      const m = await run(process.execPath, [cliPath(), 'mirror', repo], { timeoutMs: 30_000 });
      assert.equal(m.status, 0, m.stderr);
      addPackage(store, { full: LOCAL, tree: { 'bin/local': 'local\n' } }, root);
      nginx = await startNginx(repo);
      proxy = await startFaultProxy({ upstream: nginx.url });
    });

    after(async () => {
      await proxy?.close();
      await nginx?.stop();
      await nginx?.stop();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    it('lists a remote package in /ro and /ro/bin before it is local, reads it lazily, survives a reset and a stall', async () => {
      let m: StoreMount | undefined;
      try {
        await proxy.resetCounters();
        m = await spawnStoreMount(store, ['--repo', proxy.url, '--autodownload', '--remote-timeout', '1000']);
        const ro = m.dir;
        const ls = await sh(`ls ${ro} && echo --- && ls ${ro}/bin`);
        assert.equal(ls.status, 0, ls.stderr);
        const [top, bin] = ls.stdout.split('---\n');
        assert.ok(top!.split('\n').includes(REMOTE), top);
        assert.ok(top!.split('\n').includes(LOCAL), top);
        assert.deepEqual(bin!.trim().split('\n').sort(), ['local', 'tool']);
        assert.equal(fs.readlinkSync(path.join(ro, 'bin', 'tool')), `../${REMOTE}/bin/tool`);
        assert.equal(fs.readlinkSync(path.join(ro, 'lib', 'pkgconfig', 'tool.pc')), `../../${REMOTE}/out/lib/pkgconfig/tool.pc`);
        assert.ok(!fs.existsSync(path.join(store, `${REMOTE}.squashfs`)), 'not local');
        const listed = await proxy.counters();
        assert.equal(listed.ranged, 0, `listing fetched nothing of the image: ${JSON.stringify(listed)}`);

        const out = await sh(`${ro}/bin/tool && cat ${ro}/${REMOTE}/out/share/tool/data5 | sha256sum`);
        assert.equal(out.status, 0, out.stderr);
        assert.equal(out.stdout.split('\n')[0], 'remote tool');
        assert.equal(out.stdout.split('\n')[1]!.split(' ')[0], sha256(files['out/share/tool/data5']!));
        const fetched = await proxy.counters();
        assert.ok(fetched.bytes < imageSize / 2, `fetched ${fetched.bytes} of ${imageSize} bytes`);
        assert.ok(!fs.existsSync(path.join(store, `${REMOTE}.squashfs`)), 'still not local (no background fill asked)');

        // A reset connection: EIO for the read that needs missing bytes; the rest keeps working.
        await proxy.setFault('reset', '\\.squashfs$');
        const bad = await sh(`cat ${ro}/${REMOTE}/out/share/tool/data2 > /dev/null`);
        assert.notEqual(bad.status, 0);
        assert.match(bad.stderr, /Input\/output error/);
        const fine = await sh(`cat ${ro}/${REMOTE}/out/share/doc/tool/README ${ro}/${LOCAL}/bin/local`);
        assert.equal(fine.stdout, 'a remote package\nlocal\n', fine.stderr);
        assert.equal(
          m
            .log()
            .split('\n')
            .filter((l) => l.includes('unavailable')).length >= 1,
          true,
          m.log(),
        );
        // A stalled connection: EIO once the timeout (1 s of silence, retried) has passed; never a hang.
        await proxy.setFault('stall', '\\.squashfs$');
        const stalled = await sh(`cat ${ro}/${REMOTE}/out/share/tool/data3 > /dev/null`, 30_000);
        assert.notEqual(stalled.status, 0);
        assert.match(stalled.stderr, /Input\/output error/);
        await proxy.setFault('none');
        const again = await sh(`cat ${ro}/${REMOTE}/out/share/tool/data2 ${ro}/${REMOTE}/out/share/tool/data3 | sha256sum`);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.stdout.split(' ')[0], sha256(Buffer.concat([files['out/share/tool/data2']!, files['out/share/tool/data3']!])));
      } finally {
        await m?.cleanup();
        fs.rmSync(path.join(store, '.distri-remote'), { recursive: true, force: true });
      }
    });

    it('a repository that is down at mount: the local store is served; its packages appear after later rescans', async () => {
      let m: StoreMount | undefined;
      await proxy.down();
      try {
        m = await spawnStoreMount(store, ['--repo', proxy.url, '--autodownload', '--remote-timeout', '1000']);
        const ro = m.dir;
        assert.deepEqual(
          fs.readdirSync(ro).filter((n) => n.includes('-amd64-')),
          [LOCAL],
        );
        assert.match(m.log(), /index not loaded/);
        await proxy.up();
        const scan = () => run(process.execPath, [cliPath(), 'fusectl', ro, 'scan'], { timeoutMs: 15_000 });
        let seen = false;
        for (let i = 0; i < 50 && !seen; i++) {
          assert.equal((await scan()).status, 0);
          seen = (await sh(`ls ${ro}`)).stdout.split('\n').includes(REMOTE);
        }
        assert.ok(seen, `the remote package appeared after rescans: ${m.log()}`);
        const r = await sh(`cat ${ro}/bin/tool | head -1 && cat ${ro}/${REMOTE}/out/share/doc/tool/README`);
        assert.equal(r.stdout, '#!/bin/sh\na remote package\n', r.stderr);
      } finally {
        await proxy.up();
        await m?.cleanup();
        fs.rmSync(path.join(store, '.distri-remote'), { recursive: true, force: true });
      }
    });

    it('with --fill-in-background the image is completed into the store and served as a local package', async () => {
      let m: StoreMount | undefined;
      try {
        m = await spawnStoreMount(store, ['--repo', proxy.url, '--autodownload', '--remote-timeout', '1000', '--fill-in-background']);
        const ro = m.dir;
        const first = await sh(`cat ${ro}/${REMOTE}/out/share/doc/tool/README`);
        assert.equal(first.stdout, 'a remote package\n', first.stderr);
        const image = path.join(store, `${REMOTE}.squashfs`);
        assert.ok(await waitFor(() => fs.existsSync(image), 30_000), `completed into the store: ${m.log()}`);
        assert.ok(fs.existsSync(path.join(store, `${REMOTE}.meta.textproto`)));
        assert.deepEqual(fs.readdirSync(path.join(store, '.distri-remote')), [], 'no cache files left');
        // The daemon rescans on its own (directory watch); the package is then a local one.
        const scan = await run(process.execPath, [cliPath(), 'fusectl', ro, 'scan'], { timeoutMs: 15_000 });
        assert.equal(scan.status, 0, scan.stderr);
        assert.match(m.log(), /rescan \([^)]*\): 2 packages, \+1 -0/, 'the local image replaced the remote package');
        const again = await sh(`cat ${ro}/${REMOTE}/out/share/tool/data7 | sha256sum && readlink ${ro}/bin/tool`);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.stdout, `${sha256(files['out/share/tool/data7']!)}  -\n../${REMOTE}/bin/tool\n`);
      } finally {
        await m?.cleanup();
        fs.rmSync(path.join(store, '.distri-remote'), { recursive: true, force: true });
        fs.rmSync(path.join(store, `${REMOTE}.squashfs`), { force: true });
        fs.rmSync(path.join(store, `${REMOTE}.meta.textproto`), { force: true });
      }
    });
  });
});
