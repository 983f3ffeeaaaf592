/**
 * A least-recently-used cache of decompressed blocks that lives in a fixed set of reused slots:
 * "pooled" blocks. Every slot is one block size long and cut from a larger slab allocated once;
 * evicting a block hands its slot to the next block instead of leaving a 128 KiB buffer for the
 * garbage collector. Compare LruCache, which keeps whatever buffer the codec returned.
 *
 * Why: a mount reading a large file through a 96 MiB cache of fresh buffers had each block's pages
 * faulted in anew (a 128 KiB allocation is an mmap in glibc), tens of MiB of evicted blocks waiting
 * for a full collection, and V8's external-memory accounting forcing those collections. With slots,
 * memory is faulted in once, up to the cache's size, and stays put.
 *
 * The price is the zero-copy promise: a view of a cached block is valid only until the next block
 * is put into the cache (it may take that very slot). Callers copy out at once (readInto does);
 * whoever needs to keep bytes across reads uses the garbage-collected LruCache instead.
 *
 * Recency is LruCache's own (its linked list, from key to slot index): the two caches share one
 * notion of "least recently used", and a hit relinks two pointers instead of re-inserting the key.
 */
import { LruCache } from './lru';

export class BlockCache {
  /** key → slot index, in LruCache's recency order; bounded by the slots, not by its own limit. */
  private readonly map = new LruCache<number, number>(Infinity, () => 1);
  /** Each slot's full block-size buffer, and the view of its filled part. */
  private readonly slots: Buffer[] = [];
  private readonly views: Uint8Array[] = [];
  private readonly freeSlots: number[] = [];
  /** Slots allocated together: one allocation per SLAB_BYTES instead of one per block. */
  private readonly slotsPerSlab: number;
  readonly capacity: number;
  private bytes = 0;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(
    readonly blockSize: number,
    readonly maxBytes: number,
  ) {
    // At least one slot: the block being read must live somewhere until the caller copies it.
    this.capacity = Math.max(1, Math.floor(maxBytes / blockSize));
    this.slotsPerSlab = Math.max(1, Math.min(this.capacity, Math.floor(SLAB_BYTES / blockSize)));
  }

  /** The cached block at `key` (a view valid until the next put), or undefined. */
  get(key: number): Uint8Array | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return this.views[slot];
  }

  /**
   * Caches the block at `key`: `fill` writes it into the slot it is given (blockSize bytes) and
   * returns its length. If fill throws, nothing is cached and the slot goes back to the free list.
   * Returns a view of the filled part, valid until the next put.
   */
  put(key: number, fill: (slot: Buffer) => number): Uint8Array {
    const old = this.map.delete(key);
    if (old !== undefined) this.release(old);
    const slot = this.takeSlot();
    let n: number;
    try {
      n = fill(this.slots[slot]!);
      if (!(n >= 0 && n <= this.blockSize)) throw new RangeError(`a block of ${n} bytes does not fit a ${this.blockSize}-byte slot`);
    } catch (e) {
      this.freeSlots.push(slot);
      throw e;
    }
    const view = this.slots[slot]!.subarray(0, n);
    this.views[slot] = view;
    this.map.set(key, slot);
    this.bytes += n;
    return view;
  }

  private takeSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if (this.slots.length < this.capacity) {
      const count = Math.min(this.slotsPerSlab, this.capacity - this.slots.length);
      // allocUnsafeSlow: a slab of its own, outside Node's small-buffer pool.
      const slab = Buffer.allocUnsafeSlow(count * this.blockSize);
      for (let i = count - 1; i >= 0; i--) {
        this.slots.push(slab.subarray(i * this.blockSize, (i + 1) * this.blockSize));
        this.views.push(EMPTY);
        if (i > 0) this.freeSlots.push(this.slots.length - 1);
      }
      return this.slots.length - 1;
    }
    // Full: the least recently used block gives up its slot.
    const [, slot] = this.map.evictOldest()!;
    this.evictions++;
    this.bytes -= this.views[slot]!.length;
    this.views[slot] = EMPTY;
    return slot;
  }

  private release(slot: number): void {
    this.bytes -= this.views[slot]!.length;
    this.views[slot] = EMPTY;
    this.freeSlots.push(slot);
  }

  get size(): number {
    return this.map.size;
  }
  /** Bytes of blocks held (what LruCache reports); allocatedBytes is what the slots take. */
  get usedBytes(): number {
    return this.bytes;
  }
  get allocatedBytes(): number {
    return this.slots.length * this.blockSize;
  }
  clear(): void {
    for (const slot of this.map.values()) this.release(slot);
    this.map.clear();
  }
}

const SLAB_BYTES = 1 << 20;
const EMPTY = new Uint8Array(0);
