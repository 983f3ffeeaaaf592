/**
 * The control socket of a /ro mount (distri's `ctl`): `/ro/ctl` is a symlink to a unix socket that
 * answers Ping, ScanPackages, MkdirAll and Stats. distri spoke gRPC on it; here each request is one
 * line of JSON and so is each answer, so `socat - UNIX:$(readlink /ro/ctl)` works by hand:
 *
 *   {"op":"ping"}                  → {"ok":true,"pid":1234}
 *   {"op":"scan"}                  → {"ok":true,"known":12,"added":[…],"removed":[…],"ms":1.2}
 *   {"op":"mkdirall","dir":"foo"}  → {"ok":true}          (a/b → {"ok":false,"error":"…"})
 *   {"op":"stats"}                 → {"ok":true,"stats":{…}}
 *
 * The socket lives in a fresh 0700 directory under the temp dir (only its owner can connect) and is
 * removed with it when the daemon stops. Requests are handled on the daemon's event loop between
 * FUSE requests; none of them touches the mount.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Answers one request; may answer later (the filesystem it asks may live on another thread). */
export type CtlHandler = (request: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>;

/** A request line longer than this closes the connection. */
const MAX_LINE = 64 << 10;

export class CtlServer {
  private server: net.Server | undefined;
  readonly dir: string;
  readonly path: string;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-fuse-ctl-'));
    fs.chmodSync(this.dir, 0o700);
    this.path = path.join(this.dir, 'ctl');
  }

  listen(handle: CtlHandler): Promise<void> {
    const server = net.createServer((sock) => {
      let buf = '';
      // Answers go out in the order the requests came, however long each takes.
      let queue: Promise<void> = Promise.resolve();
      sock.setEncoding('utf8');
      sock.on('error', () => undefined);
      sock.on('data', (d: string) => {
        buf += d;
        if (buf.length > MAX_LINE) {
          sock.destroy();
          return;
        }
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          queue = queue.then(async () => {
            let answer: Record<string, unknown>;
            try {
              const req = JSON.parse(line) as unknown;
              if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new Error('a request is a JSON object like {"op":"ping"}');
              answer = await handle(req as Record<string, unknown>);
            } catch (e) {
              answer = { ok: false, error: e instanceof Error ? e.message : String(e) };
            }
            if (!sock.destroyed) sock.write(JSON.stringify(answer) + '\n');
          });
        }
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  close(): void {
    this.server?.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One request to the socket at `socketPath`; rejects after `timeoutMs`. */
export function ctlRequest(socketPath: string, request: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${socketPath}: no answer after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      } catch {
        reject(new Error(`${socketPath}: unreadable answer ${JSON.stringify(buf.slice(0, 200))}`));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${socketPath}: ${e.message}`));
    });
  });
}
