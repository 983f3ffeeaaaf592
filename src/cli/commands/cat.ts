/** `distri cat IMAGE PATH…`: file contents, byte for byte, to stdout. */
import type { Command } from 'commander';
// Types only: the pool (worker threads) is loaded for a large file, not by every `distri cat`.
import type { DecompressPool } from '../../reader/decompress-pool';
import type { SplitDecoder } from '../../reader/split-decode';
import type { FileInode, Inode } from '../../format/inode';
import { openImage, regularFile, reportError, writeOut, writeOutAll } from '../common';
import { IMAGE, OFFSET, register as registerSpec, type CommandSpec } from '../spec';

/** Files at least this large are decompressed ahead by a worker pool (start-up costs ~30 ms) where the codec is slow enough (decodesAhead). */
const PARALLEL_MIN_BYTES = 4 << 20;

export const spec: CommandSpec = {
  name: 'cat',
  description: 'write files from an image to stdout, byte for byte (symlinks inside the image are followed)',
  args: [IMAGE, { name: '<paths...>', description: 'files inside the image' }],
  options: [OFFSET],
  helpAfter: '\nExamples:\n  distri cat fixtures/demo.sqfs README\n  distri cat pkg.squashfs out/bin/tool > tool',
  context: (image: string) => image,
  run: async (image: string, paths: string[], opts: { offset: number }) => {
    const img = openImage(image, opts.offset);
    let pool: DecompressPool | undefined;
    let split: SplitDecoder | undefined | null;
    try {
      for (const p of paths) {
        try {
          const inode = regularFile(img, p);
          if (inode.kind === 'file' && inode.fileSize >= PARALLEL_MIN_BYTES) {
            // eslint-disable-next-line @typescript-eslint/no-require-imports
            const ahead = require('../../reader/decompress-pool') as typeof import('../../reader/decompress-pool');
            if (ahead.decodesAhead(img)) {
              pool ??= new ahead.DecompressPool();
              for await (const chunk of ahead.parallelChunks(img, inode, pool)) await writeOut(chunk);
              continue;
            }
            // Codecs fast enough for this thread: from some size on, a second thread decodes too.
            if (inode.fileSize >= (ahead.splitFrom(img) ?? Infinity)) {
              // eslint-disable-next-line @typescript-eslint/no-require-imports
              if (split === undefined) split = (require('../../reader/split-decode') as typeof import('../../reader/split-decode')).SplitDecoder.for(img) ?? null;
              if (split) {
                for await (const chunk of split.file(inode)) await writeOut(chunk);
                continue;
              }
            }
          }
          // One sequential pass: runs of blocks read at once into a reused buffer, each group
          // handed to stdout before the next is read (the views do not outlive that).
          for (const group of img.data.stream(fileInode(inode))) await writeOutAll(group);
        } catch (e) {
          reportError(`${image}: ${p}`, e); // like cat: report, go on with the next path
        }
      }
    } finally {
      await pool?.close();
      await split?.close();
      img.close();
    }
  },
};

export function register(program: Command): void {
  registerSpec(program, spec);
}

/** regularFile() returned a regular file's inode; this says so to the type checker. */
function fileInode(inode: Inode): FileInode {
  if (inode.kind !== 'file') throw new Error(`not a regular file: inode ${inode.inodeNumber}`);
  return inode;
}
