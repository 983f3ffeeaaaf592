/** `distri info IMAGE`: the superblock summary, like `unsquashfs -s`. */
import { Command } from 'commander';
import { flagNames } from '../../format/superblock';
import { action, offsetOption, openImage } from '../common';
import { humanBytes, isoTime } from '../format';

export function register(program: Command): void {
  program
    .command('info')
    .description('show the superblock of a SquashFS image: compressor, block size, counts, flags, tables')
    .argument('<image>', 'a .squashfs file')
    .addOption(offsetOption())
    .option('--json', 'print one JSON object (for scripts)')
    .addHelpText('after', '\nExamples:\n  distri info fixtures/demo.sqfs\n  distri info --json pkg.squashfs | jq .compression')
    .action(
      action(
        (image: string) => image,
        (image: string, opts: { offset: number; json?: boolean }) => {
          const img = openImage(image, opts.offset);
          try {
            const sb = img.superblock;
            const summary = {
              version: `${sb.versionMajor}.${sb.versionMinor}`,
              compression: sb.compression,
              compressorOptions: img.compressorOptions ?? null,
              blockSize: sb.blockSize,
              bytesUsed: sb.bytesUsed,
              modificationTime: sb.modificationTime,
              inodeCount: sb.inodeCount,
              fragmentCount: sb.fragmentCount,
              idCount: sb.idCount,
              flags: flagNames(sb.flags),
              exportable: img.exportable,
              xattrs: img.hasXattrs,
              tables: {
                inodeTable: sb.inodeTableStart,
                directoryTable: sb.directoryTableStart,
                fragmentTable: sb.fragmentTableStart ?? null,
                exportTable: sb.exportTableStart ?? null,
                idTable: sb.idTableStart,
                xattrIdTable: sb.xattrIdTableStart ?? null,
              },
            };
            if (opts.json) {
              process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
              return;
            }
            const rows: Array<[string, string]> = [
              ['Format', `SquashFS ${summary.version}`],
              ['Compression', sb.compression + (img.compressorOptions ? ` ${describeOptions(img.compressorOptions)}` : '')],
              ['Block size', `${sb.blockSize} (${humanBytes(sb.blockSize)})`],
              ['Bytes used', `${sb.bytesUsed} (${humanBytes(sb.bytesUsed)})`],
              ['Created', `${isoTime(sb.modificationTime)} UTC`],
              ['Inodes', String(sb.inodeCount)],
              ['Fragments', String(sb.fragmentCount)],
              ['Ids (uid/gid)', String(sb.idCount)],
              ['Flags', summary.flags.join(' ') || '(none)'],
              ['Export table', img.exportable ? 'yes' : 'no'],
              ['Xattrs', img.hasXattrs ? 'yes' : 'no'],
            ];
            const w = Math.max(...rows.map(([k]) => k.length));
            for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
          } finally {
            img.close();
          }
        },
      ),
    );
}

function describeOptions(o: object): string {
  return Object.entries(o)
    .filter(([k]) => k !== 'compression')
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') || 'none' : v}`)
    .join(' ');
}
