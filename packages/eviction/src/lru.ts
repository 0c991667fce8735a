/**
 * Least-recently-used eviction over an index-based doubly linked list.
 */
import type { EvictionEntryInfo, EvictionPolicy } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link LruPolicy}. */
export interface LruOptions {
  /** Slots allocated up front (the arrays double when full). @default 1024 */
  readonly initialCapacity?: number;
}

/**
 * LRU: the victim is the key accessed least recently. vLLM's free-block queue and SGLang's
 * radix cache evict this way.
 *
 * Complexity: O(1) per operation (hash probe + list splice); no allocation once warm.
 *
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py (FreeKVCacheBlockQueue)
 */
export class LruPolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'lru';

  /**
   * @param options - see {@link LruOptions}.
   */
  constructor(options: LruOptions = {}) {
    super(1, options.initialCapacity ?? 1024);
  }

  get size(): number {
    return this.used;
  }

  /**
   * Starts tracking `key` as most recently used; an already tracked key is touched.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `key` is not an integer in [0, 2^32 − 1].
   */
  insert(key: number, _info?: EvictionEntryInfo): void {
    requireKey(key);
    let s = this.slotOf(key);
    if (s === -1) {
      s = this.addKey(key);
      this.pushHead(0, s);
    } else this.moveToHead(0, s);
  }

  /** Marks `key` most recently used; no-op when not tracked. */
  touch(key: number, _info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s !== -1) this.moveToHead(0, s);
  }

  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    this.unlink(s);
    this.dropSlot(s);
  }

  victim(): number {
    const t = this.tails[0] as number;
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
    this.resetTable();
  }
}
