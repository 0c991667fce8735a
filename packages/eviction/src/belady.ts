/**
 * Belady's MIN: the offline optimum, for reports only.
 */
import { type EvictionEntryInfo, type EvictionPolicy, KvmgrError, invalidArgument } from '@kvmgr/core';
import { SlotHeap } from './heap.js';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link BeladyPolicy}. */
export interface BeladyOptions {
  /**
   * Every future access (each `insert` and `touch` call), in order. The policy checks each
   * call against it. Required.
   */
  readonly accesses: ArrayLike<number>;
}

/**
 * Belady's MIN (Belady, "A study of replacement algorithms for a virtual-storage computer",
 * IBM Systems Journal 1966): the victim is the key whose next access lies farthest in the
 * future (never-again keys first). It needs the whole future, so it is an upper bound for
 * reports, not a policy to deploy.
 *
 * Complexity: O(n) setup over the access sequence; O(log n) per operation.
 *
 * @see https://doi.org/10.1147/sj.52.0078
 */
export class BeladyPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'belady';
  private readonly accesses: Uint32Array;
  private readonly nextUse: Float64Array;
  private readonly heap: SlotHeap;
  private cursor = 0;

  /**
   * @param options - see {@link BeladyOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when an access is not an integer in [0, 2^32 − 1].
   */
  constructor(options: BeladyOptions) {
    const acc = options?.accesses;
    if (acc === undefined || typeof acc.length !== 'number') throw invalidArgument('options.accesses', acc, 'an array of keys');
    const n = acc.length;
    const a = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const k = acc[i] as number;
      if (k >>> 0 !== k) throw invalidArgument(`options.accesses[${i}]`, k, 'an integer in [0, 4294967295]');
      a[i] = k;
    }
    super(0, 1024);
    this.accesses = a;
    this.nextUse = new Float64Array(n);
    const last = new Map<number, number>();
    for (let i = n - 1; i >= 0; i--) {
      const k = a[i] as number;
      this.nextUse[i] = last.get(k) ?? Number.POSITIVE_INFINITY;
      last.set(k, i);
    }
    this.heap = new SlotHeap(this.cap);
  }

  protected override onGrow(newCap: number): void {
    this.heap.grow(newCap);
  }

  get size(): number {
    return this.used;
  }

  /** Number of accesses consumed so far. */
  get position(): number {
    return this.cursor;
  }

  private advance(key: number): number {
    const i = this.cursor;
    if (i >= this.accesses.length || this.accesses[i] !== key) {
      throw new KvmgrError(
        'KVMGR_INVALID_STATE',
        `belady: access #${i} is key ${key}, but the sequence given at construction has ${i < this.accesses.length ? `key ${this.accesses[i]}` : 'ended'}`,
        { details: { position: i, key } },
      );
    }
    this.cursor = i + 1;
    // max-heap on next use through negated priorities
    return -(this.nextUse[i] as number);
  }

  /**
   * Tracks `key` (an access: it must be the next one in the sequence).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad key; `KVMGR_INVALID_STATE` when the
   *   call does not match the sequence (nothing changes).
   */
  insert(key: number, _info?: EvictionEntryInfo): void {
    requireKey(key);
    const prio = this.advance(key);
    let s = this.slotOf(key);
    if (s === -1) {
      s = this.addKey(key);
      this.heap.prio[s] = prio;
      this.heap.tie[s] = -key;
      this.heap.push(s);
    } else {
      this.heap.prio[s] = prio;
      this.heap.update(s);
    }
  }

  /**
   * An access of a tracked key (it must be the next one in the sequence).
   * @throws KvmgrError `KVMGR_INVALID_STATE` when the call does not match the sequence.
   */
  touch(key: number, info?: EvictionEntryInfo): void {
    if (this.slotOf(key) === -1) {
      this.advance(key);
      return;
    }
    this.insert(key, info);
  }

  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    this.heap.delete(s);
    this.dropSlot(s);
  }

  victim(): number {
    const t = this.heap.top();
    return t === -1 ? -1 : (this.keys[t] as number);
  }

  has(key: number): boolean {
    return this.slotOf(key) !== -1;
  }

  /** Forgets tracked keys and rewinds to the start of the sequence. */
  clear(): void {
    this.heap.clear();
    this.resetTable();
    this.cursor = 0;
  }
}
