// `distri bootstrap` and `distri run` on the real thing: Debian's .debs downloaded with apt, turned
// into distri packages in a store (shared, cached: test/helpers/bootstrap.ts), checked through our
// own reader, then used as /ro of a distri-style root in which gcc compiles and links a C program
// that runs there with the store's glibc. The mapping's path rules and the symlink check are unit
// tested on their own (they need no download).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { retarget, type Entry } from '../src/build/bootstrap';
import { mountStore, runInRoot } from '../src/build/root';
import { closure, listStore } from '../src/build/store-closure';
import { DEBIAN_MAP, mapDebianPath, upstreamOf } from '../src/build/debian-map';
import { readElfFile } from '../src/elf/elf';
import { Flag } from '../src/format/constants';
import { Image } from '../src/reader/image';
import { parseMeta, type Meta } from '../src/store/meta';
import { bootstrapStore } from './helpers/bootstrap';
import { waitFor } from './helpers/mount';
import { repoRoot, skipUnless } from './oracle/tools';

describe('Debian paths in distri layout', () => {
  const table: [string, string | null][] = [
    ['usr/bin/gcc-12', 'out/bin/gcc-12'],
    ['bin/bash', 'out/bin/bash'],
    ['sbin/ldconfig', 'out/sbin/ldconfig'],
    ['usr/lib/x86_64-linux-gnu/libc.so', 'out/lib/libc.so'],
    ['lib/x86_64-linux-gnu/libc.so.6', 'out/lib/libc.so.6'],
    ['usr/lib/x86_64-linux-gnu/pkgconfig/zlib.pc', 'out/lib/pkgconfig/zlib.pc'],
    ['usr/lib/x86_64-linux-gnu/perl/5.36/Config.pm', 'out/lib/x86_64-linux-gnu/perl/5.36/Config.pm'],
    ['usr/lib/gcc/x86_64-linux-gnu/12/crtbegin.o', 'out/lib/gcc/x86_64-linux-gnu/12/crtbegin.o'],
    ['usr/libexec/gcc/x86_64-linux-gnu/12/cc1', 'out/libexec/gcc/x86_64-linux-gnu/12/cc1'],
    ['lib64/ld-linux-x86-64.so.2', 'out/lib64/ld-linux-x86-64.so.2'],
    ['usr/include/stdio.h', 'out/include/stdio.h'],
    ['usr/include/x86_64-linux-gnu/bits/types.h', 'out/include/x86_64-linux-gnu/bits/types.h'],
    ['usr/share/terminfo/x/xterm', 'out/share/terminfo/x/xterm'],
    ['etc/bash.bashrc', 'etc/bash.bashrc'],
    ['usr/share/doc/bash/README', null],
    ['usr/share/man/man1/bash.1.gz', null],
    ['./usr/bin/make', 'out/bin/make'],
  ];
  for (const [deb, want] of table) it(`${deb} → ${want ?? 'dropped'}`, () => assert.equal(mapDebianPath(deb), want));
  it('versions: epoch and Debian revision dropped, one token for the full name', () => {
    assert.equal(upstreamOf('2.36-9+deb12u10'), '2.36');
    assert.equal(upstreamOf('1:1.2.13.dfsg-1'), '1.2.13.dfsg');
    assert.equal(upstreamOf('12.2.0-14+deb12u1'), '12.2.0');
    assert.equal(upstreamOf('1.0~rc1-2'), '1.0.rc1');
  });
  it('the mapping names each Debian package once and every declared dep is made', () => {
    const debs = DEBIAN_MAP.flatMap((p) => p.debs);
    assert.equal(new Set(debs).size, debs.length);
    const names = new Set(DEBIAN_MAP.map((p) => p.name));
    for (const p of DEBIAN_MAP) for (const d of p.deps ?? []) assert.ok(names.has(d), `${p.name} → ${d}`);
    // The two package boundaries the doc names.
    const gcc = DEBIAN_MAP.find((p) => p.name === 'gcc')!.debs;
    for (const d of ['gcc-12', 'cpp-12', 'libgcc-12-dev', 'gcc-12-base']) assert.ok(gcc.includes(d), d);
    const binutils = DEBIAN_MAP.find((p) => p.name === 'binutils')!.debs;
    for (const d of ['binutils', 'binutils-x86-64-linux-gnu', 'binutils-common', 'libbinutils', 'libctf0', 'libctf-nobfd0', 'libgprofng0']) assert.ok(binutils.includes(d), d);
  });
});

describe('symlinks moved between packages', () => {
  const entry = (deb: string, pkg: string, kind: Entry['kind'] = 'file'): Entry => ({ deb, kind, pkg, mapped: mapDebianPath(deb)! });
  const index = new Map<string, Entry>([
    ['usr/bin/x86_64-linux-gnu-as', entry('usr/bin/x86_64-linux-gnu-as', 'binutils-x86')],
    ['usr/bin/x86_64-linux-gnu-ld', entry('usr/bin/x86_64-linux-gnu-ld', 'binutils')],
    ['lib/x86_64-linux-gnu/libtinfo.so.6', entry('lib/x86_64-linux-gnu/libtinfo.so.6', 'ncurses')],
  ]);
  const fullOf = (n: string) => `${n}-amd64-1-1`;
  const pkg = (name: string) => ({ name, debs: [] });
  it('a relative link within the package stays relative, re-aimed at the moved target', () => {
    const problems: string[] = [];
    assert.equal(
      retarget(pkg('binutils'), entry('usr/bin/ld', 'binutils', 'symlink'), 'x86_64-linux-gnu-ld', index, fullOf, (l) => problems.push(l)),
      'x86_64-linux-gnu-ld',
    );
    assert.deepEqual(problems, []);
  });
  it('an absolute link into the same package becomes relative (lib64/ld.so → ../lib/…)', () => {
    const idx = new Map(index);
    idx.set('lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', entry('lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 'glibc'));
    assert.equal(
      retarget(pkg('glibc'), entry('lib64/ld-linux-x86-64.so.2', 'glibc', 'symlink'), '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', idx, fullOf, () => assert.fail()),
      '../lib/ld-linux-x86-64.so.2',
    );
  });
  it('a relative link whose target is in another package is reported as a mapping mistake', () => {
    const problems: string[] = [];
    const t = retarget(pkg('binutils'), entry('usr/bin/as', 'binutils', 'symlink'), 'x86_64-linux-gnu-as', index, fullOf, (l) => problems.push(l));
    assert.equal(t, '/ro/binutils-x86-amd64-1-1/out/bin/x86_64-linux-gnu-as');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /mapping mistake: binutils: relative symlink \/usr\/bin\/as → x86_64-linux-gnu-as points into binutils-x86/);
  });
  it('an absolute link into another package goes through /ro without complaint', () => {
    const problems: string[] = [];
    const t = retarget(pkg('ncurses-dev'), entry('usr/lib/x86_64-linux-gnu/libtinfo.so', 'ncurses-dev', 'symlink'), '/lib/x86_64-linux-gnu/libtinfo.so.6', index, fullOf, (l) => problems.push(l));
    assert.equal(t, '/ro/ncurses-amd64-1-1/out/lib/libtinfo.so.6');
    assert.deepEqual(problems, []);
  });
  it('a link to a path no package has is dropped and reported; one into dropped docs silently', () => {
    const problems: string[] = [];
    assert.equal(
      retarget(pkg('tar'), entry('etc/rmt', 'tar', 'symlink'), '/usr/sbin/rmt', index, fullOf, (l) => problems.push(l)),
      null,
    );
    assert.equal(problems.length, 1);
    assert.equal(
      retarget(pkg('gcc'), entry('usr/share/doc/gcc', 'gcc', 'symlink'), 'cpp', index, fullOf, () => assert.fail()),
      null,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The real bootstrap store.

const avail = bootstrapStore();
const store = 'store' in avail ? avail.store : '';
const skip = skipUnless('bootstrap store', avail);
const cli = () => path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

interface Pkg {
  full: string;
  meta: Meta;
}
function storePackages(): Map<string, Pkg> {
  const out = new Map<string, Pkg>();
  for (const f of fs.readdirSync(store)) {
    if (!f.endsWith('.meta.textproto')) continue;
    const full = f.slice(0, -'.meta.textproto'.length);
    out.set(full, { full, meta: parseMeta(fs.readFileSync(path.join(store, f), 'utf8')) });
  }
  return out;
}
const fullOf = (pkgs: Map<string, Pkg>, name: string): string => {
  const hit = [...pkgs.keys()].filter((f) => f.startsWith(`${name}-amd64-`) && !f.slice(name.length + 7).includes('amd64'));
  assert.equal(hit.length, 1, `one ${name} package: ${hit.join(' ')}`);
  return hit[0]!;
};

/** Our own mountpoints go under this TMPDIR, so that "nothing left mounted" can be checked exactly. */
const privateTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-bootstrap-test-'));
after(() => {
  const left = mountsUnder(privateTmp);
  assert.deepEqual(left, [], 'nothing left mounted');
  fs.rmSync(privateTmp, { recursive: true, force: true });
});
function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

function distri(args: string[], timeoutMs = 120_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli(), ...args], { env: { ...process.env, TMPDIR: privateTmp }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('the bootstrap store', { skip }, () => {
  let pkgs: Map<string, Pkg>;
  before(() => {
    pkgs = storePackages();
  });

  it('has every package of the mapping, each with its image and a meta', () => {
    for (const p of DEBIAN_MAP) {
      const f = fullOf(pkgs, p.name);
      assert.match(f, /^[a-z0-9+-]+-amd64-[A-Za-z0-9.+]+-1$/);
      assert.ok(fs.existsSync(path.join(store, `${f}.squashfs`)), f);
      assert.equal(pkgs.get(f)!.meta.sourcePkg, p.name);
      assert.equal(`${p.name}-amd64-${pkgs.get(f)!.meta.version}`, f);
    }
  });

  it('runtime deps are closed, exist in the store, leave out the package itself, and are sorted', () => {
    for (const [full, p] of pkgs) {
      const deps = p.meta.runtimeDep;
      assert.deepEqual([...deps].sort(), deps, `${full}: sorted`);
      assert.ok(!deps.includes(full), `${full}: not its own dep`);
      for (const d of deps) {
        assert.ok(pkgs.has(d), `${full} → ${d} in the store`);
        for (const dd of pkgs.get(d)!.meta.runtimeDep) if (dd !== full) assert.ok(deps.includes(dd), `${full} → ${d} → ${dd}: closed`);
      }
    }
    const deps = (n: string) => pkgs.get(fullOf(pkgs, n))!.meta.runtimeDep.map((d) => d.replace(/-amd64-.*/, ''));
    // What the ELF pass must have found (DT_NEEDED), beside what the mapping declares.
    for (const d of ['glibc', 'binutils', 'mpc', 'mpfr', 'gmp', 'zlib', 'zstd']) assert.ok(deps('gcc').includes(d), `gcc → ${d}: ${deps('gcc')}`);
    assert.ok(deps('bash').includes('ncurses'), `bash → ncurses (libtinfo): ${deps('bash')}`);
    assert.ok(deps('grep').includes('pcre2'));
    assert.ok(deps('coreutils').includes('libselinux') && deps('coreutils').includes('pcre2'));
    assert.deepEqual(deps('linux'), []);
  });

  it('images are in distri layout: uncompressed, 128 KiB blocks, no fragments; out/, bin/, lib/ farm', () => {
    const img = Image.open(path.join(store, `${fullOf(pkgs, 'coreutils')}.squashfs`));
    try {
      assert.equal(img.superblock.blockSize, 128 * 1024);
      assert.equal(img.superblock.fragmentCount, 0);
      for (const f of [Flag.UNCOMPRESSED_DATA, Flag.UNCOMPRESSED_INODES, Flag.NO_FRAGMENTS]) assert.ok(img.superblock.flags & f, `flag 0x${f.toString(16)}`);
      assert.equal(img.readlink(img.resolve('bin/ls', false)), '../out/bin/ls');
      assert.equal(img.readlink(img.resolve('lib/libselinux.so.1', false)), `/ro/${fullOf(pkgs, 'libselinux')}/out/lib/libselinux.so.1`);
      assert.equal(img.readlink(img.resolve('lib/libc.so.6', false)), `/ro/${fullOf(pkgs, 'glibc')}/out/lib/libc.so.6`);
    } finally {
      img.close();
    }
  });

  it("glibc's libc.so linker script names /ro paths, and /lib64's loader link stays inside the package", () => {
    const glibc = fullOf(pkgs, 'glibc');
    const img = Image.open(path.join(store, `${glibc}.squashfs`));
    try {
      const script = Buffer.concat([...img.chunks(img.resolve('out/lib/libc.so', true))]).toString();
      assert.match(script, new RegExp(`/ro/${glibc.replace(/[.+]/g, '\\$&')}/out/lib/libc\\.so\\.6`));
      assert.doesNotMatch(script, /\/lib\/x86_64-linux-gnu/);
      assert.equal(img.readlink(img.resolve('out/lib64/ld-linux-x86-64.so.2', false)), '../lib/ld-linux-x86-64.so.2');
    } finally {
      img.close();
    }
  });

  it('bootstrap again: the complete store is reused, and reports no mapping mistakes', async () => {
    const r = await distri(['bootstrap', '--store', store, '--cache', path.join(path.dirname(store), 'bootstrap-cache'), '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { reused: boolean; problems: string[]; packages: unknown[] };
    assert.equal(j.reused, true);
    assert.equal(j.packages.length, DEBIAN_MAP.length);
    assert.deepEqual(
      j.problems.filter((p) => p.includes('mapping mistake')),
      [],
    );
  });

  it('gcc compiles and links hello.c inside the root, with the store glibc as interpreter, and it runs', async () => {
    const glibc = fullOf(pkgs, 'glibc');
    const work = fs.mkdtempSync(path.join(privateTmp, 'hello-'));
    fs.writeFileSync(path.join(work, 'hello.c'), '#include <stdio.h>\nint main(void) { printf("Hello, world!\\n"); return 0; }\n');
    const r = await distri([
      'run',
      '--store',
      store,
      '--pkgs',
      'gcc,bash,coreutils',
      '--bind',
      `${work}:/work:rw`,
      '--cwd',
      '/work',
      '--',
      'sh',
      '-c',
      `gcc -Wl,--dynamic-linker=/ro/${glibc}/out/lib/ld-linux-x86-64.so.2 -o hello hello.c && ./hello`,
    ]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.equal(r.stdout, 'Hello, world!\n');
    // Read the program with our own reader, on the host: it asks for the store's loader.
    const info = readElfFile(path.join(work, 'hello'));
    assert.equal(info.interp, `/ro/${glibc}/out/lib/ld-linux-x86-64.so.2`);
    assert.deepEqual(info.needed, ['libc.so.6']);
    assert.deepEqual(mountsUnder(privateTmp), []);
  });

  it("the host's /usr is not visible inside; /usr/bin, /lib64 and friends point into /ro", async () => {
    const r = await distri([
      'run',
      '--store',
      store,
      '--pkgs',
      'bash,coreutils',
      '--',
      'bash',
      '-c',
      'test -e /usr/bin/dpkg && echo dpkg; test -e /etc/debian_version && echo debian; readlink /usr/bin /lib /lib64 /usr/include /usr/share; ls /ro; echo $$',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(!lines.includes('dpkg') && !lines.includes('debian'), r.stdout);
    assert.equal(lines[0], '/ro/bin');
    assert.equal(lines[1], '/ro/lib');
    assert.match(lines[2]!, /^\/ro\/glibc-amd64-[^/]+\/out\/lib$/);
    assert.deepEqual(lines.slice(3, 5), ['/ro/include', '/ro/share']);
    // --pkgs shows the closure only: bash, coreutils and their deps, not gcc.
    assert.ok(lines.some((l) => l.startsWith('bash-amd64-')));
    assert.ok(!lines.some((l) => l.startsWith('gcc-amd64-')), r.stdout);
    assert.equal(lines[lines.length - 1], '1', 'the program is PID 1 of its own PID namespace');
  });

  it("exits with the program's status; 127 for a program not in the root", async () => {
    const seven = await distri(['run', '--store', store, '--pkgs', 'bash', '--', 'bash', '-c', 'exit 7']);
    assert.equal(seven.status, 7);
    const missing = await distri(['run', '--store', store, '--pkgs', 'bash', '--', 'dpkg', '--version']);
    assert.equal(missing.status, 127);
    const nopkg = await distri(['run', '--store', store, '--pkgs', 'nonesuch', '--', 'true']);
    assert.equal(nopkg.status, 2);
    assert.match(nopkg.stderr, /^distri: run true: no package "nonesuch" in the store\n$/);
  });

  it("a running root keeps none of the host's other mounts busy: a loop mount unmounted meanwhile lets its device go", { skip: skipUnless('loop mount', 'mksquashfs', 'losetup') }, async () => {
    const glibc = fullOf(pkgs, 'glibc');
    const work = fs.mkdtempSync(path.join(privateTmp, 'busy-'));
    const tree = path.join(work, 'tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'f'), 'x');
    const img = path.join(work, 'some.sqfs');
    assert.equal(spawnSync('mksquashfs', [tree, img, '-quiet', '-no-progress']).status, 0);
    const mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    assert.equal(spawnSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, mnt]).status, 0, 'the host mounts an image');
    const loops = () => spawnSync('losetup', ['-j', img], { encoding: 'utf8' }).stdout.trim();
    const io = path.join(work, 'io');
    fs.mkdirSync(io);
    const fifo = path.join(io, 'go');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const prevTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    const listed = listStore(store);
    const mount = await mountStore({ store, pkgs: closure(listed, ['bash', 'coreutils']) });
    if (prevTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = prevTmp;
    let running: Promise<unknown> | undefined;
    try {
      // The program says it is up, then waits for the host to let it end.
      running = runInRoot(
        { roMount: mount.mountpoint, glibc, binds: [{ host: io, inside: '/io', rw: true }] },
        { argv: ['bash', '-c', 'echo up > /io/ready; read x < /io/go'], env: { PATH: '/ro/bin:/bin' }, cwd: '/', stdio: 'pipe' },
      );
      assert.ok(await waitFor(() => fs.existsSync(path.join(io, 'ready')), 60_000), 'the program started');
      assert.notEqual(loops(), '', 'the loop device is attached while mounted');
      assert.equal(spawnSync('umount', [mnt]).status, 0);
      // Autoclear detaches the device at its last unmount: none is left in the root's namespace.
      assert.ok(await waitFor(() => loops() === '', 10_000), `the loop device was let go while the root runs: ${loops()}`);
    } finally {
      if (running) {
        // Never block on the FIFO: with no reader (the program already ended) the open fails.
        try {
          const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
          fs.writeSync(fd, 'go\n');
          fs.closeSync(fd);
        } catch {
          // nobody reads: the program is gone
        }
        await running;
      }
      await mount.stop();
      spawnSync('umount', [mnt], { stdio: 'ignore' });
    }
  });

  it('runInRoot (the API distri build uses): ro and rw binds, tmpfs /tmp, /proc of its own, output, abort', async () => {
    const pkgs2 = storePackages();
    const shown = ['bash', 'coreutils', 'glibc', 'ncurses', 'linux', 'acl', 'attr', 'libselinux', 'pcre2', 'gmp'].map((n) => fullOf(pkgs2, n));
    const prevTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp; // mountStore's private mountpoint goes below it
    const mount = await mountStore({ store, pkgs: shown });
    if (prevTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = prevTmp;
    const ro = fs.mkdtempSync(path.join(privateTmp, 'ro-'));
    const rw = fs.mkdtempSync(path.join(privateTmp, 'rw-'));
    fs.writeFileSync(path.join(ro, 'in.txt'), 'from the host\n');
    try {
      const root = {
        roMount: mount.mountpoint,
        glibc: fullOf(pkgs2, 'glibc'),
        binds: [
          { host: ro, inside: '/src' },
          { host: rw, inside: '/out', rw: true },
        ],
      };
      const script = [
        'cat /src/in.txt',
        'touch /src/x 2>/dev/null && echo src-writable || echo src-read-only',
        'echo made > /out/made.txt',
        'ls -A /tmp | wc -l',
        'n=0; for d in /proc/[0-9]*; do n=$((n+1)); done; echo $n',
        'echo "$FOO"',
        'pwd',
      ].join('; ');
      const chunks: Buffer[] = [];
      const r = await runInRoot(root, { argv: ['bash', '-c', script], env: { PATH: '/ro/bin:/bin', FOO: 'bar baz' }, cwd: '/out', stdio: 'pipe', onOutput: (c) => chunks.push(c) });
      assert.equal(r.code, 0, r.output?.toString());
      const lines = r.output!.toString().trim().split('\n');
      assert.deepEqual(lines, ['from the host', 'src-read-only', '0', lines[3], 'bar baz', '/out']);
      assert.ok(Number(lines[3]) >= 1 && Number(lines[3]) <= 3, `only the namespace's own processes in /proc: ${lines[3]}`);
      assert.equal(Buffer.concat(chunks).toString(), r.output!.toString());
      assert.equal(fs.readFileSync(path.join(rw, 'made.txt'), 'utf8'), 'made\n');
      // Aborting kills everything inside, however long it would have run.
      const ac = new AbortController();
      const pending = runInRoot(root, { argv: ['bash', '-c', 'sleep 600 & sleep 600'], env: { PATH: '/ro/bin:/bin' }, cwd: '/', stdio: 'pipe', abort: ac.signal });
      setImmediate(() => ac.abort());
      const killed = await pending;
      assert.equal(killed.signal, 'SIGKILL');
    } finally {
      await mount.stop();
    }
    assert.deepEqual(mountsUnder(privateTmp), []);
  });
});
