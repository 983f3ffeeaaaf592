/**
 * The HTTP thread behind every remote byte source (src/io/http-source.ts): a worker_threads entry
 * point that does all network I/O, so that the synchronous reader never needs an event loop.
 *
 * Requests arrive on parentPort; each answer is posted on the reply port and then announced by
 * bumping the shared sequence word (Atomics.notify), which the caller is waiting on with
 * Atomics.wait. The caller's thread may never return to its event loop (the FUSE kernel transport's
 * serving thread sits in read(2) between requests), so nothing here relies on events being
 * delivered there: answers and log lines both travel through the reply port, which the caller
 * drains synchronously with receiveMessageOnPort.
 *
 * What this thread does for an image (its registration carries the URL, size, chunk size, the
 * sha256 of every chunk, the cache file and the shared chunk bitmap):
 * - `fetch first..last`: the chunks of that range that are missing, coalesced into one Range
 *   request per run of missing chunks (plus `readAhead` chunks after it). A response counts only
 *   when it is a 206 whose Content-Range names exactly the bytes asked for, of a file of exactly
 *   the indexed size, with exactly that many body bytes, and the same ETag as before. Each chunk's
 *   sha256 is checked against the index; only then is it written to the cache file and its bit
 *   set in the shared bitmap; the bitmap file is written a moment later, for a burst of fetches at
 *   once, after a sync of the cache file (so on disk it only claims bytes that are on disk). A failure
 *   is retried a bounded number of times with backoff inside the request's deadline; a socket that
 *   stalls longer than the timeout is destroyed. So a chunk's bit is set only for verified bytes:
 *   the cache cannot be poisoned by a bad server, and a crash leaves at worst unmarked bytes.
 * - background fill (when asked): the missing chunks, in runs, one request at a time, backing off
 *   while the server fails; foreground fetches run beside it on their own sockets.
 * - promotion, once every chunk is there: the meta is fetched and checked, renamed into place
 *   beside the store's images, then the whole cache file is hashed against the image's sha256 and
 *   renamed to `<full>.squashfs` (meta first, image last: the store's rule, see store-scan.ts).
 * - `get`: one whole small file (the repository index), size-capped.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

export interface PromoteSpec {
  metaUrl: string;
  metaSize: number;
  metaSha256: string;
  metaDest: string;
  imageDest: string;
  imageSha256: string;
}

export interface RegisterImage {
  type: 'register';
  key: string;
  url: string;
  size: number;
  chunkSize: number;
  chunks: string[];
  partPath: string;
  bitmapPath: string;
  /** Int32 words, bit i of word i>>5 set once chunk i is verified in the cache file. */
  bitmap: SharedArrayBuffer;
  readAhead: number;
  fill: boolean;
  promote?: PromoteSpec;
}

export type WorkerRequest =
  | RegisterImage
  /** The missing chunks of each [first, last] range; several ranges are fetched concurrently. */
  | { type: 'fetch'; id: number; key: string; ranges: [number, number][]; deadline: number }
  | { type: 'get'; id: number; url: string; maxBytes: number; deadline: number }
  | { type: 'stats'; id: number }
  /** Writes every pending bitmap now (before the process ends). */
  | { type: 'flush'; id: number };

export type WorkerReply =
  { type: 'reply'; id: number; ok: true; bytes?: Uint8Array; stats?: HttpStats } | { type: 'reply'; id: number; ok: false; message: string; status?: number } | { type: 'log'; message: string };

export interface HttpStats {
  requests: number;
  bytes: number;
  failures: number;
  promoted: number;
}

export interface HttpWorkerData {
  reply: MessagePort;
  seq: SharedArrayBuffer;
  timeoutMs: number;
  retries: number;
}

const data = workerData as HttpWorkerData;
const seq = new Int32Array(data.seq);
const stats: HttpStats = { requests: 0, bytes: 0, failures: 0, promoted: 0 };
const agentOptions = { keepAlive: true, maxSockets: 4 };
const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };

function post(m: WorkerReply): void {
  data.reply.postMessage(m);
  Atomics.add(seq, 0, 1);
  Atomics.notify(seq, 0);
}

function log(message: string): void {
  post({ type: 'log', message });
}

class FetchError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** Not worth retrying (the server said the file is not there). */
    readonly final = false,
  ) {
    super(message);
  }
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One GET. Rejects a response whose status is not `expect` before reading its body (a 200 to a
 * range request would otherwise pull the whole image), caps the body at `maxBytes`, and destroys
 * the socket when it stays silent for `timeoutMs` or the deadline passes.
 */
function get(url: string, headers: Record<string, string>, expect: number, maxBytes: number, deadline: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new FetchError(`bad URL ${url}`, undefined, true));
      return;
    }
    const mod = u.protocol === 'https:' ? https : http;
    const agent = u.protocol === 'https:' ? agents.https : agents.http;
    stats.requests++;
    let done = false;
    let overall: NodeJS.Timeout | undefined;
    const fail = (e: FetchError) => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      req.destroy();
      reject(e);
    };
    const req = mod.get(u, { agent, headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== expect) {
        // Not the answer asked for: drop the connection rather than drain a body we will not use.
        fail(new FetchError(status === 200 && expect === 206 ? 'server answered 200 (whole file) to a range request' : `HTTP ${status}`, status, status === 404 || status === 410));
        res.destroy();
        return;
      }
      const parts: Buffer[] = [];
      let got = 0;
      res.on('data', (d: Buffer) => {
        got += d.length;
        if (got > maxBytes) {
          fail(new FetchError(`body longer than the ${maxBytes} bytes expected`));
          res.destroy();
          return;
        }
        parts.push(d);
        stats.bytes += d.length;
      });
      res.on('end', () => {
        if (done) return;
        done = true;
        clearTimeout(overall);
        resolve({ status, headers: res.headers, body: Buffer.concat(parts, got) });
      });
      res.on('aborted', () => fail(new FetchError(`connection closed after ${got} body bytes`)));
      res.on('error', (e) => fail(new FetchError(`reading the body: ${e.message} after ${got} bytes`)));
    });
    req.setTimeout(data.timeoutMs, () => fail(new FetchError(`no data for ${data.timeoutMs} ms (stalled)`)));
    req.on('error', (e: NodeJS.ErrnoException) => fail(new FetchError(e.code === 'ECONNREFUSED' ? 'connection refused (server gone?)' : e.code === 'ECONNRESET' ? 'connection reset' : e.message)));
    overall = setTimeout(() => fail(new FetchError(`no complete answer within the deadline`)), Math.max(1, deadline - Date.now()));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A burst of fetches shares one sync and one bitmap write. */
const PERSIST_DELAY_MS = 200;

/** Runs `fn` up to 1 + retries times with backoff, while the deadline allows. */
async function withRetries<T>(what: string, deadline: number, fn: () => Promise<T>): Promise<T> {
  let last: FetchError | undefined;
  for (let attempt = 0; attempt <= data.retries; attempt++) {
    if (attempt > 0) {
      const wait = Math.min(100 * 2 ** (attempt - 1), deadline - Date.now() - 10);
      if (wait < 0) break;
      await sleep(wait);
    }
    try {
      return await fn();
    } catch (e) {
      last = e instanceof FetchError ? e : new FetchError((e as Error).message);
      stats.failures++;
      if (last.final || Date.now() >= deadline) break;
    }
  }
  throw last ?? new FetchError(`${what}: deadline passed before the first attempt`);
}

// ---- images -------------------------------------------------------------------------------------

class RemoteImage {
  readonly bits: Int32Array;
  readonly count: number;
  etag: string | undefined;
  fd: number;
  filling = false;
  promoting = false;
  promoted = false;
  /** Bitmap file writes are chained so that an older bitmap never overwrites a newer one. */
  private persisting: Promise<void> = Promise.resolve();

  constructor(readonly r: RegisterImage) {
    this.bits = new Int32Array(r.bitmap);
    this.count = r.chunks.length;
    this.fd = fs.openSync(r.partPath, 'r+');
  }

  has(i: number): boolean {
    return (Atomics.load(this.bits, i >> 5) & (1 << (i & 31))) !== 0;
  }

  missing(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) if (!this.has(i)) n++;
    return n;
  }

  chunkEnd(i: number): number {
    return Math.min(this.r.size, (i + 1) * this.r.chunkSize);
  }

  /** Fetches chunks [a, b] (all missing or not: the range is fetched as one request). */
  async fetchRun(a: number, b: number, deadline: number): Promise<void> {
    const start = a * this.r.chunkSize;
    const end = this.chunkEnd(b); // exclusive
    const headers: Record<string, string> = { range: `bytes=${start}-${end - 1}` };
    if (this.etag) headers['if-range'] = this.etag;
    const res = await get(this.r.url, headers, 206, end - start, deadline);
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!cr || Number(cr[1]) !== start || Number(cr[2]) !== end - 1) throw new FetchError(`Content-Range ${JSON.stringify(res.headers['content-range'] ?? null)} is not bytes ${start}-${end - 1}`);
    if (cr[3] !== String(this.r.size)) throw new FetchError(`the file on the server is ${cr[3]} bytes, the index says ${this.r.size} (changed on the server?)`);
    if (res.body.length !== end - start) throw new FetchError(`short body: ${res.body.length} of ${end - start} bytes`);
    const etag = res.headers.etag;
    if (typeof etag === 'string' && !etag.startsWith('W/')) {
      if (this.etag !== undefined && this.etag !== etag) throw new FetchError(`ETag changed from ${this.etag} to ${etag} (file replaced on the server)`);
      this.etag = etag;
    }
    // Verify every chunk before any of it is used or written.
    const good: number[] = [];
    let bad = '';
    for (let i = a; i <= b; i++) {
      const piece = res.body.subarray(i * this.r.chunkSize - start, this.chunkEnd(i) - start);
      const h = crypto.createHash('sha256').update(piece).digest('hex');
      if (h !== this.r.chunks[i]) bad ||= `chunk ${i} has sha256 ${h.slice(0, 16)}…, the index says ${this.r.chunks[i]!.slice(0, 16)}…`;
      else good.push(i);
    }
    for (const i of good) {
      if (this.has(i)) continue;
      const piece = res.body.subarray(i * this.r.chunkSize - start, this.chunkEnd(i) - start);
      let off = 0;
      while (off < piece.length) off += fs.writeSync(this.fd, piece, off, piece.length - off, i * this.r.chunkSize + off);
    }
    if (good.length > 0) {
      // Readers in this process may use them now (the page cache has them); the bitmap file is
      // written later, after a sync, so on disk it never claims bytes that are not there.
      for (const i of good) Atomics.or(this.bits, i >> 5, 1 << (i & 31));
      this.schedulePersist();
    }
    if (bad) throw new FetchError(bad);
  }

  private persistTimer: NodeJS.Timeout | undefined;

  /** Persists the bitmap soon: one sync and one bitmap write for a burst of fetches. */
  schedulePersist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      void this.persist();
    }, PERSIST_DELAY_MS);
  }

  /** The pending bitmap write, now. */
  flush(): Promise<void> {
    if (!this.persistTimer) return this.persisting;
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    return this.persist();
  }

  /**
   * Writes the bitmap file (temp + rename): the bits are taken first, then the cache file is
   * synced, then they are written, so the file only ever claims chunks that reached the disk.
   */
  persist(): Promise<void> {
    this.persisting = this.persisting.then(async () => {
      if (this.promoting || this.promoted) return; // the bitmap is going away with the cache
      const tmp = `${this.r.bitmapPath}.tmp`;
      const words = Buffer.from(new Uint8Array(this.r.bitmap.slice(0)));
      try {
        await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
        await fs.promises.writeFile(
          tmp,
          JSON.stringify({ format: 'distri-chunk-bitmap/1', size: this.r.size, chunkSize: this.r.chunkSize, first: this.r.chunks[0] ?? '', bits: words.toString('base64') }),
        );
        await fs.promises.rename(tmp, this.r.bitmapPath);
      } catch (e) {
        if (!this.promoted) log(`${this.r.bitmapPath}: not saved: ${(e as Error).message}`);
      }
    });
    return this.persisting;
  }

  /** Each range's missing chunks, the ranges concurrently (each on its own keep-alive socket). */
  async fetchRanges(ranges: [number, number][], deadline: number): Promise<void> {
    const results = await Promise.allSettled(ranges.map(([a, b]) => this.fetch(a, b, deadline)));
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
  }

  /** Fetches the missing chunks among [first, last] (+ read-ahead), one request per run. */
  async fetch(first: number, last: number, deadline: number): Promise<void> {
    const ahead = Math.min(this.count - 1, last + this.r.readAhead);
    let i = first;
    while (i <= ahead) {
      if (this.has(i)) {
        i++;
        continue;
      }
      let j = i;
      while (j + 1 <= ahead && !this.has(j + 1)) j++;
      const [a, b] = [i, j];
      // Read-ahead chunks are a bonus: the request is for the needed ones first.
      if (a > last) {
        await this.fetchRun(a, b, deadline).catch(() => undefined);
        break;
      }
      await withRetries(`chunks ${a}-${b}`, deadline, () => this.fetchRun(a, b, deadline));
      i = j + 1;
    }
    this.maybePromote();
  }

  async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    let backoff = 500;
    try {
      for (;;) {
        let i = 0;
        while (i < this.count && this.has(i)) i++;
        if (i >= this.count) break;
        let j = i;
        while (j + 1 < this.count && j - i < 15 && !this.has(j + 1)) j++;
        try {
          await this.fetchRun(i, j, Date.now() + data.timeoutMs * 4);
          backoff = 500;
        } catch (e) {
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 30_000);
          if (backoff === 30_000) log(`${this.r.url}: background fill waiting: ${(e as Error).message}`);
        }
      }
    } finally {
      this.filling = false;
    }
    this.maybePromote();
  }

  maybePromote(): void {
    if (!this.r.promote || this.promoting || this.promoted || this.missing() > 0) return;
    this.promoting = true;
    this.promote(this.r.promote)
      .then(() => {
        this.promoted = true;
        stats.promoted++;
        log(`${this.r.promote!.imageDest}: every chunk verified; now a local store image`);
      })
      .catch((e: Error) => log(`${this.r.promote!.imageDest}: not made local: ${e.message}`))
      .finally(() => (this.promoting = false));
  }

  private async promote(p: PromoteSpec): Promise<void> {
    if (fs.existsSync(p.imageDest)) {
      // Installed meanwhile (distri install): ours is redundant.
      fs.rmSync(this.r.partPath, { force: true });
      fs.rmSync(this.r.bitmapPath, { force: true });
      return;
    }
    // The whole file once more against the image's digest (the chunk list could be inconsistent);
    // read asynchronously, so that foreground fetches go on meanwhile.
    const h = crypto.createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    const readAt = (off: number) => new Promise<number>((resolve, reject) => fs.read(this.fd, buf, 0, Math.min(buf.length, this.r.size - off), off, (e, n) => (e ? reject(e) : resolve(n))));
    for (let off = 0; off < this.r.size;) {
      const n = await readAt(off);
      if (n <= 0) throw new Error(`cache file ends at ${off}`);
      h.update(buf.subarray(0, n));
      off += n;
    }
    const digest = h.digest('hex');
    if (digest !== p.imageSha256) throw new Error(`whole image sha256 ${digest.slice(0, 16)}… differs from the index's ${p.imageSha256.slice(0, 16)}…`);
    const meta = await withRetries('meta', Date.now() + data.timeoutMs * 4, () => get(p.metaUrl, {}, 200, p.metaSize, Date.now() + data.timeoutMs * 2));
    if (meta.body.length !== p.metaSize || crypto.createHash('sha256').update(meta.body).digest('hex') !== p.metaSha256) throw new Error(`${p.metaUrl}: not the meta the index describes`);
    const metaTmp = `${this.r.partPath}.meta.tmp`;
    fs.writeFileSync(metaTmp, meta.body);
    fs.renameSync(metaTmp, p.metaDest);
    // No bitmap write is under way or can start (promoting is set); without its bitmap a cache
    // file left by a crash right here is simply started afresh.
    if (this.persistTimer) clearTimeout(this.persistTimer);
    await this.persisting;
    fs.fdatasyncSync(this.fd);
    fs.rmSync(this.r.bitmapPath, { force: true });
    fs.renameSync(this.r.partPath, p.imageDest);
  }
}

const images = new Map<string, RemoteImage>();

async function handle(m: WorkerRequest): Promise<void> {
  switch (m.type) {
    case 'register': {
      if (images.has(m.key)) return;
      let img: RemoteImage;
      try {
        img = new RemoteImage(m);
      } catch (e) {
        log(`${m.partPath}: ${(e as Error).message}`);
        return;
      }
      images.set(m.key, img);
      if (m.fill) void img.fill();
      else img.maybePromote();
      return;
    }
    case 'fetch': {
      const img = images.get(m.key);
      try {
        if (!img) throw new FetchError(`image ${m.key} is not registered`);
        await img.fetchRanges(m.ranges, m.deadline);
        post({ type: 'reply', id: m.id, ok: true });
      } catch (e) {
        post({ type: 'reply', id: m.id, ok: false, message: (e as Error).message, status: (e as FetchError).status });
      }
      return;
    }
    case 'get': {
      try {
        const res = await withRetries(m.url, m.deadline, () => get(m.url, {}, 200, m.maxBytes, m.deadline));
        post({ type: 'reply', id: m.id, ok: true, bytes: new Uint8Array(res.body) });
      } catch (e) {
        post({ type: 'reply', id: m.id, ok: false, message: (e as Error).message, status: (e as FetchError).status });
      }
      return;
    }
    case 'flush':
      await Promise.all([...images.values()].map((img) => img.flush()));
      post({ type: 'reply', id: m.id, ok: true });
      return;
    case 'stats':
      post({ type: 'reply', id: m.id, ok: true, stats: { ...stats } });
      return;
  }
}

parentPort!.on('message', (m: WorkerRequest) => {
  handle(m).catch((e: Error) => log(`http worker: ${e.stack ?? e.message}`));
});
