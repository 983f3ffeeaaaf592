/**
 * Shared benchmark plumbing: run commands side by side, several rounds alternating between the
 * contenders (so machine noise hits both alike), report medians and ratios. Benchmarks print; they
 * never assert timings.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const repo = path.resolve(__dirname, '..', '..');
export const cli = path.join(repo, 'dist/src/cli/main.js');

export function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** Drops the page cache so that "cold" means cold (root only; a no-op otherwise). */
export function dropCaches(): void {
  try {
    spawnSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    /* not root: warm runs only */
  }
}

export function sh(cmd: string, args: string[], opts: { stdout?: 'ignore' | 'pipe' } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout ?? '';
}

/** Wall time of one run of fn, in seconds. */
export function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The median (the mean of the two middle values for an even count); NaN for no values. The one median of the benchmarks. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Contender {
  name: string;
  /** Runs once; may throw to mark the contender unavailable. */
  run: () => void;
  /** Runs before each timed run (e.g. clear the destination, drop caches). */
  before?: () => void;
}

/** Alternates contenders for `rounds` rounds and returns the median seconds of each. */
export function compare(contenders: Contender[], rounds: number): Map<string, number> {
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) {
      c.before?.();
      times.get(c.name)!.push(time(c.run));
    }
  }
  return new Map([...times].map(([k, v]) => [k, median(v)]));
}

/** A fixed-width table; the first column left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** Removes `name VALUE` from `args` and returns VALUE (or `fallback`): what is left are the operands. */
export function takeFlag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = args[i + 1] ?? fallback;
  args.splice(i, 2);
  return v;
}

/**
 * Counts the files opened in a directory, by anyone, as the kernel sees them: `inotifywait -m -e
 * open` on the store. Laziness is a claim about opens, and a daemon's own counter only counts the
 * opens it thought to count (it missed the images opened to build the store index); inotify sees
 * every open(2) of a file in the directory, whatever code path made it.
 *
 * inotify delivers events asynchronously, so `settle()` opens a new sentinel file and waits for
 * its event: events of one watch arrive in order, so everything opened before is counted by then.
 */
export class OpenCounter {
  private readonly child: ChildProcess;
  private readonly counts = new Map<string, number>();
  private readonly sentinelsSeen = new Set<string>();
  private readonly prefix = `.open-counter-${process.pid}-`;
  private settles = 0;
  private buffered = '';
  readonly ready: Promise<void>;

  private constructor(readonly dir: string) {
    // Closes are watched too, only to keep two opens of one file apart: the kernel merges an event
    // into an identical one still unread, so two opens in a row would otherwise count as one.
    this.child = spawn('inotifywait', ['-m', '-q', '-e', 'open', '-e', 'close', '--format', '%e %f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.buffered += d.toString();
      const lines = this.buffered.split('\n');
      this.buffered = lines.pop()!;
      for (const line of lines) {
        const sp = line.indexOf(' ');
        if (sp < 0 || !line.slice(0, sp).split(',').includes('OPEN')) continue;
        const name = line.slice(sp + 1);
        if (name.startsWith(this.prefix)) this.sentinelsSeen.add(name);
        else if (name !== '') this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      }
    });
    // With -q the watch says nothing when established; the first sentinel event says it is in place.
    this.ready = this.settle();
  }

  /** Starts counting opens in `dir` (resolves once the watch is in place). */
  static async start(dir: string): Promise<OpenCounter> {
    const c = new OpenCounter(dir);
    await c.ready;
    return c;
  }

  /** Waits until every open made before this call is counted. */
  async settle(timeoutMs = 10_000): Promise<void> {
    const name = `${this.prefix}${this.settles++}`;
    const file = path.join(this.dir, name);
    const end = Date.now() + timeoutMs;
    try {
      // Opened again until seen: only the first settle can open it before the watch exists.
      while (!this.sentinelsSeen.has(name)) {
        if (Date.now() > end) throw new Error(`inotifywait on ${this.dir} reported nothing within ${timeoutMs} ms`);
        fs.writeFileSync(file, '');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Opens of files whose name matches, since the start or the last reset. */
  opens(match: (name: string) => boolean = () => true): Map<string, number> {
    return new Map([...this.counts].filter(([n]) => match(n)));
  }

  reset(): void {
    this.counts.clear();
  }

  stop(): void {
    this.child.kill();
  }
}

/** The opens of images (`*.squashfs`) counted so far, by package file name. */
export function imageOpens(c: OpenCounter): Map<string, number> {
  return c.opens((n) => n.endsWith('.squashfs'));
}
