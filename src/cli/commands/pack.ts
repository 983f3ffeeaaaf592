/** `distri pack SOURCE_DIR IMAGE`: build a SquashFS image from a directory (see src/writer/pack.ts). */
import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { SquashfsError } from '../../errors';
import { flagNames } from '../../format/superblock';
import { codecSettings, parseXzDictSize, parseXzFilters } from '../../writer/compressor-settings';
import { removePartialImages } from '../../writer/output';
import { COMPRESSIONS, LEVELS, pack, type Compression, type PackResult } from '../../writer/pack';
import { action } from '../common';
import { lz4EncoderName } from '../../codec/lz4';
import { xzEncoderName } from '../../codec/xz';
import { zstdEncoderName } from '../../codec/zstd';

/**
 * The native encoders are optional dependencies (npm ci works without a compiler); when the one a
 * compressor would use did not install, ours stands in, and the command says so once.
 */
function fallbackNotice(comp: Compression): string | undefined {
  if (comp === 'xz' && xzEncoderName() !== 'liblzma') return 'lzma-native is not installed: xz blocks come from our own encoder (images about 6 % larger, slower)';
  if (comp === 'zstd' && zstdEncoderName() !== 'native') return 'zstd-napi is not installed: zstd blocks come from zstd in WebAssembly (the same bytes, slower)';
  if (comp === 'lz4' && lz4EncoderName() === 'builtin') return 'lz4 (liblz4) and lz4-napi are not installed: lz4 blocks come from our own encoder (slower)';
  return undefined;
}

function parseInteger(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** --level: a whole number; its range depends on --comp (checkLevel). */
function parseLevel(v: string): number {
  if (!/^\d{1,3}$/.test(v.trim())) throw new Error(`--level must be a whole number (${levelRanges()}), got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Each compressor's levels, in words: "gzip 1..9, zstd 1..22; lzo, lz4, xz have none". */
function levelRanges(): string {
  const with_ = COMPRESSIONS.filter((c) => LEVELS[c]).map((c) => `${c} ${LEVELS[c]![0]}..${LEVELS[c]![1]}`);
  const without = COMPRESSIONS.filter((c) => !LEVELS[c] && c !== 'none');
  return `${with_.join(', ')}; ${without.join(', ')} take none`;
}

/** --level against the chosen compressor's own range. */
export function checkLevel(comp: Compression, level: number | undefined): void {
  if (level === undefined) return;
  const range = LEVELS[comp];
  if (!range) throw new SquashfsError('INVALID_ARGUMENT', `--level ${level}: --comp ${comp} takes no level (${levelRanges()})`);
  if (level < range[0] || level > range[1]) throw new SquashfsError('INVALID_ARGUMENT', `--level ${level}: ${comp} levels are ${range[0]}..${range[1]}`);
}

/** The patterns of an exclude file, one per line (mksquashfs -ef); blank lines are skipped. */
function readExcludeFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw Object.assign(e as Error, { path: file });
  }
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim() !== '');
}

/** 131072, 128K, 128k, 1M. */
export function parseBlockSize(v: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(v.trim());
  if (!m) throw new Error(`--block-size must be bytes or a size like 128K or 1M, got ${JSON.stringify(v)}`);
  const n = Number(m[1]) * (m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1024 : 1024 * 1024);
  if (n < 4096 || n > 1048576 || (n & (n - 1)) !== 0) throw new Error(`--block-size must be a power of two from 4K to 1M, got ${v}`);
  return n;
}

export function register(program: Command): void {
  program
    .command('pack')
    .description('build a SquashFS image from a directory (reproducible with --reproducible or --mtime)')
    .argument('<source-dir>', 'directory to pack (symlinks are stored, not followed)')
    .argument('<image>', 'image file to write (replaced if it exists)')
    .addOption(new Option('--comp <name>', "compressor; 'none' stores everything uncompressed (distri's package format)").choices(COMPRESSIONS).default('gzip'))
    .option('--level <n>', 'compression level: gzip 1..9 (default 9), zstd 1..22 (default 15); the others take none', parseLevel)
    .option(
      '--xz-bcj <filters>',
      'xz: also compress every block through these BCJ filters (x86, powerpc, ia64, arm, armthumb, sparc; comma-separated) and keep the smallest (also -Xbcj)',
      parseXzFilters,
    )
    .option('--xz-dict-size <size>', 'xz: dictionary size, bytes, K, M or a percentage of the block size; 2^n or 2^n+2^(n-1), at most the block size (also -Xdict-size)')
    .option('--lz4-hc', 'lz4: high compression, a slower and deeper match search (also -Xhc)')
    .option('-b, --block-size <n>', 'data block size, a power of two from 4K to 1M', parseBlockSize, 131072)
    .option(
      '-e, --exclude <paths...>',
      'leave out these paths (and what is below them), relative to SOURCE; * and ? match within one name (takes every argument up to the next option, as mksquashfs -e: put it last, or repeat it)',
    )
    .option('--exclude-file <file>', 'leave out the paths listed in FILE, one per line (also -ef, as mksquashfs)')
    .option('--no-fragments', 'do not pack small files into shared fragment blocks')
    .option('--always-use-fragments', 'also pack the tails of files larger than a block into fragments')
    .option('--no-xattrs', 'do not store extended attributes')
    .option('--no-exports', 'do not write the export table (NFS lookups by inode number)')
    .option('--no-duplicates', 'store duplicate files separately')
    .option('--all-root', 'make every file owned by root (uid 0, gid 0)')
    .option('--mtime <seconds>', 'set every timestamp (files and the image) to this time', parseInteger('--mtime', 0, 0xffffffff))
    .option('--reproducible', 'image time from $SOURCE_DATE_EPOCH (clamping newer files), else the newest file time')
    .option('--processors <n>', 'compression worker threads (default: one per CPU)', parseInteger('--processors', 1, 256))
    .option('--quiet', 'no progress or summary on stderr')
    .option(
      '--json',
      'print one JSON object on stdout instead of the summary {image, bytesUsed, fileSize, inodeCount, fragmentCount, idCount, xattrIdCount, compression, blockSize, flags, seconds} (names as in info --json)',
    )
    .addHelpText(
      'after',
      `
Defaults follow mksquashfs: gzip level 9, 128 KiB blocks, fragments, duplicates removed, export table.
Compressors: gzip (node:zlib), zstd (libzstd through zstd-napi, level 15), xz (liblzma through
lzma-native, preset 6, dictionary = block size), lz4 (liblz4 through the lz4 package, else
lz4-napi), lzo (our LZO1X encoder), none.
Where a native library did not install, our own encoder (xz, lz4) or zstd in WASM stands in.
The same input and options give the same bytes on the same installation (a stand-in encoder
makes different, equally valid blocks); only the image time changes unless --mtime or
--reproducible fix it.
An image inside the source directory is left out of it. A new image, or one replacing a file, is
written beside it and renamed into place when complete, so a failed run leaves the old one intact;
an image path naming a device (or /dev/null) is written directly.

Options are spelled with two dashes (--comp xz, not mksquashfs's -comp xz); -b, -e and -ef work
as in mksquashfs, and so do -Xbcj, -Xdict-size and -Xhc (for --xz-bcj, --xz-dict-size, --lz4-hc).

Compressor settings (recorded in the image's compressor options, which info and unsquashfs -s show):
  --xz-bcj x86          machine code: calls and jumps made absolute, so repeated calls compress;
                        each block is tried without and with each filter and the smallest kept
  --xz-dict-size 50%    how far back xz matches reach (default: the block size); 64K, 96K, 75%
  --lz4-hc              lz4 with a deeper search: smaller images, slower packing, same reading speed

Examples:
  distri pack --comp none --no-fragments --reproducible build/nano-amd64-4.3-1 nano-amd64-4.3-1.squashfs
      (a distri package: the directory holding out/ and bin/, not out/ itself; see the README's
      "A package: its files and its meta")
  distri pack rootfs/ root.sqfs --comp gzip -b 1M --all-root
  distri pack rootfs/ root.sqfs --comp zstd --level 19 -e var/cache tmp '*.o'
  distri pack rootfs/ root.sqfs -ef excludes.txt
  distri pack --comp xz --xz-bcj x86 --xz-dict-size 50% rootfs/ root.sqfs
  distri pack rootfs/ root.sqfs -comp xz -Xbcj x86,arm -Xdict-size 64K   (mksquashfs spelling)
  distri pack --comp lz4 --lz4-hc rootfs/ root.sqfs
  distri pack --json tree/ t.sqfs | jq .fileSize
  SOURCE_DATE_EPOCH=1700000000 distri pack tree/ t.sqfs --reproducible`,
    )
    .action(
      action(
        (src: string) => `pack ${src}`,
        async (
          src: string,
          image: string,
          opts: {
            comp: Compression;
            level?: number;
            xzBcj?: string[];
            xzDictSize?: string;
            lz4Hc?: boolean;
            blockSize: number;
            exclude?: string[];
            excludeFile?: string;
            fragments: boolean;
            alwaysUseFragments?: boolean;
            xattrs: boolean;
            exports: boolean;
            duplicates: boolean;
            allRoot?: boolean;
            mtime?: number;
            reproducible?: boolean;
            processors?: number;
            quiet?: boolean;
            json?: boolean;
          },
        ) => {
          if (!opts.fragments && opts.alwaysUseFragments) throw new SquashfsError('INVALID_ARGUMENT', '--no-fragments and --always-use-fragments contradict each other');
          checkLevel(opts.comp, opts.level);
          const settings = {
            xzFilters: opts.xzBcj,
            xzDictSize: opts.xzDictSize !== undefined ? parseXzDictSize(opts.xzDictSize, opts.blockSize) : undefined,
            lz4HighCompression: opts.lz4Hc,
          };
          codecSettings(opts.comp, opts.blockSize, settings); // --lz4-hc with --comp gzip etc.: said before any work
          const notice = opts.lz4Hc ? undefined : fallbackNotice(opts.comp);
          if (notice && !opts.quiet) process.stderr.write(`distri: ${notice}\n`);
          const exclude = [...(opts.exclude ?? []), ...(opts.excludeFile !== undefined ? readExcludeFile(opts.excludeFile) : [])];
          // Interrupted: remove the partial image, then die of the signal as if not caught.
          const onSignal = (signal: NodeJS.Signals) => {
            removePartialImages();
            process.kill(process.pid, signal);
          };
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
          const tty = process.stderr.isTTY && !opts.quiet;
          let last = 0;
          const started = Date.now();
          let result: PackResult;
          try {
            result = await pack(src, image, {
              compression: opts.comp,
              level: opts.level,
              ...settings,
              blockSize: opts.blockSize,
              exclude,
              fragments: !opts.fragments ? 'none' : opts.alwaysUseFragments ? 'always' : 'default',
              xattrs: opts.xattrs,
              exports: opts.exports,
              duplicates: opts.duplicates,
              allRoot: opts.allRoot,
              mtime: opts.mtime,
              reproducible: opts.reproducible,
              workers: opts.processors,
              scanProgress: tty
                ? (entries) => {
                    const now = Date.now();
                    if (now - last < 200) return;
                    last = now;
                    process.stderr.write(`\rscanning: ${entries} entries`);
                  }
                : undefined,
              progress: tty
                ? (done, total) => {
                    const now = Date.now();
                    if (now - last < 200 && done < total) return;
                    last = now;
                    const pct = total ? Math.floor((100 * done) / total) : 100;
                    process.stderr.write(`\r[${'='.repeat(Math.floor(pct / 4)).padEnd(25)}] ${pct}% ${(done / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB`);
                  }
                : undefined,
            });
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
          if (tty) process.stderr.write('\n');
          const seconds = (Date.now() - started) / 1000;
          if (opts.json) {
            const { bytesUsed, fileSize, inodeCount, fragmentCount, idCount, xattrIdCount, compression, blockSize, flags } = result;
            process.stdout.write(JSON.stringify({ image, bytesUsed, fileSize, inodeCount, fragmentCount, idCount, xattrIdCount, compression, blockSize, flags: flagNames(flags), seconds }) + '\n');
          } else if (!opts.quiet) {
            process.stderr.write(
              `${image}: ${result.fileSize} bytes, ${result.inodeCount} inodes, ${result.fragmentCount} fragment blocks, ${opts.comp} ${result.blockSize / 1024} KiB blocks, ${seconds.toFixed(2)} s\n`,
            );
          }
        },
      ),
    );
}
