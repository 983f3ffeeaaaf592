/**
 * Crafting bad images from good ones. A seed is made by the real mksquashfs from a small tree built
 * in a temporary directory; with `-noI -noD -noF -noX` its metadata is stored uncompressed, so a
 * field can be patched in place (there are no checksums). Positions of inodes and directory entries
 * are found by reading the seed with the engine itself and then looking at the raw bytes, so the
 * tests say *which field* they break, not which offset.
 *
 * Limitation, checked: the tables of a seed must each fit in one 8 KiB metadata block (so that an
 * inode reference's offset is a plain offset into the file). Seeds here are a few entries big.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Image } from '../../src/reader/image';
import type { DirInode, Inode } from '../../src/format/inode';
import { INODE_HEADER, refBlock, refOffset } from '../../src/format/inode';
import { DIR_ENTRY, DIR_HEADER } from '../../src/format/directory';
import type { Layout as FormatLayout } from '../../src/format/layout';
import { SUPERBLOCK } from '../../src/format/superblock';
import { u16, u32 } from '../../src/format/bytes';

export const UNCOMPRESSED = ['-noI', '-noD', '-noF', '-noX'];

/** A temporary directory removed by `cleanup` (call it in a finally or t.after). */
export function tempDir(prefix = 'distri-test-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    dir,
    cleanup() {
      // rm -rf, not fs.rmSync: Node's recursive rm overflows the stack on a 2,000-deep tree. As
      // root it also removes the 0000-mode directories extraction tests leave.
      const r = spawnSync('rm', ['-rf', '--', dir]);
      if (r.status !== 0 || fs.existsSync(dir)) {
        spawnSync('chmod', ['-R', 'u+rwx', dir]);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function sh(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`shell failed (${r.status}): ${script.slice(0, 200)}\n${r.stderr}`);
}

export function mksquashfs(src: string, out: string, args: string[] = []): Buffer {
  const r = spawnSync('mksquashfs', [src, out, '-noappend', '-no-progress', '-quiet', '-mkfs-time', '0', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`mksquashfs failed: ${r.stderr}${r.stdout}`);
  return fs.readFileSync(out);
}

// Field access and offsets come from the format modules (one layout per structure, shared with
// the reader and the writer), so a patched field is the field the decoder reads.
export { u16, u32, writeU16 as w16, writeU32 as w32, writeU64 as w64, u64big as r64 } from '../../src/format/bytes';

/** Superblock field offsets (format: "Superblock"), from its layout. */
export const SB = SUPERBLOCK.at;

/** Offsets from an inode's first byte of the fields of one inode type: the header, then the body's. */
export function inodeFields<K extends string>(body: FormatLayout<K>): { readonly [k in K | keyof typeof INODE_HEADER.at]: number } & { readonly end: number } {
  const out: Record<string, number> = { ...INODE_HEADER.at };
  for (const f of body.fields) out[f.name] = INODE_HEADER.size + f.at;
  out.end = INODE_HEADER.size + body.size;
  return out as never;
}

export interface EntryAt {
  name: Buffer;
  /** Image offset of the run's 12-byte header. */
  header: number;
  /** Image offset of the entry (DIR_ENTRY: offset, inode delta, type, name_size-1), then the name. */
  entry: number;
  name_at: number;
}

/** Layout of an uncompressed seed: where each inode and directory entry is in the file. */
export class Layout {
  readonly img: Image;
  constructor(readonly buf: Buffer) {
    this.img = Image.fromBuffer(buf);
    const sb = this.img.superblock;
    if (!(u16(buf, sb.inodeTableStart) & 0x8000) || !(u16(buf, sb.directoryTableStart) & 0x8000)) {
      throw new Error('seed metadata is compressed: build it with -noI -noD -noF -noX');
    }
    if (sb.directoryTableStart - sb.inodeTableStart > 8194) throw new Error('seed inode table spans more than one metadata block: use a smaller tree');
  }

  /** The inode at a path ('' is the root), not following a final symlink. */
  inode(p: string): Inode {
    return p === '' ? this.img.root() : this.img.resolve(p, false);
  }

  /** Image offset of the first byte of an inode. */
  inodeAt(inode: Inode | string): number {
    const i = typeof inode === 'string' ? this.inode(inode) : inode;
    const block = refBlock(i.ref);
    if (block !== 0) throw new Error('seed inode outside the first metadata block');
    return this.img.superblock.inodeTableStart + 2 + refOffset(i.ref);
  }

  /** Every entry of a directory's listing with the image offsets of its parts. */
  entries(dirPath: string): EntryAt[] {
    const dir = this.inode(dirPath) as DirInode;
    if (dir.kind !== 'dir') throw new Error(`${dirPath} is not a directory`);
    if (dir.dirBlock !== 0) throw new Error('seed directory outside the first metadata block');
    const first = this.img.superblock.directoryTableStart;
    if (dir.dirOffset + dir.listingSize > (u16(this.buf, first) & 0x7fff)) throw new Error('seed directory listing crosses a metadata block');
    let at = first + 2 + dir.dirOffset;
    const end = at + dir.listingSize;
    const out: EntryAt[] = [];
    while (at < end) {
      const header = at;
      const count = u32(this.buf, at + DIR_HEADER.at.count) + 1;
      at += DIR_HEADER.size;
      for (let i = 0; i < count; i++) {
        const size = u16(this.buf, at + DIR_ENTRY.at.nameSize) + 1;
        out.push({ name: this.buf.subarray(at + DIR_ENTRY.size, at + DIR_ENTRY.size + size), header, entry: at, name_at: at + DIR_ENTRY.size });
        at += DIR_ENTRY.size + size;
      }
    }
    return out;
  }

  entry(dirPath: string, name: string): EntryAt {
    const e = this.entries(dirPath).find((x) => x.name.toString('latin1') === name);
    if (!e) throw new Error(`no entry ${name} in ${dirPath || '/'}`);
    return e;
  }

  close(): void {
    this.img.close();
  }
}

/** Returns a copy of the seed with entry `name` of `dir` renamed to `to` (same length). */
export function renameEntry(seed: Buffer, dir: string, name: string, to: Buffer | string): Buffer {
  const toBuf = typeof to === 'string' ? Buffer.from(to, 'latin1') : to;
  if (toBuf.length !== name.length) throw new Error('renameEntry keeps the length: the name size field is not changed');
  const out = Buffer.from(seed);
  const l = new Layout(seed);
  try {
    const e = l.entry(dir, name);
    toBuf.copy(out, e.name_at);
  } finally {
    l.close();
  }
  return out;
}
