/**
 * A bounded LRU set of prefix keys on typed arrays (the CPU tier of {@link KvManager}): a
 * {@link KeyTable} from key to slot plus an index-based doubly linked list; O(1) per operation,
 * no allocation.
 */
import { KeyTable } from './key-table.js';

/** LRU set of integer keys with a fixed capacity. */
export class KeyLru {
  readonly capacity: number;
  private readonly index: KeyTable;
  private readonly keys: Float64Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  private freeTop: number;
  private readonly freeStack: Int32Array;

  constructor(capacity: number) {
    this.capacity = Math.max(0, capacity);
    const c = Math.max(1, this.capacity);
    this.index = new KeyTable(c);
    this.keys = new Float64Array(c);
    this.prev = new Int32Array(c);
    this.next = new Int32Array(c);
    this.freeStack = new Int32Array(c);
    for (let i = 0; i < c; i++) this.freeStack[i] = c - 1 - i;
    this.freeTop = c;
  }

  get size(): number {
    return this.index.size;
  }

  has(key: number): boolean {
    return this.index.get(key) !== -1;
  }

  private unlink(s: number): void {
    const p = this.prev[s] as number;
    const n = this.next[s] as number;
    if (p === -1) this.head = n;
    else this.next[p] = n;
    if (n === -1) this.tail = p;
    else this.prev[n] = p;
  }

  private pushTail(s: number): void {
    this.prev[s] = this.tail;
    this.next[s] = -1;
    if (this.tail === -1) this.head = s;
    else this.next[this.tail] = s;
    this.tail = s;
  }

  /**
   * Inserts `key` as most recent (or refreshes it), evicting the least recent keys while more
   * than `limit` (≤ capacity) would be held.
   * @returns false when `limit` is 0 (nothing stored).
   */
  touch(key: number, limit = this.capacity): boolean {
    const s = this.index.get(key);
    if (s !== -1) {
      this.unlink(s);
      this.pushTail(s);
      return true;
    }
    const cap = Math.min(limit, this.capacity);
    if (cap <= 0) return false;
    while (this.index.size >= cap) this.delete(this.keys[this.head] as number);
    const t = this.freeStack[--this.freeTop] as number;
    this.keys[t] = key;
    this.index.set(key, t);
    this.pushTail(t);
    return true;
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: number): boolean {
    const s = this.index.get(key);
    if (s === -1) return false;
    this.index.delete(key);
    this.unlink(s);
    this.freeStack[this.freeTop++] = s;
    return true;
  }

  clear(): void {
    while (this.head !== -1) this.delete(this.keys[this.head] as number);
  }
}
