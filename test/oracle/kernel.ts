/**
 * The Linux kernel's own SquashFS driver as an oracle: loop-mount an image read-only, let a test
 * look at the mounted tree, and always clean up — unmount, detach the loop device, remove the
 * mount point — even when the test throws.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { toolAvailable, type Availability } from './tools';

let cached: Availability | undefined;

/**
 * Every mount made by this process: its mount point and loop device. Other processes (other test
 * files, other people's runs) may mount the same images at the same time, so leak checks look only
 * at what this process made.
 */
const mountedHere: { dir: string; image: string; loopDev?: string }[] = [];

/** Whether loop-mounting a SquashFS image can work here, and if not, why (cheap, cached). */
export function kernelAvailable(): Availability {
  if (cached) return cached;
  cached = probe();
  return cached;
}

function probe(): Availability {
  if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, why: 'not running as root: mount -o loop needs root' };
  }
  for (const tool of ['mount', 'umount', 'losetup', 'findmnt']) {
    const a = toolAvailable(tool);
    if (!a.ok) return a;
  }
  if (!fs.existsSync('/dev/loop-control')) return { ok: false, why: 'no /dev/loop-control (loop driver missing)' };
  const hasSquashfs = () => /\bsquashfs\b/.test(fs.readFileSync('/proc/filesystems', 'utf8'));
  if (!hasSquashfs()) {
    spawnSync('modprobe', ['-q', 'squashfs'], { stdio: 'ignore', timeout: 10_000 });
    if (!hasSquashfs()) return { ok: false, why: 'the kernel has no squashfs (not in /proc/filesystems, modprobe squashfs failed)' };
  }
  return { ok: true };
}

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) return { status: null, out: r.error.message };
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The backing file of /dev/loopN, or undefined when the device is not attached. */
function loopBackingFile(dev: string): string | undefined {
  try {
    return fs.readFileSync(`/sys/block/${path.basename(dev)}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export type KernelMountOptions = {
  /** Extra mount options after `loop,ro` (e.g. 'offset=4096'). */
  options?: string;
};

/**
 * `mount -t squashfs -o loop,ro IMAGE TMPDIR`, then `fn(TMPDIR)`, then always: unmount (retrying,
 * lazily as a last resort), detach the loop device this mount used if it is still attached to this
 * image (mount sets autoclear, so normally it is already gone), remove TMPDIR. Throws when the
 * mount fails (with mount's message) or when cleanup could not complete; an error from `fn` wins
 * over a cleanup error, which is then printed.
 */
export async function withKernelMount<T>(image: string, fn: (mountDir: string) => T | Promise<T>, options: KernelMountOptions = {}): Promise<T> {
  const avail = kernelAvailable();
  if (!avail.ok) throw new Error(`kernel SquashFS mount not available: ${avail.why}`);
  const imagePath = fs.realpathSync(image);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-kmount-'));
  const opts = options.options ? `loop,ro,${options.options}` : 'loop,ro';
  const m = run('mount', ['-t', 'squashfs', '-o', opts, imagePath, dir]);
  if (m.status !== 0) {
    fs.rmdirSync(dir);
    throw new Error(`mount -t squashfs -o ${opts} ${imagePath} failed: ${m.out}`);
  }
  const src = run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', dir]);
  const loopDev = src.status === 0 && src.out.startsWith('/dev/loop') ? src.out.split('\n')[0] : undefined;
  mountedHere.push({ dir, image: imagePath, loopDev });

  let failed = false;
  let primary: unknown;
  try {
    return await fn(dir);
  } catch (e) {
    failed = true;
    primary = e;
    throw e;
  } finally {
    const problems = await cleanup(dir, imagePath, loopDev);
    if (problems.length > 0) {
      const msg = `withKernelMount cleanup of ${dir} (${imagePath}): ${problems.join('; ')}`;
      if (failed) console.error(`${msg} (while failing with: ${String(primary)})`);
      // A cleanup failure after success is the error to report; after a failure, the first one is.
      // eslint-disable-next-line no-unsafe-finally
      else throw new Error(msg);
    }
  }
}

async function cleanup(dir: string, imagePath: string, loopDev: string | undefined): Promise<string[]> {
  const problems: string[] = [];
  let unmounted = false;
  let last = '';
  for (let i = 0; i < 20 && !unmounted; i++) {
    const u = run('umount', [dir]);
    if (u.status === 0) unmounted = true;
    else {
      last = u.out;
      await sleep(100);
    }
  }
  if (!unmounted) {
    const l = run('umount', ['-l', dir]);
    problems.push(`umount kept failing (${last}); lazy umount ${l.status === 0 ? 'done' : `failed: ${l.out}`}`);
    unmounted = l.status === 0;
  }
  if (loopDev) {
    // autoclear detaches on the last close, which follows the unmount shortly; wait for it, then
    // detach by hand, but only if the device still serves this image (it may have been reused).
    for (let i = 0; i < 20 && loopBackingFile(loopDev) === imagePath; i++) await sleep(50);
    if (loopBackingFile(loopDev) === imagePath) {
      const d = run('losetup', ['-d', loopDev]);
      if (d.status !== 0 && loopBackingFile(loopDev) === imagePath) problems.push(`losetup -d ${loopDev}: ${d.out}`);
    }
  } else {
    problems.push('could not tell which loop device the mount used (findmnt gave nothing)');
  }
  if (unmounted) {
    try {
      fs.rmdirSync(dir); // never recursive: if the unmount silently failed, this fails too
    } catch (e) {
      problems.push(`rmdir: ${(e as Error).message}`);
    }
  }
  return problems;
}

/**
 * What this process's withKernelMount calls left behind: mount points still present or mounted,
 * loop devices still attached to the image they served. Empty when every cleanup worked.
 */
export function kernelLeftovers(): string[] {
  const out: string[] = [];
  const mounted = run('findmnt', ['-n', '-l', '-o', 'TARGET']).out.split('\n');
  for (const m of mountedHere) {
    if (mounted.includes(m.dir)) out.push(`still mounted: ${m.dir} (${m.image})`);
    else if (fs.existsSync(m.dir)) out.push(`mount point left: ${m.dir}`);
    if (m.loopDev && loopBackingFile(m.loopDev) === m.image) out.push(`loop device still attached: ${m.loopDev} (${m.image})`);
  }
  return out;
}

/**
 * Whether the running kernel can mount images of this compressor. The kernel never had lzma (the
 * legacy format, compressor id 2): only gzip, lzo, lz4, xz and zstd, each behind its own config
 * option, which /proc/config.gz tells when the kernel exposes it.
 */
export function kernelSupportsCompressor(compressor: string): Availability {
  if (compressor === 'lzma') {
    return { ok: false, why: 'the Linux kernel has no lzma SquashFS decompressor (only gzip, lzo, lz4, xz, zstd)', notApplicable: true };
  }
  const option = { gzip: 'ZLIB', lzo: 'LZO', lz4: 'LZ4', xz: 'XZ', zstd: 'ZSTD' }[compressor];
  if (!option) return { ok: false, why: `unknown compressor ${compressor}` };
  const r = spawnSync('zcat', ['/proc/config.gz'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: true }; // unknown: let the mount say
  return new RegExp(`^CONFIG_SQUASHFS_${option}=y`, 'm').test(r.stdout) ? { ok: true } : { ok: false, why: `this kernel is built without CONFIG_SQUASHFS_${option}`, notApplicable: true };
}
