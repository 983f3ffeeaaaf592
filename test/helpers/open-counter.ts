/**
 * Counts the files opened in a directory, by anyone, as the kernel sees them: `inotifywait -m -e
 * open` on the store. Laziness is a claim about opens, and a daemon's own counter only counts the
 * opens it thought to count (it missed the images opened to build the store index); inotify sees
 * every open(2) of a file in the directory, whatever code path made it.
 *
 * inotify delivers events asynchronously, so `settle()` opens a new sentinel file and waits for
 * its event: events of one watch arrive in order, so everything opened before is counted by then.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toolAvailable, type Availability } from '../oracle/tools';

export function openCounterAvailable(): Availability {
  return toolAvailable('inotifywait');
}

export class OpenCounter {
  private readonly child: ChildProcess;
  private readonly counts = new Map<string, number>();
  private readonly sentinelsSeen = new Set<string>();
  private readonly prefix = `.open-counter-${process.pid}-`;
  private settles = 0;
  private buffered = '';
  readonly ready: Promise<void>;

  private constructor(readonly dir: string) {
    this.child = spawn('inotifywait', ['-m', '-q', '-e', 'open', '--format', '%f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.buffered += d.toString();
      const lines = this.buffered.split('\n');
      this.buffered = lines.pop()!;
      for (const name of lines) {
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
