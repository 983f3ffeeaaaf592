/**
 * A least-recently-used cache bounded in bytes. It holds decompressed blocks; values are never
 * mutated or reused after insertion, so a caller may keep a subarray view of an evicted block
 * safely (the garbage collector frees it once no view remains). That is what makes zero-copy reads
 * safe without reference counts.
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, { value: V; cost: number }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    readonly maxBytes: number,
    private readonly costOf: (v: V) => number,
  ) {}

  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Map iteration order is insertion order: re-inserting moves the key to the young end.
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  set(key: K, value: V): void {
    const cost = this.costOf(value);
    const old = this.map.get(key);
    if (old) {
      this.bytes -= old.cost;
      this.map.delete(key);
    }
    if (cost > this.maxBytes) return; // would evict everything and still not fit
    this.map.set(key, { value, cost });
    this.bytes += cost;
    for (const [k, e] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= e.cost;
    }
  }

  /** get, or compute and insert. */
  getOrLoad(key: K, load: () => V): V {
    const v = this.get(key);
    if (v !== undefined) return v;
    const nv = load();
    this.set(key, nv);
    return nv;
  }

  get size(): number {
    return this.map.size;
  }
  get usedBytes(): number {
    return this.bytes;
  }
  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}
