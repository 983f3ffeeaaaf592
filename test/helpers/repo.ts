/**
 * Package repositories for tests: packages packed with `distri pack` (distri's layout: no
 * compression, no fragments) beside their metas in `<repo>/pkg/`, indexed with `distri mirror`,
 * and served by real HTTP servers on 127.0.0.1 — nginx, configured with the server block the
 * README gives, and `distri export` — each a child process stopped by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../oracle/tools';
import { cliPath, run, waitFor, type RunResult } from './mount';
import { writeTree, type Tree } from './store';

/** A temp dir that other users (nginx's workers) may enter. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

/** `distri ARGS…` in a child process. */
export function distri(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run(process.execPath, [cliPath(), ...args], { timeoutMs: opts.timeoutMs ?? 60_000, env: opts.env });
}

export async function distriOk(args: string[]): Promise<string> {
  const r = await distri(args);
  if (r.status !== 0) throw new Error(`distri ${args.join(' ')}: status ${r.status} ${r.signal ?? ''}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface PkgSpec {
  full: string;
  tree: Tree;
  runtimeDep?: string[];
}

/** Packs a package into `<repo>/pkg/` with `distri pack` and writes its meta beside it. */
export async function addRepoPackage(repo: string, spec: PkgSpec): Promise<void> {
  const pkgDir = path.join(repo, 'pkg');
  fs.mkdirSync(pkgDir, { recursive: true });
  fs.chmodSync(repo, 0o755);
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-pkgsrc-'));
  try {
    writeTree(src, spec.tree);
    await distriOk(['pack', '--comp', 'none', '--no-fragments', '--quiet', '--mtime', '1700000000', src, path.join(pkgDir, `${spec.full}.squashfs`)]);
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
  const parts = spec.full.split('-');
  const meta = [...(spec.runtimeDep ?? []).map((d) => `runtime_dep: "${d}"`), `source_pkg: "${parts[0]}"`, `version: "${parts.slice(2).join('-')}"`];
  fs.writeFileSync(path.join(pkgDir, `${spec.full}.meta.textproto`), meta.join('\n') + '\n');
}

/** A repo with these packages, indexed by `distri mirror`. */
export async function makeRepo(specs: PkgSpec[]): Promise<string> {
  const repo = tempDir('distri-repo-');
  for (const s of specs) await addRepoPackage(repo, s);
  await distriOk(['mirror', repo]);
  return repo;
}

/** A simple package tree: a program in bin/, and optionally an etc/ file. */
export function simpleTree(name: string, extra: Tree = {}): Tree {
  return { [`bin/${name}`]: { content: `#!/bin/sh\necho ${name}\n`, mode: 0o755 }, [`out/share/${name}/README`]: `${name}\n`, ...extra };
}

export interface Server {
  url: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the kernel picks one; another process may take it first, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** One HTTP request (path sent verbatim); resolves with status, headers and body. */
export function httpRequest(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    // The path is sent as written (WHATWG URL parsing would resolve `..` before it left).
    const m = /^(https?:\/\/[^/]+)(\/.*)?$/.exec(url);
    if (!m) return reject(new Error(`not a URL: ${url}`));
    const origin = new URL(m[1]!);
    const req = http.request({ host: origin.hostname, port: origin.port, path: m[2] ?? '/', method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${url}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

/** Polls `url` until it answers (any status), within a deadline. */
async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    try {
      await httpRequest(url, { method: 'HEAD' });
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return false;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/** The nginx server block of the README ("Serving a repo with nginx, a CDN or S3"). */
export function readmeNginxServerBlock(): string {
  const readme = fs.readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');
  const m = /```nginx\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md has no ```nginx block');
  return m[1]!;
}

/**
 * nginx serving `repo` on 127.0.0.1 with the README's server block (its `listen` and `root` lines
 * pointed at a free port and the repo), in the foreground with a private prefix, pid file, logs and
 * temp dirs; stop() ends it (SIGTERM: nginx's fast shutdown, workers included) and removes them.
 */
export async function startNginx(repo: string): Promise<Server & { errorLog(): string }> {
  const prefix = tempDir('distri-nginx-');
  const server = readmeNginxServerBlock();
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const block = server.replace(/^(\s*)listen\s+[^;]+;/m, `$1listen 127.0.0.1:${port};`).replace(/^(\s*)root\s+[^;]+;/m, `$1root ${repo};`);
    if (!block.includes(`127.0.0.1:${port}`) || !block.includes(`root ${repo};`)) throw new Error('the README nginx block has no listen or root line to point at the test repo');
    const asRoot = process.getuid?.() === 0;
    const conf = [
      'daemon off;',
      'worker_processes 1;',
      asRoot ? 'user root;' : '', // the workers read the test's temp dirs
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log warn;`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${prefix}/client_body; proxy_temp_path ${prefix}/proxy; fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;`,
      block,
      '}',
    ].join('\n');
    fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf);
    const child = spawn('nginx', ['-p', prefix, '-e', `${prefix}/error.log`, '-c', `${prefix}/nginx.conf`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    const errorLog = () => {
      try {
        return fs.readFileSync(path.join(prefix, 'error.log'), 'utf8');
      } catch {
        return '';
      }
    };
    if (await waitForHttp(url, child)) {
      return {
        url,
        errorLog,
        stop: async () => {
          await stopChild(child);
          fs.rmSync(prefix, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child);
    if (attempt >= 2 || !/Address already in use/.test(stderr + errorLog())) {
      fs.rmSync(prefix, { recursive: true, force: true });
      throw new Error(`nginx did not start: ${stderr.trim()} ${errorLog().trim()}`);
    }
  }
}

/** `distri export --repo REPO --listen 127.0.0.1:0 --json` as a child process. */
export async function startExport(repo: string): Promise<Server & { stderr(): string }> {
  const child = spawn(process.execPath, [cliPath(), 'export', '--repo', repo, '--listen', '127.0.0.1:0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ok = await waitFor(() => stdout.includes('\n') || child.exitCode !== null, 15_000);
  if (!ok || child.exitCode !== null) {
    await stopChild(child);
    throw new Error(`distri export did not start: ${stderr.trim()}`);
  }
  const { url } = JSON.parse(stdout.split('\n')[0]!) as { url: string };
  return { url, stderr: () => stderr, stop: () => stopChild(child) };
}

/** The store's package files (images and metas), sorted: what `install` and `gc` change. */
export function storeFiles(store: string): string[] {
  try {
    return fs
      .readdirSync(store)
      .filter((n) => n.endsWith('.squashfs') || n.endsWith('.meta.textproto'))
      .sort();
  } catch {
    return [];
  }
}
