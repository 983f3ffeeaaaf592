/**
 * The writer on a real root filesystem (fixtures/rootfs.sh: a debootstrap minbase of Debian
 * bookworm, with device nodes, setuid binaries, hard links and symlinks): packed uncompressed and
 * with the defaults (gzip, 128 KiB), each image is mounted by the Linux kernel, extracted by
 * unsquashfs and read by our reader, and every view must equal the tree; the gzip image must be no
 * larger than mksquashfs's of the same tree (× 1.01), with the same inode and fragment counts.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Image } from '../src/reader/image';
import { pack, type Compression } from '../src/writer/pack';
import { kernelAvailable, withKernelMount } from './oracle/kernel';
import { diffManifests, walkDirectory, type Manifest } from './oracle/manifest';
import { allAvailable, isRoot, repoRoot, requireTools, skipUnless, type Availability } from './oracle/tools';
import { unsquashfsAvailable, withUnsquashfs } from './oracle/unsquashfs';
import { imageManifest } from './helpers/image-manifest';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-rootfs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Builds the tree on first use; unavailable (a loud skip) when debootstrap or the mirror is missing. */
function rootfs(): { dir: string } | Availability {
  const r = spawnSync('bash', [path.join(repoRoot(), 'fixtures/rootfs.sh')], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: `fixtures/rootfs.sh failed (no Debian mirror?): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}` };
  return { dir: path.join(repoRoot(), 'fixtures/build/rootfs') };
}

function noDiff(a: Manifest, b: Manifest, labels: [string, string]): void {
  const d = diffManifests(a, b, { labels });
  assert.deepEqual(d, [], d.slice(0, 20).join('\n'));
}

const prereq = allAvailable(isRoot(), 'debootstrap', kernelAvailable(), unsquashfsAvailable(), 'mksquashfs');
describe('pack a debootstrap root filesystem', { skip: skipUnless('root filesystem writer test', prereq) }, () => {
  let tree: { dir: string } | Availability | undefined;
  let source: Manifest | undefined;
  const setup = (): string | undefined => {
    tree ??= rootfs();
    if (!('dir' in tree)) return undefined;
    source ??= walkDirectory(tree.dir, { xattrs: false });
    return tree.dir;
  };

  for (const comp of ['none', 'gzip'] as Compression[]) {
    test(`${comp}: kernel, unsquashfs and our reader see the tree`, async (t) => {
      const dir = setup();
      if (!dir) {
        requireTools(t, tree as Availability);
        return;
      }
      const expected = source!;
      const image = path.join(tmp, `${comp}.sqfs`);
      await pack(dir, image, { compression: comp, mkfsTime: 0, xattrs: false, warn: () => {} });
      const img = Image.open(image);
      try {
        noDiff(expected, imageManifest(img, { xattrs: false }), ['tree', 'reader']);
      } finally {
        img.close();
      }
      await withKernelMount(image, (m) => noDiff(expected, walkDirectory(m, { xattrs: false }), ['tree', 'kernel']));
      await withUnsquashfs(image, (x) =>
        noDiff(
          expected.filter((e) => e.path !== ''),
          walkDirectory(x, { xattrs: false }).filter((e) => e.path !== ''),
          ['tree', 'unsquashfs'],
        ),
      );
      const kinds = new Set(expected.map((e) => e.type));
      assert.ok(kinds.has('chardev') && kinds.has('symlink'), `the tree has device nodes and symlinks (${[...kinds].join(', ')})`);

      if (comp === 'gzip') {
        const theirs = path.join(tmp, 'mk-gzip.sqfs');
        const m = spawnSync('mksquashfs', [dir, theirs, '-noappend', '-mkfs-time', '0', '-no-xattrs', '-no-progress', '-quiet'], { encoding: 'utf8' });
        assert.equal(m.status, 0, m.stderr);
        const a = Image.open(image);
        const b = Image.open(theirs);
        try {
          const ratio = a.superblock.bytesUsed / b.superblock.bytesUsed;
          t.diagnostic(`gzip: ours ${a.superblock.bytesUsed} bytes, mksquashfs ${b.superblock.bytesUsed} (× ${ratio.toFixed(4)})`);
          assert.ok(ratio <= 1.01, `ours ${a.superblock.bytesUsed} bytes, mksquashfs ${b.superblock.bytesUsed} (× ${ratio.toFixed(4)})`);
          for (const k of ['inodeCount', 'fragmentCount', 'idCount'] as const) assert.equal(a.superblock[k], b.superblock[k], `superblock ${k}`);
        } finally {
          a.close();
          b.close();
        }
      }
    });
  }
});
