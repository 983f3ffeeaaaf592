// The /ro store as a NodeFs, driven in-process the way the kernel drives it: lookup (counting
// references), getattr, readdir, readlink, read, forget, and the control requests. Real images
// packed with mksquashfs; nothing is mounted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SquashfsError, type ErrorCode } from '../src/errors';
import { ROOT_NODE, type Invalidator, type NodeDirEntry } from '../src/vfs/node-fs';
import { StoreFs, type StoreFsOptions } from '../src/vfs/store-fs';
import { skipUnless } from './oracle/tools';
import { addPackage, removePackage, type PackageSpec } from './helpers/store';

// In CI a missing mksquashfs is a failure, not a skip (skipUnless throws under CI=true).
const skip = skipUnless('StoreFs tests', 'mksquashfs');

const UNION_META = 'source_pkg: "plugin"\nversion: "2-1"\nruntime_union: < dir: "lib/app/modules" pkg: "app-amd64-1-1" >\n';
const PACKAGES: PackageSpec[] = [
  { full: 'less-amd64-530-1', tree: { 'bin/less': 'less-1\n', 'out/share/man/man1/less.1': 'old man page', 'out/only-in-1': 'x' } },
  { full: 'less-amd64-530-2', tree: { 'bin/less': 'less-2\n', 'out/share/man/man1/less.1': 'man page' } },
  { full: 'app-amd64-1-1', tree: { 'bin/app': 'app\n', 'out/lib/app/modules/core.so': 'core', 'out/lib/app/modules/sub/a': 'a' } },
  { full: 'plugin-amd64-2-1', tree: { 'out/lib/app/modules/extra.so': 'extra', 'out/lib/app/modules/sub/b': 'b' }, meta: UNION_META },
];
const LESS_3: PackageSpec = { full: 'less-amd64-530-3', tree: { 'bin/less': 'less-3\n' } };

/** What the kernel would have been told. */
class Recorder implements Invalidator {
  readonly calls: string[] = [];
  entry(parent: number, name: string): void {
    this.calls.push(`entry ${parent} ${name}`);
  }
  inode(node: number): void {
    this.calls.push(`inode ${node}`);
  }
}

/** The kernel's side: lookups it made per node, so that it can forget them all again. */
class Kernel {
  readonly refs = new Map<number, number>();
  constructor(readonly fs: StoreFs) {}

  lookup(parent: number, name: string) {
    const e = this.fs.lookup(parent, name);
    this.refs.set(e.node, (this.refs.get(e.node) ?? 0) + 1);
    return e;
  }

  /** The node at a path from the root, looking up every component. */
  walk(p: string): number {
    let node = ROOT_NODE;
    for (const c of p.split('/')) if (c !== '') node = this.lookup(node, c).node;
    return node;
  }

  /** Every entry of a directory, in pages of at most `page` entries. */
  readdir(node: number, page = 3): NodeDirEntry[] {
    const out: NodeDirEntry[] = [];
    for (;;) {
      const before = out.length;
      let room = page;
      this.fs.readdir(node, out.length ? out[out.length - 1]!.cookie : 0, (e) => {
        if (room-- === 0) return false;
        out.push(e);
        return true;
      });
      if (out.length === before) return out;
    }
  }

  names(node: number): string[] {
    return this.readdir(node).map((e) => e.name);
  }

  read(node: number): string {
    const chunks: Buffer[] = [];
    for (let pos = 0; ;) {
      const buf = Buffer.alloc(7);
      const n = this.fs.read(node, buf, pos);
      if (n === 0) return Buffer.concat(chunks).toString();
      chunks.push(buf.subarray(0, n));
      pos += n;
    }
  }

  forgetAll(): void {
    for (const [node, n] of this.refs) this.fs.forget(node, n);
    this.refs.clear();
  }
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof SquashfsError && e.code === code, `expected ${code}`);
}

describe('StoreFs: the /ro store as nodes', { skip }, () => {
  let root: string;
  let images: string;
  let work: string;
  const opened: StoreFs[] = [];

  /** A fresh store holding `fulls` (copies of images packed once). */
  function storeWith(...fulls: string[]): string {
    const store = fs.mkdtempSync(path.join(root, 'store-'));
    for (const full of fulls) copyPackage(full, store);
    return store;
  }
  function copyPackage(full: string, store: string): void {
    for (const f of [`${full}.meta.textproto`, `${full}.squashfs`]) fs.copyFileSync(path.join(images, f), path.join(store, f));
  }
  function storeFs(store: string, options: StoreFsOptions = {}): StoreFs {
    const s = new StoreFs(store, options);
    opened.push(s);
    return s;
  }
  const ALL = PACKAGES.map((p) => p.full);

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-storefs-test-'));
    images = path.join(root, 'images');
    work = path.join(root, 'work');
    fs.mkdirSync(images);
    fs.mkdirSync(work);
    for (const p of [...PACKAGES, LESS_3]) addPackage(images, p, work);
  });

  after(() => {
    for (const s of opened) s.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('warns of files packed where no exchange dir can see them, and shows the package all the same', () => {
    const store = storeWith('less-amd64-530-2');
    addPackage(
      store,
      {
        full: 'flat-amd64-1-1',
        // Packed from out/ instead of the package root: share/ and lib/ at the image root.
        tree: { 'bin/flat': 'flat\n', 'share/doc/flat': 'doc', 'lib/libflat.so.1': 'elf', 'lib/libok.so.1': { symlink: '../out/lib/libok.so.1' }, 'sbin/flatd': 'daemon' },
      },
      work,
    );
    addPackage(store, { full: 'farm-amd64-1-1', tree: { 'out/lib/libz.so.1': 'elf', 'lib/libz.so.1': { symlink: '/ro/farm-amd64-1-1/out/lib/libz.so.1' }, 'bin/z': 'z' } }, work);
    const s = storeFs(store);
    const r = s.control({ op: 'scan' }) as { warnings: Array<{ pkg: string; why: string }> };
    const flat = r.warnings.filter((w) => w.pkg === 'flat-amd64-1-1').map((w) => w.why.split(':')[0]);
    assert.deepEqual(flat.sort(), ['lib/libflat.so.1', 'sbin/', 'share/']);
    assert.deepEqual(
      r.warnings.filter((w) => w.pkg !== 'flat-amd64-1-1'),
      [],
      'a lib/ of symlinks and out/ trees are where they belong',
    );
    assert.ok(new Kernel(s).names(ROOT_NODE).includes('flat-amd64-1-1'), 'the package is still shown');
    assert.deepEqual((s.stats() as { warnings: unknown[] }).warnings, r.warnings, 'stats lists them too');
  });

  it('lists /ro and stats a package directory without opening an image', () => {
    const s = storeFs(storeWith(...ALL), { ctlPath: '/tmp/some/ctl' });
    const k = new Kernel(s);
    const names = k.names(ROOT_NODE);
    assert.deepEqual(names.slice(0, 4), ['app-amd64-1-1', 'less-amd64-530-1', 'less-amd64-530-2', 'plugin-amd64-2-1']);
    for (const d of ['bin', 'lib', 'share', 'ctl']) assert.ok(names.includes(d), d);
    const e = k.lookup(ROOT_NODE, 'less-amd64-530-2');
    assert.equal(e.attr.mode, 0o40555);
    assert.equal(s.getattr(e.node).attr.mode, 0o40555);
    assert.equal(s.readlink(k.lookup(ROOT_NODE, 'ctl').node), '/tmp/some/ctl');
    assert.equal(s.pool.opens, 0);
  });

  it('a lookup below /ro/<pkg> opens exactly that image, and reads it by node', () => {
    const s = storeFs(storeWith(...ALL));
    const k = new Kernel(s);
    const less = k.walk('less-amd64-530-2/bin/less');
    assert.equal(s.pool.opens, 1);
    assert.equal(k.read(less), 'less-2\n');
    assert.deepEqual(k.names(k.walk('less-amd64-530-2')), ['bin', 'out']);
    assert.equal(s.pool.opens, 1);
    const st = s.getattr(less).attr;
    assert.equal(st.size, 7);
    assert.equal(st.mode & 0o170000, 0o100000);
    throwsCode(() => k.lookup(k.walk('less-amd64-530-2/bin'), 'more'), 'NOT_FOUND');
  });

  it('exchange links point at the newest revision, relative, without opening an image', () => {
    const s = storeFs(storeWith(...ALL));
    const k = new Kernel(s);
    const bin = k.walk('bin');
    assert.deepEqual(k.names(bin), ['app', 'less']);
    assert.equal(s.readlink(k.lookup(bin, 'less').node), '../less-amd64-530-2/bin/less');
    assert.equal(s.readlink(k.walk('share/man/man1/less.1')), '../../../less-amd64-530-2/out/share/man/man1/less.1');
    assert.equal(s.pool.opens, 0);
  });

  it('a new revision: scan tells the kernel about the changed link and listing; a fresh lookup sees it; removal falls back', () => {
    const store = storeWith(...ALL);
    const s = storeFs(store);
    const rec = new Recorder();
    s.setInvalidator(rec);
    const k = new Kernel(s);
    const bin = k.walk('bin');
    k.names(bin);
    const old = k.lookup(bin, 'less');
    assert.equal(old.entryTtl, 86400, 'told about changes, the kernel may keep virtual names long');

    copyPackage(LESS_3.full, store);
    const r = s.control({ op: 'scan' }) as { ok: boolean; added: string[] };
    assert.deepEqual([r.ok, r.added], [true, ['less-amd64-530-3']]);
    assert.deepEqual(rec.calls.sort(), [`entry ${ROOT_NODE} less-amd64-530-3`, `entry ${bin} less`, `inode ${ROOT_NODE}`, `inode ${bin}`].sort());
    const fresh = k.lookup(bin, 'less');
    assert.notEqual(fresh.node, old.node, 'a link to another target is another node');
    assert.equal(s.readlink(fresh.node), '../less-amd64-530-3/bin/less');
    assert.equal(s.readlink(old.node), '../less-amd64-530-2/bin/less', 'the node the kernel still holds is what it was');

    rec.calls.length = 0;
    removePackage(store, LESS_3.full);
    s.control({ op: 'scan' });
    assert.deepEqual(rec.calls.sort(), [`entry ${ROOT_NODE} less-amd64-530-3`, `entry ${bin} less`, `inode ${ROOT_NODE}`, `inode ${bin}`].sort());
    assert.equal(s.readlink(k.lookup(bin, 'less').node), '../less-amd64-530-2/bin/less');
    throwsCode(() => k.lookup(ROOT_NODE, 'less-amd64-530-3'), 'NOT_FOUND');

    rec.calls.length = 0;
    s.control({ op: 'scan' });
    assert.deepEqual(rec.calls, [], 'a scan that changes nothing tells nothing');
  });

  it('without an invalidator virtual names live one second; package contents a day', () => {
    const s = storeFs(storeWith(...ALL));
    const k = new Kernel(s);
    const pkg = k.lookup(ROOT_NODE, 'less-amd64-530-2');
    assert.deepEqual([pkg.entryTtl, pkg.attrTtl], [1, 1]);
    assert.equal(s.getattr(k.walk('bin')).ttl, 1);
    assert.equal(s.negativeTtl(ROOT_NODE), 1);
    const bin = k.lookup(pkg.node, 'bin');
    assert.deepEqual([bin.entryTtl, bin.attrTtl, s.negativeTtl(bin.node)], [86400, 86400, 86400]);
  });

  it('forget brings the node count back to 0 after a walk of every node', () => {
    const s = storeFs(storeWith(...ALL), { ctlPath: '/x/ctl' });
    const k = new Kernel(s);
    let visited = 0;
    const visit = (node: number, depth: number): void => {
      assert.ok(depth < 12, 'walk too deep');
      for (const e of k.readdir(node)) {
        const child = k.lookup(node, e.name);
        visited++;
        assert.equal(child.attr.mode & 0o170000, e.mode & 0o170000, e.name);
        if ((e.mode & 0o170000) === 0o040000) visit(child.node, depth + 1);
        else if ((e.mode & 0o170000) === 0o120000) assert.ok(s.readlink(child.node).length > 0);
        else k.read(child.node);
      }
    };
    visit(ROOT_NODE, 0);
    assert.ok(visited > 30, `${visited} nodes walked`);
    assert.ok(s.nodeCount > 0);
    const some = [...k.refs.keys()][0]!;
    k.forgetAll();
    assert.equal(s.nodeCount, 0);
    assert.equal((s.control({ op: 'stats' }) as { stats: { nodes: number } }).stats.nodes, 0);
    throwsCode(() => s.getattr(some), 'BAD_HANDLE');
  });

  it("runtime_union: the target lists its own and the contributor's entries, and finds both", () => {
    const s = storeFs(storeWith(...ALL));
    const k = new Kernel(s);
    const modules = k.walk('app-amd64-1-1/out/lib/app/modules');
    assert.deepEqual(k.names(modules), ['core.so', 'sub', 'extra.so']);
    assert.equal(k.read(k.lookup(modules, 'extra.so').node), 'extra');
    assert.equal(k.read(k.lookup(modules, 'core.so').node), 'core');
    const sub = k.lookup(modules, 'sub').node;
    assert.deepEqual(k.names(sub), ['a', 'b']);
    assert.equal(k.read(k.walk('app-amd64-1-1/out/lib/app/modules/sub/b')), 'b');
    assert.equal(s.pool.opens, 2);
    // The contributor's own directory is unchanged.
    assert.deepEqual(k.names(k.walk('plugin-amd64-2-1/out/lib/app/modules')), ['extra.so', 'sub']);
  });

  it('a package gaining a contributor is a new package directory node, invalidated in /ro', () => {
    const store = storeWith('app-amd64-1-1');
    const s = storeFs(store);
    const rec = new Recorder();
    s.setInvalidator(rec);
    const k = new Kernel(s);
    const before = k.lookup(ROOT_NODE, 'app-amd64-1-1').node;
    assert.deepEqual(k.names(k.walk('app-amd64-1-1/out/lib/app/modules')), ['core.so', 'sub']);
    copyPackage('plugin-amd64-2-1', store);
    s.control({ op: 'scan' });
    assert.ok(rec.calls.includes(`entry ${ROOT_NODE} app-amd64-1-1`), rec.calls.join(', '));
    assert.notEqual(k.lookup(ROOT_NODE, 'app-amd64-1-1').node, before);
    assert.deepEqual(k.names(k.walk('app-amd64-1-1/out/lib/app/modules')), ['core.so', 'sub', 'extra.so']);
  });

  it('caller mistakes are error codes: unknown node, readlink of a dir, read of a dir or link', () => {
    const s = storeFs(storeWith(...ALL));
    const k = new Kernel(s);
    throwsCode(() => s.getattr(123456), 'BAD_HANDLE');
    throwsCode(() => s.lookup(123456, 'x'), 'BAD_HANDLE');
    const bin = k.walk('bin');
    throwsCode(() => s.readlink(bin), 'NOT_A_SYMLINK');
    throwsCode(() => s.readlink(ROOT_NODE), 'NOT_A_SYMLINK');
    throwsCode(() => s.readlink(k.walk('less-amd64-530-2')), 'NOT_A_SYMLINK');
    throwsCode(() => s.readlink(k.walk('less-amd64-530-2/bin')), 'NOT_A_SYMLINK');
    throwsCode(() => s.read(bin, Buffer.alloc(4), 0), 'IS_A_DIRECTORY');
    throwsCode(() => s.read(k.walk('less-amd64-530-2/bin'), Buffer.alloc(4), 0), 'IS_A_DIRECTORY');
    const link = k.lookup(bin, 'less').node;
    throwsCode(() => s.read(link, Buffer.alloc(4), 0), 'NOT_A_FILE');
    throwsCode(() => s.lookup(link, 'x'), 'NOT_A_DIRECTORY');
    throwsCode(() => s.lookup(k.walk('less-amd64-530-2/bin/less'), 'x'), 'NOT_A_DIRECTORY');
    throwsCode(() => k.lookup(ROOT_NODE, 'nope'), 'NOT_FOUND');
  });

  it('control: ping, mkdirall (told to the kernel), stats, and unknown ops', () => {
    const s = storeFs(storeWith(...ALL));
    const rec = new Recorder();
    s.setInvalidator(rec);
    const k = new Kernel(s);
    assert.deepEqual(s.control({ op: 'ping' }), { ok: true, pid: process.pid, store: s.store });
    assert.deepEqual(s.control({ op: 'mkdirall', dir: 'build' }), { ok: true });
    assert.deepEqual(rec.calls, [`entry ${ROOT_NODE} build`, `inode ${ROOT_NODE}`]);
    const build = k.lookup(ROOT_NODE, 'build');
    assert.equal(build.attr.mode, 0o40555);
    assert.deepEqual(k.names(build.node), []);
    assert.ok(k.names(ROOT_NODE).includes('build'));
    throwsCode(() => s.control({ op: 'mkdirall', dir: 'a/b' }), 'UNSAFE_PATH');
    throwsCode(() => s.control({ op: 'mkdirall' }), 'INVALID_ARGUMENT');
    throwsCode(() => s.control({ op: 'frobnicate' }), 'INVALID_ARGUMENT');
    const st = (s.control({ op: 'stats' }) as { stats: Record<string, unknown> }).stats;
    assert.equal(st.imagesKnown, 4);
    assert.equal(st.nodes, 1);
    assert.deepEqual(st.mkdirs, ['build']);
  });

  it('--pkgs and --overlays filter what /ro shows', () => {
    const s = storeFs(storeWith(...ALL), { pkgs: ['less-amd64'], overlays: ['/bin'] });
    const k = new Kernel(s);
    assert.deepEqual(k.names(ROOT_NODE), ['less-amd64-530-1', 'less-amd64-530-2', 'bin']);
    assert.deepEqual(k.names(k.walk('bin')), ['less']);
  });

  it('stays within --max-open: an evicted image is reopened through the nodes the kernel holds', () => {
    const s = storeFs(storeWith(...ALL), { maxOpenImages: 1 });
    const k = new Kernel(s);
    const a = k.walk('less-amd64-530-1/bin/less');
    const b = k.walk('less-amd64-530-2/bin/less');
    assert.equal(s.pool.openCount, 1);
    assert.equal(k.read(a), 'less-1\n');
    assert.equal(k.read(b), 'less-2\n');
    assert.equal(s.pool.openCount, 1);
    assert.ok(s.pool.evictions >= 2);
  });

  it('a removed package stays readable through nodes the kernel holds, until it forgets them', () => {
    const store = storeWith(...ALL);
    const s = storeFs(store);
    const k = new Kernel(s);
    const file = k.walk('less-amd64-530-1/out/only-in-1');
    assert.equal(k.read(file), 'x');
    removePackage(store, 'less-amd64-530-1');
    s.control({ op: 'scan' });
    throwsCode(() => k.lookup(ROOT_NODE, 'less-amd64-530-1'), 'NOT_FOUND');
    assert.equal(k.read(file), 'x');
    assert.equal(s.pool.retiredCount, 1);
    k.forgetAll();
    assert.equal(s.pool.retiredCount, 0);
  });

  it('firstFromIndex: /ro is listed from the saved index while the store directory is as the last full scan saw it', () => {
    const store = storeWith(...ALL);
    // Made first: creating it changes the store directory (a full scan after that stamps it).
    fs.mkdirSync(path.join(store, '.distri-index'));
    storeFs(store).control({ op: 'scan' }); // a full scan; the index is saved with the directory's stamp
    const s = storeFs(store, { firstFromIndex: true });
    assert.equal(s.firstSnapshot, 'index');
    assert.equal(s.scans, 0, 'the directory was not scanned');
    const k = new Kernel(s);
    assert.deepEqual(
      k.names(ROOT_NODE).filter((n) => n.includes('-amd64-')),
      [...ALL].sort(),
    );
    assert.equal(s.lookup(k.walk('bin'), 'less').attr.size, '../less-amd64-530-2/bin/less'.length);
    assert.equal(s.readlink(k.walk('bin/less')), '../less-amd64-530-2/bin/less');
    assert.equal(k.read(k.walk('less-amd64-530-2/bin/less')), 'less-2\n');
    assert.deepEqual(k.names(k.walk('app-amd64-1-1/out/lib/app/modules')).sort(), ['core.so', 'extra.so', 'sub'], 'runtime_union from the index');
    const rec = new Recorder();
    s.setInvalidator(rec);
    const r = s.scan();
    assert.deepEqual([r.added, r.removed, rec.calls], [[], [], []], 'the full check after it found nothing to change');

    // A package added since: the directory changed, so the first snapshot is a scan again.
    copyPackage(LESS_3.full, store);
    const s2 = storeFs(store, { firstFromIndex: true });
    assert.equal(s2.firstSnapshot, 'scan');
    assert.ok(new Kernel(s2).names(ROOT_NODE).includes(LESS_3.full));
    s2.control({ op: 'scan' });
    assert.equal(storeFs(store, { firstFromIndex: true }).firstSnapshot, 'index', 'the full scan saved the new stamp');
    // A package whose meta went: its record goes with it, so the index never lists it.
    fs.rmSync(path.join(store, `${LESS_3.full}.meta.textproto`));
    s2.control({ op: 'scan' });
    const s3 = storeFs(store, { firstFromIndex: true });
    assert.equal(s3.firstSnapshot, 'index');
    assert.equal(new Kernel(s3).names(ROOT_NODE).includes(LESS_3.full), false);
  });

  it('firstFromIndex: an image gone behind an unchanged directory is listed until the full check, which drops it and tells the kernel', () => {
    const store = fs.mkdtempSync(path.join(root, 'store-'));
    const sub = path.join(store, 'sub');
    fs.mkdirSync(sub);
    for (const full of ['less-amd64-530-1', 'less-amd64-530-2']) {
      fs.copyFileSync(path.join(images, `${full}.squashfs`), path.join(sub, full));
      fs.symlinkSync(`sub/${full}`, path.join(store, `${full}.squashfs`));
      fs.copyFileSync(path.join(images, `${full}.meta.textproto`), path.join(store, `${full}.meta.textproto`));
    }
    fs.mkdirSync(path.join(store, '.distri-index'));
    storeFs(store).control({ op: 'scan' });
    fs.rmSync(path.join(sub, 'less-amd64-530-2'));
    const s = storeFs(store, { firstFromIndex: true });
    assert.equal(s.firstSnapshot, 'index');
    const k = new Kernel(s);
    const rec = new Recorder();
    s.setInvalidator(rec);
    assert.ok(k.names(ROOT_NODE).includes('less-amd64-530-2'), 'listed from the index');
    assert.equal(s.readlink(k.walk('bin/less')), '../less-amd64-530-2/bin/less');
    // Its directory is there (nothing opened); inside it, the image is missing: an error, not a crash.
    const dir = k.walk('less-amd64-530-2');
    assert.throws(
      () => s.lookup(dir, 'bin'),
      (e: unknown) => e instanceof SquashfsError,
    );
    const r = s.scan();
    assert.deepEqual(r.removed, ['less-amd64-530-2']);
    assert.ok(rec.calls.includes(`entry ${ROOT_NODE} less-amd64-530-2`) && rec.calls.includes(`inode ${ROOT_NODE}`), rec.calls.join(', '));
    assert.ok(rec.calls.includes(`entry ${k.walk('bin')} less`), 'the moved link is told about');
    throwsCode(() => s.lookup(ROOT_NODE, 'less-amd64-530-2'), 'NOT_FOUND');
    assert.equal(s.readlink(k.walk('bin/less')), '../less-amd64-530-1/bin/less');
  });

  it('logs a package without meta once, however often the store is scanned', () => {
    const store = storeWith(...ALL);
    fs.copyFileSync(path.join(images, `${LESS_3.full}.squashfs`), path.join(store, `${LESS_3.full}.squashfs`));
    const lines: string[] = [];
    const s = storeFs(store, { log: (m) => lines.push(m) });
    s.scan();
    s.scan();
    assert.equal(lines.filter((l) => l.includes('less-amd64-530-3')).length, 1);
    throwsCode(() => s.lookup(ROOT_NODE, LESS_3.full), 'NOT_FOUND');
  });

  it('serves xattrs of package files (case 7), and none for virtual nodes', { skip: skipUnless('StoreFs xattrs', 'setfattr') }, () => {
    const cap = Buffer.from('0100000200100000000000000000000000000000', 'hex');
    const store = fs.mkdtempSync(path.join(root, 'store-'));
    addPackage(
      store,
      { full: 'ping-amd64-1-1', tree: { 'out/bin/ping': { content: 'ELF-ish', mode: 0o755, xattrs: { 'security.capability': cap } }, 'bin/ping': { symlink: '../out/bin/ping' } } },
      work,
    );
    const s = storeFs(store);
    const k = new Kernel(s);
    const ping = k.walk('ping-amd64-1-1/out/bin/ping');
    assert.deepEqual(s.listxattr(ping), ['security.capability']);
    assert.deepEqual(Buffer.from(s.getxattr(ping, 'security.capability')!), cap);
    assert.equal(s.getxattr(ping, 'user.nope'), undefined);
    assert.deepEqual(s.listxattr(k.walk('ping-amd64-1-1')), []);
    assert.deepEqual(s.listxattr(k.walk('bin/ping')), []);
    assert.equal(s.readlink(k.walk('bin/ping')), '../ping-amd64-1-1/bin/ping');
  });
});
