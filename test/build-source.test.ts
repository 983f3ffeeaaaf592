// The source phase of distri build on real archives (tar, patch): first component stripped,
// cherry_pick patches and extra files applied, and the sha256 checked on every build, also when
// the unpacked tree is already there (distri skipped that check).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { skipUnless } from './oracle/tools';
import { prepareSource } from '../src/build/source';

const made: string[] = [];
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

function setup() {
  const t = fs.mkdtempSync(path.join(os.tmpdir(), 'build-source-'));
  made.push(t);
  const top = path.join(t, 'mk', 'foo-1.0');
  fs.mkdirSync(path.join(top, 'src'), { recursive: true });
  fs.writeFileSync(path.join(top, 'src', 'main.c'), 'int main(void) { return 1; }\n');
  fs.utimesSync(path.join(top, 'src', 'main.c'), 1500000000, 1500000000);
  fs.utimesSync(path.join(top, 'src'), 1400000000, 1400000000);
  fs.utimesSync(top, 1400000000, 1400000000);
  const archive = path.join(t, 'foo-1.0.tar.gz');
  assert.equal(spawnSync('tar', ['-czf', archive, '-C', path.join(t, 'mk'), 'foo-1.0']).status, 0);
  const pkgDir = path.join(t, 'pkgs', 'foo');
  fs.mkdirSync(pkgDir, { recursive: true });
  fs.writeFileSync(path.join(pkgDir, 'fix.patch'), '--- a/src/main.c\n+++ b/src/main.c\n@@ -1 +1 @@\n-int main(void) { return 1; }\n+int main(void) { return 0; }\n');
  fs.writeFileSync(path.join(pkgDir, 'extra.h'), '#define X 1\n');
  const hash = createHash('sha256').update(fs.readFileSync(archive)).digest('hex');
  return { t, archive, pkgDir, hash, url: pathToFileURL(archive).toString(), workDir: path.join(t, '_build', 'foo') };
}

describe('source', { skip: skipUnless('source phase', 'tar', 'patch') }, () => {
  it('strips the top dir, applies patches and extra files; SOURCE_DATE_EPOCH from the archive', async () => {
    const s = setup();
    const logs: string[] = [];
    const r = await prepareSource({ source: s.url, hash: s.hash, workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: ['fix.patch'], extraFile: ['extra.h'], log: (l) => logs.push(l) });
    assert.equal(r.dir, path.join(s.workDir, 'foo-1.0'));
    assert.equal(fs.readFileSync(path.join(r.dir, 'src/main.c'), 'utf8'), 'int main(void) { return 0; }\n');
    assert.equal(fs.readFileSync(path.join(r.dir, 'extra.h'), 'utf8'), '#define X 1\n');
    assert.equal(r.newestMtime, 1500000000); // the archive's newest file, not the patch time
    assert.ok(fs.existsSync(path.join(s.workDir, 'foo-1.0.tar.gz')), 'the download is kept');
    assert.deepEqual(fs.readdirSync(s.workDir).sort(), ['foo-1.0', 'foo-1.0.tar.gz']);
    fs.rmSync(s.t, { recursive: true });
  });

  it('checks the hash every time, even with the tree unpacked', async () => {
    const s = setup();
    const base = { source: s.url, hash: s.hash, workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: [], extraFile: [], log: () => undefined };
    await prepareSource(base);
    // The kept copy and the origin both change: the unpacked tree must not be trusted.
    fs.appendFileSync(path.join(s.workDir, 'foo-1.0.tar.gz'), 'x');
    fs.appendFileSync(s.archive, 'x');
    await assert.rejects(prepareSource(base), /sha256 is [0-9a-f]{64}, but the recipe's hash says/);
    fs.rmSync(s.t, { recursive: true });
  });

  it('a kept archive that went bad is downloaded again', async () => {
    const s = setup();
    const base = { source: s.url, hash: s.hash, workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: [], extraFile: [], log: () => undefined };
    await prepareSource(base);
    fs.writeFileSync(path.join(s.workDir, 'foo-1.0.tar.gz'), 'garbage');
    const r = await prepareSource(base);
    assert.ok(fs.existsSync(path.join(r.dir, 'src/main.c')));
    fs.rmSync(s.t, { recursive: true });
  });

  it('a wrong hash leaves no tree; a failing patch leaves no half tree', async () => {
    const s = setup();
    await assert.rejects(prepareSource({ source: s.url, hash: '0'.repeat(64), workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: [], extraFile: [], log: () => undefined }), /sha256/);
    assert.ok(!fs.existsSync(path.join(s.workDir, 'foo-1.0')));
    fs.writeFileSync(path.join(s.pkgDir, 'bad.patch'), '--- a/nope.c\n+++ b/nope.c\n@@ -1 +1 @@\n-a\n+b\n');
    await assert.rejects(
      prepareSource({ source: s.url, hash: s.hash, workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: ['bad.patch'], extraFile: [], log: () => undefined }),
      /cherry_pick bad\.patch: patch -p1/,
    );
    assert.deepEqual(fs.readdirSync(s.workDir), ['foo-1.0.tar.gz']);
    fs.rmSync(s.t, { recursive: true });
  });

  it('empty:// is an empty tree', async () => {
    const s = setup();
    const r = await prepareSource({ source: 'empty://', hash: '', workDir: s.workDir, pkgDir: s.pkgDir, cherryPick: [], extraFile: [], log: () => undefined });
    assert.deepEqual(fs.readdirSync(r.dir), []);
    fs.rmSync(s.t, { recursive: true });
  });
});
