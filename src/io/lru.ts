/**
 * A least-recently-used cache bounded in bytes. It holds decompressed blocks; values are never
 * mutated or reused after insertion, so a caller may keep a subarray view of an evicted block
 * safely (the garbage collector frees it once no view remains). That is what makes zero-copy reads
 * safe without reference counts. (BlockCache is the pooled alternative, for readers that copy.)
 *
 * Recency is a doubly-linked list through the entries, so a hit only relinks two pointers: the
 * earlier version re-inserted the key into the Map on every hit and walked an iterator on every
 * insert, which a cold directory walk (one inode-cache miss and insert per entry, hits on the
 * same metadata blocks) paid for in hashing and garbage.
 */
interface Entry<K, V> {
  key: K;
  value: V;
  cost: number;
  /** Towards the least recently used end. */
  older: Entry<K, V> | undefined;
  newer: Entry<K, V> | undefined;
}

export class LruCache<K, V> {
  private readonly map = new Map<K, Entry<K, V>>();
  /** Least and most recently used. */
  private oldest: Entry<K, V> | undefined;
  private newest: Entry<K, V> | undefined;
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
    if (e !== this.newest) {
      this.unlink(e);
      this.linkNewest(e);
    }
    return e.value;
  }

  set(key: K, value: V): void {
    const cost = this.costOf(value);
    const old = this.map.get(key);
    if (old) {
      this.bytes -= old.cost;
      this.map.delete(key);
      this.unlink(old);
    }
    if (cost > this.maxBytes) return; // would evict everything and still not fit
    const e: Entry<K, V> = { key, value, cost, older: undefined, newer: undefined };
    this.map.set(key, e);
    this.linkNewest(e);
    this.bytes += cost;
    while (this.bytes > this.maxBytes && this.oldest) {
      const victim = this.oldest;
      this.unlink(victim);
      this.map.delete(victim.key);
      this.bytes -= victim.cost;
    }
  }

  /** Removes `key`; returns its value, or undefined when it was not cached. */
  delete(key: K): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    this.map.delete(key);
    this.unlink(e);
    this.bytes -= e.cost;
    return e.value;
  }

  /** Removes the least recently used entry and returns it (BlockCache reuses its slot). */
  evictOldest(): [K, V] | undefined {
    const e = this.oldest;
    if (e === undefined) return undefined;
    this.map.delete(e.key);
    this.unlink(e);
    this.bytes -= e.cost;
    return [e.key, e.value];
  }

  /** The cached values, least recently used first. */
  *values(): IterableIterator<V> {
    for (let e = this.oldest; e; e = e.newer) yield e.value;
  }

  /** get, or compute and insert. */
  getOrLoad(key: K, load: () => V): V {
    const v = this.get(key);
    if (v !== undefined) return v;
    const nv = load();
    this.set(key, nv);
    return nv;
  }

  private unlink(e: Entry<K, V>): void {
    if (e.older) e.older.newer = e.newer;
    else this.oldest = e.newer;
    if (e.newer) e.newer.older = e.older;
    else this.newest = e.older;
    e.older = e.newer = undefined;
  }

  private linkNewest(e: Entry<K, V>): void {
    e.older = this.newest;
    e.newer = undefined;
    if (this.newest) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  get size(): number {
    return this.map.size;
  }
  get usedBytes(): number {
    return this.bytes;
  }
  clear(): void {
    this.map.clear();
    this.oldest = this.newest = undefined;
    this.bytes = 0;
  }
}
