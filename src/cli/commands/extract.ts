/** `distri extract IMAGE -d DEST [PATH…]`: write an image's tree to a directory, like `unsquashfs -d`. */
import { Command } from 'commander';
import { extract, type ExtractCounts, type ExtractReport } from '../../extract/extract';
import { action, offsetOption, openImage } from '../common';
import { humanBytes } from '../format';

interface Opts {
  dest: string;
  force?: boolean;
  xattrs: boolean;
  offset: number;
}

const HELP = `
The destination:
  - is created if missing (its parent must exist);
  - if it exists it must be an empty directory, unless --force is given: then the image is
    extracted into it, existing directories are merged into, and other entries in the way are
    replaced (unlinked, never followed); a symlink standing where the image has a directory or a
    regular file is refused even with --force;
  - may not be, nor lie below, a symbolic link (pass the real path instead).
Nothing is ever written outside the destination: unsafe names, duplicate names and anything that
would write through a symlink stop the extraction with an error and exit status 1.
A failure part-way (a corrupt block) names the file; that file is removed, and the directories
created so far get their final modes. A destination created by this run and left empty (a PATH
that is not in the image) is removed.

As root the result is what the kernel shows when it mounts the image: owners, modes (setuid
included), mtimes, device nodes, fifos, sockets, hard links and xattrs (written with setfattr,
package "attr"). As another user, owners, device nodes, setuid/setgid bits and trusted./security.
xattrs are skipped, and a line on stderr says how many.

PATH arguments extract only those paths (and the directories leading to them), like unsquashfs;
they are matched name by name from the image root and must be UTF-8.

Examples:
  distri extract pkg.squashfs -d /tmp/pkg
  distri extract pkg.squashfs -d /tmp/pkg out/bin out/lib/libfoo.so
  distri extract --force --offset 193728 app.AppImage -d ./app`;

export function register(program: Command): void {
  program
    .command('extract')
    .description('extract the files of an image into a directory, with owners, modes, times, links and xattrs (like unsquashfs -d)')
    .argument('<image>', 'a .squashfs file')
    .argument('[paths...]', 'only these paths inside the image')
    .option('-d, --dest <dir>', 'destination directory', 'squashfs-root')
    .option('-f, --force', 'extract into an existing non-empty directory, replacing entries that are in the way')
    .option('--no-xattrs', 'do not restore extended attributes')
    .addOption(offsetOption())
    .addHelpText('after', HELP)
    .action(
      action(
        (image: string) => image,
        async (image: string, paths: string[], opts: Opts) => {
          const img = openImage(image, opts.offset);
          const progress = process.stderr.isTTY ? new Progress() : undefined;
          let report: ExtractReport;
          try {
            report = await extract(img, opts.dest, {
              force: opts.force,
              xattrs: opts.xattrs,
              paths,
              onProgress: progress && ((c) => progress.update(c)),
            });
          } finally {
            progress?.clear();
            img.close();
          }
          const c = report.counts;
          if (progress) {
            process.stderr.write(
              `${c.files} files (${humanBytes(c.bytes)}), ${c.dirs} directories, ${c.symlinks} symlinks, ${c.hardlinks} hard links, ` +
                `${c.devices} devices, ${c.fifos} fifos, ${c.sockets} sockets, ${c.xattrs} xattrs in ${progress.elapsed()}\n`,
            );
          }
          const s = report.skipped;
          if (!report.root) {
            const parts = [
              s.owners && `${s.owners} entries keep your ownership`,
              s.devices && `${s.devices} device nodes skipped`,
              s.setidBits && `setuid/setgid bits dropped on ${s.setidBits} entries`,
              s.privilegedXattrs && `${s.privilegedXattrs} trusted./security. xattrs skipped`,
            ].filter(Boolean);
            if (parts.length) process.stderr.write(`distri: ${image}: not running as root: ${parts.join(', ')}\n`);
          }
          if (s.userXattrsOnSpecial) {
            process.stderr.write(`distri: ${image}: ${s.userXattrsOnSpecial} user.* xattrs on symlinks or special files skipped (Linux allows them only on files and directories)\n`);
          }
          if (report.xattrErrors.length) {
            const shown = report.xattrErrors
              .slice(0, 5)
              .map((l) => `  ${l}\n`)
              .join('');
            const more = report.xattrErrors.length > 5 ? `  … and ${report.xattrErrors.length - 5} more\n` : '';
            process.stderr.write(`distri: ${image}: some xattrs could not be set:\n${shown}${more}`);
            process.exitCode = 1;
          }
        },
      ),
    );
}

/** One `\r` status line on a terminal, at most ten times a second. */
class Progress {
  private readonly start = Date.now();
  private last = 0;
  private shown = false;

  update(c: Readonly<ExtractCounts>): void {
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const secs = Math.max((now - this.start) / 1000, 0.001);
    process.stderr.write(`\r\x1b[K${c.files} files, ${humanBytes(c.bytes)}, ${humanBytes(c.bytes / secs)}/s`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }

  elapsed(): string {
    return `${((Date.now() - this.start) / 1000).toFixed(1)} s`;
  }
}
