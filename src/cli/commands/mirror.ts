/**
 * `distri mirror [REPO]`: writes the repository index `<REPO>/pkg/index-v1.json` (format in
 * src/repo/repo-index.ts) from the packages in `<REPO>/pkg/`. Run it after adding packages; the
 * repo is then ready to be served as static files (`distri export`, nginx, a CDN, an object store).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { SquashfsError } from '../../errors';
import { DEFAULT_CHUNK_SIZE, REPO_INDEX_FILE, buildRepoIndex, writeRepoIndex, type SkippedPackage } from '../../repo/repo-index';
import { action } from '../common';
import { parseBlockSize } from './pack';

/** `<repo>/pkg`, which must be a directory. */
export function pkgDirOf(repo: string): string {
  const dir = path.join(repo, 'pkg');
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new SquashfsError('NOT_FOUND', `${dir}: no such directory (a repo keeps its packages in pkg/)`);
  }
  if (!st.isDirectory()) throw new SquashfsError('NOT_A_DIRECTORY', `${dir} is not a directory`);
  return dir;
}

function parseChunkSize(v: string): number {
  // Same spelling as --block-size (256K, 1M), and the same power-of-two rule beyond 1M.
  const m = /^(\d+)([kKmM]?)$/.exec(v.trim());
  if (m && m[2]!.toLowerCase() === 'm' && Number(m[1]) <= 64) {
    const n = Number(m[1]) << 20;
    if ((n & (n - 1)) === 0) return n;
  }
  return parseBlockSize(v);
}

export function register(program: Command): void {
  program
    .command('mirror')
    .description('write the repository index REPO/pkg/index-v1.json: sizes, sha256 (whole and per chunk), meta fields and exchange paths of every package')
    .argument('[repo]', 'the repo root (its packages are in REPO/pkg/)', '.')
    .option('--chunk-size <n>', 'bytes per verified chunk, a power of two (256K, 1M)', parseChunkSize, DEFAULT_CHUNK_SIZE)
    .option('--json', 'print {index, packages, skipped:[{full, why}], bytes, seconds} on stdout')
    .addHelpText(
      'after',
      `
A repo is a directory with pkg/<full>.squashfs and pkg/<full>.meta.textproto files. The index
lists every package that has both (an image without meta, or one that does not open, is left out
and named on stderr). It is written to a temp file and renamed, so a client never reads half of it.

Examples:
  mkdir -p repo/pkg && cp store/*.squashfs store/*.meta.textproto repo/pkg/
  distri mirror repo
  distri export --repo repo --listen 127.0.0.1:8080
  distri install --root /tmp/r --repo http://127.0.0.1:8080 nano`,
    )
    .action(
      action(
        (repo: string) => `mirror ${repo}`,
        (repo: string, opts: { chunkSize: number; json?: boolean }) => {
          const pkgDir = pkgDirOf(repo);
          const started = Date.now();
          const skipped: SkippedPackage[] = [];
          const tty = process.stderr.isTTY && !opts.json;
          const index = buildRepoIndex(pkgDir, {
            chunkSize: opts.chunkSize,
            onSkip: (s) => {
              skipped.push(s);
              if (tty) process.stderr.write('\r\x1b[K');
              process.stderr.write(`distri: mirror: skipped ${s.full}: ${s.why}\n`);
            },
            onPackage: tty ? (full, done, total) => process.stderr.write(`\r\x1b[K[${done + 1}/${total}] ${full}`) : undefined,
          });
          if (tty) process.stderr.write('\r\x1b[K');
          writeRepoIndex(pkgDir, index);
          const file = path.join(pkgDir, REPO_INDEX_FILE);
          const bytes = [...index.packages.values()].reduce((n, p) => n + p.image.size + p.meta.size, 0);
          const seconds = (Date.now() - started) / 1000;
          if (opts.json) {
            process.stdout.write(JSON.stringify({ index: file, packages: [...index.packages.keys()].sort(), skipped, bytes, seconds }) + '\n');
          } else {
            process.stdout.write(`${file}: ${index.packages.size} packages, ${(bytes / 2 ** 20).toFixed(1)} MiB${skipped.length ? `, ${skipped.length} skipped` : ''}, ${seconds.toFixed(2)} s\n`);
          }
        },
      ),
    );
}
