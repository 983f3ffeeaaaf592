/**
 * Start-up of the short commands: `distri info`, `ls`, `stat` and `cat` of one small file on a
 * small image, against Node's bare start-up (`node -e 0`) and against unsquashfs doing the same,
 * side by side in one run (alternating), median wall time of --rounds runs. The target (issue 14):
 * each command within `node -e 0` + 15 ms.
 *
 *   npm run build && node dist/bench/cli.js [--rounds 21] [--source /usr/include/linux] [--against DIST]
 *
 * distri runs four ways: as `distri` runs (info, ls, stat and cat from their fast path and its V8
 * code cache), with DISTRI_CODE_CACHE=off (the same bundle compiled at every start), with
 * DISTRI_NO_FAST_PATH=1 (the full bundle, commander included) and with DISTRI_NO_BUNDLE=1 (the
 * modules as tsc emitted them). --against DIST adds the same commands from another build's dist/
 * (a copy made before a change; it needs node_modules beside it for its unbundled paths), in the
 * same alternation: an A/B comparison on a machine whose load moves. With perf(1) installed, each
 * run is also measured in CPU time (`perf stat -e task-clock`), which the load disturbs less
 * than wall time. NODE_EXTRA_CA_CERTS makes Node parse a CA bundle at every start;
 * all rows run without it, and `node -e 0` is shown both ways.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, cli, have, median, sh, table } from './lib';

const rounds = Number(arg('rounds', '21'));
const source = arg('source', '/usr/include/linux');
const against = arg('against', '');
const withPerf = have('perf');

interface Row {
  name: string;
  cmd: string[];
  env?: NodeJS.ProcessEnv;
}

/** Wall ms of one run and, with perf, its CPU ms (task-clock; perf's own start is not in it). */
function runOnce(r: Row): { wall: number; cpu: number } {
  const cmd = withPerf ? ['perf', 'stat', '-x,', '-e', 'task-clock', '--', ...r.cmd] : r.cmd;
  const t0 = process.hrtime.bigint();
  const p = spawnSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: r.env, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (p.status !== 0) throw new Error(`${r.cmd.join(' ')} failed (${p.status}): ${p.stderr}`);
  const cpu = withPerf ? Number(/^([\d.]+),[^,]*,task-clock/m.exec(p.stderr)?.[1] ?? NaN) : NaN;
  return { wall, cpu };
}

function main(): void {
  if (!have('mksquashfs') || !have('unsquashfs')) throw new Error('mksquashfs/unsquashfs are not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cli-'));
  try {
    const img = path.join(dir, 'small.sqfs');
    sh('mksquashfs', [source, img, '-noappend', '-no-progress', '-quiet']);
    // One small regular file and one directory of the image, whatever the source holds.
    const listing = sh('unsquashfs', ['-lls', '-d', '', img]).split('\n');
    const named = (kind: string) =>
      listing
        .find((l) => l.startsWith(kind) && / \/\S+$/.test(l))
        ?.split(/\s+/)
        .pop()
        ?.slice(1);
    const file = named('-')!;
    const sub = named('d') ?? '';
    const size = fs.statSync(img).size;
    console.log(`image: ${source} (${(size / 1048576).toFixed(1)} MiB, gzip); file ${file}; ${rounds} rounds, medians; load average ${os.loadavg()[0]!.toFixed(1)}\n`);

    const noCa: NodeJS.ProcessEnv = { ...process.env };
    delete noCa.NODE_EXTRA_CA_CERTS;
    const withCa: NodeJS.ProcessEnv = { ...noCa, NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt' };
    const unbundled: NodeJS.ProcessEnv = { ...noCa, DISTRI_NO_BUNDLE: '1' };
    const noFast: NodeJS.ProcessEnv = { ...noCa, DISTRI_NO_FAST_PATH: '1' };
    const noCache: NodeJS.ProcessEnv = { ...noCa, DISTRI_CODE_CACHE: 'off' };
    const otherCli = against ? path.resolve(against, 'src/cli/main.js') : '';
    if (against && !fs.existsSync(otherCli)) throw new Error(`--against ${against}: no src/cli/main.js there`);
    const cmds: Array<{ what: string; distri: string[]; unsquashfs: string[] }> = [
      { what: 'info', distri: ['info', img], unsquashfs: ['-s', img] },
      { what: 'ls DIR', distri: ['ls', img, sub], unsquashfs: ['-l', '-d', '', img, sub] },
      { what: 'stat FILE', distri: ['stat', img, file], unsquashfs: ['-lls', '-d', '', img, file] },
      { what: 'cat FILE', distri: ['cat', img, file], unsquashfs: ['-cat', img, file] },
    ];
    const rows: Row[] = [
      { name: 'node -e 0', cmd: ['node', '-e', '0'], env: noCa },
      { name: 'node -e 0 (NODE_EXTRA_CA_CERTS set)', cmd: ['node', '-e', '0'], env: withCa },
    ];
    for (const c of cmds) {
      rows.push({ name: `distri ${c.what}`, cmd: ['node', cli, ...c.distri], env: noCa });
      if (otherCli) rows.push({ name: `distri ${c.what} (--against)`, cmd: ['node', otherCli, ...c.distri], env: noCa });
      rows.push({ name: `distri ${c.what} (no code cache)`, cmd: ['node', cli, ...c.distri], env: noCache });
      rows.push({ name: `distri ${c.what} (full bundle)`, cmd: ['node', cli, ...c.distri], env: noFast });
      rows.push({ name: `distri ${c.what} (unbundled)`, cmd: ['node', cli, ...c.distri], env: unbundled });
      rows.push({ name: `unsquashfs ${c.what}`, cmd: ['unsquashfs', ...c.unsquashfs], env: noCa });
    }
    const times = new Map<string, Array<{ wall: number; cpu: number }>>(rows.map((r) => [r.name, []]));
    for (const r of rows) runOnce(r); // warm the page cache; also checks every command works
    for (let i = 0; i < rounds; i++) for (const r of rows) times.get(r.name)!.push(runOnce(r));
    const med = (name: string, k: 'wall' | 'cpu') => median(times.get(name)!.map((t) => t[k]));
    const over = (x: number, base: number) => (x - base >= 0 ? '+' : '') + (x - base).toFixed(1);
    const out = rows.map((r) => {
      const node = r.cmd[0] === 'node';
      const row = [r.name, med(r.name, 'wall').toFixed(1), node ? over(med(r.name, 'wall'), med('node -e 0', 'wall')) : ''];
      if (withPerf) row.push(med(r.name, 'cpu').toFixed(1), node ? over(med(r.name, 'cpu'), med('node -e 0', 'cpu')) : '');
      return row;
    });
    console.log(table(['command', 'wall ms', 'over node -e 0', ...(withPerf ? ['CPU ms', 'CPU over node -e 0'] : [])], out));
    console.log(
      `\nload average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
