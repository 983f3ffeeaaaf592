/**
 * What our own FUSE transport promises beyond what both transports share (fuse-mount and
 * store-fuse run every mount test on both): the kernel caches what never changes (a warm walk or
 * re-read sends nothing), FORGET keeps the daemon's node table to what the kernel holds, a rescan
 * reaches the kernel's long-cached /ro at once through invalidations, and /ro is mounted the way
 * a distri machine needs it (every user reads it, setuid programs run as such, modes enforced).
 * Each test that can be switched off is also run with the feature off, where it must see the
 * difference (libfuse for caching, --nosuid, --no-allow-other).
 */
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { skipUnless } from './oracle/tools';
import { fuseAvailable, run, spawnMount, waitFor } from './helpers/mount';
import { addPackage, fusectl, mksquashfs, spawnStoreMount, writeTree, type StoreMount } from './helpers/store';

const skip = skipUnless('kernel FUSE transport tests', fuseAvailable(), 'mksquashfs', 'setpriv', 'gcc');

let work: string;
before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fuse-kernel-'));
});
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface Stats {
  transport: string;
  ops: Record<string, number>;
  nodes?: number;
}

/** Asks a daemon for its stats file (SIGUSR1) and waits until it is rewritten. */
async function daemonStats(pid: number, file: string): Promise<Stats> {
  fs.rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR1');
  assert.ok(await waitFor(() => fs.existsSync(file) && fs.statSync(file).size > 0, 10_000), 'the daemon wrote its stats');
  let parsed: Stats | undefined;
  await waitFor(() => {
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Stats;
      return true;
    } catch {
      return false; // caught mid-write
    }
  }, 5000);
  assert.ok(parsed, `stats in ${file}`);
  return parsed;
}

/** A shell command run in a child process (never in this one: the mount is served elsewhere). */
async function sh(script: string, asNobody = false): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const argv = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script] : ['sh', '-c', script];
  const r = await run(argv[0]!, argv.slice(1), { timeoutMs: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const requestsOf = (s: Stats, ...ops: string[]) => ops.reduce((n, op) => n + (s.ops[op] ?? 0), 0);

describe('the kernel caches what never changes', { skip }, () => {
  let img: string;
  before(() => {
    const src = path.join(work, 'tree');
    const tree: Record<string, string | { symlink: string }> = {};
    for (let d = 0; d < 8; d++) {
      for (let f = 0; f < 30; f++) tree[`d${d}/f${f}.txt`] = `file ${d}/${f}\n`.repeat(200 * f + 1);
      tree[`d${d}/link`] = { symlink: `f${d}.txt` };
    }
    writeTree(src, tree);
    img = path.join(work, 'tree.sqfs');
    mksquashfs(src, img, ['-noappend', '-quiet', '-no-progress', '-comp', 'zstd']);
  });

  for (const transport of ['kernel', 'libfuse'] as const) {
    test(
      `${transport}: a warm ls -lR, readlink and read of every file ${transport === 'kernel' ? 'sends nothing (never a LOOKUP or OPEN)' : 'still sends requests (the feature off)'}`,
      { timeout: 120_000 },
      async () => {
        const stats = path.join(work, `stats-${transport}.json`);
        const m = await spawnMount(img, { env: { DISTRI_TRANSPORT: transport, DISTRI_FUSE_STATS: stats } });
        try {
          const walk = `ls -lR ${m.dir} > /dev/null && find ${m.dir} -type l -exec readlink {} + > /dev/null && find ${m.dir} -type f -exec cat {} + | sha256sum`;
          const first = await sh(walk);
          assert.equal(first.status, 0, first.stderr);
          const a = await daemonStats(m.pid, stats);
          assert.equal(a.transport, transport);
          assert.ok(requestsOf(a, 'read') > 0 && requestsOf(a, 'readdirplus', 'readdir') > 0, 'the first pass was served by the daemon');
          const ops = ['lookup', 'readdir', 'readdirplus', 'open', 'opendir', 'read', 'readlink'];
          // A warm pass may still meet a page the kernel let go of in between: this machine kind
          // runs DAMON's proactive reclaim (kdamond's pageout scheme), which was seen with tracefs
          // evicting single pages of a file read a second earlier, with 22 GiB free. Names and
          // inodes are not paged out, so LOOKUP and OPEN must never come back; page-cache misses
          // (READ, READDIR, READLINK) are rare and random, so of up to three warm passes one must
          // send nothing at all. Without the kernel's caching every pass sends requests.
          const passes: Array<Record<string, number>> = [];
          let prev = a;
          for (let pass = 0; pass < (transport === 'kernel' ? 3 : 1); pass++) {
            const again = await sh(walk);
            assert.equal(again.stdout, first.stdout, 'the same bytes on a warm pass');
            const now = await daemonStats(m.pid, stats);
            const more = Object.fromEntries(ops.map((op) => [op, (now.ops[op] ?? 0) - (prev.ops[op] ?? 0)]).filter(([, n]) => n !== 0));
            passes.push(more);
            prev = now;
            if (transport === 'kernel') assert.deepEqual([more.lookup ?? 0, more.open ?? 0, more.opendir ?? 0], [0, 0, 0], `a warm pass sent LOOKUP or OPEN: ${JSON.stringify(more)}`);
            if (Object.keys(more).length === 0) break;
          }
          if (transport === 'kernel') assert.deepEqual(passes.at(-1), {}, `every warm pass reached the daemon: ${JSON.stringify(passes)}`);
          else assert.ok(Object.keys(passes[0]!).length > 0, 'libfuse: the warm pass does reach the daemon (so this test can see the difference)');
        } finally {
          await m.cleanup();
        }
      },
    );
  }
});

describe('a cold walk gets attributes with every page of a listing', { skip }, () => {
  test('find over a directory of several READDIRPLUS pages sends no LOOKUP per entry (with -o readdirplus=auto it does)', { timeout: 120_000 }, async () => {
    // 2,000 names of 34 bytes: a READDIRPLUS record is then 192 bytes, so the 32 KiB that
    // getdents asks for holds about 170 and the listing takes some twelve pages. With the kernel's
    // READDIRPLUS_AUTO only the first page carries attributes and find's stat() of every later
    // entry is a LOOKUP of its own (some 1,800 here).
    const src = path.join(work, 'long-dir');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) tree[`long/entry-with-a-forty-byte-name-${String(i).padStart(5, '0')}`] = `${i}\n`;
    writeTree(src, tree);
    const img = path.join(work, 'long-dir.sqfs');
    mksquashfs(src, img, ['-noappend', '-quiet', '-no-progress', '-comp', 'gzip']);
    for (const mode of ['always', 'auto'] as const) {
      const stats = path.join(work, `stats-long-dir-${mode}.json`);
      const options = mode === 'auto' ? ['readdirplus=auto'] : [];
      const m = await spawnMount(img, { options, env: { DISTRI_TRANSPORT: 'kernel', DISTRI_FUSE_STATS: stats } });
      try {
        const r = await sh(`find ${m.dir}/long -printf '%s %m\\n' | wc -l`);
        assert.equal(r.stdout.trim(), '2001', r.stderr);
        const s = await daemonStats(m.pid, stats);
        if (mode === 'always') {
          assert.ok(requestsOf(s, 'readdirplus') >= 5, `the listing took several pages: ${JSON.stringify(s.ops)}`);
          assert.equal(requestsOf(s, 'readdir'), 0, `every page was READDIRPLUS: ${JSON.stringify(s.ops)}`);
          // One LOOKUP: the directory itself, found by its path.
          assert.ok(requestsOf(s, 'lookup') <= 1, `find's stat() of an entry sent a LOOKUP: ${JSON.stringify(s.ops)}`);
        } else {
          // The feature off: this is what the test would see without it.
          assert.ok(requestsOf(s, 'lookup') > 1000, `readdirplus=auto: later pages without attributes, a LOOKUP per entry: ${JSON.stringify(s.ops)}`);
        }
      } finally {
        await m.cleanup();
      }
    }
  });
});

describe('FORGET keeps the node table to what the kernel holds', { skip }, () => {
  test('a walk of 200,000 entries, then the kernel drops its inodes: the daemon forgets them too', { timeout: 600_000 }, async () => {
    // 200 directories of 1,000 empty files: 200k lookups (READDIRPLUS entries count as lookups).
    const src = path.join(work, 'wide');
    for (let d = 0; d < 200; d++) {
      const dir = path.join(src, `d${d}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 1000; f++) fs.writeFileSync(path.join(dir, `f${f}`), '');
    }
    const img = path.join(work, 'wide.sqfs');
    mksquashfs(src, img, ['-noappend', '-quiet', '-no-progress', '-noI', '-noD']);
    fs.rmSync(src, { recursive: true, force: true });
    const stats = path.join(work, 'stats-wide.json');
    const m = await spawnMount(img, { env: { DISTRI_TRANSPORT: 'kernel', DISTRI_FUSE_STATS: stats } });
    try {
      const walked = await sh(`find ${m.dir} -printf '%i %s\\n' | wc -l`);
      assert.equal(walked.stdout.trim(), String(200 * 1000 + 200 + 1), walked.stderr);
      const held = (await daemonStats(m.pid, stats)).nodes!;
      assert.ok(held >= 200_000, `${held} nodes held after the walk (the kernel keeps what it looked up)`);
      // The kernel lets go of its dentries and inodes, and sends FORGET for each (in batches).
      spawnSync('sync');
      fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
      let now = held;
      assert.ok(
        await waitFor(
          () => {
            process.kill(m.pid, 'SIGUSR1');
            try {
              now = (JSON.parse(fs.readFileSync(stats, 'utf8')) as Stats).nodes!;
            } catch {
              return false;
            }
            return now < held / 10;
          },
          60_000,
          200,
        ),
        `after drop_caches the daemon still holds ${now} of ${held} nodes`,
      );
      const s = await daemonStats(m.pid, stats);
      assert.ok(requestsOf(s, 'forget', 'batch_forget') > 0, 'FORGET reached the daemon');
    } finally {
      await m.cleanup();
    }
  });
});

describe('/ro as a distri machine needs it', { skip }, () => {
  let store: string;
  let euidProgram: string;
  before(() => {
    store = fs.mkdtempSync(path.join(work, 'store-'));
    // A program that prints its effective uid: packed setuid root, like a package's ping or su.
    const c = path.join(work, 'euid.c');
    fs.writeFileSync(c, '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("%d\\n", (int)geteuid()); return 0; }\n');
    euidProgram = path.join(work, 'euid');
    const cc = spawnSync('gcc', ['-O1', '-o', euidProgram, c], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    addPackage(
      store,
      {
        full: 'tools-amd64-1.0-1',
        tree: {
          'out/bin/euid': { content: fs.readFileSync(euidProgram), mode: 0o4755 },
          'out/bin/hello': { content: '#!/bin/sh\necho hello from /ro\n', mode: 0o755 },
          'out/etc/secret': { content: 'root only\n', mode: 0o600 },
          'bin/euid': { symlink: '../out/bin/euid' },
          'bin/hello': { symlink: '../out/bin/hello' },
        },
      },
      work,
    );
  });

  async function withStore<T>(extra: string[], fn: (m: StoreMount) => Promise<T>): Promise<T> {
    const m = await spawnStoreMount(store, ['--transport', 'kernel', ...extra]);
    try {
      return await fn(m);
    } finally {
      await m.cleanup();
    }
  }

  test('another user lists /ro, runs a program from /ro/bin, and cannot read a 0600 file', { timeout: 60_000 }, async () => {
    await withStore([], async (m) => {
      const opts =
        fs
          .readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .find((l) => l.split(' ')[4] === m.dir) ?? '';
      assert.match(opts, /allow_other/, 'mounted allow_other');
      assert.match(opts, /default_permissions/);
      const ls = await sh(`ls ${m.dir}/bin`, true);
      assert.equal(ls.status, 0, ls.stderr);
      assert.match(ls.stdout, /hello/);
      const hello = await sh(`${m.dir}/bin/hello`, true);
      assert.equal(hello.stdout, 'hello from /ro\n', hello.stderr);
      const secret = await sh(`cat ${m.dir}/tools-amd64-1.0-1/out/etc/secret`, true);
      assert.notEqual(secret.status, 0);
      assert.match(secret.stderr, /Permission denied/);
      const asRoot = await sh(`cat ${m.dir}/tools-amd64-1.0-1/out/etc/secret`);
      assert.equal(asRoot.stdout, 'root only\n', 'root reads it');
    });
  });

  test('with --no-allow-other another user cannot enter (the option is what lets them in)', { timeout: 60_000 }, async () => {
    await withStore(['--no-allow-other'], async (m) => {
      const ls = await sh(`ls ${m.dir}/bin`, true);
      assert.notEqual(ls.status, 0);
      assert.match(ls.stderr, /Permission denied/);
    });
  });

  test('a setuid-root program in a package runs with euid 0 from /ro/bin; with --nosuid it does not', { timeout: 60_000 }, async () => {
    await withStore([], async (m) => {
      const r = await sh(`${m.dir}/bin/euid`, true);
      assert.equal(r.stdout.trim(), '0', `euid as nobody: ${r.stdout}${r.stderr}`);
    });
    await withStore(['--nosuid'], async (m) => {
      const r = await sh(`${m.dir}/bin/euid`, true);
      assert.equal(r.stdout.trim(), '65534', `euid with nosuid: ${r.stdout}${r.stderr}`);
    });
  });

  test('a new revision is in /ro/bin as soon as a rescan returns, though names are cached for a day', { timeout: 60_000 }, async () => {
    await withStore([], async (m) => {
      const link = path.join(m.dir, 'bin', 'hello');
      const first = await run('readlink', [link]);
      assert.equal(first.stdout.trim(), '../tools-amd64-1.0-1/bin/hello');
      const ls1 = await run('ls', [m.dir]);
      addPackage(store, { full: 'tools-amd64-1.0-2', tree: { 'out/bin/hello': { content: '#!/bin/sh\necho two\n', mode: 0o755 }, 'bin/hello': { symlink: '../out/bin/hello' } } }, work);
      try {
        await fusectl(m.dir, 'scan');
        // No polling: the scan's answer comes after the kernel has taken the invalidations.
        const second = await run('readlink', [link]);
        assert.equal(second.stdout.trim(), '../tools-amd64-1.0-2/bin/hello');
        const ls2 = await run('ls', [m.dir]);
        assert.ok(!ls1.stdout.includes('tools-amd64-1.0-2') && ls2.stdout.includes('tools-amd64-1.0-2'), 'the root listing shows the new package');
        const ran = await sh(`${m.dir}/bin/hello`);
        assert.equal(ran.stdout, 'two\n');
      } finally {
        fs.rmSync(path.join(store, 'tools-amd64-1.0-2.squashfs'), { force: true });
        fs.rmSync(path.join(store, 'tools-amd64-1.0-2.meta.textproto'), { force: true });
      }
    });
  });
});

describe('the store daemon leaves an idle /ro alone', { skip }, () => {
  test('the store poll never wakes the serving thread when nothing changed', { timeout: 60_000 }, async () => {
    const store = fs.mkdtempSync(path.join(work, 'idle-store-'));
    addPackage(store, { full: 'idle-amd64-1-1', tree: { 'out/bin/x': { content: 'x\n', mode: 0o755 }, 'bin/x': { symlink: '../out/bin/x' } } }, work);
    const file = path.join(work, 'idle-stats.json');
    const m = await spawnStoreMount(store, ['--transport', 'kernel'], { DISTRI_FUSE_STATS: file });
    try {
      type IdleStats = Stats & { wakes: number; source: { polls: number } };
      let statsCalls = 0;
      const polls = async (atLeast: number): Promise<IdleStats> => {
        let s: IdleStats | undefined;
        const seen = await waitFor(async () => (statsCalls++, (s = (await daemonStats(m.pid, file)) as IdleStats)).source.polls >= atLeast, 20_000, 400);
        assert.ok(seen && s, `the store was polled ${atLeast} times`);
        return s;
      };
      const a = await polls(2); // after the start-up rescan
      const callsBefore = statsCalls;
      const b = await polls(a.source.polls + 3);
      // Each stats file costs up to two wakes: SIGUSR1 writes it (asking the serving thread for
      // its counters) and also asks the store for a rescan. The polls in between cost none (each
      // cost one before the StoreFs could ask for a rescan itself).
      const statsWakes = statsCalls - callsBefore;
      assert.ok(b.wakes - a.wakes <= 2 * statsWakes, `wakes over ${b.source.polls - a.source.polls} polls: ${a.wakes} → ${b.wakes}, for ${statsWakes} stats files`);
    } finally {
      await m.cleanup();
    }
  });

  test('fusectl scan and the daemon log warn of files no exchange dir can show', { timeout: 60_000 }, async () => {
    const store = fs.mkdtempSync(path.join(work, 'flat-store-'));
    // Packed from out/ instead of the package root, as a new user following an old --help did.
    addPackage(store, { full: 'flat-amd64-1-1', tree: { 'bin/flat': 'flat\n', 'share/doc/flat': 'doc', 'include/flat.h': 'h' } }, work);
    const m = await spawnStoreMount(store, ['--transport', 'kernel']);
    try {
      const out = await fusectl(m.dir, 'scan');
      assert.match(out, /^warning +flat-amd64-1-1: include\/: at the image root, never in \/ro\/include/m);
      assert.match(out, /^warning +flat-amd64-1-1: share\/: at the image root, never in \/ro\/share/m);
      assert.match(m.log(), /flat-amd64-1-1: share\/: at the image root/);
      const ls = await run('ls', [path.join(m.dir, 'flat-amd64-1-1')]);
      assert.match(ls.stdout, /share/, 'the package is shown all the same');
    } finally {
      await m.cleanup();
    }
  });

  for (const transport of ['kernel', 'libfuse'] as const) {
    test(`an image rewritten in place (same size and mtime) is re-indexed once opened (${transport})`, { timeout: 60_000 }, async () => {
      const store = fs.mkdtempSync(path.join(work, 'inplace-store-'));
      const full = 'swap-amd64-1-1';
      const image = path.join(store, `${full}.squashfs`);
      addPackage(store, { full, tree: { 'out/bin/aaa': { content: 'one\n', mode: 0o755 }, 'bin/aaa': { symlink: '../out/bin/aaa' } } }, work);
      // The same shape under other names and another mkfs time: same size, other superblock.
      const other = path.join(work, `other-${transport}`);
      writeTree(other, { 'out/bin/bbb': { content: 'two\n', mode: 0o755 }, 'bin/bbb': { symlink: '../out/bin/bbb' } });
      const otherImage = path.join(work, `other-${transport}.squashfs`);
      mksquashfs(other, otherImage, ['-noI', '-noD', '-noF', '-noX', '-no-fragments', '-all-root', '-quiet', '-no-progress', '-mkfs-time', '1000']);
      const before = fs.statSync(image);
      assert.equal(fs.statSync(otherImage).size, before.size, 'precondition: both images have one size');
      const file = path.join(work, `inplace-${transport}.json`);
      const m = await spawnStoreMount(store, ['--transport', transport], { DISTRI_FUSE_STATS: file });
      try {
        const ls1 = await run('ls', [path.join(m.dir, 'bin')]);
        assert.match(ls1.stdout, /aaa/);
        fs.writeFileSync(image, fs.readFileSync(otherImage), { flag: 'r+' });
        fs.utimesSync(image, before.atime, before.mtime);
        assert.equal(fs.statSync(image).ino, before.ino, 'rewritten in place');
        // Opening the package finds the superblock differs from the index; the StoreFs asks for a
        // rescan, which re-indexes the image and moves /ro/bin to the new names.
        const inside = await run('ls', [path.join(m.dir, full, 'bin')]);
        assert.match(inside.stdout, /bbb/);
        const moved = await waitFor(async () => /bbb/.test((await run('ls', [path.join(m.dir, 'bin')])).stdout), 20_000, 100);
        assert.ok(moved, `/ro/bin shows the re-indexed image's names; daemon log: ${m.log()}`);
        const s = (await daemonStats(m.pid, file)) as Stats & { source: { asks: number } };
        assert.equal(s.source.asks, 1, 'the StoreFs asked for the rescan once');
      } finally {
        await m.cleanup();
      }
    });
  }
});
