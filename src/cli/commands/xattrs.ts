/** `distri xattrs IMAGE PATH`: extended attributes of one inode, like `getfattr -d -e hex`. */
import { Command } from 'commander';
import { action, offsetOption, openImage } from '../common';
import { hex } from '../format';

export function register(program: Command): void {
  program
    .command('xattrs')
    .description('show the extended attributes of a path inside an image (values in hex, or text when printable)')
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
            const xs = img.xattrs(img.resolve(path, false));
            if (opts.json) {
              process.stdout.write(JSON.stringify(Object.fromEntries(xs.map((x) => [x.name, hex(x.value)])), null, 2) + '\n');
              return;
            }
            for (const x of xs) {
              const text = Buffer.from(x.value).toString('utf8');
              const printable = /^[\x20-\x7e]*$/.test(text);
              process.stdout.write(`${x.name}=${printable ? JSON.stringify(text) : '0x' + hex(x.value)}\n`);
            }
          } finally {
            img.close();
          }
        },
      ),
    );
}
