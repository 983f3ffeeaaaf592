/**
 * What makes the short commands and `distri mount` start faster must never change what they do:
 * the bundled CLI prints what the unbundled modules print; a mount served by the bundled daemon
 * and serving thread (src/fuse/bundles.ts) reads the same bytes; an image that fails to open
 * while mount(8) ran beside it leaves nothing mounted; a background mount whose daemon was started
 * before anything was parsed (src/cli/daemon-first.ts) fails with the words and status the command
 * itself gives.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, repoRoot, skipUnless, type Availability } from './oracle/tools';
import { plainMountCommandLine } from '../src/cli/commands/mount';
import { buildProgram } from '../src/cli/main';

const root = repoRoot();
const cli = path.join(root, 'dist/src/cli/main.js');
const demo = path.join(root, 'fixtures/demo.sqfs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-startup-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function distri(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the bundled commands print what the modules print', () => {
  const bundle = path.join(root, 'dist/src/cli/cli.bundle.js');
  assert.ok(fs.existsSync(bundle) && fs.statSync(bundle).mtimeMs >= fs.statSync(path.join(root, 'dist/src/cli/program.js')).mtimeMs, 'npm run build makes a fresh bundle');
  const cases = [
    ['info', demo],
    ['info', '--json', demo],
    ['ls', '-lR', demo],
    ['stat', demo, 'README.md'],
    ['cat', demo, 'README.md'],
    ['xattrs', demo, 'README.md'],
    ['cat', demo, 'no/such/file'],
    ['info', path.join(tmp, 'no-such-image')],
    ['ls', '--bogus', demo],
    ['mount', '--help'],
    ['mount', demo],
    ['unmount', '--help'],
    ['--help'],
  ];
  for (const args of cases) {
    const bundled = distri(args);
    const modules = distri(args, { DISTRI_NO_BUNDLE: '1' });
    assert.deepEqual(bundled, modules, `distri ${args.join(' ')}`);
  }
});

function kernelMountAvailable(): Availability {
  if (!fs.existsSync('/dev/fuse')) return { ok: false, why: 'no /dev/fuse' };
  return isRoot();
}

function mountedAt(dir: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

test('distri mount runs its bundled daemon and serving thread, which serve the image', { skip: skipUnless('bundled mount', kernelMountAvailable(), 'mount') }, () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const pidFile = path.join(tmp, 'daemon.pid');
  try {
    const m = distri(['mount', '--transport', 'kernel', '--pid-file', pidFile, demo, mnt]);
    assert.equal(m.status, 0, m.stderr);
    const cmdline = fs.readFileSync(`/proc/${fs.readFileSync(pidFile, 'utf8').trim()}/cmdline`, 'utf8');
    assert.match(cmdline, /mount-daemon\.bundle\.js/);
    // Read through the mount from a child process, never from this one (see test rules).
    const viaMount = spawnSync('cat', [path.join(mnt, 'README.md')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(viaMount.status, 0, viaMount.stderr);
    assert.equal(viaMount.stdout, distri(['cat', demo, 'README.md']).stdout);
  } finally {
    if (mountedAt(mnt)) spawnSync(process.execPath, [cli, 'unmount', '--lazy', mnt], { timeout: 20_000 });
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
    assert.ok(!mountedAt(mnt), 'unmounted');
  }
});

test('an image that fails to open while mount(8) runs beside it leaves nothing mounted', { skip: skipUnless('bundled mount', kernelMountAvailable(), 'mount') }, () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const bad = path.join(tmp, 'bad.sqfs');
  // A superblock whose tables lie past the end of the file: the serving thread fails after starting.
  const img = Buffer.from(fs.readFileSync(demo));
  img.writeBigUInt64LE(1n << 40n, 40); // bytes_used
  fs.writeFileSync(bad, img);
  try {
    for (let i = 0; i < 3; i++) {
      const m = distri(['mount', '--transport', 'kernel', bad, mnt]);
      assert.equal(m.status, 1);
      assert.match(m.stderr, /^distri: mount .*: cannot open image .*bad\.sqfs: /m);
      assert.ok(!mountedAt(mnt), `nothing left mounted on ${mnt} (try ${i + 1})`);
    }
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});

test('a daemon started before the command parsed anything reports its failures as the command does', () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const junk = path.join(tmp, 'junk.sqfs');
  fs.writeFileSync(junk, Buffer.alloc(4096, 7));
  const missing = path.join(tmp, 'no-such-dir');
  const cases: Array<[string[], RegExp]> = [
    [['mount', demo], /^distri: missing required argument 'mountpoint'$/m],
    [['mount', '-o', 'bogus', demo, mnt], /^distri: mount: unknown -o option "bogus"/m],
    [['mount', '--bogus', demo, mnt], /^distri: unknown option '--bogus'$/m],
    [['mount', demo, missing], new RegExp(`^distri: mount ${demo} on ${missing}: mountpoint ${missing} does not exist$`, 'm')],
    [['mount', junk, mnt], /^distri: mount .*junk\.sqfs on .*: cannot open image .*junk\.sqfs: BAD_MAGIC/m],
    [['fuse', '--max-open', 'x', mnt], /^distri: fuse: --max-open needs a positive integer, got "x"$/m],
    [['fuse', '--store', path.join(tmp, 'no-such-store'), mnt], /^distri: fuse .*no-such-store on .*: store .*no-such-store: /m],
  ];
  const timing = /^distri mount: timing: .*\n/gm;
  try {
    for (const [args, want] of cases) {
      const early = distri(args, { DISTRI_MOUNT_TIMING: '1' });
      // The daemon ran, and it was the one that found the problem: the command spawns before parsing.
      assert.match(early.stderr, /timing: .* daemon entry \(pid/, `distri ${args.join(' ')}: the daemon started`);
      const asBefore = distri(args, { DISTRI_NO_EARLY_DAEMON: '1' });
      assert.equal(early.status, 1, `distri ${args.join(' ')}: ${early.stderr}`);
      assert.match(early.stderr, want);
      assert.deepEqual({ status: early.status, stderr: early.stderr.replace(timing, '') }, { status: asBefore.status, stderr: asBefore.stderr }, `distri ${args.join(' ')}`);
      assert.ok(!mountedAt(mnt), `nothing mounted on ${mnt}`);
    }
    // --help stays with the command: no daemon, the same text.
    const help = distri(['mount', '--help'], { DISTRI_MOUNT_TIMING: '1' });
    assert.equal(help.status, 0);
    assert.doesNotMatch(help.stderr, /daemon entry/);
    assert.equal(help.stdout, distri(['mount', '--help'], { DISTRI_NO_EARLY_DAEMON: '1' }).stdout);
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});

test("a daemon killed before it reports still gets 'f' written to notify_pipe, by the waiting command", () => {
  const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
  const dir = fs.mkdtempSync(path.join(tmp, 'notify-'));
  // Preloaded into every process; only the daemon (it has the readiness descriptor) dies, at once.
  const killer = path.join(dir, 'kill-daemon.js');
  fs.writeFileSync(killer, "if (process.env.DISTRI_MOUNT_READY_FD) process.kill(process.pid, 'SIGKILL');\n");
  try {
    for (const [label, env] of [
      ['daemon first', {}],
      ['command first', { DISTRI_NO_EARLY_DAEMON: '1' }],
    ] as const) {
      for (const args of [
        ['mount', '-o', `ro,notify_pipe=${path.join(dir, 'fifo')}`, demo, mnt],
        ['fuse', '--notify-pipe', path.join(dir, 'fifo'), '--store', dir, mnt],
      ]) {
        const fifo = path.join(dir, 'fifo');
        fs.rmSync(fifo, { force: true });
        assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
        const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        try {
          const r = distri(args, { ...env, NODE_OPTIONS: `--require ${killer}` });
          assert.equal(r.status, 1, `${label}: distri ${args.join(' ')}: ${r.stderr}`);
          assert.match(r.stderr, /killed \(SIGKILL\) before mounting|exited \(SIGKILL\) before mounting/, label);
          const got = Buffer.alloc(8);
          let n = 0;
          try {
            n = fs.readSync(fd, got, 0, 8, null);
          } catch {
            n = 0; // EAGAIN: nothing was written
          }
          assert.equal(got.subarray(0, n).toString(), 'f', `${label}: distri ${args[0]} wrote "f" to the notify pipe`);
        } finally {
          fs.closeSync(fd);
        }
        assert.ok(!mountedAt(mnt), `nothing mounted on ${mnt}`);
      }
    }
  } finally {
    if (mountedAt(mnt)) spawnSync('umount', ['-l', mnt]);
  }
});

test("the daemon's reading of a plain mount command line is commander's, and it leaves every other line to commander", async () => {
  /** What commander hands the mount action for `distri ARGS`. */
  const viaCommander = async (args: string[]) => {
    const program = buildProgram('mount');
    let got: unknown;
    program.commands
      .find((c) => c.name() === 'mount')!
      .action((image: string, mountpoint: string, flags: unknown) => {
        got = { image, mountpoint, flags };
      });
    await program.parseAsync(['node', 'distri', ...args]);
    return got;
  };
  const plain = [
    ['mount', 'a.sqfs', 'mnt'],
    ['mount', '-o', 'uid=1,gid=2', 'a.sqfs', '-ooffset=4', 'mnt', '--options', 'cache=8', '--options=ro'],
    ['mount', '--pid-file', 'p', '--transport', 'kernel', 'a.sqfs', 'mnt', '--pid-file=q', '--transport=libfuse'],
    ['mount', 'a.sqfs', 'mnt', '-o', ''],
  ];
  for (const args of plain) {
    const mine = plainMountCommandLine(args);
    assert.ok(mine, `${args.join(' ')} is plain`);
    assert.deepEqual(mine, await viaCommander(args), args.join(' '));
  }
  for (const args of [
    ['mount', 'a.sqfs'],
    ['mount', 'a', 'b', 'c'],
    ['mount', '-f', 'a', 'b'],
    ['-v', 'mount', 'a', 'b'],
    ['mount', '-o', '-x', 'a', 'b'],
    ['mount', '--bogus', 'a', 'b'],
    ['mount', 'a', 'b', '-o'],
  ]) {
    assert.equal(plainMountCommandLine(args), undefined, args.join(' '));
  }
});
