/**
 * S3-FIFO: a small probationary FIFO, a main FIFO with reinsertion, and a ghost FIFO.
 */
import { type EvictionEntryInfo, type EvictionPolicy, requireInRange, requirePositiveInt } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link S3FifoPolicy}. */
export interface S3FifoOptions {
  /** Cache size in keys; sizes the small queue and the ghost. Required. */
  readonly capacity: number;
  /** Fraction of `capacity` for the small FIFO S. @default 0.1 */
  readonly smallRatio?: number;
  /** Ghost FIFO G length, as a fraction of `capacity`. @default 0.9 */
  readonly ghostRatio?: number;
  /** Slots allocated up front. @default min(capacity * 2, 65536) */
  readonly initialCapacity?: number;
}

const S = 0;
const M = 1;
const G = 2;
const MAX_FREQ = 3;

/**
 * S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023). New
 * keys enter the small FIFO S (or the main FIFO M when the ghost G remembers them). Evicting
 * from S moves a key accessed while in S to M, else evicts it (and remembers it in G);
 * evicting from M reinserts keys with a positive 2-bit frequency (decremented) and evicts the
 * first with frequency 0. S is evicted from while it holds more than `smallRatio · capacity`.
 *
 * `victim()` performs those S→M moves and M reinsertions (membership does not change, and a
 * second call returns the same key).
 *
 * Complexity: O(1) amortised per operation.
 *
 * @see https://dl.acm.org/doi/10.1145/3600006.3613147
 */
export class S3FifoPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 's3fifo';
  readonly capacity: number;
  private readonly smallCap: number;
  private readonly ghostCap: number;
  private freq: Uint8Array;

  /**
   * @param options - see {@link S3FifoOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive capacity or a ratio outside [0, 1] / [0, 4].
   */
  constructor(options: S3FifoOptions) {
    const c = requirePositiveInt('options.capacity', options?.capacity);
    const small = requireInRange('options.smallRatio', options.smallRatio ?? 0.1, 0, 1);
    const ghost = requireInRange('options.ghostRatio', options.ghostRatio ?? 0.9, 0, 4);
    super(3, options.initialCapacity ?? Math.min(c * 2, 65536));
    this.capacity = c;
    this.smallCap = Math.max(1, Math.floor(c * small));
    this.ghostCap = Math.floor(c * ghost);
    this.freq = new Uint8Array(this.cap);
  }

  protected override onGrow(newCap: number): void {
    const f = new Uint8Array(newCap);
    f.set(this.freq);
    this.freq = f;
  }

  get size(): number {
    return (this.lens[S] as number) + (this.lens[M] as number);
  }

  /**
   * Tracks `key` in S, or in M when the ghost remembers it. A tracked key is touched.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `key` is not an integer in [0, 2^32 − 1].
   */
  insert(key: number, info?: EvictionEntryInfo): void {
    requireKey(key);
    let s = this.slotOf(key);
    if (s !== -1) {
      if (this.list[s] === G) {
        this.unlink(s);
        this.freq[s] = 0;
        this.pushHead(M, s);
      } else this.touch(key, info);
      return;
    }
    s = this.addKey(key);
    this.freq[s] = 0;
    this.pushHead(S, s);
  }

  /** Bumps the 2-bit frequency of a tracked key. */
  touch(key: number, _info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s === -1 || this.list[s] === G) return;
    const f = this.freq[s] as number;
    if (f < MAX_FREQ) this.freq[s] = f + 1;
  }

  /** Drops a tracked key; one leaving S is remembered in the ghost FIFO. */
  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    const l = this.list[s] as number;
    if (l === G) return;
    this.unlink(s);
    if (l === S && this.ghostCap > 0) {
      this.pushHead(G, s);
      while ((this.lens[G] as number) > this.ghostCap) {
        const t = this.tails[G] as number;
        this.unlink(t);
        this.dropSlot(t);
      }
    } else this.dropSlot(s);
  }

  victim(): number {
    for (;;) {
      const ls = this.lens[S] as number;
      const lm = this.lens[M] as number;
      if (ls + lm === 0) return -1;
      if (ls > 0 && (ls > this.smallCap || lm === 0)) {
        const t = this.tails[S] as number;
        if ((this.freq[t] as number) > 0) {
          this.unlink(t);
          this.freq[t] = 0;
          this.pushHead(M, t);
          continue;
        }
        return this.keys[t] as number;
      }
      const t = this.tails[M] as number;
      const f = this.freq[t] as number;
      if (f > 0) {
        this.freq[t] = f - 1;
        this.moveToHead(M, t);
        continue;
      }
      return this.keys[t] as number;
    }
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
    return s !== -1 && this.list[s] !== G;
  }

  clear(): void {
    this.resetTable();
  }
}
