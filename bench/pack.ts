/**
 * `distri pack` against mksquashfs on the same tree at the same settings: wall time and image
 * size per compressor, side by side, with ratios (ours / mksquashfs; < 1 is better for us).
 *
 *   node dist/bench/pack.js [TREE=/usr/share] [--runs N=3] [--comp none,gzip,lz4,zstd,xz,lzo]
 *
 * Each run is a fresh process (distri through its CLI, as users run it); the median of N runs is
 * shown, wall time and, next to it, the CPU time (user + system, all threads and children, from
 * /usr/bin/time where it is installed): on a shared machine the wall time also measures the
 * neighbours, and the load average is printed before and after for that reason. Like with like: both tools get the same time settings (every inode and the image time 0:
 * mksquashfs -all-time 0 -mkfs-time 0, distri --mtime 0), sizes are the images' real bytes
 * (bytes_used from the superblock; mksquashfs pads its file to 4 KiB, distri does too, and the
 * padding says nothing about compression), and the tools take turns running first, so that a
 * warm page cache or a busy neighbour does not always favour the same one. Both write to the
 * same temporary directory, which is removed at the end.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lz4EncoderName } from '../src/codec/lz4';
import { xzEncoderName } from '../src/codec/xz';
import { zstdEncoderName } from '../src/codec/zstd';
import { median, takeFlag } from './lib';

const args = process.argv.slice(2);
const flag = (name: string, def: string) => takeFlag(args, name, def);
const runs = Number(flag('--runs', '3'));
const comps = flag('--comp', 'none,gzip,lz4,zstd,xz,lzo').split(',');
const tree = args[0] ?? '/usr/share';
const cli = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pack-'));

const MK_ARGS: Record<string, string[]> = {
  none: ['-noI', '-noD', '-noF', '-noX'],
  gzip: ['-comp', 'gzip'],
  lz4: ['-comp', 'lz4'],
  zstd: ['-comp', 'zstd'],
  xz: ['-comp', 'xz'],
  lzo: ['-comp', 'lzo'],
};

const timeTool = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
function timed(cmd: string, argv: string[]): { seconds: number; cpu: number; ok: boolean; err: string } {
  const cpuFile = path.join(tmp, 'cpu.txt');
  const t = process.hrtime.bigint();
  const r = timeTool ? spawnSync(timeTool, ['-f', '%U %S', '-o', cpuFile, cmd, ...argv], { encoding: 'utf8', maxBuffer: 1 << 26 }) : spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  let cpu = NaN;
  if (timeTool) {
    const [user, sys] = fs.readFileSync(cpuFile, 'utf8').trim().split('\n').slice(-1)[0]!.split(' ').map(Number);
    cpu = user! + sys!;
  }
  return { seconds, cpu, ok: r.status === 0, err: `${r.stderr ?? ''}`.trim().split('\n').slice(-1)[0] ?? '' };
}
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
/** The image's real size: bytes_used in the superblock (offset 40), without the file's padding. */
function bytesUsed(image: string): number {
  const fd = fs.openSync(image, 'r');
  try {
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 40);
    return Number(b.readBigUInt64LE(0));
  } finally {
    fs.closeSync(fd);
  }
}

try {
  console.log(`tree ${tree}, ${os.availableParallelism()} CPUs, node ${process.version}, ${runs} run(s) each, medians; load average ${load()}`);
  // Which encoder distri uses where a native library may stand in (see src/codec).
  console.log(`encoders: xz ${xzEncoderName()}, zstd ${zstdEncoderName()}, lz4 ${lz4EncoderName()}, gzip node:zlib ${process.versions.zlib}\n`);
  console.log('Both tools: every time 0 (mksquashfs -all-time 0 -mkfs-time 0, distri --mtime 0); bytes are bytes_used (no padding); the first tool alternates by run.\n');
  console.log('| comp | mksquashfs s | distri s | time ratio | mksquashfs CPU s | distri CPU s | mksquashfs bytes | distri bytes | size ratio |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const comp of comps) {
    const mkImg = path.join(tmp, `mk-${comp}.sqfs`);
    const ourImg = path.join(tmp, `distri-${comp}.sqfs`);
    const mk: number[] = [];
    const ours: number[] = [];
    const mkCpu: number[] = [];
    const ourCpu: number[] = [];
    let ourErr = '';
    const runMk = () => {
      const a = timed('mksquashfs', [tree, mkImg, ...MK_ARGS[comp]!, '-noappend', '-no-progress', '-quiet', '-mkfs-time', '0', '-all-time', '0']);
      if (!a.ok) throw new Error(`mksquashfs ${comp}: ${a.err}`);
      mk.push(a.seconds);
      mkCpu.push(a.cpu);
    };
    const runOurs = () => {
      const b = timed(process.execPath, [cli, 'pack', tree, ourImg, '--comp', comp, '--mtime', '0', '--quiet']);
      if (b.ok) {
        ours.push(b.seconds);
        ourCpu.push(b.cpu);
      } else ourErr = b.err;
    };
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) {
        runMk();
        runOurs();
      } else {
        runOurs();
        runMk();
      }
    }
    const mkBytes = bytesUsed(mkImg);
    if (ours.length === 0) {
      console.log(`| ${comp} | ${median(mk).toFixed(2)} | n/a | n/a | ${median(mkCpu).toFixed(2)} | n/a | ${mkBytes} | n/a | n/a |  (${ourErr.replace(/\|/g, '/')})`);
      continue;
    }
    const ourBytes = bytesUsed(ourImg);
    console.log(
      `| ${comp} | ${median(mk).toFixed(2)} | ${median(ours).toFixed(2)} | ${(median(ours) / median(mk)).toFixed(2)} | ${median(mkCpu).toFixed(2)} | ${median(ourCpu).toFixed(2)} | ${mkBytes} | ${ourBytes} | ${(ourBytes / mkBytes).toFixed(4)} |`,
    );
    fs.rmSync(mkImg, { force: true });
    fs.rmSync(ourImg, { force: true });
  }
  console.log(`\nload average at the end: ${load()}`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
