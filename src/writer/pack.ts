/**
 * Packing: a tree (scanned from a directory or described in code) → a SquashFS 4.0 image file.
 * The layout is mksquashfs's, table for table:
 *
 *   superblock | compressor options | data and fragment blocks | inode table | directory table |
 *   fragment table | export table | id table | xattr table | zero padding to 4 KiB
 *
 * Order of work, as in mksquashfs:
 *  1. Number the inodes: depth-first, entries sorted by name bytes, a directory before its
 *     entries, the root last (its parent is inode_count + 1). A hard-linked node is numbered where
 *     it is first met.
 *  2. Write the file data in that same order (data-writer.ts), streaming to the image file.
 *  3. Write the metadata depth-first *after* the children: a directory's listing needs its
 *     entries' inode references, and its inode needs the listing's position. uid/gid and xattr ids
 *     are numbered in this write order.
 *  4. The lookup tables, the superblock, the padding.
 *
 * Metadata stays in memory (a few bytes per inode); file contents never do. The output is a pure
 * function of the tree and the options (worker count does not matter), except the superblock's
 * creation time, which is now unless --mtime, --reproducible or mkfsTime fix it.
 */
import * as fs from 'node:fs';
import { SquashfsError } from '../errors';
import { codecByName, type CompressOptions } from '../codec';
import { Compressor, Flag, InodeType, MAX_BLOCK_SIZE, MAX_NAME_SIZE, MAX_SYMLINK_SIZE, MIN_BLOCK_SIZE, NO_INDEX, SUPERBLOCK_SIZE } from '../format/constants';
import { compareBytes } from '../format/directory';
import { inodeRef } from '../format/inode';
import { CompressPool } from './compress-pool';
import { DataWriter, type FileData } from './data-writer';
import { buildListing, sortEntries, writeListing, type ListingEntry } from './directory-writer';
import { encodeDeviceInode, encodeDirInode, encodeFileInode, encodeIpcInode, encodeSymlinkInode, type InodeHeader } from './encode-inode';
import { encodeCompressorOptions, encodeSuperblock } from './encode-superblock';
import { codecSettings } from './compressor-settings';
import { MetadataWriter, type BlockCompressor } from './metadata-writer';
import { prepareOutput } from './output';
import { IdTable, XattrTableWriter, encodeFragmentEntries, encodeU32s, encodeU64s, lookupTable } from './tables';
import { scanDirectoryAsync, type DirNode, type TreeNode } from './tree';

export type Compression = 'gzip' | 'lzo' | 'lz4' | 'xz' | 'zstd' | 'none';
export const COMPRESSIONS: Compression[] = ['gzip', 'lzo', 'lz4', 'xz', 'zstd', 'none'];

export interface PackOptions {
  /** Default gzip; 'none' writes every table and block uncompressed (as mksquashfs -noI -noD -noF -noX). */
  compression?: Compression;
  /** Compression level where the codec has one (gzip: 1..9, default 9; zstd: 1..22, default 15; as mksquashfs). */
  level?: number;
  /** xz's BCJ filters and dictionary size, lz4's high compression (mksquashfs -X…; compressor-settings.ts). */
  xzFilters?: string[];
  xzDictSize?: number;
  lz4HighCompression?: boolean;
  /** Power of two, 4 KiB..1 MiB; default 128 KiB. */
  blockSize?: number;
  /** 'default': files smaller than a block go to fragments; 'always': tails of all files too. */
  fragments?: 'default' | 'none' | 'always';
  /** Store extended attributes (default true). */
  xattrs?: boolean;
  /** Store duplicate files once (default true). */
  duplicates?: boolean;
  /** Write the export table (default true, as mksquashfs). */
  exports?: boolean;
  /** Paths to leave out, relative to the source directory; `*` and `?` globs per component (see tree.ts). */
  exclude?: string[];
  /** Every inode owned by 0:0. */
  allRoot?: boolean;
  /** Every inode's mtime and the superblock's creation time. */
  mtime?: number;
  /**
   * Reproducible creation time: $SOURCE_DATE_EPOCH when set (inode mtimes later than it are
   * clamped to it, as mksquashfs does), else the newest inode mtime.
   */
  reproducible?: boolean;
  /** Superblock creation time (overrides the above). */
  mkfsTime?: number;
  /** Compression workers (default: one per CPU). */
  workers?: number;
  /** Progress: bytes of file content packed and the total. */
  progress?: (done: number, total: number) => void;
  /** Progress of the directory scan that comes first: entries found so far. */
  scanProgress?: (entries: number) => void;
  /** Warnings (getfattr missing, skipped xattr prefixes); default: stderr. */
  warn?: (message: string) => void;
}

export interface PackResult {
  bytesUsed: number;
  /** File size: bytesUsed padded to 4 KiB. */
  fileSize: number;
  inodeCount: number;
  fragmentCount: number;
  idCount: number;
  xattrIdCount: number;
  compression: Compression;
  blockSize: number;
  flags: number;
}

const U32_MAX = 0xffffffff;
/** Codecs with levels, and their ranges (defaults: gzip 9, zstd 15, as mksquashfs). */
export const LEVELS: Partial<Record<Compression, [number, number]>> = { gzip: [1, 9], zstd: [1, 22] };
const BASIC_TYPE: Record<TreeNode['kind'], number> = {
  dir: InodeType.DIR,
  file: InodeType.FILE,
  symlink: InodeType.SYMLINK,
  blockdev: InodeType.BLKDEV,
  chardev: InodeType.CHRDEV,
  fifo: InodeType.FIFO,
  socket: InodeType.SOCKET,
};

/** What the passes learn about each node. */
interface NodeInfo {
  number: number;
  nlink: number;
  parent?: number;
  /** Sorted entries (directories). */
  children?: Array<{ name: Uint8Array; node: TreeNode }>;
  data?: FileData;
  ref?: { block: number; offset: number };
}

/**
 * Why a directory entry's name cannot be stored, or undefined. One pass over the bytes: this runs
 * for every entry of the tree, and Buffer#indexOf costs a native call each time.
 */
function badName(name: Uint8Array): string | undefined {
  const n = name.length;
  if (n === 0) return 'is empty';
  if (n > MAX_NAME_SIZE) return `is longer than ${MAX_NAME_SIZE} bytes`;
  for (let i = 0; i < n; i++) {
    const c = name[i]!;
    if (c === 0x2f) return 'contains /';
    if (c === 0) return 'contains NUL';
  }
  if (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e))) return 'is . or ..';
  return undefined;
}

function resolveOptions(o: PackOptions) {
  const compression = o.compression ?? 'gzip';
  if (!COMPRESSIONS.includes(compression)) throw new SquashfsError('UNSUPPORTED', `compression ${JSON.stringify(compression)} (choose one of ${COMPRESSIONS.join(', ')})`);
  const blockSize = o.blockSize ?? 131072;
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new SquashfsError('UNSUPPORTED', `block size ${blockSize}: must be a power of two from 4096 to 1048576`);
  }
  let compress: BlockCompressor;
  const settings = codecSettings(compression, blockSize, o);
  let codecOptions: CompressOptions = { level: o.level, blockSize };
  if (compression !== 'none') {
    const codec = codecByName(compression);
    if (!codec.compress) {
      const can = COMPRESSIONS.filter((c) => c === 'none' || codecByName(c).compress);
      throw new SquashfsError('UNSUPPORTED', `--comp ${compression}: this build can read ${compression} images but has no ${compression} compressor; use ${can.join(', ')}`);
    }
    const level = o.level;
    if (level !== undefined) {
      const range = LEVELS[compression];
      if (!range) throw new SquashfsError('UNSUPPORTED', `--comp ${compression} has no compression levels (gzip 1..9, zstd 1..22 have)`);
      if (!Number.isInteger(level) || level < range[0] || level > range[1]) throw new SquashfsError('UNSUPPORTED', `${compression} compression level ${level}: must be ${range[0]}..${range[1]}`);
    }
    const copts = (codecOptions = { level, blockSize, ...settings });
    compress = (input) => codec.compress!(input, copts);
  }
  for (const [k, v] of [
    ['mtime', o.mtime],
    ['mkfsTime', o.mkfsTime],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > U32_MAX)) throw new SquashfsError('UNSUPPORTED', `${k} ${v}: must be whole seconds in 0..${U32_MAX}`);
  }
  return { compression, blockSize, compress, codecOptions, fragments: o.fragments ?? 'default', xattrs: o.xattrs ?? true, duplicates: o.duplicates ?? true, exports: o.exports ?? true };
}

/**
 * Builds a SquashFS image at `imagePath` from a directory or an in-code tree. The image is written
 * beside `imagePath` and renamed onto it when complete (output.ts); an image inside the scanned
 * directory is left out of the tree.
 */
export async function pack(source: string | DirNode, imagePath: string, options: PackOptions = {}): Promise<PackResult> {
  const opt = resolveOptions(options);
  const output = prepareOutput(imagePath);
  // A scanned directory's xattrs are read by getfattr while the data is packed.
  const scanned =
    typeof source === 'string'
      ? scanDirectoryAsync(source, { xattrs: opt.xattrs, warn: options.warn, exclude: output.exclude, excludePaths: options.exclude, onScan: options.scanProgress })
      : undefined;
  const root = scanned ? scanned.root : (source as DirNode);
  if (root.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', 'the root of a tree must be a directory');

  // ---- 1. numbering ----
  const info = new Map<TreeNode, NodeInfo>();
  const order: TreeNode[] = []; // pre-order, unique nodes, root excluded
  const rootInfo: NodeInfo = { number: 0, nlink: 2 };
  info.set(root, rootInfo);
  let sdeClamp: number | undefined;
  if (options.reproducible && process.env.SOURCE_DATE_EPOCH !== undefined) {
    const v = Number(process.env.SOURCE_DATE_EPOCH);
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw new SquashfsError('UNSUPPORTED', `SOURCE_DATE_EPOCH=${process.env.SOURCE_DATE_EPOCH} is not whole seconds in 0..${U32_MAX}`);
    sdeClamp = v;
  }
  // Pre-order needs each directory's entries numbered before the next sibling's subtree: walk
  // with an explicit stack of (directory, next entry index). A frame knows its parent frame and
  // its name, so that a path is spelled out only for an error message.
  type Frame = { dir: DirNode; i: number; parent: Frame | undefined; name: Uint8Array | undefined };
  const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString();
  const pathOf = (f: Frame | undefined, name?: Uint8Array): string => {
    const parts: string[] = name ? [text(name)] : [];
    for (let q = f; q?.name; q = q.parent) parts.unshift(text(q.name));
    return parts.map((p) => `/${p}`).join('');
  };
  const walk: Frame[] = [];
  const enter = (dir: DirNode, parent: Frame | undefined, dirName: Uint8Array | undefined) => {
    const sorted = sortEntries(dir.entries);
    const frame: Frame = { dir, i: 0, parent, name: dirName };
    for (let i = 0; i < sorted.length; i++) {
      const name = sorted[i]!.name;
      const bad = badName(name) ?? (i > 0 && compareBytes(sorted[i - 1]!.name, name) === 0 ? 'appears twice' : undefined);
      if (bad) throw new SquashfsError('CORRUPT', `${pathOf(frame)}/: name ${JSON.stringify(text(name))} ${bad}`, 'tree');
    }
    info.get(dir)!.children = sorted;
    walk.push(frame);
  };
  enter(root, undefined, undefined);
  while (walk.length) {
    const f = walk[walk.length - 1]!;
    const children = info.get(f.dir)!.children!;
    if (f.i >= children.length) {
      walk.pop();
      continue;
    }
    const { name, node } = children[f.i++]!;
    const seen = info.get(node);
    if (seen) {
      if (node.kind === 'dir') throw new SquashfsError('LOOP', `${pathOf(f, name)}: a directory cannot appear twice in a tree (hard-linked directory or cycle)`, 'tree');
      seen.nlink++;
      continue;
    }
    const ni: NodeInfo = { number: order.length + 1, nlink: 1 };
    info.set(node, ni);
    order.push(node);
    if (node.kind === 'symlink' && (node.target.length === 0 || node.target.length > MAX_SYMLINK_SIZE)) {
      throw new SquashfsError('UNSUPPORTED', `${pathOf(f, name)}: symlink target of ${node.target.length} bytes (1..${MAX_SYMLINK_SIZE})`);
    }
    if (node.kind === 'dir') {
      ni.nlink = 2;
      ni.parent = info.get(f.dir)!.number; // fixed for the root below
      info.get(f.dir)!.nlink++;
      enter(node, f, name);
    }
  }
  const inodeCount = order.length + 1;
  rootInfo.number = inodeCount;
  for (const n of order) {
    const ni = info.get(n)!;
    if (n.kind === 'dir' && ni.parent === 0) ni.parent = inodeCount;
  }
  rootInfo.parent = inodeCount + 1;

  const mtimeOf = (n: TreeNode): number => {
    let t = options.mtime ?? n.mtime;
    if (sdeClamp !== undefined && t > sdeClamp) t = sdeClamp;
    if (!Number.isInteger(t) || t < 0 || t > U32_MAX) throw new SquashfsError('UNSUPPORTED', `mtime ${t} does not fit SquashFS's unsigned 32-bit seconds`);
    return t;
  };
  let mkfsTime = options.mkfsTime ?? options.mtime ?? sdeClamp;
  if (mkfsTime === undefined && options.reproducible) mkfsTime = [root, ...order].reduce((m, n) => Math.max(m, mtimeOf(n)), 0);
  if (mkfsTime === undefined) mkfsTime = Math.min(U32_MAX, Math.floor(Date.now() / 1000));

  // ---- 2. data ----
  const files = order.filter((n): n is Extract<TreeNode, { kind: 'file' }> => n.kind === 'file');
  const total = files.reduce((s, f) => s + f.content.size, 0);
  // Only a file whose size another file shares can be a duplicate.
  const bySize = new Map<number, number>();
  for (const f of files) bySize.set(f.content.size, (bySize.get(f.content.size) ?? 0) + 1);

  const copts = opt.compression === 'none' ? undefined : encodeCompressorOptions(opt.compression, options.level, opt.codecOptions);
  const fd = output.open();
  let pool: CompressPool | undefined;
  let dw: DataWriter | undefined;
  let complete = false;
  try {
    if (opt.compression !== 'none') pool = new CompressPool(opt.compression, { ...opt.codecOptions, blockSize: opt.blockSize }, options.workers);
    const dataStart = SUPERBLOCK_SIZE + (copts?.length ?? 0);
    const data = (dw = new DataWriter(fd, dataStart, {
      blockSize: opt.blockSize,
      fragments: opt.fragments,
      duplicates: opt.duplicates,
      pool,
      // lz4 compresses faster than one thread reads: its workers wait for the packing thread, so
      // they read their blocks themselves. Slower codecs keep the workers busy compressing.
      readInWorkers: opt.compression === 'lz4',
      progress: options.progress ? (done) => options.progress!(done, total) : undefined,
    }));
    for (const f of files) info.get(f)!.data = await data.addFile(f.content, (bySize.get(f.content.size) ?? 0) > 1);
    await data.finish();
    await pool?.close();
    pool = undefined;

    // ---- 3. metadata ----
    await scanned?.xattrs;
    const inodes = new MetadataWriter(opt.compress);
    const dirs = new MetadataWriter(opt.compress);
    const ids = new IdTable();
    const xattrTable = new XattrTableWriter(opt.compress);
    const post: TreeNode[] = postOrder(root, info);
    if (opt.xattrs) xattrTable.prepare(post.map((n) => n.xattrs));
    const exportRefs: number[] = new Array(inodeCount).fill(0);

    const writeInode = (n: TreeNode) => {
      const ni = info.get(n)!;
      const h: InodeHeader = {
        permissions: n.mode,
        uidIndex: ids.get(options.allRoot ? 0 : n.uid),
        gidIndex: ids.get(options.allRoot ? 0 : n.gid),
        mtime: mtimeOf(n),
        inodeNumber: ni.number,
      };
      const xattrIndex = opt.xattrs ? (xattrTable.add(n.xattrs) ?? NO_INDEX) : NO_INDEX;
      let bytes: Uint8Array;
      switch (n.kind) {
        case 'dir': {
          const entries: ListingEntry[] = ni.children!.map(({ name, node }) => {
            const ci = info.get(node)!;
            return { name, inodeBlock: ci.ref!.block, inodeOffset: ci.ref!.offset, inodeNumber: ci.number, basicType: BASIC_TYPE[node.kind] };
          });
          const listing = buildListing(entries);
          const at = writeListing(dirs, listing);
          bytes = encodeDirInode(h, { nlink: ni.nlink, listingSize: listing.bytes.length, dirBlock: at.block, dirOffset: at.offset, parentInode: ni.parent!, xattrIndex, index: at.index });
          break;
        }
        case 'file': {
          const d = ni.data!;
          bytes = encodeFileInode(h, {
            blocksStart: d.blocksStart,
            fileSize: n.content.size,
            sparse: d.sparse,
            nlink: ni.nlink,
            fragIndex: d.fragIndex,
            fragOffset: d.fragOffset,
            xattrIndex,
            blockWords: d.blockWords,
          });
          break;
        }
        case 'symlink':
          bytes = encodeSymlinkInode(h, ni.nlink, n.target, xattrIndex);
          break;
        case 'blockdev':
        case 'chardev':
          bytes = encodeDeviceInode(h, n.kind, ni.nlink, n.major, n.minor, xattrIndex);
          break;
        default:
          bytes = encodeIpcInode(h, n.kind, ni.nlink, xattrIndex);
      }
      const at = inodes.position();
      ni.ref = at;
      exportRefs[ni.number - 1] = inodeRef(at.block, at.offset);
      inodes.append(bytes);
    };
    for (const n of post) writeInode(n);

    // ---- 4. tables ----
    let pos = data.pos;
    const put = (bytes: Uint8Array) => {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off, pos + off);
      pos += bytes.length;
    };
    const inodeTableStart = pos;
    put(inodes.finish().bytes);
    const directoryTableStart = pos;
    put(dirs.finish().bytes);
    let fragmentTableStart: number | undefined;
    {
      const t = lookupTable(encodeFragmentEntries(data.fragmentTable), pos, opt.compress);
      put(t.bytes);
      fragmentTableStart = t.pointer;
    }
    let exportTableStart: number | undefined;
    if (opt.exports) {
      const t = lookupTable(encodeU64s(exportRefs), pos, opt.compress);
      put(t.bytes);
      exportTableStart = t.pointer;
    }
    const idTable = lookupTable(encodeU32s(ids.values), pos, opt.compress);
    put(idTable.bytes);
    let xattrIdTableStart: number | undefined;
    if (opt.xattrs && xattrTable.count > 0) {
      const t = xattrTable.finish(pos);
      put(t.bytes);
      xattrIdTableStart = t.pointer;
    }
    const bytesUsed = pos;

    let flags = (Flag.DUPLICATES * (opt.duplicates ? 1 : 0)) | (opt.exports ? Flag.EXPORTABLE : 0);
    if (opt.compression === 'none') flags |= Flag.UNCOMPRESSED_INODES | Flag.UNCOMPRESSED_DATA | Flag.UNCOMPRESSED_FRAGMENTS | Flag.UNCOMPRESSED_XATTRS;
    if (opt.fragments === 'none') flags |= Flag.NO_FRAGMENTS;
    if (opt.fragments === 'always') flags |= Flag.ALWAYS_FRAGMENTS;
    if (!opt.xattrs) flags |= Flag.NO_XATTRS;
    if (copts) flags |= Flag.COMPRESSOR_OPTIONS;
    const compressionId = opt.compression === 'none' ? Compressor.GZIP : codecByName(opt.compression).id;
    const rootRef = rootInfo.ref!;
    const sb = encodeSuperblock({
      inodeCount,
      modificationTime: mkfsTime,
      blockSize: opt.blockSize,
      fragmentCount: data.fragmentTable.length,
      compressionId,
      flags,
      idCount: ids.values.length,
      rootInodeRef: inodeRef(rootRef.block, rootRef.offset),
      bytesUsed,
      idTableStart: idTable.pointer,
      xattrIdTableStart,
      inodeTableStart,
      directoryTableStart,
      fragmentTableStart,
      exportTableStart,
    });
    pos = 0;
    put(sb);
    if (copts) put(copts);
    // mksquashfs pads the image to a multiple of 4 KiB (loop devices want whole sectors).
    const fileSize = Math.ceil(bytesUsed / 4096) * 4096;
    if (fileSize > bytesUsed) {
      pos = bytesUsed;
      put(new Uint8Array(fileSize - bytesUsed));
    }
    // Cut a replaced file to size (a device or /dev/null has no size to set).
    if (fs.fstatSync(fd).isFile()) fs.ftruncateSync(fd, fileSize);
    complete = true;
    return {
      bytesUsed,
      fileSize,
      inodeCount,
      fragmentCount: data.fragmentTable.length,
      idCount: ids.values.length,
      xattrIdCount: opt.xattrs ? xattrTable.count : 0,
      compression: opt.compression,
      blockSize: opt.blockSize,
      flags,
    };
  } finally {
    await pool?.close();
    // After a failure: files the stopped workers were to read from.
    dw?.closeFiles();
    // Data writes run in the thread pool: none may be left when the descriptor is closed.
    await dw?.settled();
    fs.closeSync(fd);
    if (complete) output.commit();
    else output.abort();
  }
}

/**
 * Inode write order: depth-first, entries sorted, a directory after all its entries (and their
 * subtrees), each node once (a hard link's inode is written at its first name).
 */
function postOrder(root: DirNode, info: Map<TreeNode, NodeInfo>): TreeNode[] {
  const out: TreeNode[] = [];
  const written = new Set<TreeNode>();
  const stack: Array<{ dir: DirNode; i: number }> = [{ dir: root, i: 0 }];
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    const children = info.get(f.dir)!.children!;
    if (f.i >= children.length) {
      stack.pop();
      out.push(f.dir);
      continue;
    }
    const { node } = children[f.i++]!;
    if (written.has(node)) continue;
    written.add(node);
    if (node.kind === 'dir') stack.push({ dir: node, i: 0 });
    else out.push(node);
  }
  return out;
}
