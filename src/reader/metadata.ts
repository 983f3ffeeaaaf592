/**
 * Metadata blocks (format: "Metadata Blocks"): inodes, directory listings and the lookup tables
 * are stored as a chain of blocks, each a u16 header (bit 15: stored uncompressed; low 15 bits:
 * on-disk length) and at most 8 KiB of data once decompressed. A block's successor starts right
 * after it, so a position in a table is (block position, offset in the decompressed block).
 *
 * Every read is bounded to one table's byte range [lo, hi): a pointer or a chain that would walk out
 * of its table is an OUT_OF_BOUNDS error instead of bytes from a neighbouring structure.
 */
import { SquashfsError } from '../errors';
import { ByteCursor, u16 } from '../format/bytes';
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from '../format/constants';
import type { Codec } from '../codec';
import type { ByteSource } from '../io/source';
import { LruCache } from '../io/lru';

export interface MetaBlock {
  data: Uint8Array;
  /** Absolute position of the next block in the chain. */
  next: number;
}

/** The byte range of one table and its name for error messages. */
export interface Region {
  lo: number;
  hi: number;
  structure: string;
}

/**
 * Metadata is read ahead in windows of this many bytes: a walk of the inode or directory table
 * (extraction, `ls -R`, a store scan) then costs one positional read per window instead of two per
 * 8 KiB block (header, then body). The window is clipped to the table, so it never reads another
 * structure's bytes into a block.
 */
const READ_AHEAD = 64 << 10;

export class MetadataReader {
  readonly cache: LruCache<number, MetaBlock>;
  /** The last window read: bytes [winPos, winPos + win.length) of the source, within winRegion. */
  private win: Uint8Array = new Uint8Array(0);
  private winPos = 0;
  private winRegion: Region | undefined;
  constructor(
    private readonly source: ByteSource,
    private readonly codec: Codec,
    cacheBytes: number,
  ) {
    this.cache = new LruCache(cacheBytes, (b) => b.data.length + 64);
  }

  /** The decompressed block at absolute position `pos`, which must lie inside `region`. */
  block(pos: number, region: Region): MetaBlock {
    const cached = this.cache.get(pos);
    if (cached) return cached;
    if (!(pos >= region.lo && pos + 2 <= region.hi))
      throw new SquashfsError('OUT_OF_BOUNDS', `metadata block at ${pos} is outside the ${region.structure} (${region.lo}..${region.hi})`, region.structure, pos);
    const header = u16(this.window(pos, 2, region), 0);
    const size = header & ~METADATA_UNCOMPRESSED & 0xffff;
    const compressed = (header & METADATA_UNCOMPRESSED) === 0;
    if (!(size > 0 && size <= METADATA_SIZE)) throw new SquashfsError('CORRUPT', `metadata block length ${size} (valid: 1..8192)`, region.structure, pos);
    if (pos + 2 + size > region.hi) throw new SquashfsError('OUT_OF_BOUNDS', `metadata block at ${pos} (${size} bytes) runs past the ${region.structure} end ${region.hi}`, region.structure, pos);
    const raw = this.window(pos + 2, size, region);
    let data: Uint8Array;
    if (compressed) {
      try {
        data = this.codec.decompress(raw, METADATA_SIZE);
      } catch (e) {
        if (e instanceof SquashfsError) throw new SquashfsError(e.code, `metadata block: ${e.message}`, region.structure, pos, { cause: e });
        throw e;
      }
    } else {
      // Its own copy: a cached view would pin the whole read-ahead window (on a Buffer, slice()
      // is a view; the Uint8Array constructor copies).
      data = new Uint8Array(raw);
    }
    // A plain Uint8Array, not a Buffer (zlib's output is one): cursors cut a block into many small
    // views, one per name and inode header, and a Buffer's subarray() is Node's JavaScript making a
    // Buffer each time, a large part of `distri ls` of a few hundred entries at start-up, where
    // a typed array's subarray() is V8's own.
    if (Buffer.isBuffer(data)) data = new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (data.length <= 0) throw new SquashfsError('CORRUPT', 'metadata block decompressed to 0 bytes', region.structure, pos);
    const blk = { data, next: pos + 2 + size };
    this.cache.set(pos, blk);
    return blk;
  }

  /**
   * `length` bytes at `pos` (inside `region`), as a view of the read-ahead window; a miss reads a
   * new window from `pos`, up to READ_AHEAD bytes but not past the region's end. Callers copy or
   * decompress what they keep.
   */
  private window(pos: number, length: number, region: Region): Uint8Array {
    let at = pos - this.winPos;
    if (this.winRegion !== region || at < 0 || at + length > this.win.length) {
      this.win = this.source.readAt(pos, Math.max(length, Math.min(READ_AHEAD, region.hi - pos)));
      this.winPos = pos;
      this.winRegion = region;
      at = 0;
    }
    return this.win.subarray(at, at + length);
  }

  /** A cursor at (block `pos`, `offset`), confined to `region`. */
  cursor(pos: number, offset: number, region: Region): MetaCursor {
    return new MetaCursor(this, pos, offset, region);
  }
}

/**
 * Reads a byte stream that continues across chained metadata blocks. A request that fits in the
 * current block is returned as a view (no copy); one that straddles blocks is assembled into a new
 * buffer.
 */
export class MetaCursor implements ByteCursor {
  private blk: MetaBlock;
  constructor(
    private readonly reader: MetadataReader,
    private pos: number,
    private offset: number,
    private readonly region: Region,
  ) {
    this.blk = reader.block(pos, region);
    if (offset > this.blk.data.length) throw new SquashfsError('OUT_OF_BOUNDS', `offset ${offset} beyond the ${this.blk.data.length}-byte metadata block`, region.structure, pos);
  }

  private advance(): void {
    this.pos = this.blk.next;
    this.offset = 0;
    this.blk = this.reader.block(this.pos, this.region);
  }

  bytes(n: number): Uint8Array {
    if (this.offset === this.blk.data.length && n > 0) this.advance();
    const avail = this.blk.data.length - this.offset;
    if (n <= avail) {
      const v = this.blk.data.subarray(this.offset, this.offset + n);
      this.offset += n;
      return v;
    }
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      if (this.offset === this.blk.data.length) this.advance();
      const take = Math.min(n - done, this.blk.data.length - this.offset);
      out.set(this.blk.data.subarray(this.offset, this.offset + take), done);
      this.offset += take;
      done += take;
    }
    return out;
  }

  /** The metadata block position being read (for error messages). */
  position(): number {
    return this.pos;
  }

  /** Where the cursor stands, to resume later. */
  where(): { pos: number; offset: number } {
    return { pos: this.pos, offset: this.offset };
  }
}
