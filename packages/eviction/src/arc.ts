/**
 * Adaptive Replacement Cache (ARC) with ghost lists.
 */
import { KvmgrError, type EvictionEntryInfo, type EvictionPolicy, requirePositiveInt } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link ArcPolicy}. */
export interface ArcOptions {
  /** Cache size c in entries (resident keys); ghost lists remember up to another c. Required. */
  readonly capacity: number;
  /** Slots allocated up front (the arrays double when full). @default min(capacity * 2, 65536) */
  readonly initialCapacity?: number;
}

const T1 = 0;
const T2 = 1;
const B1 = 2;
const B2 = 3;

/**
 * ARC (Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003).
 * Resident keys sit in T1 (seen once recently) or T2 (seen at least twice); evicted keys are
 * remembered in ghost lists B1/B2. A hit in B1 grows the target size `p` of T1, a hit in B2
 * shrinks it; the victim is T1's LRU end when |T1| > p, else T2's.
 *
 * The owner drives eviction: it asks {@link ArcPolicy.victim}, drops the entry and calls
 * {@link ArcPolicy.remove}, which moves the key to its ghost list. Invariants kept:
 * |T1|+|T2| ≤ c, |T1|+|B1| ≤ c, |T1|+|T2|+|B1|+|B2| ≤ 2c, 0 ≤ p ≤ c.
 *
 * Complexity: O(1) per operation.
 *
 * @see https://www.usenix.org/conference/fast-03/arc-self-tuning-low-overhead-replacement-cache
 */
export class ArcPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'arc';
  /** c: resident capacity in keys. */
  readonly capacity: number;
  private target = 0;

  /**
   * @param options - see {@link ArcOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `capacity` is not a positive integer.
   */
  constructor(options: ArcOptions) {
    const c = requirePositiveInt('options.capacity', options?.capacity);
    super(4, options.initialCapacity ?? Math.min(c * 2, 65536));
    this.capacity = c;
  }

  get size(): number {
    return (this.lens[T1] as number) + (this.lens[T2] as number);
  }

  /** Target size p of T1, in [0, c]. */
  get p(): number {
    return this.target;
  }

  /** Sizes of the four lists (for invariants and reports). */
  listSizes(): { t1: number; t2: number; b1: number; b2: number } {
    return { t1: this.lens[T1] as number, t2: this.lens[T2] as number, b1: this.lens[B1] as number, b2: this.lens[B2] as number };
  }

  /**
   * Tracks `key`: a ghost hit moves it to T2 and adapts p; a new key goes to T1. A resident
   * key is touched.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad key; `KVMGR_INVALID_STATE` when c
   *   keys are already resident (evict first); the policy is unchanged then.
   */
  insert(key: number, info?: EvictionEntryInfo): void {
    requireKey(key);
    let s = this.slotOf(key);
    const l = s === -1 ? -1 : (this.list[s] as number);
    if (l === T1 || l === T2) {
      this.touch(key, info);
      return;
    }
    const c = this.capacity;
    if (this.size >= c) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `arc: cannot insert key ${key}: ${c} keys resident (capacity); evict first`, {
        details: { key, capacity: c },
      });
    }
    const b1 = this.lens[B1] as number;
    const b2 = this.lens[B2] as number;
    if (l === B1) {
      this.target = Math.min(c, this.target + Math.max(1, b2 / b1));
      this.unlink(s);
      this.pushHead(T2, s);
      return;
    }
    if (l === B2) {
      this.target = Math.max(0, this.target - Math.max(1, b1 / b2));
      this.unlink(s);
      this.pushHead(T2, s);
      return;
    }
    // case IV of the paper: keep the directory within c (L1) and 2c (L1 ∪ L2)
    const t1 = this.lens[T1] as number;
    const t2 = this.lens[T2] as number;
    if (t1 + b1 >= c) {
      if (b1 > 0) this.dropTail(B1);
    } else if (t1 + t2 + b1 + b2 >= 2 * c && b2 > 0) {
      this.dropTail(B2);
    }
    s = this.addKey(key);
    this.pushHead(T1, s);
  }

  private dropTail(l: number): void {
    const t = this.tails[l] as number;
    this.unlink(t);
    this.dropSlot(t);
  }

  /** A hit: moves a resident key to T2's MRU end (no-op for ghosts and unknown keys). */
  touch(key: number, _info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    const l = this.list[s] as number;
    if (l === T1) {
      this.unlink(s);
      this.pushHead(T2, s);
    } else if (l === T2) this.moveToHead(T2, s);
  }

  /** Evicts a resident key into its ghost list (B1 from T1, B2 from T2). No-op otherwise. */
  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    const l = this.list[s] as number;
    if (l === T1) {
      this.unlink(s);
      this.pushHead(B1, s);
    } else if (l === T2) {
      this.unlink(s);
      this.pushHead(B2, s);
    }
  }

  /** REPLACE's choice: T1's LRU when |T1| > p (or T2 is empty), else T2's LRU; -1 when empty. */
  victim(): number {
    const t1 = this.lens[T1] as number;
    const t2 = this.lens[T2] as number;
    if (t1 + t2 === 0) return -1;
    const l = t1 > 0 && (t1 > this.target || t2 === 0) ? T1 : T2;
    return this.keys[this.tails[l] as number] as number;
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
    const s = this.slotOf(key);
    return s !== -1 && (this.list[s] as number) <= T2;
  }

  /** Forgets resident and ghost keys and resets p to 0. */
  clear(): void {
    this.resetTable();
    this.target = 0;
  }
}
