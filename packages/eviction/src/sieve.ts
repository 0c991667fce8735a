/**
 * SIEVE: a FIFO queue with one visited bit and a moving hand.
 */
import type { EvictionEntryInfo, EvictionPolicy } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/** Options of {@link SievePolicy}. */
export interface SieveOptions {
  /** Slots allocated up front (the arrays double when full). @default 1024 */
  readonly initialCapacity?: number;
}

/**
 * SIEVE (Zhang et al., "SIEVE is Simpler than LRU: an Efficient Turn-Key Eviction Algorithm
 * for Web Caches", NSDI 2024). New keys enter at the head with the visited bit clear; a hit
 * sets the bit. The hand walks from the tail toward the head, clearing set bits, and stops at
 * the first clear one: that key is the victim. Keys are never moved on a hit.
 *
 * `victim()` moves the hand and clears bits it passes (the membership does not change, and a
 * second call returns the same key).
 *
 * Complexity: O(1) amortised per operation.
 *
 * @see https://www.usenix.org/conference/nsdi24/presentation/zhang-yazhuo
 */
export class SievePolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'sieve';
  private visited: Uint8Array;
  private hand = -1;

  /** @param options - see {@link SieveOptions}. */
  constructor(options: SieveOptions = {}) {
    super(1, options.initialCapacity ?? 1024);
    this.visited = new Uint8Array(this.cap);
  }

  protected override onGrow(newCap: number): void {
    const v = new Uint8Array(newCap);
    v.set(this.visited);
    this.visited = v;
  }

  get size(): number {
    return this.used;
  }

  /**
   * Tracks `key` at the queue head with the visited bit clear (a tracked key is touched).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `key` is not an integer in [0, 2^32 − 1].
   */
  insert(key: number, _info?: EvictionEntryInfo): void {
    requireKey(key);
    let s = this.slotOf(key);
    if (s !== -1) {
      this.visited[s] = 1;
      return;
    }
    s = this.addKey(key);
    this.visited[s] = 0;
    this.pushHead(0, s);
  }

  /** Sets the visited bit of a tracked key. */
  touch(key: number, _info?: EvictionEntryInfo): void {
    const s = this.slotOf(key);
    if (s !== -1) this.visited[s] = 1;
  }

  remove(key: number): void {
    const s = this.slotOf(key);
    if (s === -1) return;
    if (this.hand === s) this.hand = this.prev[s] as number;
    this.unlink(s);
    this.dropSlot(s);
  }

  victim(): number {
    const tail = this.tails[0] as number;
    if (tail === -1) return -1;
    let o = this.hand === -1 ? tail : this.hand;
    while (this.visited[o] === 1) {
      this.visited[o] = 0;
      o = this.prev[o] as number;
      if (o === -1) o = tail;
    }
    this.hand = o;
    return this.keys[o] as number;
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
    this.hand = -1;
  }
}
