/**
 * Start-up of the short commands: `distri info`, `ls`, `stat` and `cat` of one small file on a
 * small image, against Node's bare start-up (`node -e 0`) and against unsquashfs doing the same,
 * side by side in one run (alternating), median wall time of --rounds runs. The target (issue 14):
 * each command within `node -e 0` + 15 ms.
 *
 *   npm run build && node dist/bench/cli.js [--rounds 21] [--source /usr/include/linux]
 *
 * distri runs twice: from the bundle (what `distri` does) and with DISTRI_NO_BUNDLE=1 (the
 * modules as tsc emitted them). NODE_EXTRA_CA_CERTS makes Node parse a CA bundle at every start;
 * all rows run without it, and `node -e 0` is shown both ways.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, cli, have, median, sh, table } from './lib';

const rounds = Number(arg('rounds', '21'));
const source = arg('source', '/usr/include/linux');

interface Row {
  name: string;
  cmd: string[];
  env?: NodeJS.ProcessEnv;
}

function runOnce(r: Row): number {
  const t0 = process.hrtime.bigint();
  const p = spawnSync(r.cmd[0]!, r.cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: r.env });
  const s = Number(process.hrtime.bigint() - t0) / 1e6;
  if (p.status !== 0) throw new Error(`${r.cmd.join(' ')} failed (${p.status}): ${p.stderr}`);
  return s;
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
    console.log(`image: ${source} (${(size / 1048576).toFixed(1)} MiB, gzip); file ${file}; ${rounds} rounds, median wall ms\n`);

    const noCa: NodeJS.ProcessEnv = { ...process.env };
    delete noCa.NODE_EXTRA_CA_CERTS;
    const withCa: NodeJS.ProcessEnv = { ...noCa, NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt' };
    const unbundled: NodeJS.ProcessEnv = { ...noCa, DISTRI_NO_BUNDLE: '1' };
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
      rows.push({ name: `distri ${c.what} (unbundled)`, cmd: ['node', cli, ...c.distri], env: unbundled });
      rows.push({ name: `unsquashfs ${c.what}`, cmd: ['unsquashfs', ...c.unsquashfs], env: noCa });
    }
    const times = new Map<string, number[]>(rows.map((r) => [r.name, []]));
    for (const r of rows) runOnce(r); // warm the page cache; also checks every command works
    for (let i = 0; i < rounds; i++) for (const r of rows) times.get(r.name)!.push(runOnce(r));
    const base = median(times.get('node -e 0')!);
    const out = rows.map((r) => {
      const m = median(times.get(r.name)!);
      return [r.name, m.toFixed(1), r.cmd[0] === 'node' ? (m - base >= 0 ? '+' : '') + (m - base).toFixed(1) : ''];
    });
    console.log(table(['command', 'ms', 'over node -e 0'], out));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
