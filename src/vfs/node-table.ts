/**
 * Node ids for a NodeFs whose nodes are not numbered by nature (the store's virtual entries, files
 * of many images under one mount): a key names what a node is, the table hands out one stable id
 * per key while the kernel holds references to it, and drops the pair once FORGET has taken every
 * reference back. Ids are never reused within a mount (a counter up to 2^53), so a late request
 * for a forgotten id finds nothing instead of another file.
 */
import { SquashfsError } from '../errors';
import { ROOT_NODE } from './node-fs';

interface Slot<K, V> {
  readonly key: K;
  value: V;
  refs: number;
}

export class NodeTable<K, V> {
  private readonly byKey = new Map<K, number>();
  private readonly slots = new Map<number, Slot<K, V>>();
  private next = ROOT_NODE + 1;

  /** Nodes with references now. */
  get size(): number {
    return this.slots.size;
  }

  /**
   * The node for `key`, adding one reference; `value` is stored when the node is new and replaces
   * the old one otherwise (the same key can carry fresher data, e.g. after a rescan).
   */
  acquire(key: K, value: V): number {
    const id = this.byKey.get(key);
    if (id !== undefined) {
      const slot = this.slots.get(id)!;
      slot.refs++;
      slot.value = value;
      return id;
    }
    const fresh = this.next++;
    this.byKey.set(key, fresh);
    this.slots.set(fresh, { key, value, refs: 1 });
    return fresh;
  }

  /** The value of a node; BAD_HANDLE when the kernel names a node it was never given or forgot. */
  get(node: number): V {
    const slot = this.slots.get(node);
    if (!slot) throw new SquashfsError('BAD_HANDLE', `node ${node} is not known (never looked up, or forgotten)`, 'node table');
    return slot.value;
  }

  /** The key of a node, or undefined. */
  keyOf(node: number): K | undefined {
    return this.slots.get(node)?.key;
  }

  /** The node of a key, when the kernel holds it. */
  nodeOf(key: K): number | undefined {
    return this.byKey.get(key);
  }

  /** Takes `n` references back; the node goes when none is left. */
  forget(node: number, n: number): void {
    const slot = this.slots.get(node);
    if (!slot) return;
    slot.refs -= n;
    if (slot.refs <= 0) {
      this.slots.delete(node);
      this.byKey.delete(slot.key);
    }
  }

  /** Every node with its key and value (for a rescan that compares old and new). */
  *entries(): IterableIterator<[number, K, V]> {
    for (const [id, slot] of this.slots) yield [id, slot.key, slot.value];
  }
}
