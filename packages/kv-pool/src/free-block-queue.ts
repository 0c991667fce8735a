/**
 * The free block queue: a doubly linked list of block ids on two `Int32Array`s, with a sentinel,
 * in eviction order (head = next block handed out / evicted, tail = most recently freed).
 *
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (`FreeKVCacheBlockQueue`)
 */
import type { BlockId } from '@kvmgr/core';
import { requireNonNegativeInt } from '@kvmgr/core';

/**
 * O(1) doubly linked free queue over block ids `0 … capacity-1`.
 *
 * Internal building block of {@link BlockPool}; exported for composition (the tiered pool and
 * tests read it). It trusts its caller: ids are not range-checked on the hot path.
 */
export class FreeBlockQueue {
  /** Number of ids the queue can hold (`0 ≤ id < capacity`). */
  readonly capacity: number;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly inQueue: Uint8Array;
  private readonly sentinel: number;
  private count = 0;

  /**
   * @param capacity - number of block ids, ≥ 0.
   * @param filled - when true, starts holding `0 … capacity-1` in ascending order. @default true
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `capacity` is not a non-negative integer.
   */
  constructor(capacity: number, filled = true) {
    this.capacity = requireNonNegativeInt('capacity', capacity);
    this.next = new Int32Array(capacity + 1);
    this.prev = new Int32Array(capacity + 1);
    this.inQueue = new Uint8Array(capacity);
    this.sentinel = capacity;
    this.next[capacity] = capacity;
    this.prev[capacity] = capacity;
    if (filled) for (let i = 0; i < capacity; i++) this.append(i);
  }

  /** Number of ids in the queue. */
  get length(): number {
    return this.count;
  }

  /** True when `block` is in the queue. */
  has(block: BlockId): boolean {
    return this.inQueue[block] === 1;
  }

  /** The id at the head (next to be handed out), or -1 when empty. */
  peekFront(): BlockId {
    const h = this.next[this.sentinel] as number;
    return h === this.sentinel ? -1 : h;
  }

  /** The id after `block` in eviction order, or -1 at the tail. `block` must be in the queue. */
  after(block: BlockId): BlockId {
    const n = this.next[block] as number;
    return n === this.sentinel ? -1 : n;
  }

  /** Removes and returns the head id, or -1 when empty. */
  popFront(): BlockId {
    const s = this.sentinel;
    const h = this.next[s] as number;
    if (h === s) return -1;
    const n = this.next[h] as number;
    this.next[s] = n;
    this.prev[n] = s;
    this.inQueue[h] = 0;
    this.count--;
    return h;
  }

  /** Appends `block` at the tail (evicted last). `block` must not be in the queue. */
  append(block: BlockId): void {
    const s = this.sentinel;
    const last = this.prev[s] as number;
    this.next[last] = block;
    this.prev[block] = last;
    this.next[block] = s;
    this.prev[s] = block;
    this.inQueue[block] = 1;
    this.count++;
  }

  /** Inserts `block` at the head (handed out first). `block` must not be in the queue. */
  prepend(block: BlockId): void {
    const s = this.sentinel;
    const first = this.next[s] as number;
    this.prev[first] = block;
    this.next[block] = first;
    this.prev[block] = s;
    this.next[s] = block;
    this.inQueue[block] = 1;
    this.count++;
  }

  /** Unlinks `block` from anywhere in the queue (a cache hit). `block` must be in the queue. */
  remove(block: BlockId): void {
    const p = this.prev[block] as number;
    const n = this.next[block] as number;
    this.next[p] = n;
    this.prev[n] = p;
    this.inQueue[block] = 0;
    this.count--;
  }

  /** The ids in eviction order (head first). O(length). */
  toArray(): BlockId[] {
    const out: BlockId[] = [];
    for (let b = this.next[this.sentinel] as number; b !== this.sentinel; b = this.next[b] as number) out.push(b);
    return out;
  }

  /** Empties the queue and refills it with `order` (head first). Ids must be distinct. */
  reset(order: ArrayLike<BlockId>): void {
    this.inQueue.fill(0);
    this.count = 0;
    this.next[this.sentinel] = this.sentinel;
    this.prev[this.sentinel] = this.sentinel;
    for (let i = 0; i < order.length; i++) this.append(order[i] as number);
  }
}
