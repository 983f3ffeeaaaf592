// The remote byte source against a real HTTP server on loopback (nginx, behind the
// fault-injecting proxy): range requests, chunk verification, the cache file
// reused by another process, completion into a store image, and every fault of issue 12 (EIO and
// one log line, never wrong bytes, never a poisoned cache, and the same read succeeding once the
// server is back).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SquashfsError } from '../src/errors';
import { HttpClient, HttpSource, type CacheFiles, type RemoteImageSpec } from '../src/io/http-source';
import { Image } from '../src/reader/image';
import { hashFile } from '../src/repo/repo-index';
import { xorshift32 } from '../src/util/xorshift';
import { startFaultProxy, type Fault, type FaultProxy } from './helpers/fault-proxy';
import { startNginx, tempDir, type Server } from './helpers/repo';
import { run, waitFor } from './helpers/mount';
import { mksquashfs, writeTree, type Tree } from './helpers/store';
import type { RemoteReadArgs } from './helpers/remote-read';
import { skipUnless } from './oracle/tools';

const ci = process.env.CI === 'true';
// nginx is the real server behind the fault proxy (.ci/run installs it: in CI its absence fails).
const skip = ci ? undefined : skipUnless('remote byte source tests', 'mksquashfs', 'nginx');

const CHUNK = 64 << 10;
const FULL = 'big-amd64-1.0-1';
const TIMEOUT_MS = 400;

function noise(seed: number, n: number): Buffer {
  const next = xorshift32(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(next(), i);
  return b;
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

describe('remote byte source', { skip }, () => {
  let work: string;
  let repo: string;
  let proxy: FaultProxy;
  let nginx: Server | undefined;
  let client: HttpClient;
  let imageBytes: Buffer;
  let spec: RemoteImageSpec;
  const tree: Tree = {};
  const logs: string[] = [];
  let cacheN = 0;

  before(async () => {
    work = tempDir('distri-remote-src-'); // nginx's workers read the repo below it
    repo = path.join(work, 'repo');
    fs.mkdirSync(path.join(repo, 'pkg'), { recursive: true });
    // Incompressible files spread over the image, so that one file's chunks are a small part of it.
    for (let i = 0; i < 12; i++) tree[`out/share/data/f${i}.bin`] = noise(i + 1, 200_000 + i * 1000);
    tree['out/share/doc/readme.txt'] = 'hello from a remote package\n';
    tree['bin/tool'] = '#!/bin/sh\necho tool\n';
    writeTree(path.join(work, 'tree'), tree);
    const img = path.join(repo, 'pkg', `${FULL}.squashfs`);
    mksquashfs(path.join(work, 'tree'), img);
    fs.writeFileSync(path.join(repo, 'pkg', `${FULL}.meta.textproto`), 'source_pkg: "big"\nversion: "1.0-1"\n');
    imageBytes = fs.readFileSync(img);
    spec = { url: '', size: imageBytes.length, sha256: sha(imageBytes), chunkSize: CHUNK, chunks: hashFile(img, CHUNK).chunks };
    nginx = await startNginx(repo);
    proxy = await startFaultProxy({ upstream: nginx.url });
    spec.url = `${proxy.url}/pkg/${FULL}.squashfs`;
    client = new HttpClient({ timeoutMs: TIMEOUT_MS, retries: 1, log: (m) => logs.push(m) });
  });

  after(async () => {
    await client?.terminate();
    await proxy?.close();
    await nginx?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** Fresh cache files (a new image key: nothing fetched yet). */
  function freshCache(): CacheFiles {
    const dir = path.join(work, `cache${++cacheN}`);
    return { part: path.join(dir, `${FULL}.squashfs.part`), bitmap: path.join(dir, `${FULL}.squashfs.chunks`) };
  }

  /** Every chunk the persisted bitmap (or the shared one) calls good holds the image's bytes. */
  function assertNotPoisoned(files: CacheFiles, src: HttpSource): void {
    const part = fs.readFileSync(files.part);
    assert.equal(part.length, imageBytes.length);
    let marked = 0;
    for (let i = 0; i < spec.chunks.length; i++) {
      const has = (src as unknown as { img: { has(i: number): boolean } }).img.has(i);
      if (!has) continue;
      marked++;
      assert.equal(sha(part.subarray(i * CHUNK, (i + 1) * CHUNK)), spec.chunks[i], `chunk ${i} is marked but holds other bytes`);
    }
    if (fs.existsSync(files.bitmap)) {
      const doc = JSON.parse(fs.readFileSync(files.bitmap, 'utf8')) as { bits: string };
      const bits = Buffer.from(doc.bits, 'base64');
      for (let i = 0; i < spec.chunks.length; i++) {
        if (bits[i >> 3]! & (1 << (i & 7))) assert.equal(sha(part.subarray(i * CHUNK, (i + 1) * CHUNK)), spec.chunks[i], `chunk ${i} is persisted as good but is not`);
      }
    }
    assert.ok(marked <= spec.chunks.length);
  }

  it('reads files through range requests, fetching a small part of the image', async () => {
    await proxy.resetCounters();
    const src = new HttpSource(spec, freshCache(), client);
    const image = new Image(src);
    assert.equal(Buffer.from(image.read(image.resolve('out/share/doc/readme.txt'))).toString(), 'hello from a remote package\n');
    assert.deepEqual(Buffer.from(image.read(image.resolve('out/share/data/f7.bin'))), tree['out/share/data/f7.bin']);
    const c = await proxy.counters();
    assert.ok(c.requests > 0 && c.ranged === c.requests, `every request is a range request: ${JSON.stringify(c)}`);
    assert.ok(c.bytes < imageBytes.length / 3, `fetched ${c.bytes} of ${imageBytes.length} bytes`);
    assert.ok(src.missingChunks > 0);
  });

  it('reuses the cache file in another process: the same read makes no request', async () => {
    const files = freshCache();
    const args: RemoteReadArgs = { spec, files, path: 'out/share/data/f3.bin', timeoutMs: TIMEOUT_MS };
    const reader = path.join(__dirname, 'helpers', 'remote-read.js');
    const first = await run(process.execPath, [reader, JSON.stringify(args)], { timeoutMs: 30_000 });
    assert.equal(first.status, 0, first.stderr);
    const r1 = JSON.parse(first.stdout) as { sha256: string; missingBefore: number; missingAfter: number };
    assert.equal(r1.sha256, sha(tree['out/share/data/f3.bin'] as Buffer));
    assert.equal(r1.missingBefore, spec.chunks.length);
    await proxy.resetCounters();
    const second = await run(process.execPath, [reader, JSON.stringify(args)], { timeoutMs: 30_000 });
    assert.equal(second.status, 0, second.stderr);
    const r2 = JSON.parse(second.stdout) as typeof r1;
    assert.equal(r2.sha256, r1.sha256);
    assert.equal(r2.missingBefore, r1.missingAfter, "the second process starts from the first one's chunks");
    assert.equal((await proxy.counters()).requests, 0);
  });

  it('a cache of another image under the same name is started afresh, not reused', async () => {
    const files = freshCache();
    fs.mkdirSync(path.dirname(files.part), { recursive: true });
    // A bitmap that claims every chunk, for a different image: must not be believed.
    fs.writeFileSync(files.part, Buffer.alloc(imageBytes.length, 0xaa));
    fs.writeFileSync(
      files.bitmap,
      JSON.stringify({
        format: 'distri-chunk-bitmap/1',
        size: imageBytes.length,
        chunkSize: CHUNK,
        first: '0'.repeat(64),
        bits: Buffer.alloc(Math.ceil(spec.chunks.length / 32) * 4, 0xff).toString('base64'),
      }),
    );
    const src = new HttpSource(spec, files, client);
    assert.equal(src.missingChunks, spec.chunks.length);
    const image = new Image(src);
    assert.deepEqual(Buffer.from(image.read(image.resolve('out/share/data/f1.bin'))), tree['out/share/data/f1.bin']);
  });

  it('once every chunk is there, the cache becomes a store image beside its meta (atomic renames)', async () => {
    const files = freshCache();
    const store = path.join(work, 'store');
    fs.mkdirSync(store, { recursive: true });
    const meta = fs.readFileSync(path.join(repo, 'pkg', `${FULL}.meta.textproto`));
    const src = new HttpSource(spec, files, client, {
      fill: true,
      promote: {
        metaUrl: `${proxy.url}/pkg/${FULL}.meta.textproto`,
        metaSize: meta.length,
        metaSha256: sha(meta),
        metaDest: path.join(store, `${FULL}.meta.textproto`),
        imageDest: path.join(store, `${FULL}.squashfs`),
        imageSha256: spec.sha256,
      },
    });
    const dest = path.join(store, `${FULL}.squashfs`);
    assert.ok(await waitFor(() => fs.existsSync(dest), 30_000), 'the image was promoted');
    assert.deepEqual(fs.readFileSync(path.join(store, `${FULL}.meta.textproto`)), meta);
    assert.equal(sha(fs.readFileSync(dest)), spec.sha256);
    assert.ok(!fs.existsSync(files.part) && !fs.existsSync(files.bitmap), 'no cache files left');
    assert.deepEqual(fs.readdirSync(store).sort(), [`${FULL}.meta.textproto`, `${FULL}.squashfs`]);
    // The open source keeps reading (its descriptor follows the renamed file).
    const image = new Image(src);
    assert.deepEqual(Buffer.from(image.read(image.resolve('out/share/data/f9.bin'))), tree['out/share/data/f9.bin']);
  });

  it('the repository index: a missing file is NOT_FOUND, a present one is its bytes', () => {
    assert.throws(
      () => client.getFile(`${proxy.url}/pkg/index-v1.json`, 1 << 20),
      (e: unknown) => e instanceof SquashfsError && e.code === 'NOT_FOUND',
    );
    assert.equal(Buffer.from(client.getFile(`${proxy.url}/pkg/${FULL}.meta.textproto`, 1 << 20)).toString(), 'source_pkg: "big"\nversion: "1.0-1"\n');
  });

  const faults: { name: string; fault: Fault | 'down' }[] = [
    { name: '200 instead of 206', fault: 'status200' },
    { name: 'a short body', fault: 'short' },
    { name: 'a stalled connection', fault: 'stall' },
    { name: 'a reset connection', fault: 'reset' },
    { name: 'wrong bytes (chunk hash mismatch)', fault: 'corrupt' },
    { name: 'the server gone', fault: 'down' },
    { name: 'a 404 for the image', fault: '404' },
  ];
  for (const { name, fault } of faults) {
    it(`${name}: EIO and one log line, no wrong bytes, no poisoned cache; the same read succeeds once the server is back`, async () => {
      const files = freshCache();
      const src = new HttpSource(spec, files, client);
      const image = new Image(src); // opened while the server is fine
      const file = image.resolve('out/share/data/f5.bin');
      if (fault === 'down') await proxy.down();
      else await proxy.setFault(fault, '\\.squashfs$');
      try {
        const before = logs.length;
        assert.throws(
          () => image.read(file),
          (e: unknown) => e instanceof SquashfsError && e.code === 'IO',
        );
        const lines = logs.slice(before);
        assert.equal(lines.length, 1, `one log line: ${JSON.stringify(lines)}`);
        assert.match(lines[0]!, /unavailable/);
        assertNotPoisoned(files, src);
      } finally {
        if (fault === 'down') await proxy.up();
        await proxy.setFault('none');
      }
      assert.deepEqual(Buffer.from(image.read(file)), tree['out/share/data/f5.bin']);
      assertNotPoisoned(files, src);
    });
  }
});
