/** `distri cat IMAGE PATH…`: file contents, byte for byte, to stdout. */
import { Command } from 'commander';
import { DecompressPool, decodesAhead, parallelChunks } from '../../reader/decompress-pool';
import type { FileInode, Inode } from '../../format/inode';
import { action, offsetOption, openImage, regularFile, reportError, writeOut, writeOutAll } from '../common';

/** Files at least this large are decompressed ahead by a worker pool (start-up costs ~30 ms) where the codec is slow enough (decodesAhead). */
const PARALLEL_MIN_BYTES = 4 << 20;

export function register(program: Command): void {
  program
    .command('cat')
    .description('write files from an image to stdout, byte for byte (symlinks inside the image are followed)')
    .argument('<image>', 'a .squashfs file')
    .argument('<paths...>', 'files inside the image')
    .addOption(offsetOption())
    .addHelpText('after', '\nExamples:\n  distri cat fixtures/demo.sqfs README\n  distri cat pkg.squashfs out/bin/tool > tool')
    .action(
      action(
        (image: string) => image,
        async (image: string, paths: string[], opts: { offset: number }) => {
          const img = openImage(image, opts.offset);
          let pool: DecompressPool | undefined;
          try {
            for (const p of paths) {
              try {
                const inode = regularFile(img, p);
                if (inode.kind === 'file' && inode.fileSize >= PARALLEL_MIN_BYTES && decodesAhead(img)) {
                  pool ??= new DecompressPool();
                  for await (const chunk of parallelChunks(img, inode, pool)) await writeOut(chunk);
                  continue;
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
            img.close();
          }
        },
      ),
    );
}

/** regularFile() returned a regular file's inode; this says so to the type checker. */
function fileInode(inode: Inode): FileInode {
  if (inode.kind !== 'file') throw new Error(`not a regular file: inode ${inode.inodeNumber}`);
  return inode;
}
