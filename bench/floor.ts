/**
 * The floor of a Node process for the per-file work of `extract` and `pack`: the system calls an
 * extraction (or a pack) of a tree has to make, made by a bare loop that does nothing else (no
 * image structures, no walk, no decoding, no checks), next to unsquashfs and mksquashfs on the same
 * tree, alternating, with the medians and issue 14's targets (1.5x unsquashfs, 1.0x mksquashfs).
 *
 *   npm run build && node dist/bench/floor.js [--source /dev/shm/rootfs] [--rounds 5] [--tmp /dev/shm]
 *
 * The contenders, each a process of its own (so Node's start-up counts, as it does for `distri`):
 *  - `node -e 0`;
 *  - unsquashfs -d of an uncompressed image of the tree (`mksquashfs -noI -noD -noF -noX`), and
 *    `distri extract` of the same image;
 *  - write, one thread: for each entry in walk order, what an extraction must do at least:
 *    mkdir; pread of the file's bytes from the image + open(O_CREAT|O_EXCL) + one write + fchown +
 *    futimes + close; symlink + lchown + lutimes; then each directory's chown, chmod, utimes,
 *    children first. Absolute paths (the shortest lookups; `distri extract` resolves through
 *    /proc/self/fd so that no symlink in the tree is ever followed), device nodes left out;
 *  - write, two threads: the same, the files split between the main thread and one worker thread
 *    that runs only that loop (directories made first, finished after both);
 *  - write through libuv's thread pool: the same calls but write, fchown, futimes and close
 *    asynchronous (64 files in flight), the only way Node offers to move system calls off the
 *    JavaScript thread without a second isolate;
 *  - mksquashfs of the tree to an uncompressed image, and `distri pack --comp none`;
 *  - read, one thread: what a pack must do at least: readdir + lstat of every entry, readlink,
 *    open + read + close of every file into one reused buffer, its bytes appended to one output
 *    file through a 1 MiB staging buffer;
 *  - read, two threads: the scan first, then the files split between the main thread and a worker
 *    thread, each writing its files' bytes at their places in the output.
 *
 * The loops take the list of entries from a JSON file the parent writes (parsed in a few ms); each
 * prints the time of its loop alone, shown beside its process's wall time. Root is needed for the
 * owners (as for the real tools); run it on a quiet machine.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { arg, cli, have, median, sh, table } from './lib';

/** One entry of the tree, in walk order (parents first): kind, path, size, mode, uid, gid, mtime s, link target. */
type Entry = ['d' | 'f' | 'l' | 'o', string, number, number, number, number, number, string?];

const { O_CREAT, O_EXCL, O_WRONLY } = fs.constants;
const [write, fchown, futimes, close] = [promisify(fs.write), promisify(fs.fchown), promisify(fs.futimes), promisify(fs.close)];

function list(root: string): Entry[] {
  const out: Entry[] = [];
  const visit = (rel: string) => {
    const abs = rel ? path.join(root, rel) : root;
    const st = fs.lstatSync(abs);
    const mtime = Math.floor(st.mtimeMs / 1000);
    if (st.isDirectory()) {
      out.push(['d', rel, 0, st.mode & 0o7777, st.uid, st.gid, mtime]);
      for (const n of fs.readdirSync(abs).sort()) visit(rel ? `${rel}/${n}` : n);
    } else if (st.isFile()) out.push(['f', rel, st.size, st.mode & 0o7777, st.uid, st.gid, mtime]);
    else if (st.isSymbolicLink()) out.push(['l', rel, 0, 0, st.uid, st.gid, mtime, fs.readlinkSync(abs)]);
    else out.push(['o', rel, 0, st.mode & 0o7777, st.uid, st.gid, mtime]);
  };
  visit('');
  return out;
}

/** The extraction's floor: see the header. */
function writeSync(entries: Entry[], dest: string, image: string): void {
  const img = fs.openSync(image, 'r');
  const imgSize = fs.fstatSync(img).size;
  const biggest = Math.max(0, ...entries.map((e) => e[2]));
  const buf = Buffer.allocUnsafe(biggest);
  let at = 0;
  for (const e of entries) {
    if (e[0] === 'd') fs.mkdirSync(e[1] ? `${dest}/${e[1]}` : dest, 0o700);
    else if (e[0] === 'f') at = writeOne(img, imgSize, buf, at, e, dest);
    else if (e[0] === 'l') makeSymlink(e, dest);
  }
  finishDirs(entries, dest);
  fs.closeSync(img);
}

/** symlink, lchown, lutimes. */
function makeSymlink(e: Entry, dest: string): void {
  const [, rel, , , uid, gid, mtime, target] = e;
  const p = `${dest}/${rel}`;
  fs.symlinkSync(target!, p);
  fs.lchownSync(p, uid, gid);
  fs.lutimesSync(p, mtime, mtime);
}

function finishDirs(entries: Entry[], dest: string): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const [kind, rel, , mode, uid, gid, mtime] = entries[i]!;
    if (kind !== 'd') continue;
    const p = rel ? `${dest}/${rel}` : dest;
    fs.chownSync(p, uid, gid);
    fs.chmodSync(p, mode);
    fs.utimesSync(p, mtime, mtime);
  }
}

/** One file of the extraction's floor (pread from the image, create, write, owner, times). */
function writeOne(img: number, imgSize: number, buf: Buffer, at: number, e: Entry, dest: string): number {
  const [, rel, size, mode, uid, gid, mtime] = e;
  if (at + size > imgSize) at = 0;
  fs.readSync(img, buf, 0, size, at);
  const fd = fs.openSync(`${dest}/${rel}`, O_WRONLY | O_CREAT | O_EXCL, mode & 0o777);
  if (size) fs.writeSync(fd, buf, 0, size, 0);
  fs.fchownSync(fd, uid, gid);
  fs.futimesSync(fd, mtime, mtime);
  fs.closeSync(fd);
  return at + size;
}

/**
 * The same on two threads: every directory made first, then the files split between this thread
 * (the even ones, and the symlinks) and a worker thread (the odd ones), the directories finished
 * once both are done. The worker runs only writeOne, so it compiles next to nothing.
 */
async function writeTwo(entries: Entry[], dest: string, image: string): Promise<void> {
  for (const e of entries) if (e[0] === 'd') fs.mkdirSync(e[1] ? `${dest}/${e[1]}` : dest, 0o700);
  const files = entries.filter((e) => e[0] === 'f');
  const worker = new Worker(__filename, { workerData: { files: files.filter((_, i) => i % 2 === 1), dest, image } });
  const finished = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
  });
  const img = fs.openSync(image, 'r');
  const imgSize = fs.fstatSync(img).size;
  const buf = Buffer.allocUnsafe(Math.max(0, ...files.map((e) => e[2])));
  let at = 0;
  for (let i = 0; i < files.length; i += 2) at = writeOne(img, imgSize, buf, at, files[i]!, dest);
  for (const e of entries) if (e[0] === 'l') makeSymlink(e, dest);
  fs.closeSync(img);
  await finished;
  finishDirs(entries, dest);
}

/** The worker of writeTwo. */
function writeTwoWorker(d: { files: Entry[]; dest: string; image: string }): void {
  const img = fs.openSync(d.image, 'r');
  const imgSize = fs.fstatSync(img).size;
  const buf = Buffer.allocUnsafe(Math.max(0, ...d.files.map((e) => e[2])));
  let at = imgSize >> 1; // (another part of the image than the main thread's reads)
  for (const e of d.files) at = writeOne(img, imgSize, buf, at, e, d.dest);
  fs.closeSync(img);
}

/** The same, with each file's write, fchown, futimes and close in libuv's thread pool. */
async function writePool(entries: Entry[], dest: string, image: string): Promise<void> {
  const img = fs.openSync(image, 'r');
  const imgSize = fs.fstatSync(img).size;
  let at = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const done = () => {
    inFlight--;
    wake?.();
  };
  const failures: unknown[] = [];
  for (const e of entries) {
    const [kind, rel, size, mode, uid, gid, mtime] = e;
    const p = rel ? `${dest}/${rel}` : dest;
    if (kind === 'd') {
      fs.mkdirSync(p, 0o700);
    } else if (kind === 'f') {
      while (inFlight >= 64) await new Promise<void>((r) => (wake = r));
      if (at + size > imgSize) at = 0;
      const buf = Buffer.allocUnsafe(size);
      fs.readSync(img, buf, 0, size, at);
      at += size;
      const fd = fs.openSync(p, O_WRONLY | O_CREAT | O_EXCL, mode & 0o777);
      inFlight++;
      (async () => {
        if (size) await write(fd, buf, 0, size, 0);
        await fchown(fd, uid, gid);
        await futimes(fd, mtime, mtime);
        await close(fd);
      })()
        .catch((e: unknown) => failures.push(e))
        .finally(done);
    } else if (kind === 'l') makeSymlink(e, dest);
  }
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  if (failures.length) throw failures[0];
  finishDirs(entries, dest);
  fs.closeSync(img);
}

/** readdir and lstat of every entry below `root`, readlink of each symlink; `file` for each regular file. */
function scan(root: string, file: (path: string, size: number) => void): void {
  for (const n of fs.readdirSync(root)) {
    const p = `${root}/${n}`;
    const st = fs.lstatSync(p);
    if (st.isDirectory()) scan(p, file);
    else if (st.isSymbolicLink()) fs.readlinkSync(p);
    else if (st.isFile()) file(p, st.size);
  }
}

/** open, read until `size` bytes (or the end), close: the bytes read into `buf`. */
function readWhole(p: string, size: number, buf: Buffer): number {
  const fd = fs.openSync(p, 'r');
  let got = 0;
  while (got < size) {
    const n = fs.readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  fs.closeSync(fd);
  return got;
}

/** The pack's floor: see the header. */
function readTree(root: string, out: string): void {
  const staging = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  const o = fs.openSync(out, 'w');
  const flush = () => {
    fs.writeSync(o, staging, 0, used);
    used = 0;
  };
  let buf = Buffer.allocUnsafe(1 << 20);
  scan(root, (p, size) => {
    if (buf.length < size) buf = Buffer.allocUnsafe(size);
    const got = readWhole(p, size, buf);
    for (let off = 0; off < got;) {
      const take = Math.min(got - off, staging.length - used);
      buf.copy(staging, used, off, off + take);
      used += take;
      off += take;
      if (used === staging.length) flush();
    }
  });
  flush();
  fs.closeSync(o);
}

/** Reads the files at `files` (path, size, offset in the output) and writes their bytes there. */
function readInto(files: Array<[string, number, number]>, out: number): void {
  let buf = Buffer.allocUnsafe(1 << 20);
  for (const [p, size, at] of files) {
    if (buf.length < size) buf = Buffer.allocUnsafe(size);
    const got = readWhole(p, size, buf);
    if (got) fs.writeSync(out, buf, 0, got, at);
  }
}

/**
 * The pack's floor on two threads: the scan (readdir, lstat, readlink) first, on this thread; then
 * the files split between this thread (the even ones) and a worker thread that runs only
 * readInto (the odd ones), each writing its files' bytes at their places in the output.
 */
async function readTwo(root: string, out: string): Promise<void> {
  const files: Array<[string, number, number]> = [];
  let end = 0;
  scan(root, (p, size) => {
    files.push([p, size, end]);
    end += size;
  });
  const o = fs.openSync(out, 'w');
  const worker = new Worker(__filename, { workerData: { read: files.filter((_, i) => i % 2 === 1), out } });
  const finished = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
  });
  readInto(
    files.filter((_, i) => i % 2 === 0),
    o,
  );
  await finished;
  fs.closeSync(o);
}

/** In a child process: one loop, its time on stdout. */
async function child(argv: string[]): Promise<void> {
  const [what, listFile, a, b] = argv as [string, string, string, string];
  const entries = JSON.parse(fs.readFileSync(listFile, 'utf8')) as Entry[];
  const t0 = process.hrtime.bigint();
  if (what === 'write-sync') writeSync(entries, a, b);
  else if (what === 'write-two') await writeTwo(entries, a, b);
  else if (what === 'write-pool') await writePool(entries, a, b);
  else if (what === 'read') readTree(a, b);
  else if (what === 'read-two') await readTwo(a, b);
  else throw new Error(`unknown loop ${what}`);
  process.stdout.write(`${Number(process.hrtime.bigint() - t0) / 1e9}\n`);
}

function main(): void {
  for (const t of ['mksquashfs', 'unsquashfs']) if (!have(t)) throw new Error(`${t} is not installed (apt-get install squashfs-tools)`);
  if (process.getuid?.() !== 0) throw new Error('run as root: the loops set owners, as the real tools do');
  const source = arg('source', '/dev/shm/rootfs');
  const rounds = Number(arg('rounds', '5'));
  const dir = fs.mkdtempSync(path.join(arg('tmp', os.tmpdir()), 'bench-floor-'));
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS; // (parsed at every start when set: ~90 ms here)
  try {
    const entries = list(source);
    const listFile = path.join(dir, 'entries.json');
    fs.writeFileSync(listFile, JSON.stringify(entries));
    const image = path.join(dir, 'none.sqfs');
    sh('mksquashfs', [source, image, '-noI', '-noD', '-noF', '-noX', '-quiet', '-no-progress']);
    const files = entries.filter((e) => e[0] === 'f');
    const mib = files.reduce((n, e) => n + e[2], 0) / 2 ** 20;
    console.log(`tree: ${source}: ${entries.length} entries, ${files.length} files, ${mib.toFixed(0)} MiB; ${rounds} rounds, medians; under ${dir}; NODE_EXTRA_CA_CERTS unset\n`);

    const dest = path.join(dir, 'dest');
    const packOut = path.join(dir, 'out.sqfs');
    const me = __filename;
    const run = (cmd: string, args: string[]): { wall: number; loop?: number } => {
      fs.rmSync(dest, { recursive: true, force: true });
      fs.rmSync(packOut, { force: true });
      const t0 = process.hrtime.bigint();
      const r = spawnSync(cmd, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      const loop = Number(r.stdout.trim().split('\n').at(-1));
      return { wall, loop: Number.isFinite(loop) && cmd === process.execPath && args[0] === me ? loop : undefined };
    };
    const contenders: Array<[string, string, string[]]> = [
      ['node -e 0', process.execPath, ['-e', '0']],
      ['unsquashfs -d', 'unsquashfs', ['-q', '-n', '-d', dest, image]],
      ['distri extract', process.execPath, [cli, 'extract', image, '-d', dest]],
      ['write, one thread', process.execPath, [me, '--child', 'write-sync', listFile, dest, image]],
      ['write, two threads', process.execPath, [me, '--child', 'write-two', listFile, dest, image]],
      ['write, libuv pool', process.execPath, [me, '--child', 'write-pool', listFile, dest, image]],
      ['mksquashfs', 'mksquashfs', [source, packOut, '-noI', '-noD', '-noF', '-noX', '-quiet', '-no-progress', '-noappend']],
      ['distri pack', process.execPath, [cli, 'pack', source, packOut, '--comp', 'none', '--mtime', '0', '--quiet']],
      ['read, one thread', process.execPath, [me, '--child', 'read', listFile, source, packOut]],
      ['read, two threads', process.execPath, [me, '--child', 'read-two', listFile, source, packOut]],
    ];
    const walls = new Map<string, number[]>(contenders.map(([n]) => [n, []]));
    const loops = new Map<string, number[]>(contenders.map(([n]) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, cmd, args] of contenders) {
        const t = run(cmd, args);
        walls.get(name)!.push(t.wall);
        if (t.loop !== undefined) loops.get(name)!.push(t.loop);
      }
    }
    fs.rmSync(dest, { recursive: true, force: true });
    const m = (n: string) => median(walls.get(n)!);
    const targets: Record<string, string> = {
      'distri extract': `extract target: ${(1.5 * m('unsquashfs -d')).toFixed(2)} s`,
      'write, one thread': `extract target: ${(1.5 * m('unsquashfs -d')).toFixed(2)} s`,
      'write, two threads': `extract target: ${(1.5 * m('unsquashfs -d')).toFixed(2)} s`,
      'write, libuv pool': `extract target: ${(1.5 * m('unsquashfs -d')).toFixed(2)} s`,
      'distri pack': `pack target: ${m('mksquashfs').toFixed(2)} s`,
      'read, one thread': `pack target: ${m('mksquashfs').toFixed(2)} s`,
      'read, two threads': `pack target: ${m('mksquashfs').toFixed(2)} s`,
    };
    const rows = contenders.map(([n]) => {
      const l = loops.get(n)!;
      return [n, m(n).toFixed(3), l.length ? median(l).toFixed(3) : '', targets[n] ?? ''];
    });
    console.log(table(['process', 'wall s', 'loop alone s', ''], rows));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) {
  const d = workerData as { files: Entry[]; dest: string; image: string } | { read: Array<[string, number, number]>; out: string };
  if ('read' in d) {
    const o = fs.openSync(d.out, 'r+');
    readInto(d.read, o);
    fs.closeSync(o);
  } else writeTwoWorker(d);
} else if (process.argv[2] === '--child') {
  child(process.argv.slice(3)).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
