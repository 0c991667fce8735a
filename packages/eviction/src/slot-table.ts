/**
 * The storage every node-level policy is built on: an open-addressing (linear probing,
 * backward-shift deletion) map from u32 keys to dense slot indexes, plus index-based doubly
 * linked lists over those slots. Everything lives in typed arrays that double when full, so a
 * steady-state operation allocates nothing.
 *
 * Internal: not exported from the package.
 */
import { invalidArgument } from '@kvmgr/core';

const EMPTY = -1;
/** List id of a slot that is on no list (free, or tracked outside lists). */
export const NO_LIST = 255;

/**
 * Throws `KVMGR_INVALID_ARGUMENT` unless `key` is an integer in [0, 2^32 − 1].
 * @internal
 */
export function requireKey(key: number): void {
  if (key >>> 0 !== key) throw invalidArgument('key', key, 'an integer in [0, 4294967295]');
}

/**
 * Key → slot map with `listCount` doubly linked lists over slots. Head = most recently pushed.
 * @internal
 */
export class SlotTable {
  /** Number of slots allocated (arrays' length). */
  protected cap: number;
  /** Live slots (in the map, on a list or not). */
  protected used = 0;
  protected keys: Uint32Array;
  protected prev: Int32Array;
  protected next: Int32Array;
  /** List id per slot, {@link NO_LIST} when on none. */
  protected list: Uint8Array;
  protected heads: Int32Array;
  protected tails: Int32Array;
  protected lens: Int32Array;
  /** Open-addressing table of (key | 0, slot) pairs; slot -1 = empty. */
  private table: Int32Array;
  private mask: number;
  private shift: number;
  private freeHead = EMPTY;
  private hwm = 0;

  /**
   * @param listCount - intrusive lists kept by the subclass.
   * @param initialCapacity - slots allocated up front (≥ 1; at least 8 are). @default 64
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `initialCapacity` is not an integer in [1, 2^30].
   */
  constructor(listCount: number, initialCapacity = 64) {
    if (typeof initialCapacity !== 'number' || !Number.isInteger(initialCapacity) || initialCapacity < 1 || initialCapacity > 2 ** 30) {
      throw invalidArgument('options.initialCapacity', initialCapacity, 'an integer in [1, 2^30]');
    }
    const cap = Math.max(8, initialCapacity);
    this.cap = cap;
    this.keys = new Uint32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.list = new Uint8Array(cap).fill(NO_LIST);
    this.heads = new Int32Array(listCount).fill(EMPTY);
    this.tails = new Int32Array(listCount).fill(EMPTY);
    this.lens = new Int32Array(listCount);
    let bits = 4;
    while (1 << bits < cap * 2) bits++;
    this.table = SlotTable.emptyTable(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  private static emptyTable(size: number): Int32Array {
    const t = new Int32Array(size * 2);
    for (let i = 1; i < t.length; i += 2) t[i] = EMPTY;
    return t;
  }

  /** Fibonacci-style multiplicative hash: the top bits of key · odd constant. */
  private home(key: number): number {
    return Math.imul(key, 0x85ebca6b) >>> this.shift;
  }

  /** Slot of `key`, or -1 (also for values that are not u32 keys). */
  protected slotOf(key: number): number {
    if (key >>> 0 !== key) return EMPTY;
    const table = this.table;
    const mask = this.mask;
    const k = key | 0;
    let i = this.home(key);
    for (;;) {
      const s = table[2 * i + 1] as number;
      if (s === EMPTY) return EMPTY;
      if (table[2 * i] === k) return s;
      i = (i + 1) & mask;
    }
  }

  /** Adds `key` (must be absent) and returns its new slot, on no list. */
  protected addKey(key: number): number {
    if (this.used === this.cap) this.growSlots(this.cap * 2);
    let s: number;
    if (this.freeHead !== EMPTY) {
      s = this.freeHead;
      this.freeHead = this.next[s] as number;
    } else {
      s = this.hwm++;
    }
    this.used++;
    this.keys[s] = key;
    this.list[s] = NO_LIST;
    const table = this.table;
    const mask = this.mask;
    let i = this.home(key);
    while (table[2 * i + 1] !== EMPTY) i = (i + 1) & mask;
    table[2 * i] = key | 0;
    table[2 * i + 1] = s;
    return s;
  }

  /** Removes slot `s` from the map (it must be on no list) and frees it. */
  protected dropSlot(s: number): void {
    const table = this.table;
    const mask = this.mask;
    let i = this.home(this.keys[s] as number);
    while (table[2 * i + 1] !== s) i = (i + 1) & mask;
    // backward-shift deletion keeps probe chains intact without tombstones
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const t = table[2 * j + 1] as number;
      if (t === EMPTY) break;
      const h = this.home((table[2 * j] as number) >>> 0);
      // move entry j back to i when its home h is not cyclically in (i, j]
      if (i <= j ? h <= i || h > j : h <= i && h > j) {
        table[2 * i] = table[2 * j] as number;
        table[2 * i + 1] = t;
        i = j;
      }
    }
    table[2 * i + 1] = EMPTY;
    this.list[s] = NO_LIST;
    this.next[s] = this.freeHead;
    this.freeHead = s;
    this.used--;
  }

  /** Grows per-slot arrays; subclasses extend their own arrays and call super. */
  protected growSlots(newCap: number): void {
    const grow32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(newCap);
      b.set(a);
      return b;
    };
    const k = new Uint32Array(newCap);
    k.set(this.keys);
    this.keys = k;
    this.prev = grow32(this.prev);
    this.next = grow32(this.next);
    const l = new Uint8Array(newCap).fill(NO_LIST);
    l.set(this.list);
    this.list = l;
    this.cap = newCap;
    this.onGrow(newCap);
    const size = this.table.length >> 1;
    if (size < newCap * 2) {
      let bits = 32 - this.shift;
      while (1 << bits < newCap * 2) bits++;
      const old = this.table;
      this.table = SlotTable.emptyTable(1 << bits);
      this.mask = (1 << bits) - 1;
      this.shift = 32 - bits;
      const table = this.table;
      for (let k = 1; k < old.length; k += 2) {
        const slot = old[k] as number;
        if (slot === EMPTY) continue;
        const key = old[k - 1] as number;
        let i = this.home(key >>> 0);
        while (table[2 * i + 1] !== EMPTY) i = (i + 1) & this.mask;
        table[2 * i] = key;
        table[2 * i + 1] = slot;
      }
    }
  }

  /** Hook for subclasses to grow their per-slot arrays to `newCap`. */
  protected onGrow(_newCap: number): void {}

  /** Pushes slot `s` at the head (MRU end) of list `l`. */
  protected pushHead(l: number, s: number): void {
    const h = this.heads[l] as number;
    this.prev[s] = EMPTY;
    this.next[s] = h;
    if (h !== EMPTY) this.prev[h] = s;
    else this.tails[l] = s;
    this.heads[l] = s;
    this.list[s] = l;
    this.lens[l] = (this.lens[l] as number) + 1;
  }

  /** Inserts slot `s` right behind `at` (toward the tail) on `at`'s list. */
  protected insertAfter(at: number, s: number): void {
    const l = this.list[at] as number;
    const n = this.next[at] as number;
    this.prev[s] = at;
    this.next[s] = n;
    this.next[at] = s;
    if (n !== EMPTY) this.prev[n] = s;
    else this.tails[l] = s;
    this.list[s] = l;
    this.lens[l] = (this.lens[l] as number) + 1;
  }

  /** Unlinks slot `s` from its list (no-op when on none). */
  protected unlink(s: number): void {
    const l = this.list[s] as number;
    if (l === NO_LIST) return;
    const p = this.prev[s] as number;
    const n = this.next[s] as number;
    if (p !== EMPTY) this.next[p] = n;
    else this.heads[l] = n;
    if (n !== EMPTY) this.prev[n] = p;
    else this.tails[l] = p;
    this.list[s] = NO_LIST;
    this.lens[l] = (this.lens[l] as number) - 1;
  }

  /** Moves slot `s` to the head of list `l`. */
  protected moveToHead(l: number, s: number): void {
    if (this.heads[l] === s) return;
    this.unlink(s);
    this.pushHead(l, s);
  }

  /**
   * Keys of the live slots in slot order: resident keys and, for policies that keep them,
   * remembered ones (ghosts, history); filter with the policy's `has`. O(slots), allocates:
   * for rare operations only (adaptive's hand-over on a switch).
   * @internal
   */
  trackedKeys(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.hwm; s++) {
      const k = this.keys[s] as number;
      // a freed slot keeps its stale key; it is live only if the map still points here
      if (this.slotOf(k) === s) out.push(k);
    }
    return out;
  }

  /** Forgets every key and list. */
  protected resetTable(): void {
    for (let i = 1; i < this.table.length; i += 2) this.table[i] = EMPTY;
    this.list.fill(NO_LIST);
    this.heads.fill(EMPTY);
    this.tails.fill(EMPTY);
    this.lens.fill(0);
    this.used = 0;
    this.hwm = 0;
    this.freeHead = EMPTY;
  }
}
