/**
 * A/B of `distri pack` between two builds, with mksquashfs beside them, alternating run by run so
 * that a busy neighbour or a warm cache does not always favour the same one:
 *
 *   cp -a dist /tmp/before-dist && ln -s "$PWD/node_modules" /tmp/before-dist/node_modules
 *   (change, npm run build)
 *   node dist/bench/pack-ab.js TREE --before /tmp/before-dist [--runs 5] [--comp none,lz4]
 *
 * (The copy needs node_modules beside it: without it the workers' require('lz4') fails and lz4
 * quietly falls back to our JavaScript encoder.) Medians of wall time, user and system CPU
 * (/usr/bin/time: all threads and children) and the packing thread's own CPU (thread-cpu.ts),
 * with the load average at each run: on a shared machine trust the CPU columns.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { median, takeFlag } from './lib';

const args = process.argv.slice(2);
const flag = (name: string, def: string) => takeFlag(args, name, def);
const runs = Number(flag('--runs', '5'));
const comps = flag('--comp', 'none,lz4').split(',');
const before = flag('--before', '');
const tree = args[0];
if (!tree || !before) {
  console.error('usage: pack-ab TREE --before DIST_COPY [--runs N] [--comp none,lz4]');
  process.exit(2);
}
const after = path.join(__dirname, '..');
const preload = path.join(__dirname, 'thread-cpu.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pack-ab-'));
const image = path.join(tmp, 'x.sqfs');
const MK: Record<string, string[]> = { none: ['-noI', '-noD', '-noF', '-noX'] };

type Row = { wall: number; user: number; sys: number; main: number; load: number };
function run(cmd: string, argv: string[]): Row {
  const t = path.join(tmp, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', '-o', t, cmd, ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  const [wall, user, sys] = fs.readFileSync(t, 'utf8').trim().split('\n').slice(-1)[0]!.split(' ').map(Number);
  const m = /THREADCPU main=([\d.]+)/.exec(r.stderr);
  return { wall: wall!, user: user!, sys: sys!, main: m ? Number(m[1]) : NaN, load: os.loadavg()[0]! };
}

try {
  console.log(
    `tree ${tree}, ${runs} alternating runs, medians; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  console.log('| comp | tool | wall s | user s | sys s | CPU s | packing thread CPU s | load |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const comp of comps) {
    const rows: Record<string, Row[]> = { before: [], after: [], mksquashfs: [] };
    const distri = (dist: string) => () => run(process.execPath, ['-r', preload, path.join(dist, 'src', 'cli', 'main.js'), 'pack', tree, image, '--comp', comp, '--mtime', '0', '--quiet']);
    const tools: Array<[string, () => Row]> = [
      ['before', distri(before)],
      ['after', distri(after)],
      ['mksquashfs', () => run('mksquashfs', [tree, image, ...(MK[comp] ?? ['-comp', comp]), '-noappend', '-no-progress', '-quiet', '-mkfs-time', '0', '-all-time', '0'])],
    ];
    for (let i = 0; i < runs; i++) {
      // Each round starts with the next tool.
      for (let k = 0; k < tools.length; k++) {
        const [tool, go] = tools[(i + k) % tools.length]!;
        rows[tool]!.push(go());
      }
    }
    for (const [tool, r] of Object.entries(rows)) {
      const m = (f: (x: Row) => number) => median(r.map(f));
      const main = tool === 'mksquashfs' ? '–' : m((x) => x.main).toFixed(2);
      console.log(
        `| ${comp} | ${tool} | ${m((x) => x.wall).toFixed(2)} | ${m((x) => x.user).toFixed(2)} | ${m((x) => x.sys).toFixed(2)} | ${m((x) => x.user + x.sys).toFixed(2)} | ${main} | ${m((x) => x.load).toFixed(1)} |`,
      );
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
