/**
 * Greedy-Dual-Size-Frequency: cost- and size-aware eviction.
 */
import { type EvictionEntryInfo, type EvictionPolicy, invalidArgument } from '@kvmgr/core';
import { SlotHeap } from './heap.js';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link GdsfPolicy}. */
export interface GdsfOptions {
  /** Count frequency (GDSF); false gives GreedyDual-Size (GDS). @default true */
  readonly useFrequency?: boolean;
  /** Cost used when an access carries no `info.cost`. @default 1 */
  readonly defaultCost?: number;
  /** Slots allocated up front. @default 1024 */
  readonly initialCapacity?: number;
}

/**
 * GDSF (Cherkasova, "Improving WWW Proxies Performance with Greedy-Dual-Size-Frequency
 * Caching Policy", HP Labs 1998). Each key has priority H = L + freq · cost / size, where L is
 * the priority of the last evicted key (an inflation clock that ages old entries); the victim
 * has the smallest H. For KV caches use `cost` = recompute time (or FLOPs) the entry saves and
 * `size` = its tokens or bytes, so the policy keeps the most recompute saved per byte.
 *
 * Complexity: O(log n) per insert/touch/remove (indexed binary heap), O(1) victim.
 *
 * @see https://www.hpl.hp.com/techreports/98/HPL-98-69R1.pdf
 */
export class GdsfPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'gdsf';
  private readonly heap: SlotHeap;
  private freq: Float64Array;
  private weight: Float64Array;
  private clock = 0;
  private seq = 0;
  private readonly useFrequency: boolean;
  private readonly defaultCost: number;

  /**
   * @param options - see {@link GdsfOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `defaultCost` is negative or not finite.
   */
  constructor(options: GdsfOptions = {}) {
    super(0, options.initialCapacity ?? 1024);
    this.useFrequency = options.useFrequency ?? true;
    const dc = options.defaultCost ?? 1;
    if (!Number.isFinite(dc) || dc < 0) throw invalidArgument('options.defaultCost', dc, 'a finite number >= 0');
    this.defaultCost = dc;
    this.heap = new SlotHeap(this.cap);
    this.freq = new Float64Array(this.cap);
    this.weight = new Float64Array(this.cap);
  }

  protected override onGrow(newCap: number): void {
    this.heap.grow(newCap);
    const f = (a: Float64Array): Float64Array => {
      const b = new Float64Array(newCap);
      b.set(a);
      return b;
    };
    this.freq = f(this.freq);
    this.weight = f(this.weight);
  }

  get size(): number {
    return this.used;
  }

  /** The inflation value L (priority of the last evicted key). */
  get inflation(): number {
    return this.clock;
  }

  /** Current priority H of a tracked key, or NaN. */
  priorityOf(key: number): number {
    const s = this.slotOf(key);
    return s === -1 ? Number.NaN : (this.heap.prio[s] as number);
  }

  private weightOf(info: EvictionEntryInfo | undefined, s: number, fresh: boolean): number {
    const cost = info?.cost;
    const size = info?.size;
    if (cost === undefined && size === undefined && !fresh) return this.weight[s] as number;
    if (cost !== undefined && (!Number.isFinite(cost) || cost < 0)) throw invalidArgument('info.cost', cost, 'a finite number >= 0');
    if (size !== undefined && (!Number.isFinite(size) || size <= 0)) throw invalidArgument('info.size', size, 'a finite number > 0');
    return (cost ?? this.defaultCost) / (size ?? 1);
  }

  /**
   * Tracks `key` with H = L + cost/size (a tracked key is touched).
   * @param info - `cost` (recompute saved, any unit) and `size` (tokens or bytes). @default cost 1, size 1
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad key, negative cost or non-positive size (nothing changes).
   */
  insert(key: number, info?: EvictionEntryInfo): void {
    requireKey(key);
    if (this.slotOf(key) !== -1) {
      this.touch(key, info);
      return;
    }
    const w = this.weightOf(info, 0, true);
    const s = this.addKey(key);
    this.freq[s] = 1;
    this.weight[s] = w;
    this.heap.prio[s] = this.clock + w;
    this.heap.tie[s] = this.seq++;
    this.heap.push(s);
  }

  /**
   * Counts an access and recomputes H = L + freq · cost / size.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for negative cost or non-positive size (nothing changes).
   */
  touch(key: number, info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    const w = this.weightOf(info, s, false);
    const f = this.useFrequency ? (this.freq[s] as number) + 1 : 1;
    this.freq[s] = f;
    this.weight[s] = w;
    this.heap.prio[s] = this.clock + f * w;
    this.heap.tie[s] = this.seq++;
    this.heap.update(s);
  }

  /** Drops a key; dropping the current victim advances L to its priority. */
  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    if (this.heap.top() === s) this.clock = this.heap.prio[s] as number;
    this.heap.delete(s);
    this.dropSlot(s);
  }

  victim(): number {
    const t = this.heap.top();
    return t === -1 ? -1 : (this.keys[t] as number);
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
    return this.slotOf(key) !== -1;
  }

  clear(): void {
    this.heap.clear();
    this.resetTable();
    this.clock = 0;
    this.seq = 0;
  }
}
