/** `distri info IMAGE`: the superblock summary, like `unsquashfs -s`. */
import type { Command } from 'commander';
import type { CompressorOptions } from '../../format/compressor-options';
import { Flag, flagNames } from '../../format/superblock';
import { openImage, writeOut } from '../common';
import { humanBytes, isoTime } from '../format';
import { IMAGE, OFFSET, register as registerSpec, type CommandSpec } from '../spec';

export const spec: CommandSpec = {
  name: 'info',
  description: 'show the superblock of a SquashFS image: compressor, block size, counts, flags, tables',
  args: [IMAGE],
  options: [OFFSET, { flags: '--json', description: 'print one JSON object (for scripts)' }],
  helpAfter: '\nExamples:\n  distri info fixtures/demo.sqfs\n  distri info --json pkg.squashfs | jq .compression',
  context: (image: string) => image,
  run: async (image: string, opts: { offset: number; json?: boolean }) => {
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
        await writeOut(JSON.stringify(summary, null, 2) + '\n');
        return;
      }
      const rows: Array<[string, string]> = [
        ['Format', `SquashFS ${summary.version}`],
        ['Compression', compressionWords(sb.compression, img.compressorOptions, sb.flags, img.hasXattrs)],
        ['Block size', `${sb.blockSize} (${humanBytes(sb.blockSize)})`],
        ['Bytes used', `${sb.bytesUsed} (${humanBytes(sb.bytesUsed)})`],
        ['Created', `${isoTime(sb.modificationTime)} UTC`],
        ['Inodes', String(sb.inodeCount)],
        ['Fragments', String(sb.fragmentCount)],
        ['Ids (uid/gid)', String(sb.idCount)],
        ['Flags', summary.flags.map((f) => f.replace(/_/g, ' ')).join(', ') || '(none)'],
        ['Export table', img.exportable ? 'yes' : 'no'],
        ['Xattrs', img.hasXattrs ? 'yes' : 'no'],
        ['Tables at', tableOffsets(summary.tables)],
      ];
      const w = Math.max(...rows.map(([k]) => k.length));
      await writeOut(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join(''));
    } finally {
      img.close();
    }
  },
};

export function register(program: Command): void {
  registerSpec(program, spec);
}

/** The compressor options in words: "level 9, window 15 bits", "dictionary 128.0 KiB, filters x86". */
export function describeOptions(o: CompressorOptions): string {
  const list = (a: string[]) => (a.length ? a.join(', ') : 'none');
  if ('raw' in o) return `${o.raw.length} bytes of options this version does not decode`;
  switch (o.compression) {
    case 'gzip':
      return `level ${o.compressionLevel}, window ${o.windowSize} bits, strategies: ${list(o.strategies)}`;
    case 'xz':
      return `dictionary ${humanBytes(o.dictionarySize)}, filters: ${list(o.filters)}`;
    case 'lz4':
      return `format version ${o.version}${o.highCompression ? ', high compression' : ''}`;
    case 'zstd':
      return `level ${o.compressionLevel}`;
    case 'lzo':
      return `${o.algorithm}, level ${o.compressionLevel}`;
    default:
      return '';
  }
}

/** The compressor and its options, or "none" when the flags say nothing is compressed. */
export function compressionWords(name: string, options: CompressorOptions | undefined, flags: number, hasXattrs: boolean): string {
  const note = uncompressedNote(flags, hasXattrs);
  if (note === 'all') return `none: everything is stored uncompressed (the superblock names ${name}, as it must name one)`;
  return name + (options ? ` (${describeOptions(options)})` : '') + (note ? `; stored uncompressed: ${note}` : '');
}

/**
 * A note when the superblock flags say the compressor is never used: the superblock always names
 * one (gzip for mksquashfs -noI -noD -noF -noX and for distri pack --comp none).
 */
export function uncompressedNote(flags: number, hasXattrs: boolean): string {
  const parts: Array<[number, string]> = [
    [Flag.UNCOMPRESSED_INODES, 'inodes and directories'],
    [Flag.UNCOMPRESSED_DATA, 'data blocks'],
    [Flag.UNCOMPRESSED_FRAGMENTS, 'fragments'],
    ...(hasXattrs ? ([[Flag.UNCOMPRESSED_XATTRS, 'xattrs']] as Array<[number, string]>) : []),
  ];
  const stored = parts.filter(([bit]) => flags & bit).map(([, what]) => what);
  if (stored.length === 0) return '';
  if (stored.length === parts.length) return 'all';
  return stored.join(', ');
}

function tableOffsets(t: Record<string, number | null>): string {
  const words: Record<string, string> = { inodeTable: 'inodes', directoryTable: 'directories', fragmentTable: 'fragments', exportTable: 'export', idTable: 'ids', xattrIdTable: 'xattrs' };
  return Object.entries(t)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${words[k] ?? k} 0x${v!.toString(16)}`)
    .join(', ');
}
