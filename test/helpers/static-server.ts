/**
 * A plain static HTTP file server for tests and benchmarks (a stand-in for nginx where nginx is not
 * installed): GET and HEAD of files under one directory, single byte ranges (206 with
 * Content-Range; 416 when unsatisfiable), a strong ETag from size, mtime and inode, keep-alive.
 * Names that leave the directory are 404. It does nothing clever: a repository is static files.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

export function staticHandler(root: string): http.RequestListener {
  const base = path.resolve(root);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = path.resolve(base, '.' + rel);
    if (!file.startsWith(base + path.sep) || rel.includes('\0')) {
      res.writeHead(404).end();
      return;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html>not found</html>');
      return;
    }
    if (!st.isFile()) {
      res.writeHead(404).end();
      return;
    }
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"`;
    const headers: http.OutgoingHttpHeaders = { etag, 'last-modified': st.mtime.toUTCString(), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const range = req.headers.range;
    const ifRange = req.headers['if-range'];
    if (range && (ifRange === undefined || ifRange === etag)) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') {
          start = Math.max(0, st.size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== '') end = Math.min(end, Number(m[2]));
        }
        if (start >= st.size || start > end) {
          res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
          return;
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
      }
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || st.size === 0) {
      res.end();
      return;
    }
    fs.createReadStream(file, { start, end }).pipe(res);
  };
}

export function serveStatic(root: string, port = 0, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer({ keepAliveTimeout: 30_000 }, staticHandler(root));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
