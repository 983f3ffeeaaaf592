/**
 * Getting a source archive: `http://`, `https://` (redirects followed) or `file://` (a local path,
 * for mirrors on disk and tests), written to a temp file beside the target and renamed onto it
 * once complete, so an interrupted download never leaves a file that looks whole. The sha256 is
 * computed while the bytes stream past; verifyFile hashes an existing file. The build checks the
 * hash of what it uses every time (distri skipped the check once a source was unpacked: **fix**).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SquashfsError } from '../errors';

export interface FetchProgress {
  (done: number, total: number | undefined): void;
}

/** The hex sha256 of a file's bytes. */
export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    fs.createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Throws when `file` does not hash to `want` (lower-case hex sha256). */
export async function verifyFile(file: string, want: string, what = file): Promise<void> {
  const got = await sha256File(file);
  if (got !== want.toLowerCase()) {
    throw new SquashfsError('CORRUPT', `${what}: sha256 is ${got}, but the recipe's hash says ${want}`, 'source');
  }
}

function get(url: string, redirects: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { headers: { 'user-agent': 'distri-build' } }, (res) => {
      const code = res.statusCode ?? 0;
      if (code >= 300 && code < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) return reject(new SquashfsError('IO', `${url}: too many redirects`, 'source'));
        return resolve(get(new URL(res.headers.location, url).toString(), redirects - 1));
      }
      if (code !== 200) {
        res.resume();
        return reject(new SquashfsError('IO', `${url}: the server answered ${code} ${res.statusMessage ?? ''}`.trim(), 'source'));
      }
      resolve(res);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new SquashfsError('IO', `${url}: cannot download (${e.code ?? e.message})`, 'source', undefined, { cause: e })));
  });
}

/**
 * Downloads `url` to `dest` (atomically) and returns its sha256. Schemes: http, https, file.
 */
export async function fetchToFile(url: string, dest: string, progress?: FetchProgress): Promise<string> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.part-${process.pid}`;
  const h = createHash('sha256');
  let input: NodeJS.ReadableStream;
  let total: number | undefined;
  if (scheme === 'file') {
    const file = fileURLToPath(url);
    try {
      total = fs.statSync(file).size;
    } catch {
      throw new SquashfsError('NOT_FOUND', `${url}: no such file`, 'source');
    }
    input = fs.createReadStream(file);
  } else if (scheme === 'http' || scheme === 'https') {
    const res = await get(url, 10);
    const len = Number(res.headers['content-length']);
    total = Number.isFinite(len) && len > 0 ? len : undefined;
    input = res;
  } else {
    throw new SquashfsError('INVALID_ARGUMENT', `${url}: cannot download this kind of URL (http, https and file are known)`, 'source');
  }
  const out = fs.createWriteStream(tmp);
  let done = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      input.on('data', (d: Buffer) => {
        h.update(d);
        done += d.length;
        progress?.(done, total);
      });
      input.on('error', (e) => reject(new SquashfsError('IO', `${url}: download broke off (${(e as Error).message})`, 'source', undefined, { cause: e })));
      out.on('error', reject);
      out.on('finish', () => resolve());
      input.pipe(out);
    });
    if (total !== undefined && done !== total) throw new SquashfsError('IO', `${url}: got ${done} of ${total} bytes`, 'source');
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return h.digest('hex');
}
