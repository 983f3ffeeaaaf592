/**
 * `distri export`: a repo served over HTTP as plain static files, the way nginx or an object store
 * would serve the same tree (so a client cannot tell them apart):
 *
 * - GET and HEAD only (anything else: 405 with `Allow`); no directory listings (404);
 * - `Range: bytes=a-b`, `a-`, `-n` → 206 with `Content-Range`; a range that starts beyond the end
 *   → 416 with `Content-Range: bytes *\/size`. ONE range per request: a request for several ranges
 *   gets the whole file (200), which HTTP allows (a server may ignore Range); a client that wants
 *   several pieces asks for them one by one. A malformed Range header is ignored the same way;
 * - `ETag` (strong: inode, size and mtime in nanoseconds, so a file rewritten within the same
 *   second still changes it) and `Last-Modified`; `If-None-Match` and `If-Modified-Since` → 304;
 *   `If-Range` with a stale validator → the whole file, never a piece of a different version;
 * - `Cache-Control`: images and metas are immutable (a new build has a new name), so a CDN may keep
 *   them for a year; the index and anything else must be revalidated (`no-cache`).
 *
 * Never outside the repo: the path is decoded per component; `..`, `.`, empty components, NUL, an
 * encoded `/` or `\` (`%2f`, `%5c`) and dot-files (temp files, `.distri-index`) are refused; the
 * file is then resolved with realpath and must still lie inside the repo's real path, so a symlink
 * pointing out of the repo is a 404 like a missing file. The file is opened once and served from
 * that descriptor (what was checked is what is sent).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

export interface StaticServerOptions {
  /** The repo root (the directory holding pkg/). */
  root: string;
  /** Called with one line per failed request (4xx other than 404/416/304, and 5xx). */
  log?(line: string): void;
}

const IMMUTABLE = /\.(squashfs|meta\.textproto)$/;

function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.textproto')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The request path as components, or an HttpFailure. Decoding happens per component, after
 * splitting at `/`, so `%2f` can never become a separator; it and `%5c` are refused outright.
 */
export function requestComponents(rawUrl: string): string[] {
  const q = rawUrl.search(/[?#]/);
  const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  if (!rawPath.startsWith('/')) throw new HttpFailure(400, 'the request path must start with /');
  if (/%2f|%5c|%00/i.test(rawPath) || rawPath.includes('\\')) throw new HttpFailure(400, 'encoded slashes, backslashes and NUL are not allowed in paths');
  const parts = rawPath.slice(1).split('/');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    let c: string;
    try {
      c = decodeURIComponent(parts[i]!);
    } catch {
      throw new HttpFailure(400, 'malformed percent-encoding in the path');
    }
    if (c === '' && i === parts.length - 1 && i > 0) continue; // a trailing slash
    if (c === '' || c === '.' || c === '..') throw new HttpFailure(400, 'empty, . and .. path components are not allowed');
    if (c.startsWith('.')) throw new HttpFailure(404, 'not found');
    out.push(c);
  }
  return out;
}

/** A parsed single byte range, or 'unsatisfiable', or undefined for "serve the whole file". */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined; // several ranges, another unit, or garbage: the whole file
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Number(b);
  if (b !== '' && end < start) return undefined; // invalid: ignored as RFC 9110 says
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

function etagOf(st: fs.BigIntStats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

/** If-None-Match: `*` or a list of (possibly weak) tags; compared weakly, as for GET. */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

export function createStaticServer(opts: StaticServerOptions): http.Server {
  const rootReal = fs.realpathSync(opts.root);
  const log = opts.log ?? (() => undefined);

  function fail(req: http.IncomingMessage, res: http.ServerResponse, status: number, message: string): void {
    if (status >= 500 || (status >= 400 && status !== 404 && status !== 416)) log(`${req.method} ${req.url}: ${status} ${message}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${status} ${message}\n`;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...(status === 405 ? { Allow: 'GET, HEAD' } : {}) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(req, res, 405, 'only GET and HEAD');
    let fd: number | undefined;
    try {
      const comps = requestComponents(req.url ?? '/');
      if (comps.length === 0) throw new HttpFailure(404, 'not found (no directory listings)');
      let real: string;
      try {
        real = fs.realpathSync(path.join(rootReal, ...comps));
      } catch {
        throw new HttpFailure(404, 'not found');
      }
      if (!real.startsWith(rootReal + path.sep)) throw new HttpFailure(404, 'not found'); // a symlink out of the repo
      try {
        fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new HttpFailure(code === 'EACCES' ? 403 : 404, code === 'EACCES' ? 'forbidden' : 'not found');
      }
      const st = fs.fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new HttpFailure(404, 'not found (no directory listings)');
      const size = Number(st.size);
      const etag = etagOf(st);
      const mtime = new Date(Number(st.mtimeMs));
      const headers: http.OutgoingHttpHeaders = {
        'Accept-Ranges': 'bytes',
        ETag: etag,
        'Last-Modified': mtime.toUTCString(),
        'Content-Type': contentType(real),
        'Cache-Control': IMMUTABLE.test(real) ? 'public, max-age=31536000, immutable' : 'no-cache',
      };
      const inm = req.headers['if-none-match'];
      const ims = req.headers['if-modified-since'];
      const notModified = inm !== undefined ? noneMatch(inm, etag) : ims !== undefined && !Number.isNaN(Date.parse(ims)) && Math.floor(mtime.getTime() / 1000) <= Math.floor(Date.parse(ims) / 1000);
      if (notModified) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      let range = parseRange(req.headers.range, size);
      const ifRange = req.headers['if-range'] as string | undefined;
      if (range !== undefined && ifRange !== undefined) {
        const fresh = ifRange.startsWith('"') ? ifRange === etag : !Number.isNaN(Date.parse(ifRange)) && Math.floor(mtime.getTime() / 1000) <= Math.floor(Date.parse(ifRange) / 1000);
        if (!fresh) range = undefined;
      }
      if (range === 'unsatisfiable') {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 0 });
        res.end();
        return;
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? size - 1;
      const length = size === 0 ? 0 : end - start + 1;
      if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      headers['Content-Length'] = length;
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      const stream = fs.createReadStream('', { fd, start, end, autoClose: true });
      fd = undefined; // the stream owns it now
      stream.on('error', (e) => {
        log(`${req.method} ${req.url}: read failed after the headers: ${e.message}`);
        res.destroy();
      });
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } catch (e) {
      if (e instanceof HttpFailure) fail(req, res, e.status, e.message);
      else fail(req, res, 500, (e as Error).message);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  return http.createServer(handle);
}

/** `host:port`, `:port`, `port` or `[v6]:port` → host and port (host default: all interfaces). */
export function parseListen(addr: string): { host: string | undefined; port: number } {
  const a = addr.trim();
  let host: string | undefined;
  let port: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(a);
  if (v6) [host, port] = [v6[1], v6[2]!];
  else if (/^\d+$/.test(a)) port = a;
  else {
    const m = /^([^:]*):(\d+)$/.exec(a);
    if (!m) throw new Error(`--listen wants HOST:PORT (e.g. 127.0.0.1:7080, :7080, [::1]:7080), got ${JSON.stringify(addr)}`);
    [host, port] = [m[1] || undefined, m[2]!];
  }
  const n = Number(port);
  if (n > 65535) throw new Error(`--listen: port ${n} is beyond 65535`);
  return { host, port: n };
}
