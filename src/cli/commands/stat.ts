/** `distri stat IMAGE PATH`: one inode in full. */
import type { Command } from 'commander';
import { openImage, resolvePath, writeOut } from '../common';
import { record } from '../describe';
import { isoTime, modeString, octal, xattrValue } from '../format';
import { IMAGE, OFFSET, register as registerSpec, type CommandSpec } from '../spec';

export const spec: CommandSpec = {
  name: 'stat',
  description: 'show one inode: type, mode, owner, size, mtime, links, inode number, target, device, xattrs',
  args: [IMAGE, { name: '<path>', description: 'path inside the image (a symlink itself is shown, not its target)' }],
  options: [{ flags: '--json', description: 'one JSON object {type, mode, uid, gid, size, mtime, nlink, inode, target?, rdev?, xattrs?}' }, OFFSET],
  helpAfter: '\nExamples:\n  distri stat fixtures/demo.sqfs bin/hello\n  distri stat --json pkg.squashfs out/bin/ping | jq .xattrs',
  context: (image: string, path: string) => `${image}: ${path}`,
  run: async (image: string, path: string, opts: { offset: number; json?: boolean }) => {
    const img = openImage(image, opts.offset);
    try {
      const inode = resolvePath(img, path, false);
      const r = record(img, path, inode);
      if (opts.json) {
        await writeOut(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      const lines = [
        `  Path: ${path}${r.target !== undefined ? ` -> ${r.target}` : ''}`,
        `  Type: ${r.type}`,
        `  Mode: ${octal(r.mode)} (${modeString(inode.kind, r.mode)})`,
        ` Owner: uid ${r.uid}, gid ${r.gid}`,
        `  Size: ${r.size}`,
        ` Links: ${r.nlink}`,
        ` Inode: ${r.inode} (on-disk type ${inode.type}, reference 0x${inode.ref.toString(16)})`,
        `Modify: ${isoTime(r.mtime)} UTC (${r.mtime})`,
      ];
      if (r.rdev) lines.push(`Device: ${r.rdev.major}, ${r.rdev.minor}`);
      if (inode.kind === 'file') lines.push(`Blocks: ${inode.blockSizes.length}${inode.fragIndex !== 0xffffffff ? ` + tail in fragment ${inode.fragIndex}` : ''}`);
      for (const x of img.xattrs(inode)) lines.push(` Xattr: ${x.name}=${xattrValue(x.value)}`);
      await writeOut(lines.join('\n') + '\n');
    } finally {
      img.close();
    }
  },
};

export function register(program: Command): void {
  registerSpec(program, spec);
}
