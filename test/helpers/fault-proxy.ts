/**
 * A fault-injecting HTTP proxy for the remote byte source's tests (and the round-trip delay of
 * `distri bench remote`), in front of a real server: nginx, or `distri export`'s static server
 * (src/repo/static-server.ts) of a repo directory when `dir` is given instead of an upstream URL.
 *
 * It runs in a child process, always: the code under test waits synchronously for its HTTP thread
 * (Atomics.wait), so a proxy on the test's own event loop would never get to answer. The test
 * talks to it over a control port (`setFault`, `counters`, `down`, `up`).
 *
 * Faults, each applied to the requests whose path matches `match` (default all):
 * - `status200`: the Range header is dropped, so the upstream answers 200 with the whole file;
 * - `short`: the upstream's headers, then half of the body, then the connection is closed;
 * - `stall`: the request is never answered (the connection stays open, silent);
 * - `reset`: the connection is reset (RST) as soon as the request arrives;
 * - `corrupt`: the body is passed with bytes flipped (same length, same headers);
 * - `404`: 404 with an HTML page;
 * - `down()`/`up()`: the listening socket is closed (connection refused) and reopened on the same port.
 * `delayMs` holds every answer back that long, and a new connection's first answer twice as long
 * (its handshake): an added round trip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import type * as net from 'node:net';
import { createStaticServer } from '../../src/repo/static-server';

export type Fault = 'none' | 'status200' | 'short' | 'stall' | 'reset' | 'corrupt' | '404';

export interface ProxyCounters {
  requests: number;
  /** Body bytes sent to clients. */
  bytes: number;
  /** Requests that carried a Range header. */
  ranged: number;
}

export interface FaultProxy {
  /** Base URL clients use, e.g. http://127.0.0.1:41234 */
  url: string;
  setFault(fault: Fault, match?: string): Promise<void>;
  setDelay(ms: number): Promise<void>;
  counters(): Promise<ProxyCounters>;
  resetCounters(): Promise<void>;
  /** The server is gone: connections are refused. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

interface ChildState {
  fault: Fault;
  match: RegExp | undefined;
  delayMs: number;
  counters: ProxyCounters;
}

// ---- the child -----------------------------------------------------------------------------------

async function childMain(upstreamArg: string, dirArg: string | undefined): Promise<void> {
  let upstream = upstreamArg;
  if (dirArg) {
    const s = createStaticServer({ root: dirArg });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    upstream = `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
  }
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const state: ChildState = { fault: 'none', match: undefined, delayMs: 0, counters: { requests: 0, bytes: 0, ranged: 0 } };
  const sockets = new Set<net.Socket>();
  const fresh = new WeakSet<net.Socket>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const proxy = http.createServer({ keepAliveTimeout: 30_000 }, async (req, res) => {
    state.counters.requests++;
    if (req.headers.range) state.counters.ranged++;
    const applies = state.match === undefined || state.match.test(req.url ?? '');
    const fault = applies ? state.fault : 'none';
    const extra = fresh.has(req.socket) ? state.delayMs : 0;
    fresh.delete(req.socket);
    if (state.delayMs + extra > 0) await sleep(state.delayMs + extra);
    if (fault === 'stall') return; // never answered
    if (fault === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (fault === '404') {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>404 Not Found</body></html>');
      return;
    }
    const headers = { ...req.headers, host: up.host };
    if (fault === 'status200') delete headers.range;
    const preq = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers, agent }, (pres) => {
      if (fault === 'short' || fault === 'corrupt') {
        const parts: Buffer[] = [];
        pres.on('data', (d: Buffer) => parts.push(d));
        pres.on('end', () => {
          const body = Buffer.concat(parts);
          res.writeHead(pres.statusCode ?? 502, pres.headers);
          if (fault === 'short') {
            res.write(body.subarray(0, body.length >> 1));
            state.counters.bytes += body.length >> 1;
            // Flushed first, then the connection goes: the client sees a body that ends early.
            setTimeout(() => req.socket.destroy(), 20);
          } else {
            for (let i = body.length >> 2; i < body.length; i += 4096) body[i] = body[i]! ^ 0xff;
            state.counters.bytes += body.length;
            res.end(body);
          }
        });
        return;
      }
      res.writeHead(pres.statusCode ?? 502, pres.headers);
      pres.on('data', (d: Buffer) => (state.counters.bytes += d.length));
      pres.pipe(res);
    });
    preq.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502).end(e.message);
      else res.destroy();
    });
    preq.end();
  });
  proxy.on('connection', (s: net.Socket) => {
    sockets.add(s);
    fresh.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as net.AddressInfo).port;

  const control = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const ok = (v: unknown = { ok: true }) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    switch (u.pathname) {
      case '/fault':
        state.fault = (u.searchParams.get('fault') ?? 'none') as Fault;
        state.match = u.searchParams.get('match') ? new RegExp(u.searchParams.get('match')!) : undefined;
        // Stalled connections of an earlier fault would keep clients waiting: end them.
        for (const s of sockets) if (!s.destroyed && state.fault === 'none') s.destroySoon();
        return ok();
      case '/delay':
        state.delayMs = Number(u.searchParams.get('ms') ?? 0);
        return ok();
      case '/counters':
        return ok(state.counters);
      case '/reset-counters':
        state.counters = { requests: 0, bytes: 0, ranged: 0 };
        return ok();
      case '/down':
        proxy.close();
        for (const s of sockets) s.destroy();
        return ok();
      case '/up':
        if (proxy.listening) return ok();
        proxy.listen(port, '127.0.0.1', () => ok());
        return;
      default:
        res.writeHead(404).end();
        return;
    }
  });
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
  process.stdout.write(JSON.stringify({ port, control: (control.address() as net.AddressInfo).port }) + '\n');
  // The parent going away ends us (stdin closes).
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// ---- the parent's handle ---------------------------------------------------------------------------

function controlGet(port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`fault proxy ${path}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/** Starts the proxy in a child process, in front of `upstream` (a URL) or of a static server of `dir`. */
export async function startFaultProxy(o: { upstream?: string; dir?: string }): Promise<FaultProxy> {
  const child: ChildProcess = spawn(process.execPath, [__filename, o.upstream ?? '', o.dir ?? ''], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('fault proxy did not start within 10 s')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fault proxy exited (${code})`));
    });
  });
  const { port, control } = JSON.parse(first) as { port: number; control: number };
  return {
    url: `http://127.0.0.1:${port}`,
    setFault: async (fault, match) => void (await controlGet(control, `/fault?fault=${fault}${match ? `&match=${encodeURIComponent(match)}` : ''}`)),
    setDelay: async (ms) => void (await controlGet(control, `/delay?ms=${ms}`)),
    counters: async () => (await controlGet(control, '/counters')) as ProxyCounters,
    resetCounters: async () => void (await controlGet(control, '/reset-counters')),
    down: async () => void (await controlGet(control, '/down')),
    up: async () => void (await controlGet(control, '/up')),
    close: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

if (require.main === module) {
  childMain(process.argv[2] ?? '', process.argv[3] || undefined).catch((e: Error) => {
    process.stderr.write(`fault proxy: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
