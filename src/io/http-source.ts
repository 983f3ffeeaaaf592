/**
 * A remote image as a ByteSource: the bytes of an image on an HTTP server, fetched in chunks on
 * demand, verified against the chunk hashes of the repository index before they are used, and kept
 * in a local cache file so that each chunk crosses the network once.
 *
 * The reader is synchronous (every codec and every FUSE handler answers in one call), so the
 * network lives on a thread of its own (src/io/http-worker.ts) and readAt() waits for it with
 * Atomics.wait on a shared word, bounded by the timeout. Where that wait happens:
 * - the FUSE kernel transport serves requests on a worker thread (src/fuse/kernel/serve-worker.ts):
 *   only that thread waits, the daemon's main thread (control socket, watcher, signals) runs on;
 * - the libfuse transport answers requests on the main thread: a read that needs the network stops
 *   the whole daemon for up to the timeout (every other request, the control socket, the store
 *   watcher wait too). It still ends: the wait is bounded, and a timeout is EIO for that read.
 *
 * The cache: `<name>.part`, a sparse file of the image's size, and `<name>.chunks`, the bitmap of
 * chunks known good, persisted by the HTTP thread after the data it describes was synced. A chunk is
 * read from the cache file only when its bit is set, and a bit is set only for bytes whose sha256
 * matched the index: a bad server, a short body or a crash can leave unmarked bytes in the file,
 * never marked wrong ones. The bitmap records the image size, chunk size and first chunk's hash, so
 * a cache of another version of the image is not reused (it is started afresh).
 *
 * A read whose chunks cannot be fetched (server gone, stalled, reset, wrong status, short body,
 * hash mismatch) throws SquashfsError IO (EIO at the FUSE edge) after one log line; nothing is
 * remembered about the failure, so the same read succeeds once the server is back.
 *
 * Not done: two processes sharing one cache directory can both fetch a chunk (harmless: same
 * verified bytes) and the last bitmap written wins (at worst a chunk is fetched again).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { SquashfsError } from '../errors';
import type { ByteSource } from './source';
import type { HttpStats, HttpWorkerData, PromoteSpec, RegisterImage, WorkerReply, WorkerRequest } from './http-worker';

export interface HttpClientOptions {
  /** A socket silent this long is given up, and a request's whole budget is 3× this (default 10 s). */
  timeoutMs?: number;
  /** Further attempts after a failure, with backoff, inside the budget (default 2). */
  retries?: number;
  log?: (message: string) => void;
}

type Reply = Extract<WorkerReply, { type: 'reply' }>;

/**
 * The calling thread's handle on the HTTP thread: posts a request and waits for its answer
 * synchronously. One per thread (see httpClient()).
 */
export class HttpClient {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly seq: Int32Array;
  private nextId = 1;
  readonly timeoutMs: number;
  log: (message: string) => void;

  constructor(options: HttpClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.log = options.log ?? ((m) => process.stderr.write(`${m}\n`));
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const seq = new SharedArrayBuffer(4);
    this.seq = new Int32Array(seq);
    const wd: HttpWorkerData = { reply: port2, seq, timeoutMs: this.timeoutMs, retries: options.retries ?? 2 };
    // Named from dist/src, not just __dirname: in the store's serving-thread bundle this module's
    // __dirname is dist/src/fuse (src/fuse/bundles.ts).
    this.worker = new Worker(path.join(__dirname, '..', 'io', 'http-worker.js'), { workerData: wd, transferList: [port2] });
    // Never the reason a process stays alive; its work is only for whoever is waiting.
    this.worker.unref();
  }

  post(m: WorkerRequest): void {
    this.worker.postMessage(m);
  }

  /** Answers to requests started with begin() that came while waiting for something else. */
  private readonly stash = new Map<number, Reply>();
  private readonly begun = new Set<number>();

  /** Takes everything the HTTP thread posted: log lines are logged, begun answers kept. */
  private drain(want?: number): Reply | undefined {
    let found: Reply | undefined;
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      const r = m.message as WorkerReply;
      if (r.type === 'log') this.log(r.message);
      else if (r.id === want) found = r;
      else if (this.begun.has(r.id)) this.stash.set(r.id, r);
      // else: the late answer to a request that was given up; its chunks are in the bitmap anyway
    }
    return found;
  }

  /** Sends a request with an id and waits (blocking this thread) for its answer, at most `waitMs`. */
  call(make: (id: number) => WorkerRequest, waitMs: number): Reply {
    const id = this.nextId++;
    this.worker.postMessage(make(id));
    const end = Date.now() + waitMs;
    for (;;) {
      const seen = Atomics.load(this.seq, 0);
      const r = this.drain(id);
      if (r) return r;
      const left = end - Date.now();
      if (left <= 0) return { type: 'reply', id, ok: false, message: `no answer from the HTTP thread within ${waitMs} ms` };
      Atomics.wait(this.seq, 0, seen, left);
    }
  }

  /** Starts a request without waiting; collect(id) takes its answer once there. */
  begin(make: (id: number) => WorkerRequest): number {
    const id = this.nextId++;
    this.begun.add(id);
    this.worker.postMessage(make(id));
    return id;
  }

  /** The answer to a begun request, or undefined while it is under way. Never blocks. */
  collect(id: number): Reply | undefined {
    this.drain();
    const r = this.stash.get(id);
    if (r) {
      this.stash.delete(id);
      this.begun.delete(id);
    }
    return r;
  }

  /** Log lines the HTTP thread posted meanwhile (background fill, promotion). */
  drainLogs(): void {
    this.drain();
  }

  /** A whole small file (the repository index), synchronously. Throws SquashfsError IO/NOT_FOUND. */
  getFile(url: string, maxBytes: number): Uint8Array {
    const budget = this.timeoutMs * 3;
    return fileOf(
      url,
      this.call((id) => ({ type: 'get', id, url, maxBytes, deadline: Date.now() + budget }), budget + 1000),
    );
  }

  /** getFile without waiting: collectFile(id) gives the bytes (or throws) once they are there. */
  beginFile(url: string, maxBytes: number): number {
    const budget = this.timeoutMs * 3;
    return this.begin((id) => ({ type: 'get', id, url, maxBytes, deadline: Date.now() + budget }));
  }

  collectFile(id: number, url: string): Uint8Array | undefined {
    const r = this.collect(id);
    return r && fileOf(url, r);
  }

  stats(): HttpStats {
    const r = this.call((id) => ({ type: 'stats', id }), 5000);
    return r.ok && r.stats ? r.stats : { requests: 0, bytes: 0, failures: 0, promoted: 0 };
  }

  /** Waits until every chunk bitmap is written (they are written a moment after a fetch). */
  flush(): void {
    this.call((id) => ({ type: 'flush', id }), 5000);
  }

  /** Flushes the bitmaps and ends the HTTP thread. */
  terminate(): Promise<number> {
    this.flush();
    this.port.close();
    return this.worker.terminate();
  }
}

function fileOf(url: string, r: Reply): Uint8Array {
  if (!r.ok) throw new SquashfsError(r.status === 404 || r.status === 410 ? 'NOT_FOUND' : 'IO', `${url}: ${r.message}`, 'remote');
  return r.bytes!;
}

let shared: HttpClient | undefined;

/** This thread's HTTP client, made on first use with these options (later options are ignored). */
export function httpClient(options: HttpClientOptions = {}): HttpClient {
  shared ??= new HttpClient(options);
  return shared;
}

/** What is known about a remote image before fetching any of it (from the repository index). */
export interface RemoteImageSpec {
  url: string;
  size: number;
  sha256: string;
  chunkSize: number;
  chunks: readonly string[];
}

export interface CacheFiles {
  /** The sparse cache file. */
  part: string;
  /** Its chunk bitmap. */
  bitmap: string;
}

export interface HttpSourceOptions {
  /** Chunks fetched after the last one a read needs (default 0: see bench/README-remote.md). */
  readAhead?: number;
  /** Fetch every missing chunk in the background. */
  fill?: boolean;
  /** Once complete: the meta to fetch and where both files go (the store). */
  promote?: PromoteSpec;
  /** Label in log lines (the package's full name). */
  label?: string;
}

const BITMAP_FORMAT = 'distri-chunk-bitmap/1';

/** One cached image on this thread: the shared bitmap and a read descriptor of the cache file. */
class CachedImage {
  readonly bits: Int32Array;
  readonly fd: number;

  constructor(
    readonly key: string,
    readonly spec: RemoteImageSpec,
    readonly files: CacheFiles,
  ) {
    if (!Number.isSafeInteger(spec.size) || spec.size < 0 || !Number.isSafeInteger(spec.chunkSize) || spec.chunkSize <= 0 || spec.chunks.length !== Math.ceil(spec.size / spec.chunkSize)) {
      throw new SquashfsError('CORRUPT', `${spec.url}: ${spec.chunks.length} chunk hashes do not cover ${spec.size} bytes in chunks of ${spec.chunkSize}`, 'remote');
    }
    const sab = new SharedArrayBuffer(Math.ceil(spec.chunks.length / 32) * 4 || 4);
    this.bits = new Int32Array(sab);
    fs.mkdirSync(path.dirname(files.part), { recursive: true });
    const reuse = this.loadBitmap();
    if (!reuse) fs.rmSync(files.bitmap, { force: true });
    this.fd = fs.openSync(files.part, reuse ? 'r+' : 'w+');
    // Sparse: only fetched chunks take space.
    if (fs.fstatSync(this.fd).size !== spec.size) fs.ftruncateSync(this.fd, spec.size);
  }

  /** Restores the persisted bitmap when it belongs to this very image; false: start afresh. */
  private loadBitmap(): boolean {
    let doc: { format?: unknown; size?: unknown; chunkSize?: unknown; first?: unknown; bits?: unknown };
    try {
      doc = JSON.parse(fs.readFileSync(this.files.bitmap, 'utf8'));
      fs.accessSync(this.files.part);
    } catch {
      return false;
    }
    if (doc.format !== BITMAP_FORMAT || doc.size !== this.spec.size || doc.chunkSize !== this.spec.chunkSize || doc.first !== (this.spec.chunks[0] ?? '') || typeof doc.bits !== 'string') return false;
    const raw = Buffer.from(doc.bits, 'base64');
    if (raw.length !== this.bits.byteLength) return false;
    new Uint8Array(this.bits.buffer).set(raw);
    return true;
  }

  has(i: number): boolean {
    return (Atomics.load(this.bits, i >> 5) & (1 << (i & 31))) !== 0;
  }

  get missing(): number {
    let n = 0;
    for (let i = 0; i < this.spec.chunks.length; i++) if (!this.has(i)) n++;
    return n;
  }
}

const cached = new Map<string, CachedImage>();

export class HttpSource implements ByteSource {
  readonly size: number;
  private readonly img: CachedImage;
  private closed = false;

  constructor(
    spec: RemoteImageSpec,
    files: CacheFiles,
    private readonly client: HttpClient,
    private readonly options: HttpSourceOptions = {},
  ) {
    const key = `${path.resolve(files.part)}\0${spec.sha256}`;
    let img = cached.get(key);
    if (!img) {
      img = new CachedImage(key, spec, files);
      cached.set(key, img);
      const reg: RegisterImage = {
        type: 'register',
        key,
        url: spec.url,
        size: spec.size,
        chunkSize: spec.chunkSize,
        chunks: [...spec.chunks],
        partPath: path.resolve(files.part),
        bitmapPath: path.resolve(files.bitmap),
        bitmap: img.bits.buffer as SharedArrayBuffer,
        readAhead: Math.max(0, options.readAhead ?? 0),
        fill: options.fill ?? false,
        promote: options.promote,
      };
      client.post(reg);
    }
    this.img = img;
    this.size = spec.size;
  }

  /** Chunks not yet in the cache file. */
  get missingChunks(): number {
    return this.img.missing;
  }

  readInto(offset: number, target: Uint8Array): void {
    // The bytes come out of the cache file once their chunks are verified; one copy more than
    // a local image costs, against a network round trip for what is missing.
    target.set(this.readAt(offset, target.length));
  }

  readAt(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new SquashfsError('OUT_OF_BOUNDS', `read of ${length} bytes at ${offset} past the end of the remote image (${this.size} bytes)`, 'image', offset);
    }
    if (this.closed) throw new SquashfsError('IO', `${this.img.spec.url}: read after close`, 'image', offset);
    const out = Buffer.allocUnsafe(length);
    if (length === 0) return out;
    const cs = this.img.spec.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    let need = false;
    for (let i = first; i <= last && !need; i++) need = !this.img.has(i);
    this.client.drainLogs();
    if (need) {
      const r = this.fetch([[first, last]]);
      let stillMissing = -1;
      for (let i = first; i <= last && stillMissing < 0; i++) if (!this.img.has(i)) stillMissing = i;
      if (stillMissing >= 0) {
        const why = r.ok ? `chunk ${stillMissing} still missing` : r.message;
        const msg = `${this.options.label ?? this.img.spec.url}: bytes ${offset}-${offset + length - 1} unavailable: ${why}`;
        this.client.log(`remote ${msg}`);
        throw new SquashfsError('IO', msg, 'remote', offset);
      }
    }
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.img.fd, out, done, length - done, offset + done);
      if (n === 0) throw new SquashfsError('IO', `${this.img.files.part}: cache file ends at ${offset + done}`, 'remote', offset + done);
      done += n;
    }
    return out;
  }

  private fetch(ranges: [number, number][]) {
    const budget = this.client.timeoutMs * 3;
    return this.client.call((id) => ({ type: 'fetch', id, key: this.img.key, ranges, deadline: Date.now() + budget }), budget + 1000);
  }

  /**
   * Fetches the chunks of several byte ranges at once, concurrently, and waits for them: one round
   * trip for what would otherwise be one each (opening an image reads its first bytes and then the
   * tables at its end). Failures are not reported here: the reads that need the bytes report them.
   */
  prefetch(ranges: readonly { offset: number; length: number }[]): void {
    const cs = this.img.spec.chunkSize;
    const want: [number, number][] = [];
    for (const { offset, length } of ranges) {
      const lo = Math.max(0, Math.min(offset, this.size - 1));
      const hi = Math.max(lo, Math.min(offset + length, this.size) - 1);
      const a = Math.floor(lo / cs);
      const b = Math.floor(hi / cs);
      for (let i = a; i <= b; i++) {
        if (!this.img.has(i)) {
          want.push([a, b]);
          break;
        }
      }
    }
    if (want.length > 0 && this.size > 0) this.fetch(want);
  }

  /**
   * The image stays registered (its background fill goes on); only this handle ends, after its
   * bitmap is written (a daemon closes its images as it exits).
   */
  close(): void {
    if (!this.closed) this.client.flush();
    this.closed = true;
  }
}
