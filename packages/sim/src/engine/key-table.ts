/**
 * An open-addressing hash table from prefix keys (integers in [0, 2^53)) to block ids, on typed
 * arrays: linear probing, backward-shift deletion (no tombstones), fixed capacity (the number
 * of cached blocks never exceeds the pool). About 3× faster than a `Map` on the replay's
 * commit/evict path and allocation-free.
 */

/** Key → block id table with a fixed maximum number of entries. */
export class KeyTable {
  private readonly keys: Float64Array;
  private readonly vals: Int32Array;
  private readonly mask: number;
  private count = 0;

  /** @param maxEntries - most entries ever held (capacity is the next power of two ≥ 2×). */
  constructor(maxEntries: number) {
    let cap = 16;
    while (cap < maxEntries * 2) cap *= 2;
    this.keys = new Float64Array(cap);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  private slot(key: number): number {
    const lo = key >>> 0;
    const hi = (key / 4294967296) >>> 0;
    return (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0) & this.mask;
  }

  /** Block of `key`, or -1. */
  get(key: number): number {
    let i = this.slot(key);
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1) return -1;
      if (this.keys[i] === key) return v;
      i = (i + 1) & this.mask;
    }
  }

  /** True when `key` is present. */
  has(key: number): boolean {
    return this.get(key) !== -1;
  }

  /** Sets `key` → `block` (block ≥ 0). */
  set(key: number, block: number): void {
    let i = this.slot(key);
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1) {
        this.keys[i] = key;
        this.vals[i] = block;
        this.count++;
        return;
      }
      if (this.keys[i] === key) {
        this.vals[i] = block;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: number): boolean {
    const mask = this.mask;
    let i = this.slot(key);
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1) return false;
      if (this.keys[i] === key) break;
      i = (i + 1) & mask;
    }
    // Backward-shift: move later entries of the probe run into the hole when their home slot
    // does not lie cyclically in (hole, j].
    let hole = i;
    let j = (i + 1) & mask;
    for (;;) {
      if (this.vals[j] === -1) break;
      const home = this.slot(this.keys[j] as number);
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!inRange) {
        this.keys[hole] = this.keys[j] as number;
        this.vals[hole] = this.vals[j] as number;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    this.vals[hole] = -1;
    this.count--;
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.vals.fill(-1);
    this.count = 0;
  }
}
