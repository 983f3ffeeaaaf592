/**
 * Package stores for tests: package trees written as files, packed into `<full>.squashfs` with the
 * real mksquashfs the way distri writes images (uncompressed, 128 KiB blocks, no fragments), with a
 * `<full>.meta.textproto` beside each; and `distri fuse` mounts of them, always served by a child
 * process and always cleaned up (mount, daemon, mountpoint, temp dirs).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, forceCleanup, makeMountpoint, mountedAt, run, track, untrack, waitFor, type Mount } from './mount';

/** A file's content, or a symlink, or an empty directory; xattrs as name → bytes. */
export type TreeItem = string | Uint8Array | { symlink: string } | { dir: true } | { content: string | Uint8Array; mode?: number; xattrs?: Record<string, Uint8Array> };
export type Tree = Record<string, TreeItem>;

/** distri's uncompressed image flags (docs/distri.md "A package"). */
export const DISTRI_MKSQUASHFS = ['-noI', '-noD', '-noF', '-noX', '-no-fragments', '-b', '131072', '-all-root', '-quiet', '-no-progress'];

/** Writes `tree` (paths relative to `root`) to disk. */
export function writeTree(root: string, tree: Tree): void {
  fs.mkdirSync(root, { recursive: true });
  for (const [rel, item] of Object.entries(tree)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof item === 'string' || item instanceof Uint8Array) fs.writeFileSync(p, item);
    else if ('symlink' in item) fs.symlinkSync(item.symlink, p);
    else if ('dir' in item) fs.mkdirSync(p, { recursive: true });
    else {
      fs.writeFileSync(p, item.content);
      if (item.mode !== undefined) fs.chmodSync(p, item.mode);
      for (const [name, value] of Object.entries(item.xattrs ?? {})) {
        const r = spawnSync('setfattr', ['-n', name, '-v', '0x' + Buffer.from(value).toString('hex'), p]);
        if (r.status !== 0) throw new Error(`setfattr ${name} ${p}: ${r.stderr}`);
      }
    }
  }
}

/** Packs a directory into an image with mksquashfs (distri's flags unless `flags` is given). */
export function mksquashfs(dir: string, image: string, flags: string[] = DISTRI_MKSQUASHFS): void {
  fs.rmSync(image, { force: true });
  const r = spawnSync('mksquashfs', [dir, image, ...flags], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mksquashfs ${dir}: ${r.stderr}`);
}

export interface PackageSpec {
  full: string;
  tree: Tree;
  /** meta.textproto text; default a minimal one. null: write no meta. */
  meta?: string | null;
}

/**
 * Adds a package to `store`: meta first, then the image built aside and renamed into place (as
 * `distri install` does), so a watching daemon never sees a partial image.
 */
export function addPackage(store: string, spec: PackageSpec, work: string): void {
  const src = fs.mkdtempSync(path.join(work, 'pkg-'));
  writeTree(src, spec.tree);
  const tmp = path.join(store, `.${spec.full}.squashfs.tmp`);
  mksquashfs(src, tmp);
  fs.rmSync(src, { recursive: true, force: true });
  if (spec.meta !== null) {
    const version = spec.full.split('-').slice(2).join('-');
    fs.writeFileSync(path.join(store, `${spec.full}.meta.textproto`), spec.meta ?? `source_pkg: "${spec.full.split('-')[0]}"\nversion: "${version}"\n`);
  }
  fs.renameSync(tmp, path.join(store, `${spec.full}.squashfs`));
}

export function removePackage(store: string, full: string): void {
  fs.rmSync(path.join(store, `${full}.squashfs`), { force: true });
  fs.rmSync(path.join(store, `${full}.meta.textproto`), { force: true });
}

export interface StoreMount extends Mount {
  store: string;
  /** stderr of the daemon so far (its log: skipped packages, rescans). */
  log(): string;
}

/**
 * `distri fuse --store STORE DIR -f --notify-pipe FIFO` as a child process: resolves once the
 * daemon reports 's' on the FIFO. cleanup() unmounts, stops the daemon and removes DIR.
 * `fifoDir`: make the FIFO (`notify`) in this existing directory, and leave it there (a test
 * watching the directory sees when 's' was written); default a temporary directory.
 */
export async function spawnStoreMount(store: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, opts: { fifoDir?: string } = {}): Promise<StoreMount> {
  const { spawn } = await import('node:child_process');
  const { readFifoByte } = await import('./mount');
  const dir = makeMountpoint();
  const fifoDir = opts.fifoDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fifo-'));
  const fifo = path.join(fifoDir, 'notify');
  const mk = spawnSync('mkfifo', [fifo]);
  if (mk.status !== 0) throw new Error(`mkfifo: ${mk.stderr}`);
  const answer = readFifoByte(fifo, 30_000);
  const child = spawn(process.execPath, [cliPath(), 'fuse', '--store', store, dir, '-f', '--notify-pipe', fifo, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const byte = await answer;
  if (opts.fifoDir) fs.rmSync(fifo, { force: true });
  else fs.rmSync(fifoDir, { recursive: true, force: true });
  const pid = child.pid!;
  const m: StoreMount = {
    dir,
    pid,
    child,
    store,
    log: () => stderr,
    cleanup: async () => {
      const problems = await forceCleanup(dir, pid);
      if (problems.length) console.warn(`cleanup of ${dir}: ${problems.join('; ')}`);
    },
  };
  track(m);
  const cleanup = m.cleanup;
  m.cleanup = async () => {
    untrack(m);
    await cleanup();
  };
  if (byte !== 's' || !mountedAt(dir)) {
    await m.cleanup();
    throw new Error(`distri fuse --store ${store} reported ${JSON.stringify(byte)}: ${stderr.trim()}`);
  }
  return m;
}

/** `distri fusectl DIR …` as a child; returns its stdout (throws on failure). */
export async function fusectl(dir: string, ...args: string[]): Promise<string> {
  const r = await run(process.execPath, [cliPath(), 'fusectl', dir, ...args], { timeoutMs: 15_000 });
  if (r.status !== 0) throw new Error(`fusectl ${args.join(' ')}: status ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function storeStats(dir: string): Promise<Record<string, number> & { index: Record<string, unknown> }> {
  return JSON.parse(await fusectl(dir, 'stats', '--json')).stats;
}

/** Runs a shell command against the mount in a child (this process never touches it). */
export async function sh(script: string, timeoutMs = 20_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await run('sh', ['-c', script], { timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export { waitFor };
