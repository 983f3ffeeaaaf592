/**
 * Getting files out of a repo, which is either a URL (http:// or https://, served by `distri
 * export`, nginx, a CDN or an object store) or a local directory. Both look the same to callers:
 * a repo root whose `pkg/` holds the images, metas and the index.
 *
 * Whole-file fetches only (the range-reading byte source of `distri fuse --repo` is elsewhere).
 * A download is streamed into a file while its sha256 is computed, and is accepted only when both
 * the byte count and the hash equal what the index says; a server that sends more bytes than
 * expected is cut off at once. Redirects (as CDNs and object stores answer) are followed, at most
 * five. A connection that delivers nothing for `timeoutMs` fails the download: a stalled server
 * must not hang an install forever.
 *
 * Errors are SquashfsError IO (transport: refused, reset, timeout, HTTP status, missing file) or
 * CORRUPT (the bytes arrived but are not the ones the index promised), with the URL or path named.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import { REPO_INDEX_FILE, parseRepoIndex, type RepoFile, type RepoIndex } from './repo-index';

export interface Repo {
  /** As given on the command line (for messages). */
  readonly spec: string;
  readonly kind: 'http' | 'dir';
  /** For http: the base URL ending in `/`; for dir: the absolute root. */
  readonly base: string;
}

/** The index must fit in memory; this bounds what a hostile server can make us allocate. */
const MAX_INDEX_BYTES = 512 << 20;
const MAX_REDIRECTS = 5;
export const DEFAULT_TIMEOUT_MS = 30_000;

export function parseRepo(spec: string): Repo {
  if (/^https?:\/\//i.test(spec)) {
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new SquashfsError('INVALID_ARGUMENT', `--repo ${spec}: not a valid URL`);
    }
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    u.search = '';
    u.hash = '';
    return { spec, kind: 'http', base: u.toString() };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new SquashfsError('INVALID_ARGUMENT', `--repo ${spec}: only http://, https:// and directories are supported`);
  return { spec, kind: 'dir', base: path.resolve(spec) };
}

/** Where `pkg/<file>` of the repo is (URL or path), for messages and fetching. */
export function repoFileLocation(repo: Repo, file: string): string {
  if (file.includes('/') || file.startsWith('.')) throw new SquashfsError('INVALID_ARGUMENT', `${JSON.stringify(file)} is not a file name`);
  return repo.kind === 'http' ? new URL(`pkg/${encodeURIComponent(file)}`, repo.base).toString() : path.join(repo.base, 'pkg', file);
}

function ioError(where: string, message: string, cause?: unknown): SquashfsError {
  return new SquashfsError('IO', `${where}: ${message}`, undefined, undefined, { cause });
}

function netWords(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is the server running?)';
    case 'ECONNRESET':
      return 'the server closed the connection';
    case 'ENOTFOUND':
      return 'no such host';
    case 'ETIMEDOUT':
      return 'timed out';
    default:
      return e.message;
  }
}

/** Opens an HTTP GET, following redirects; resolves with a 200 response (anything else rejects). */
function httpGet(url: string, timeoutMs: number, signal?: AbortSignal, redirects = 0): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.get(u, { signal, headers: { 'Accept-Encoding': 'identity', 'User-Agent': 'distri' } }, (res) => {
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) return reject(ioError(url, `more than ${MAX_REDIRECTS} redirects`));
        return resolve(httpGet(new URL(res.headers.location, u).toString(), timeoutMs, signal, redirects + 1));
      }
      if (status !== 200) {
        res.resume();
        return reject(ioError(url, status === 404 ? 'not found on the server (HTTP 404)' : `HTTP ${status} ${res.statusMessage ?? ''}`.trim()));
      }
      res.setTimeout(timeoutMs, () => res.destroy(ioError(url, `no data for ${timeoutMs / 1000} s (the server stalled)`)));
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => req.destroy(ioError(url, `no answer for ${timeoutMs / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof SquashfsError ? e : ioError(url, netWords(e), e)));
  });
}

/** A readable stream of a repo file (dir: the file; http: a 200 response body). */
async function openStream(
  repo: Repo,
  file: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ where: string; stream: NodeJS.ReadableStream & { destroy(e?: Error): void }; length?: number }> {
  const where = repoFileLocation(repo, file);
  if (repo.kind === 'dir') {
    let fd: number;
    try {
      fd = fs.openSync(where, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw ioError(where, code === 'ENOENT' ? 'no such file in the repo' : code === 'EACCES' ? 'permission denied' : (e as Error).message, e);
    }
    return { where, stream: fs.createReadStream('', { fd, signal }), length: fs.fstatSync(fd).size };
  }
  const res = await httpGet(where, timeoutMs, signal);
  const cl = res.headers['content-length'];
  return { where, stream: res, length: cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined };
}

/** Reads a whole repo file into memory (at most `maxBytes`). */
export async function fetchBytes(repo: Repo, file: string, opts: { maxBytes?: number; timeoutMs?: number } = {}): Promise<Buffer> {
  const max = opts.maxBytes ?? MAX_INDEX_BYTES;
  const { where, stream, length } = await openStream(repo, file, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (length !== undefined && length > max) {
    stream.destroy();
    throw ioError(where, `${length} bytes is more than the ${max} allowed`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  return new Promise((resolve, reject) => {
    stream.on('data', (d: Buffer) => {
      n += d.length;
      if (n > max) stream.destroy(ioError(where, `more than the ${max} bytes allowed`));
      else parts.push(d);
    });
    stream.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof SquashfsError ? e : ioError(where, netWords(e), e)));
    stream.on('end', () => {
      if (length !== undefined && n !== length) reject(ioError(where, `got ${n} of ${length} bytes (connection cut short)`));
      else resolve(Buffer.concat(parts));
    });
  });
}

/** Fetches and parses a repo's index (`pkg/index-v1.json`). */
export async function fetchRepoIndex(repo: Repo, opts: { timeoutMs?: number } = {}): Promise<RepoIndex> {
  const bytes = await fetchBytes(repo, REPO_INDEX_FILE, opts);
  return parseRepoIndex(bytes, repoFileLocation(repo, REPO_INDEX_FILE));
}

/**
 * Downloads `pkg/<expected.file>` into `dest` (created exclusively, fsynced), checking the size
 * and sha256 against `expected`. On any failure `dest` is removed and the error rethrown.
 */
export async function fetchToFile(repo: Repo, expected: RepoFile, dest: string, opts: { timeoutMs?: number; signal?: AbortSignal; onBytes?(n: number): void } = {}): Promise<void> {
  const fd = fs.openSync(dest, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
  let closed = false;
  const close = () => {
    if (!closed) fs.closeSync(fd);
    closed = true;
  };
  try {
    const { where, stream, length } = await openStream(repo, expected.file, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.signal);
    if (length !== undefined && length !== expected.size) {
      stream.destroy();
      throw new SquashfsError('CORRUPT', `${where}: the server has ${length} bytes, the index says ${expected.size} (index out of date?)`);
    }
    const hash = crypto.createHash('sha256');
    let n = 0;
    await new Promise<void>((resolve, reject) => {
      let pos = 0;
      stream.on('data', (d: Buffer) => {
        n += d.length;
        if (n > expected.size) {
          stream.destroy(new SquashfsError('CORRUPT', `${where}: more than the ${expected.size} bytes the index says`));
          return;
        }
        hash.update(d);
        // Synchronous writes: a download is network-bound, and a write error stops the stream at once.
        try {
          for (let off = 0; off < d.length;) off += fs.writeSync(fd, d, off, d.length - off, pos + off);
        } catch (e) {
          stream.destroy(e as Error);
          return;
        }
        pos += d.length;
        opts.onBytes?.(d.length);
      });
      stream.on('error', (e: NodeJS.ErrnoException) =>
        reject(
          e instanceof SquashfsError
            ? e
            : e.name === 'AbortError'
              ? ioError(where, 'interrupted', e)
              : e.code === 'ENOSPC'
                ? ioError(dest, 'no space left on the device', e)
                : ioError(where, netWords(e), e),
        ),
      );
      stream.on('end', resolve);
    });
    if (n !== expected.size) throw ioError(where, `got ${n} of ${expected.size} bytes (connection cut short)`);
    const got = hash.digest('hex');
    if (got !== expected.sha256) throw new SquashfsError('CORRUPT', `${where}: sha256 ${got} is not the ${expected.sha256} the index says`);
    fs.fsyncSync(fd);
    close();
  } catch (e) {
    close();
    fs.rmSync(dest, { force: true });
    throw e;
  }
}
