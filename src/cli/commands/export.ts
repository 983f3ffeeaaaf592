/**
 * `distri export [--listen ADDR] [--repo DIR]`: serves a repo over HTTP as static files
 * (src/repo/static-server.ts). Runs in the foreground until SIGINT/SIGTERM.
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { SquashfsError } from '../../errors';
import { createStaticServer, parseListen } from '../../repo/static-server';
import { action } from '../common';

export function register(program: Command): void {
  program
    .command('export')
    .description('serve a repo over HTTP as static files: GET, HEAD, single byte ranges, ETag/Last-Modified (foreground)')
    .option('--listen <addr>', 'HOST:PORT to listen on (port 0: any free port, printed on start)', 'localhost:7080')
    .option('--repo <dir>', 'the repo root (the directory holding pkg/)', '.')
    .option('--json', 'print {url, repo, pid} as one JSON line once listening')
    .addHelpText(
      'after',
      `
The repo is plain files, so nginx, a CDN or an S3-compatible bucket serve it just as well (the
README has an nginx config); this server is for a single machine or a quick test. Only paths
inside the repo are served: no "..", no encoded slashes, no dot-files, no symlinks that lead out,
no directory listings. Requests for several ranges at once get the whole file.

Examples:
  distri mirror repo && distri export --repo repo --listen 127.0.0.1:8080
  curl -r 0-95 http://127.0.0.1:8080/pkg/nano-amd64-4.3-1.squashfs | xxd | head -1
  distri install --root /tmp/r --repo http://127.0.0.1:8080 nano`,
    )
    .action(
      action(
        () => 'export',
        async (opts: { listen: string; repo: string; json?: boolean }) => {
          const { host, port } = parseListen(opts.listen);
          let st: fs.Stats;
          try {
            st = fs.statSync(opts.repo);
          } catch {
            throw new SquashfsError('NOT_FOUND', `--repo ${opts.repo}: no such directory`);
          }
          if (!st.isDirectory()) throw new SquashfsError('NOT_A_DIRECTORY', `--repo ${opts.repo} is not a directory`);
          const server = createStaticServer({ root: opts.repo, log: (line) => process.stderr.write(`distri: export: ${line}\n`) });
          await new Promise<void>((resolve, reject) => {
            server.once('error', (e: NodeJS.ErrnoException) =>
              reject(new Error(`cannot listen on ${opts.listen}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : e.message}`)),
            );
            server.listen(port, host, () => resolve());
          });
          const a = server.address();
          const shown = typeof a === 'object' && a !== null ? (a.family === 'IPv6' ? `[${a.address}]` : a.address) + `:${a.port}` : String(a);
          const url = `http://${shown}/`;
          if (opts.json) process.stdout.write(JSON.stringify({ url, repo: opts.repo, pid: process.pid }) + '\n');
          else process.stdout.write(`serving ${opts.repo} at ${url}\n`);
          await new Promise<void>((resolve) => {
            const stop = () => {
              server.close(() => resolve());
              server.closeAllConnections();
            };
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
          });
        },
      ),
    );
}
