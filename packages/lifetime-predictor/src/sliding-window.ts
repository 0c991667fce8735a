/**
 * A sliding window of the last `capacity` values kept both in arrival order (a ring) and sorted,
 * so that any quantile is one array read. Insert/evict are a binary search plus a `copyWithin`
 * (a memmove of at most `capacity` doubles).
 */
import { requirePositiveInt } from '@kvmgr/core';

/** Sliding-window exact quantiles over the last `capacity` values. */
export class SlidingWindow {
  readonly capacity: number;
  private readonly ring: Float64Array;
  private readonly sorted: Float64Array;
  private head = 0;
  private count = 0;
  private total = 0;

  /**
   * @param capacity - number of most recent values kept.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `capacity` is not a positive integer.
   */
  constructor(capacity: number) {
    this.capacity = requirePositiveInt('capacity', capacity);
    this.ring = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  /** Number of values held. */
  get size(): number {
    return this.count;
  }

  /** Mean of the values held; 0 when empty. */
  get mean(): number {
    return this.count === 0 ? 0 : this.total / this.count;
  }

  /** Adds a value, evicting the oldest when full. */
  push(value: number): void {
    if (this.count === this.capacity) {
      const old = this.ring[this.head] as number;
      const at = this.lowerBound(old);
      this.sorted.copyWithin(at, at + 1, this.count);
      this.count--;
      this.total -= old;
    }
    const at = this.lowerBound(value);
    this.sorted.copyWithin(at + 1, at, this.count);
    this.sorted[at] = value;
    this.ring[this.head] = value;
    this.head = (this.head + 1) % this.capacity;
    this.count++;
    this.total += value;
  }

  /**
   * The `q`-quantile (lower, nearest rank) of the values held.
   * @param q - level in [0, 1].
   * @returns NaN when empty.
   */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    let i = Math.floor(q * this.count);
    if (i >= this.count) i = this.count - 1;
    if (i < 0) i = 0;
    return this.sorted[i] as number;
  }

  /** The values held, sorted ascending (a view; do not keep it across `push`). */
  sortedView(): Float64Array {
    return this.sorted.subarray(0, this.count);
  }

  private lowerBound(v: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.sorted[mid] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
