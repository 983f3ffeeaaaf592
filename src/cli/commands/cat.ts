/** `distri cat IMAGE PATH…`: file contents, byte for byte, to stdout. */
import { Command } from 'commander';
import { action, offsetOption, openImage, reportError, writeOut } from '../common';

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
          try {
            for (const p of paths) {
              try {
                const inode = img.resolve(p, true);
                // Views straight out of the block cache; stdout copies them into the pipe.
                for (const chunk of img.chunks(inode)) await writeOut(chunk);
              } catch (e) {
                reportError(`${image}: ${p}`, e); // like cat: report, go on with the next path
              }
            }
          } finally {
            img.close();
          }
        },
      ),
    );
}
