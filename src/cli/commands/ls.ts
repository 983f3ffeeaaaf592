/** `distri ls IMAGE [PATH]`: list a directory of an image, optionally long and recursive. */
import type { Command } from 'commander';
import { walk } from '../../reader/walk';
import { atPath, openImage, resolvePath, writeOut } from '../common';
import { formatTable, longColumns, record } from '../describe';
import { IdNames } from '../format';
import { IMAGE, OFFSET, register as registerSpec, type CommandSpec } from '../spec';

interface Opts {
  offset: number;
  long?: boolean;
  recursive?: boolean;
  json?: boolean;
  numericIds?: boolean;
}

export const spec: CommandSpec = {
  name: 'ls',
  description: 'list the entries of a directory inside an image',
  args: [IMAGE, { name: '[path]', description: 'directory (or file) inside the image', default: '/' }],
  options: [
    { flags: '-l, --long', description: 'type and mode, link count, owner, group, size (or major, minor), mtime (UTC), link target' },
    { flags: '-n, --numeric-ids', description: 'with -l: owners and groups as numbers (by default names from /etc/passwd and /etc/group where they resolve)' },
    { flags: '-R, --recursive', description: 'every path below PATH, one per line, relative to PATH' },
    { flags: '--json', description: 'a JSON array of {path, type, mode, uid, gid, size, mtime, nlink, inode, target?, rdev?, xattrs?}' },
    OFFSET,
  ],
  helpAfter:
    '\nExamples:\n  distri ls fixtures/demo.sqfs\n  distri ls -lR fixtures/demo.sqfs /\n  distri ls -ln pkg.squashfs out/bin        (numeric owners)\n  distri ls --json -R pkg.squashfs out/lib',
  context: (image: string) => image,
  run: async (image: string, path: string, opts: Opts) => {
    const img = openImage(image, opts.offset);
    try {
      const start = atPath(path, () => resolvePath(img, path, true));
      // Items: (display name, inode). A file argument lists itself, like ls.
      const items: Array<[string, ReturnType<typeof img.inode>]> = [];
      if (start.kind !== 'dir') {
        items.push([path.split('/').filter(Boolean).pop() ?? path, start]);
      } else if (opts.recursive) {
        for (const it of walk(img, start)) if (it.depth > 0) items.push([it.path, it.inode]);
      } else if (opts.json || opts.long) {
        for (const e of img.readdir(start)) items.push([e.name, img.entryInode(e)]);
      } else {
        // Names only: a directory entry holds its name, so no inode is read (on a 600-entry
        // directory, parsing the inodes and the garbage they made were a third of ls's own time).
        const names = img.readdir(start).map((e) => e.name + '\n');
        for (let i = 0; i < names.length; i += 4096) await writeOut(names.slice(i, i + 4096).join(''));
        return;
      }
      if (opts.json) {
        await writeOut(
          JSON.stringify(
            items.map(([p, inode]) => record(img, p, inode)),
            null,
            1,
          ) + '\n',
        );
      } else if (opts.long) {
        // Stream in slices so a huge tree does not build one giant string.
        const names = opts.numericIds ? undefined : new IdNames();
        for (let i = 0; i < items.length; i += 4096) {
          await writeOut(formatTable(items.slice(i, i + 4096).map(([p, inode]) => longColumns(img, p, inode, names))));
        }
      } else {
        for (let i = 0; i < items.length; i += 4096) {
          await writeOut(
            items
              .slice(i, i + 4096)
              .map(([p]) => p + '\n')
              .join(''),
          );
        }
      }
    } finally {
      img.close();
    }
  },
};

export function register(program: Command): void {
  registerSpec(program, spec);
}
