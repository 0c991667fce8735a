/**
 * Least-frequently-used eviction with O(1) frequency buckets.
 */
import type { EvictionEntryInfo, EvictionPolicy } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link LfuPolicy}. */
export interface LfuOptions {
  /** Slots allocated up front (the arrays double when full). @default 1024 */
  readonly initialCapacity?: number;
}

const NONE = -1;

/**
 * LFU: the victim has the fewest accesses since it was inserted; ties go to the least recently
 * accessed. Frequencies live in a sorted list of buckets, each a list of keys, so every
 * operation is O(1) (Shah, Mitra & Matani, "An O(1) algorithm for implementing the LFU cache
 * eviction scheme", 2010).
 *
 * Complexity: O(1) per operation; buckets come from a typed-array pool.
 *
 * @see http://dhruvbird.com/lfu.pdf
 */
export class LfuPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'lfu';
  private freq: Uint32Array;
  private bucketOf: Int32Array;
  // bucket pool
  private bFreq: Float64Array;
  private bPrev: Int32Array;
  private bNext: Int32Array;
  private bHead: Int32Array;
  private bTail: Int32Array;
  private bFree = NONE;
  private bHwm = 0;
  /** Lowest-frequency bucket. */
  private bMin = NONE;

  /** @param options - see {@link LfuOptions}. */
  constructor(options: LfuOptions = {}) {
    super(1, options.initialCapacity ?? 1024);
    this.freq = new Uint32Array(this.cap);
    this.bucketOf = new Int32Array(this.cap);
    // a touch briefly holds one bucket more than there are keys
    this.bFreq = new Float64Array(this.cap + 1);
    this.bPrev = new Int32Array(this.cap + 1);
    this.bNext = new Int32Array(this.cap + 1);
    this.bHead = new Int32Array(this.cap + 1);
    this.bTail = new Int32Array(this.cap + 1);
  }

  protected override onGrow(newCap: number): void {
    const u = new Uint32Array(newCap);
    u.set(this.freq);
    this.freq = u;
    const g = (a: Int32Array, n = newCap + 1): Int32Array => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.bucketOf = g(this.bucketOf, newCap);
    this.bPrev = g(this.bPrev);
    this.bNext = g(this.bNext);
    this.bHead = g(this.bHead);
    this.bTail = g(this.bTail);
    const f = new Float64Array(newCap + 1);
    f.set(this.bFreq);
    this.bFreq = f;
  }

  get size(): number {
    return this.used;
  }

  /** Access count of a tracked key (1 after insert), or 0. */
  frequencyOf(key: number): number {
    const s = this.slotOf(key);
    return s === NONE ? 0 : (this.freq[s] as number);
  }

  private newBucket(f: number, after: number): number {
    // at most one bucket per live key exists, so the pool never outgrows the slot arrays
    let b: number;
    if (this.bFree !== NONE) {
      b = this.bFree;
      this.bFree = this.bNext[b] as number;
    } else b = this.bHwm++;
    this.bFreq[b] = f;
    this.bHead[b] = NONE;
    this.bTail[b] = NONE;
    this.bPrev[b] = after;
    const n = after === NONE ? this.bMin : (this.bNext[after] as number);
    this.bNext[b] = n;
    if (n !== NONE) this.bPrev[n] = b;
    if (after === NONE) this.bMin = b;
    else this.bNext[after] = b;
    return b;
  }

  private freeBucket(b: number): void {
    const p = this.bPrev[b] as number;
    const n = this.bNext[b] as number;
    if (p !== NONE) this.bNext[p] = n;
    else this.bMin = n;
    if (n !== NONE) this.bPrev[n] = p;
    this.bNext[b] = this.bFree;
    this.bFree = b;
  }

  private link(b: number, s: number): void {
    const h = this.bHead[b] as number;
    this.prev[s] = NONE;
    this.next[s] = h;
    if (h !== NONE) this.prev[h] = s;
    else this.bTail[b] = s;
    this.bHead[b] = s;
    this.bucketOf[s] = b;
  }

  /** Unlinks `s` from its bucket's key list (the caller frees an emptied bucket). */
  private unlinkFromBucket(s: number): void {
    const b = this.bucketOf[s] as number;
    const p = this.prev[s] as number;
    const n = this.next[s] as number;
    if (p !== NONE) this.next[p] = n;
    else this.bHead[b] = n;
    if (n !== NONE) this.prev[n] = p;
    else this.bTail[b] = p;
  }

  /**
   * Tracks `key` with frequency 1; an already tracked key is touched instead.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `key` is not an integer in [0, 2^32 − 1].
   */
  insert(key: number, info?: EvictionEntryInfo): void {
    requireKey(key);
    if (this.slotOf(key) !== NONE) {
      this.touch(key, info);
      return;
    }
    const s = this.addKey(key);
    this.freq[s] = 1;
    const b = this.bMin !== NONE && this.bFreq[this.bMin] === 1 ? this.bMin : this.newBucket(1, NONE);
    this.link(b, s);
  }

  /** Increments the frequency of a tracked key (no-op when absent). */
  touch(key: number, _info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s === NONE) return;
    const b = this.bucketOf[s] as number;
    const f = (this.freq[s] as number) + 1;
    this.freq[s] = f;
    const n = this.bNext[b] as number;
    this.unlinkFromBucket(s);
    let target: number;
    if (n !== NONE && this.bFreq[n] === f) target = n;
    else target = this.newBucket(f, b);
    this.link(target, s);
    if (this.bHead[b] === NONE) this.freeBucket(b);
  }

  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === NONE) return;
    const b = this.bucketOf[s] as number;
    this.unlinkFromBucket(s);
    if (this.bHead[b] === NONE) this.freeBucket(b);
    this.dropSlot(s);
  }

  victim(): number {
    if (this.bMin === NONE) return -1;
    return this.keys[this.bTail[this.bMin] as number] as number;
  }

  /**
   * Runs `n` accesses of a simulated cache (an expert of `adaptive`): each touches its key when
   * resident, else evicts down to `capacity - 1` keys and inserts it — the decisions of `has`,
   * then `touch` or `remove(victim())`… `insert`. Sets `bit` in `hits[j]` when access j hit.
   * One call per batch: this class's own calls stay monomorphic (inlined).
   * @internal
   */
  simulateBatch(keys: Uint32Array, infos: readonly (EvictionEntryInfo | undefined)[], hits: Uint8Array, n: number, capacity: number, bit: number): void {
    for (let j = 0; j < n; j++) {
      const key = keys[j] as number;
      const info = infos[j];
      if (this.has(key)) {
        this.touch(key, info);
        hits[j] = (hits[j] as number) | bit;
      } else {
        while (this.size >= capacity) this.remove(this.victim());
        this.insert(key, info);
      }
    }
  }

  has(key: number): boolean {
    return this.slotOf(key) !== NONE;
  }

  clear(): void {
    this.resetTable();
    this.bFree = NONE;
    this.bHwm = 0;
    this.bMin = NONE;
  }
}
