/**
 * Device nodes and fifos without a Node mknod(): one long-lived `sh` child that runs mknod(1) for
 * each request, instead of one spawnSync per node. Spawning from Node forks the whole (large)
 * process and waits for it, about 5–20 ms a node: a Debian root filesystem's eight nodes in /dev
 * cost more than the rest of its metadata. The shell is started on first use and fed one command
 * line per node; each answers with a marker line carrying mknod's exit status, after whatever
 * mknod said (its stderr is merged into stdout so the message comes before its status).
 *
 * Paths are passed single-quoted (a quote inside becomes '\''), as raw bytes: sh does not
 * interpret anything inside single quotes, newlines included, so any name survives.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

const MARK = '\u0001distri-mknod-status ';

export interface MknodResult {
  status: number;
  /** What mknod printed (its error message), empty on success. */
  output: string;
}

export class NodeMaker {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buffered = '';
  private waiting: Array<{ resolve: (r: MknodResult) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;

  /** mknod PATH TYPE [MAJOR MINOR]; TYPE is p, b or c. */
  make(path: Buffer, type: 'p' | 'b' | 'c', major = 0, minor = 0): Promise<MknodResult> {
    if (this.failure) return Promise.reject(this.failure);
    const child = this.start();
    const args = type === 'p' ? 'p' : `${type} ${major >>> 0} ${minor >>> 0}`;
    const line = Buffer.concat([Buffer.from("mknod -- '"), quoteInside(path), Buffer.from(`' ${args} 2>&1; printf '\\n${MARK}%d\\n' $?\n`, 'latin1')]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      child.stdin.write(line);
    });
  }

  /** Ends the shell (it exits at end of input). */
  close(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn('sh', [], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (d: string) => this.onOutput(d));
    child.stderr.resume();
    const fail = (e: Error) => {
      this.failure = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    child.on('error', (e) => fail(new Error(`mknod could not run: ${e.message}`)));
    child.on('exit', (code) => {
      if (this.waiting.length) fail(new Error(`the shell running mknod exited (status ${code})`));
    });
    child.stdin.on('error', () => {
      // the exit/error handlers report it
    });
    this.child = child;
    return child;
  }

  private onOutput(d: string): void {
    this.buffered += d;
    for (;;) {
      const at = this.buffered.indexOf(MARK);
      if (at < 0) return;
      const eol = this.buffered.indexOf('\n', at);
      if (eol < 0) return;
      const output = Buffer.from(this.buffered.slice(0, at), 'latin1').toString('utf8').trim();
      const status = Number(this.buffered.slice(at + MARK.length, eol));
      this.buffered = this.buffered.slice(eol + 1);
      this.waiting.shift()?.resolve({ status, output });
    }
  }
}

/** The bytes of `path` for use between single quotes: each ' becomes '\''. */
function quoteInside(path: Buffer): Buffer {
  if (!path.includes(0x27)) return path;
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = path.indexOf(0x27); i >= 0; i = path.indexOf(0x27, from)) {
    parts.push(path.subarray(from, i), Buffer.from("'\\''"));
    from = i + 1;
  }
  parts.push(path.subarray(from));
  return Buffer.concat(parts);
}
