/**
 * An opened SquashFS image: the superblock, its tables and caches, and the operations every upper
 * layer needs (inode by reference or number, directory listing and lookup, path resolution, file
 * reads, symlink targets, xattrs). It is the filesystem-tree level of the API; src/format is the
 * raw-table level underneath.
 *
 * Opening reads only the superblock, the compressor options and the small pointer arrays of the
 * lookup tables, so that opening is cheap (the store opens images lazily, on first access).
 */
import { SquashfsError } from '../errors';
import { lazyCodecById, type Codec } from '../codec';
import { u32 } from '../format/bytes';
import { parseCompressorOptions, type CompressorOptions } from '../format/compressor-options';
import { EXPORT_ENTRY_SIZE, FRAGMENT_ENTRY_SIZE, ID_ENTRY_SIZE, NO_INDEX, S_IFMT_BY_KIND, SUPERBLOCK_SIZE, XATTR_ID_ENTRY_SIZE, Flag, type FileKind } from '../format/constants';
import { compareBytes, parseListing, type DirEntry } from '../format/directory';
import { parseInode, refBlock, refOffset, inodeRef, type DirInode, type FileInode, type Inode, type InodeRef, type SymlinkInode } from '../format/inode';
import { u64 } from '../format/bytes';
import { parseSuperblock, type Superblock } from '../format/superblock';
import { XATTR_TABLE_HEADER, parseXattrTableHeader } from '../format/tables';
import { BufferSource, FileSource, OffsetSource, type ByteSource } from '../io/source';
import { LruCache } from '../io/lru';
import { DataReader } from './data';
import { LookupTable } from './lookup-table';
import { MetadataReader, type Region } from './metadata';
import { XattrReader, type Xattr } from './xattr';

export interface ImageOptions {
  /** Byte offset of the SquashFS inside the file (images embedded in a larger file). */
  offset?: number;
  metadataCacheBytes?: number;
  dataCacheBytes?: number;
  fragmentCacheBytes?: number;
  /** Parsed inodes kept (count). */
  inodeCacheEntries?: number;
  /** Directory listings kept, in bytes (roughly: names plus per-entry overhead). */
  dirCacheBytes?: number;
  /**
   * Data and fragment blocks in reused slots (see DataReader's `pooled`): for a server that only
   * uses readInto(); chunks() views then last only until the next read.
   */
  pooledBlocks?: boolean;
  /** readInto() leaves blocks it copies out whole uncached (see DataReader's passWholeBlocks). */
  passWholeBlocks?: boolean;
}

export interface Stat {
  kind: FileKind;
  /** Full st_mode: type bits and the 12 permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Files: bytes; symlinks: target length; directories: listing size + 3, as the kernel reports. */
  size: number;
  mtime: number;
  nlink: number;
  inodeNumber: number;
  rdev: number;
  major?: number;
  minor?: number;
}

const utf8 = new TextDecoder();
const MAX_SYMLINK_HOPS = 40;

export class Image {
  readonly superblock: Superblock;
  readonly compressorOptions: CompressorOptions | undefined;
  readonly codec: Codec;
  readonly meta: MetadataReader;
  readonly data: DataReader;
  private readonly inodeRegion: Region;
  private readonly dirRegion: Region;
  private readonly ids: LookupTable;
  private readonly exports: LookupTable | undefined;
  private readonly xattrReader: XattrReader | undefined;
  private readonly idValues: number[] = [];
  private readonly inodes: LruCache<number, Inode>;
  private readonly listings: LruCache<number, DirEntry[]>;
  private readonly inodeContext;

  static open(path: string, options: ImageOptions = {}): Image {
    const file = new FileSource(path);
    try {
      return new Image(options.offset ? new OffsetSource(file, options.offset) : file, options);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  static fromBuffer(buf: Uint8Array, options: ImageOptions = {}): Image {
    const src = new BufferSource(buf);
    return new Image(options.offset ? new OffsetSource(src, options.offset) : src, options);
  }

  constructor(
    readonly source: ByteSource,
    options: ImageOptions = {},
  ) {
    if (source.size < SUPERBLOCK_SIZE) throw new SquashfsError('BAD_MAGIC', `only ${source.size} bytes: too small for a SquashFS superblock`, 'superblock', 0);
    const sb = parseSuperblock(source.readAt(0, SUPERBLOCK_SIZE), source.size);
    this.superblock = sb;
    this.codec = lazyCodecById(sb.compressionId);
    this.meta = new MetadataReader(source, this.codec, options.metadataCacheBytes ?? 8 << 20);

    if (sb.flags & Flag.COMPRESSOR_OPTIONS) {
      const blk = this.meta.block(SUPERBLOCK_SIZE, { lo: SUPERBLOCK_SIZE, hi: sb.inodeTableStart, structure: 'compressor options' });
      this.compressorOptions = parseCompressorOptions(sb.compression, blk.data, SUPERBLOCK_SIZE);
    }

    // Lookup tables: their pointer arrays first, so every table's extent is known before any
    // metadata block is read.
    this.ids = new LookupTable(source, this.meta, 'id table', sb.idTableStart, sb.idCount, ID_ENTRY_SIZE, sb.bytesUsed);
    const fragments =
      sb.fragmentTableStart !== undefined && sb.fragmentCount > 0
        ? new LookupTable(source, this.meta, 'fragment table', sb.fragmentTableStart, sb.fragmentCount, FRAGMENT_ENTRY_SIZE, sb.bytesUsed)
        : undefined;
    this.exports = sb.exportTableStart !== undefined ? new LookupTable(source, this.meta, 'export table', sb.exportTableStart, sb.inodeCount, EXPORT_ENTRY_SIZE, sb.bytesUsed) : undefined;
    let xattrKvStart: number | undefined;
    let xattrIds: LookupTable | undefined;
    if (sb.xattrIdTableStart !== undefined) {
      if (sb.xattrIdTableStart + 16 > sb.bytesUsed) throw new SquashfsError('OUT_OF_BOUNDS', 'xattr id table header past bytes_used', 'xattr id table', sb.xattrIdTableStart);
      const hdr = parseXattrTableHeader(source.readAt(sb.xattrIdTableStart, XATTR_TABLE_HEADER.size), sb.xattrIdTableStart);
      if (!(hdr.xattrTableStart >= SUPERBLOCK_SIZE && hdr.xattrTableStart < sb.xattrIdTableStart))
        throw new SquashfsError('OUT_OF_BOUNDS', `xattr_table_start ${hdr.xattrTableStart} is not before the xattr id table`, 'xattr id table', sb.xattrIdTableStart);
      xattrKvStart = hdr.xattrTableStart;
      xattrIds = new LookupTable(source, this.meta, 'xattr id table', sb.xattrIdTableStart + XATTR_TABLE_HEADER.size, hdr.xattrIds, XATTR_ID_ENTRY_SIZE, sb.bytesUsed);
    }

    // Every known table start; each table ends where the next one (in image order) begins.
    const starts = [sb.inodeTableStart, sb.directoryTableStart, sb.idTableStart, this.ids.firstBlock, sb.bytesUsed];
    for (const t of [fragments, this.exports, xattrIds]) if (t) starts.push(t.start, t.firstBlock);
    if (xattrKvStart !== undefined) starts.push(xattrKvStart);
    const nextAfter = (p: number) => Math.min(...starts.filter((s) => s > p));
    this.inodeRegion = { lo: sb.inodeTableStart, hi: sb.directoryTableStart, structure: 'inode table' };
    this.dirRegion = { lo: sb.directoryTableStart, hi: nextAfter(sb.directoryTableStart), structure: 'directory table' };
    if (xattrIds && xattrKvStart !== undefined) {
      this.xattrReader = new XattrReader(this.meta, xattrIds, { lo: xattrKvStart, hi: nextAfter(xattrKvStart), structure: 'xattr table' });
    }

    this.data = new DataReader(source, this.codec, fragments, {
      blockSize: sb.blockSize,
      dataEnd: sb.inodeTableStart,
      dataCacheBytes: options.dataCacheBytes ?? 32 << 20,
      fragmentCacheBytes: options.fragmentCacheBytes ?? 8 << 20,
      pooled: options.pooledBlocks,
      passWholeBlocks: options.passWholeBlocks,
    });
    this.inodes = new LruCache(options.inodeCacheEntries ?? 16384, () => 1);
    this.listings = new LruCache(options.dirCacheBytes ?? 4 << 20, (l) => 64 + l.reduce((n, e) => n + e.nameBytes.length + 96, 0));
    this.inodeContext = {
      blockSize: sb.blockSize,
      inodeCount: sb.inodeCount,
      bytesUsed: sb.bytesUsed,
      // Each metadata block takes at least 3 bytes on disk (header + 1) and holds at most 8 KiB.
      maxBlockListBytes: Math.ceil((sb.directoryTableStart - sb.inodeTableStart) / 3) * 8192,
    };
  }

  close(): void {
    this.source.close();
  }

  // ---- inodes ---------------------------------------------------------------------------------

  /** The inode stored at `ref`. */
  inode(ref: InodeRef): Inode {
    const hit = this.inodes.get(ref);
    if (hit) return hit;
    const cur = this.meta.cursor(this.inodeRegion.lo + refBlock(ref), refOffset(ref), this.inodeRegion);
    const inode = parseInode(cur, ref, this.inodeContext);
    this.inodes.set(ref, inode);
    return inode;
  }

  root(): DirInode {
    const root = this.inode(this.superblock.rootInodeRef as InodeRef);
    if (root.kind !== 'dir') throw new SquashfsError('CORRUPT', `root inode is a ${root.kind}, not a directory`, 'superblock', 32);
    return root;
  }

  /** The inode a directory entry points at, checked against what the entry says it is. */
  entryInode(e: DirEntry): Inode {
    const inode = this.inode(e.inodeRef);
    const basic = inode.type > 7 ? inode.type - 7 : inode.type;
    if (basic !== e.type) throw new SquashfsError('CORRUPT', `entry "${e.name}" says type ${e.type}, its inode is type ${inode.type}`, 'directory table');
    if (inode.inodeNumber !== e.inodeNumber) throw new SquashfsError('CORRUPT', `entry "${e.name}" says inode ${e.inodeNumber}, its inode is ${inode.inodeNumber}`, 'directory table');
    return inode;
  }

  get exportable(): boolean {
    return this.exports !== undefined;
  }

  /** Inode by inode number, through the export table (NFS-style lookups). */
  inodeByNumber(n: number): Inode {
    if (!this.exports) throw new SquashfsError('UNSUPPORTED', 'the image has no export table (made with -no-exports)', 'export table');
    if (!(Number.isInteger(n) && n >= 1 && n <= this.superblock.inodeCount)) throw new SquashfsError('OUT_OF_BOUNDS', `inode number ${n} outside 1..${this.superblock.inodeCount}`, 'export table');
    const ref = u64(this.exports.entry(n - 1), 0, 'inode reference', 'export table', this.exports.start);
    if (ref >= 2 ** 48) throw new SquashfsError('CORRUPT', `export entry ${n} = ${ref} exceeds 48 bits`, 'export table');
    const inode = this.inode(ref as InodeRef);
    if (inode.inodeNumber !== n) throw new SquashfsError('CORRUPT', `export entry ${n} points at inode ${inode.inodeNumber}`, 'export table');
    return inode;
  }

  /** uid or gid value for an id table index. */
  id(index: number): number {
    const cached = this.idValues[index];
    if (cached !== undefined) return cached;
    if (index >= this.superblock.idCount) throw new SquashfsError('OUT_OF_BOUNDS', `id index ${index} ≥ id count ${this.superblock.idCount}`, 'id table');
    const v = u32(this.ids.entry(index), 0);
    this.idValues[index] = v;
    return v;
  }

  stat(inode: Inode): Stat {
    const st: Stat = {
      kind: inode.kind,
      mode: S_IFMT_BY_KIND[inode.kind] | inode.permissions,
      uid: this.id(inode.uidIndex),
      gid: this.id(inode.gidIndex),
      size: 0,
      mtime: inode.mtime,
      nlink: inode.nlink,
      inodeNumber: inode.inodeNumber,
      rdev: 0,
    };
    switch (inode.kind) {
      case 'file':
        st.size = inode.fileSize;
        break;
      case 'symlink':
        st.size = inode.target.length;
        break;
      case 'dir':
        st.size = inode.listingSize + 3;
        break;
      case 'blockdev':
      case 'chardev':
        st.rdev = inode.rdev;
        st.major = inode.major;
        st.minor = inode.minor;
        break;
    }
    return st;
  }

  // ---- directories ----------------------------------------------------------------------------

  private listingCursor(dir: DirInode, block: number, offset: number) {
    return this.meta.cursor(this.dirRegion.lo + block, offset, this.dirRegion);
  }

  /** All entries of a directory, in on-disk (sorted) order. The array is shared: do not mutate. */
  readdir(dir: Inode): DirEntry[] {
    if (dir.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `inode ${dir.inodeNumber} is a ${dir.kind}`, 'inode table');
    const hit = this.listings.get(dir.ref);
    if (hit) return hit;
    const entries: DirEntry[] = [];
    if (dir.listingSize > 0) {
      parseListing(this.listingCursor(dir, dir.dirBlock, dir.dirOffset), dir.listingSize, this.superblock, (e) => {
        entries.push(e);
      });
    }
    this.listings.set(dir.ref, entries);
    return entries;
  }

  /**
   * One name in a directory. A cached listing is binary-searched; otherwise a directory with an
   * index (large directories have one entry per 8 KiB of listing) is entered at the last indexed
   * run whose first name is ≤ the wanted one, and scanned only until the name is passed.
   */
  lookup(dir: Inode, name: string | Uint8Array): DirEntry | undefined {
    if (dir.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `inode ${dir.inodeNumber} is a ${dir.kind}`, 'inode table');
    const want = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
    const cached = this.listings.get(dir.ref);
    if (cached) return binarySearch(cached, want);
    if (dir.index.length === 0) return binarySearch(this.readdir(dir), want);

    let start = { block: dir.dirBlock, offset: dir.dirOffset, consumed: 0 };
    for (const ix of dir.index) {
      if (compareBytes(ix.name, want) > 0) break;
      if (ix.index >= dir.listingSize) throw new SquashfsError('OUT_OF_BOUNDS', `directory index offset ${ix.index} ≥ listing size ${dir.listingSize}`, 'directory table');
      start = { block: ix.start, offset: (dir.dirOffset + ix.index) % 8192, consumed: ix.index };
    }
    let found: DirEntry | undefined;
    parseListing(this.listingCursor(dir, start.block, start.offset), dir.listingSize - start.consumed, this.superblock, (e) => {
      const c = compareBytes(e.nameBytes, want);
      if (c === 0) found = e;
      return c < 0; // keep going only while before the wanted name
    });
    return found;
  }

  /**
   * Resolves a '/'-separated path from the root. `follow` resolves symlinks in the last component
   * too (intermediate ones always are); targets are resolved inside the image, an absolute target
   * from the image root, and never above it. Throws NOT_FOUND, NOT_A_DIRECTORY or LOOP.
   */
  resolve(path: string, follow = false): Inode {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    const stack: Inode[] = [this.root()];
    let hops = 0;
    while (parts.length) {
      const name = parts.shift()!;
      const cur = stack[stack.length - 1]!;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (cur.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${name}: parent is a ${cur.kind}`, 'path');
      const e = this.lookup(cur, name);
      if (!e) throw new SquashfsError('NOT_FOUND', `no such file or directory: ${path}`, 'path');
      const inode = this.entryInode(e);
      if (inode.kind === 'symlink' && (parts.length > 0 || follow)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new SquashfsError('LOOP', `too many levels of symbolic links: ${path}`, 'path');
        const target = utf8.decode(inode.target);
        if (target.startsWith('/')) stack.splice(1);
        parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      stack.push(inode);
    }
    return stack[stack.length - 1]!;
  }

  // ---- contents -------------------------------------------------------------------------------

  readlink(inode: Inode): string {
    if (inode.kind !== 'symlink') throw new SquashfsError('NOT_A_SYMLINK', `inode ${inode.inodeNumber} is a ${inode.kind}, not a symlink`, 'inode table');
    return utf8.decode((inode as SymlinkInode).target);
  }

  private file(inode: Inode): FileInode {
    if (inode.kind === 'dir') throw new SquashfsError('IS_A_DIRECTORY', `inode ${inode.inodeNumber} is a directory`, 'inode table');
    if (inode.kind !== 'file') throw new SquashfsError('NOT_A_FILE', `inode ${inode.inodeNumber} is a ${inode.kind}, not a regular file`, 'inode table');
    return inode;
  }

  /** Views of the file's bytes [offset, offset+length), zero-copy. */
  chunks(inode: Inode, offset = 0, length = Infinity): Generator<Uint8Array> {
    return this.data.chunks(this.file(inode), offset, length);
  }

  readInto(inode: Inode, offset: number, target: Uint8Array): number {
    return this.data.readInto(this.file(inode), offset, target);
  }

  /** The bytes [offset, offset+length) as one buffer (a view when they lie in one block). */
  read(inode: Inode, offset = 0, length = Infinity): Uint8Array {
    if (this.data.pooled) {
      // Pooled views do not survive the next block: copy each one out as it comes.
      const f = this.file(inode);
      const out = Buffer.allocUnsafe(Math.max(0, Math.min(f.fileSize, offset + length) - Math.max(0, offset)));
      return out.subarray(0, this.data.readInto(f, offset, out));
    }
    const parts = [...this.chunks(inode, offset, length)];
    if (parts.length === 1) return parts[0]!;
    return Buffer.concat(parts);
  }

  // ---- xattrs ---------------------------------------------------------------------------------

  get hasXattrs(): boolean {
    return this.xattrReader !== undefined && this.xattrReader.count > 0;
  }

  xattrs(inode: Inode): Xattr[] {
    if (inode.xattrIndex === NO_INDEX) return [];
    if (!this.xattrReader) throw new SquashfsError('CORRUPT', `inode ${inode.inodeNumber} has xattr index ${inode.xattrIndex} but the image has no xattr table`, 'inode table');
    if (inode.xattrIndex >= this.xattrReader.count) throw new SquashfsError('OUT_OF_BOUNDS', `xattr index ${inode.xattrIndex} ≥ xattr id count ${this.xattrReader.count}`, 'xattr id table');
    return this.xattrReader.read(inode.xattrIndex);
  }

  /** Cache statistics, for `stats` and benchmarks. */
  cacheStats() {
    const c = (l: { hits: number; misses: number; size: number; usedBytes: number }) => ({ hits: l.hits, misses: l.misses, entries: l.size, bytes: l.usedBytes });
    return { metadata: c(this.meta.cache), data: c(this.data.dataCache), fragments: c(this.data.fragmentCache), inodes: c(this.inodes), listings: c(this.listings) };
  }
}

function binarySearch(entries: DirEntry[], want: Uint8Array): DirEntry | undefined {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareBytes(entries[mid]!.nameBytes, want);
    if (c === 0) return entries[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

export { inodeRef };
export type { Inode, DirInode, FileInode, DirEntry, Xattr, InodeRef };
