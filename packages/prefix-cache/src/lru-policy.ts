import { type EvictionPolicy, requirePositiveInt } from '@kvmgr/core';

const NIL = -1;

/**
 * Built-in O(1) LRU over integer keys (node ids), the default policy of the caches in this
 * package. A doubly linked list on `Int32Array`s indexed by key (no `Map`, no allocation per
 * operation): `insert` and `touch` move the key to the most-recent end, `victim` reads the
 * least-recent end.
 *
 * Keys must be small non-negative integers (node ids are dense), as the arrays are indexed by key
 * and grow to the largest key seen.
 *
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (FreeKVCacheBlockQueue)
 */
export class LruPolicy implements EvictionPolicy {
  /** Registry name. */
  readonly name = 'lru';
  private prev: Int32Array;
  private next: Int32Array;
  private member: Uint8Array;
  private head = NIL; // least recent
  private tail = NIL; // most recent
  private count = 0;

  /**
   * @param initialCapacity - initial key range (grows by doubling). @default 1024
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when not a positive integer.
   */
  constructor(initialCapacity = 1024) {
    const cap = requirePositiveInt('initialCapacity', initialCapacity);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.member = new Uint8Array(cap);
  }

  /** Number of tracked keys. */
  get size(): number {
    return this.count;
  }

  private grow(key: number): void {
    let cap = this.member.length;
    while (cap <= key) cap *= 2;
    const p = new Int32Array(cap);
    p.set(this.prev);
    const n = new Int32Array(cap);
    n.set(this.next);
    const m = new Uint8Array(cap);
    m.set(this.member);
    this.prev = p;
    this.next = n;
    this.member = m;
  }

  private unlink(key: number): void {
    const p = this.prev[key] as number;
    const n = this.next[key] as number;
    if (p === NIL) this.head = n;
    else this.next[p] = n;
    if (n === NIL) this.tail = p;
    else this.prev[n] = p;
  }

  private append(key: number): void {
    this.prev[key] = this.tail;
    this.next[key] = NIL;
    if (this.tail === NIL) this.head = key;
    else this.next[this.tail] = key;
    this.tail = key;
  }

  /**
   * Tracks `key` as the most recently used (moves it there when already tracked).
   * @param key - non-negative integer.
   */
  insert(key: number): void {
    if (key >= this.member.length) this.grow(key);
    if (this.member[key] === 1) {
      this.unlink(key);
    } else {
      this.member[key] = 1;
      this.count++;
    }
    this.append(key);
  }

  /**
   * Tracks `key` just after `ref` in recency order (one step more recent than `ref`), or as the
   * most recent when `ref` is not tracked. The radix cache uses it when a split creates a new
   * parent node, so the split does not change the eviction order.
   */
  insertAfter(key: number, ref: number): void {
    if (!this.has(ref) || key === ref) {
      this.insert(key);
      return;
    }
    if (key >= this.member.length) this.grow(key);
    if (this.member[key] === 1) this.unlink(key);
    else {
      this.member[key] = 1;
      this.count++;
    }
    const n = this.next[ref] as number;
    this.prev[key] = ref;
    this.next[key] = n;
    this.next[ref] = key;
    if (n === NIL) this.tail = key;
    else this.prev[n] = key;
  }

  /** Marks an access: `key` becomes the most recently used. No-op when not tracked. */
  touch(key: number): void {
    if (key >= this.member.length || this.member[key] !== 1 || key === this.tail) return;
    this.unlink(key);
    this.append(key);
  }

  /** Stops tracking `key`; no-op when absent. */
  remove(key: number): void {
    if (key >= this.member.length || this.member[key] !== 1) return;
    this.unlink(key);
    this.member[key] = 0;
    this.count--;
  }

  /** The least recently used key; -1 when empty. */
  victim(): number {
    return this.head;
  }

  /** Whether `key` is tracked. */
  has(key: number): boolean {
    return key >= 0 && key < this.member.length && this.member[key] === 1;
  }

  /** Forgets every key. */
  clear(): void {
    this.member.fill(0);
    this.head = NIL;
    this.tail = NIL;
    this.count = 0;
  }
}
