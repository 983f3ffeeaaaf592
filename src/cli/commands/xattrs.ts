/** `distri xattrs IMAGE PATH`: extended attributes of one inode, like `getfattr -d -e hex`. */
import { Command } from 'commander';
import { action, offsetOption, openImage, resolvePath } from '../common';
import { hex, xattrValue } from '../format';

export function register(program: Command): void {
  program
    .command('xattrs')
    .description('show the extended attributes of a path inside an image (text when printable UTF-8, else hex; --json: hex)')
    .argument('<image>', 'a .squashfs file')
    .argument('<path>', 'path inside the image')
    .option('--json', 'a JSON object of name → hex value')
    .addOption(offsetOption())
    .addHelpText('after', '\nExamples:\n  distri xattrs pkg.squashfs out/bin/ping\n  distri xattrs --json pkg.squashfs out/bin/ping')
    .action(
      action(
        (image: string, path: string) => `${image}: ${path}`,
        (image: string, path: string, opts: { offset: number; json?: boolean }) => {
          const img = openImage(image, opts.offset);
          try {
            const xs = img.xattrs(resolvePath(img, path, false));
            if (opts.json) {
              process.stdout.write(JSON.stringify(Object.fromEntries(xs.map((x) => [x.name, hex(x.value)])), null, 2) + '\n');
              return;
            }
            for (const x of xs) process.stdout.write(`${x.name}=${xattrValue(x.value)}\n`);
          } finally {
            img.close();
          }
        },
      ),
    );
}
