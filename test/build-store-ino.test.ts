// A build sandbox's /ro must give every file of every package its own st_ino. Images number their
// inodes from 1, so two packages' libraries can have the same image inode number; ld.so identifies
// loaded libraries by (st_dev, st_ino) and took libpcre2-8 for the already loaded libacl, which
// broke every program using libselinux (sed, ls, install) in the first real build. Checked here
// on a real mount (our distri fuse, in its own process), with stat(1) as the reader.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isRoot, skipUnless } from './oracle/tools';
import { addPackage } from './helpers/store';
import { mountStore } from '../src/build/root';

function stat(files: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('stat', ['-L', '-c', '%d %i %n', ...files]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

describe('st_ino in /ro', { skip: skipUnless('st_ino in /ro', 'mksquashfs', isRoot()) }, () => {
  it('files at the same inode number in two images have different st_ino', async () => {
    const t = fs.mkdtempSync(path.join(os.tmpdir(), 'store-ino-'));
    const store = path.join(t, 'store');
    fs.mkdirSync(store);
    // Same tree shape: out/lib/libX.so.1 gets the same inode number in both images.
    addPackage(store, { full: 'acl-amd64-1-1', tree: { 'out/lib/liba.so.1': 'acl library' } }, t);
    addPackage(store, { full: 'pcre-amd64-1-1', tree: { 'out/lib/libp.so.1': 'pcre library' } }, t);
    const m = await mountStore({ store });
    try {
      const lines = (await stat([`${m.mountpoint}/acl-amd64-1-1/out/lib/liba.so.1`, `${m.mountpoint}/pcre-amd64-1-1/out/lib/libp.so.1`, `${m.mountpoint}/lib/liba.so.1`])).trim().split('\n');
      assert.equal(lines.length, 3);
      const ino = lines.map((l) => l.split(' ')[1]);
      assert.notEqual(ino[0], ino[1], lines.join('\n'));
      assert.equal(ino[0], ino[2], 'the exchange link leads to the same file');
    } finally {
      await m.stop();
      fs.rmSync(t, { recursive: true, force: true });
    }
  });
});
