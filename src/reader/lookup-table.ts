/**
 * The four lookup tables (fragment, export, id, xattr id) share one shape: fixed-size entries in
 * metadata blocks, located through an array of u64 block pointers. The pointer array is read when
 * the image is opened (it is tiny: 8 bytes per 8 KiB of entries) after checking that the entry count
 * it implies fits in the image, so a count of 0xFFFFFFFF in a 4 KiB image allocates nothing.
 */
import { SquashfsError } from '../errors';
import { u64 } from '../format/bytes';
import { METADATA_SIZE, SUPERBLOCK_SIZE } from '../format/constants';
import type { ByteSource } from '../io/source';
import type { MetadataReader, Region } from './metadata';

export class LookupTable {
  readonly pointers: number[];
  private readonly perBlock: number;

  constructor(
    source: ByteSource,
    private readonly meta: MetadataReader,
    readonly structure: string,
    /** Position of the u64 pointer array. */
    readonly start: number,
    readonly count: number,
    private readonly entrySize: number,
    bytesUsed: number,
  ) {
    this.perBlock = METADATA_SIZE / entrySize;
    const blocks = Math.ceil(count / this.perBlock);
    if (start + blocks * 8 > bytesUsed) throw new SquashfsError('OUT_OF_BOUNDS', `${count} entries need ${blocks} block pointers at ${start}, past bytes_used ${bytesUsed}`, structure, start);
    const raw = source.readAt(start, blocks * 8);
    this.pointers = [];
    for (let i = 0; i < blocks; i++) {
      const p = u64(raw, i * 8, 'block pointer', structure, start + i * 8);
      // The table's metadata blocks are written before its pointer array.
      if (!(p >= SUPERBLOCK_SIZE && p + 2 <= start))
        throw new SquashfsError('OUT_OF_BOUNDS', `block pointer ${i} = ${p} is not between the superblock and the table (${start})`, structure, start + i * 8);
      this.pointers.push(p);
    }
  }

  /** The lowest position any of this table's blocks occupies (the table's true start). */
  get firstBlock(): number {
    return this.pointers.reduce((lo, p) => Math.min(lo, p), this.start); // not Math.min(...): 130k+ pointers overflow the stack
  }

  /** The bytes of entry `i` (a view; valid while the caller holds it). */
  entry(i: number): Uint8Array {
    if (!(Number.isInteger(i) && i >= 0 && i < this.count)) throw new SquashfsError('OUT_OF_BOUNDS', `index ${i} ≥ entry count ${this.count}`, this.structure);
    const blockNo = Math.floor(i / this.perBlock);
    const ptr = this.pointers[blockNo]!;
    const region: Region = { lo: SUPERBLOCK_SIZE, hi: this.start, structure: this.structure };
    const blk = this.meta.block(ptr, region);
    const off = (i % this.perBlock) * this.entrySize;
    if (off + this.entrySize > blk.data.length) throw new SquashfsError('CORRUPT', `entry ${i} lies past the end of its ${blk.data.length}-byte metadata block`, this.structure, ptr);
    return blk.data.subarray(off, off + this.entrySize);
  }
}
