/**
 * Metadata blocks, the writing side (format: "Metadata Blocks"). Bytes appended to a table are cut
 * into 8 KiB pieces; each piece is stored as a u16 header and either its compressed form (when that
 * is smaller) or the piece itself with bit 15 of the header set.
 *
 * A position in a table is (start of its block relative to the table, offset in the decompressed
 * block). Because every block before the current one is already sealed, the start of the block
 * being filled is known before it is sealed: inode references and directory positions can be taken
 * at append time.
 */
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from '../format/constants';

/** Compresses one block; null when the result would not be smaller (then it is stored as is). */
export type BlockCompressor = ((input: Uint8Array) => Uint8Array | null) | undefined;

export class MetadataWriter {
  private readonly sealed: Uint8Array[] = [];
  private sealedBytes = 0;
  private readonly cur = new Uint8Array(METADATA_SIZE);
  private fill = 0;

  constructor(private readonly compress: BlockCompressor) {}

  /** Where the next appended byte will be: block start (relative to the table) and offset. */
  position(): { block: number; offset: number } {
    return { block: this.sealedBytes, offset: this.fill };
  }

  /** Uncompressed bytes appended so far. */
  get length(): number {
    return this.sealed.length * METADATA_SIZE + this.fill;
  }

  /**
   * The start (relative to the table) of the block holding uncompressed byte `n` of the stream;
   * valid for every n up to the current position.
   */
  blockStartOf(n: number): number {
    const k = Math.floor(n / METADATA_SIZE);
    if (k === this.blockStarts.length) return this.sealedBytes;
    return this.blockStarts[k]!;
  }
  private readonly blockStarts: number[] = [];

  append(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const take = Math.min(bytes.length - at, METADATA_SIZE - this.fill);
      this.cur.set(bytes.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === METADATA_SIZE) this.seal();
    }
  }

  private seal(): void {
    if (this.fill === 0) return;
    const raw = this.cur.subarray(0, this.fill);
    const packed = this.compress ? this.compress(raw) : null;
    const body = packed && packed.length < raw.length ? packed : raw;
    const out = new Uint8Array(2 + body.length);
    const header = body === raw ? body.length | METADATA_UNCOMPRESSED : body.length;
    out[0] = header & 0xff;
    out[1] = (header >>> 8) & 0xff;
    out.set(body, 2);
    this.blockStarts.push(this.sealedBytes);
    this.sealed.push(out);
    this.sealedBytes += out.length;
    this.fill = 0;
  }

  /** Seals the last block and returns the table's bytes and the start of every block. */
  finish(): { bytes: Uint8Array; blockStarts: number[] } {
    this.seal();
    return { bytes: Buffer.concat(this.sealed), blockStarts: this.blockStarts.slice() };
  }
}
