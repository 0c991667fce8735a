/**
 * The bridge between the two key spaces of DESIGN §6: engine block hashes (from events) → kvmgr
 * block keys (`@kvmgr/core` `blockKeysFromTokens`), learned from `BlockStored` token ids and
 * chained through `parent_block_hash`, forgotten on `BlockRemoved` (per medium) and on reset,
 * bounded by `maxEntries` (the least recently stored entry goes first).
 *
 * Hot path: the table is an open-addressing hash table (linear probing, backward-shift deletion,
 * load ≤ 1/2) on typed arrays, keyed by the engine hash's two u32 halves; the store order is an
 * index-based doubly linked list. No BigInt is touched when events come in compact form
 * ({@link EngineKeyMap.applyCompact}, which `KvEventDecoder.applyBatch` feeds); typed events
 * split their bigint hashes once per block.
 *
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock (engine key → request key)
 * @see ai-dynamo/dynamo: lib/llm/src/kv_router/indexer.rs
 */
import type { BlockKeyNamespace, KvEvent } from '@kvmgr/core';
import { blockKeyExtraDigest, blockKeyRoot, blockKeyToU64, chainBlockKey, requirePositiveInt } from '@kvmgr/core';
import { type CompactKvEvents, EVENT_CLEARED, EVENT_REMOVED, EVENT_STORED } from './compact-events.js';

/** Options of an {@link EngineKeyMap}. */
export interface EngineKeyMapOptions {
  /** Namespace of the local keys (model, cache salt); an event's LoRA name is mixed in. @default {} */
  readonly namespace?: BlockKeyNamespace;
  /** Most engine hashes held; beyond it the least recently stored is forgotten. @default 1048576 */
  readonly maxEntries?: number;
}

/** Counters of an {@link EngineKeyMap}; events it cannot use are counted, never thrown. */
export interface EngineKeyMapStats {
  /** Engine hashes learned (or re-stored). */
  stored: number;
  /** Engine hashes forgotten by `BlockRemoved` (last medium gone). */
  removed: number;
  /** Blocks of a `BlockStored` whose parent hash is unknown (cannot be keyed; skipped). */
  unknownParentBlocks: number;
  /** `BlockRemoved` hashes not held (in that medium). */
  unknownRemovals: number;
  /** `BlockStored` with `token_ids.length !== hashes × block_size` (skipped). */
  malformedEvents: number;
  /** Entries dropped by the `maxEntries` bound. */
  evicted: number;
  /** `AllBlocksCleared` applied (whole or per medium). */
  clears: number;
}

/**
 * The medium bit of a medium name: GPU (and null) 1, CPU 2, disk 4, anything else 8.
 *
 * @param medium - vLLM's `medium` field (`"GPU"`, `"CPU"`, …), case-insensitive.
 */
export function mediumBit(medium: string | null | undefined): number {
  if (medium == null) return 1;
  const m = medium.toUpperCase();
  if (m === 'GPU' || m === 'CUDA' || m === 'HBM') return 1;
  if (m === 'CPU' || m === 'CPU_PINNED' || m === 'DRAM') return 2;
  if (m === 'DISK' || m === 'SSD' || m === 'NVME') return 4;
  return 8;
}

const U32 = 0xffffffffn;
const NONE = -1;
const INITIAL_CAPACITY = 1024;

/** Home bucket of an engine hash `(hi, lo)`: a murmur-style mix, so structured hashes spread. */
function mix(hi: number, lo: number): number {
  let h = Math.imul(lo, 0x9e3779b1) ^ hi;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return h ^ (h >>> 13);
}

/**
 * Engine hash → local key, for one source (one engine / DP rank).
 *
 * @example
 * ```ts
 * const keys = new EngineKeyMap({ namespace: { model: 'meta-llama/Llama-3.1-8B' } });
 * for await (const { batch, reset } of subscriber) { if (reset) keys.clear(); keys.applyEvents(batch.events); }
 * keys.lookup(engineHash, out, 0); // out[0] = hi, out[1] = lo of the local key
 * ```
 */
export class EngineKeyMap {
  readonly maxEntries: number;
  /** Counters; see {@link EngineKeyMapStats}. */
  readonly stats: EngineKeyMapStats = { stored: 0, removed: 0, unknownParentBlocks: 0, unknownRemovals: 0, malformedEvents: 0, evicted: 0, clears: 0 };
  private readonly ns: BlockKeyNamespace;
  // Per slot (capacity grows by doubling up to maxEntries): engine hash, local key, medium bits,
  // store-order links.
  private keyHi: Uint32Array;
  private keyLo: Uint32Array;
  private hi: Uint32Array;
  private lo: Uint32Array;
  private media: Uint8Array;
  private prev: Int32Array;
  private next: Int32Array;
  private free: Int32Array;
  /** Open-addressing table: slot + 1, 0 = empty; length a power of two ≥ 2 × capacity. */
  private table: Int32Array;
  private mask: number;
  private capacity: number;
  private count = 0;
  private head = NONE; // least recently stored
  private tail = NONE; // most recently stored
  private freeTop = 0;
  private fresh = 0;
  private readonly roots = new Map<string, Uint32Array>();
  private readonly scratch = new Uint32Array(2);

  /**
   * @param options - see {@link EngineKeyMapOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `maxEntries` is not a positive integer.
   */
  constructor(options: EngineKeyMapOptions = {}) {
    this.maxEntries = requirePositiveInt('maxEntries', options.maxEntries ?? 1 << 20);
    this.ns = options.namespace ?? {};
    this.capacity = Math.min(this.maxEntries, INITIAL_CAPACITY);
    this.keyHi = new Uint32Array(this.capacity);
    this.keyLo = new Uint32Array(this.capacity);
    this.hi = new Uint32Array(this.capacity);
    this.lo = new Uint32Array(this.capacity);
    this.media = new Uint8Array(this.capacity);
    this.prev = new Int32Array(this.capacity);
    this.next = new Int32Array(this.capacity);
    this.free = new Int32Array(this.capacity);
    this.table = new Int32Array(EngineKeyMap.tableSize(this.capacity));
    this.mask = this.table.length - 1;
  }

  private static tableSize(capacity: number): number {
    let n = 16;
    while (n < 2 * capacity) n *= 2;
    return n;
  }

  /** Engine hashes held. */
  get size(): number {
    return this.count;
  }

  private root(lora: string | undefined): Uint32Array {
    const k = lora ?? '';
    let r = this.roots.get(k);
    if (r === undefined) {
      r = blockKeyRoot(lora === undefined ? this.ns : { ...this.ns, lora });
      this.roots.set(k, r);
    }
    return r;
  }

  /** Slot of engine hash `(hi, lo)`, or −1. */
  private find(hi: number, lo: number): number {
    const table = this.table;
    const mask = this.mask;
    for (let i = mix(hi, lo) & mask; ; i = (i + 1) & mask) {
      const s = (table[i] as number) - 1;
      if (s < 0) return NONE;
      if (this.keyLo[s] === lo && this.keyHi[s] === hi) return s;
    }
  }

  private tableInsert(slot: number): void {
    const table = this.table;
    const mask = this.mask;
    let i = mix(this.keyHi[slot] as number, this.keyLo[slot] as number) & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = slot + 1;
  }

  /** Removes `slot` from the table, shifting later entries of its probe run back (no tombstones). */
  private tableDelete(slot: number): void {
    const table = this.table;
    const mask = this.mask;
    let i = mix(this.keyHi[slot] as number, this.keyLo[slot] as number) & mask;
    while (table[i] !== slot + 1) i = (i + 1) & mask;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const t = table[j] as number;
      if (t === 0) break;
      const home = mix(this.keyHi[t - 1] as number, this.keyLo[t - 1] as number) & mask;
      // move t back to the hole at i unless its home lies cyclically in (i, j]
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        table[i] = t;
        i = j;
      }
    }
    table[i] = 0;
  }

  private grow(): void {
    const cap = Math.min(this.maxEntries, this.capacity * 2);
    const widen = <T extends Uint32Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.keyHi = widen(this.keyHi, (n) => new Uint32Array(n));
    this.keyLo = widen(this.keyLo, (n) => new Uint32Array(n));
    this.hi = widen(this.hi, (n) => new Uint32Array(n));
    this.lo = widen(this.lo, (n) => new Uint32Array(n));
    this.media = widen(this.media, (n) => new Uint8Array(n));
    this.prev = widen(this.prev, (n) => new Int32Array(n));
    this.next = widen(this.next, (n) => new Int32Array(n));
    this.free = widen(this.free, (n) => new Int32Array(n));
    this.capacity = cap;
    this.table = new Int32Array(EngineKeyMap.tableSize(cap));
    this.mask = this.table.length - 1;
    for (let s = this.head; s !== NONE; s = this.next[s] as number) this.tableInsert(s);
  }

  private unlink(slot: number): void {
    const p = this.prev[slot] as number;
    const n = this.next[slot] as number;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
  }

  private append(slot: number): void {
    this.prev[slot] = this.tail;
    this.next[slot] = NONE;
    if (this.tail === NONE) this.head = slot;
    else this.next[this.tail] = slot;
    this.tail = slot;
  }

  /** A free slot, not linked and not in the table; evicts the least recently stored when full. */
  private alloc(): number {
    if (this.freeTop > 0) return this.free[--this.freeTop] as number;
    if (this.fresh === this.capacity && this.capacity < this.maxEntries) this.grow();
    if (this.fresh < this.capacity) return this.fresh++;
    const oldest = this.head;
    this.tableDelete(oldest);
    this.unlink(oldest);
    this.count--;
    this.media[oldest] = 0;
    this.stats.evicted++;
    return oldest;
  }

  private release(slot: number): void {
    this.tableDelete(slot);
    this.unlink(slot);
    this.count--;
    this.media[slot] = 0;
    this.free[this.freeTop++] = slot;
  }

  /** Learns (or re-stores, as most recent) engine hash `(kh, kl)` → local key `(vh, vl)` in medium `bit`. */
  private storeOne(kh: number, kl: number, vh: number, vl: number, bit: number): void {
    let slot = this.find(kh, kl);
    if (slot === NONE) {
      slot = this.alloc();
      this.keyHi[slot] = kh;
      this.keyLo[slot] = kl;
      this.tableInsert(slot);
      this.count++;
    } else {
      this.unlink(slot);
    }
    this.append(slot);
    this.hi[slot] = vh;
    this.lo[slot] = vl;
    this.media[slot] = (this.media[slot] as number) | bit;
    this.stats.stored++;
  }

  private removeOne(kh: number, kl: number, bit: number): void {
    const slot = this.find(kh, kl);
    if (slot === NONE || ((this.media[slot] as number) & bit) === 0) {
      this.stats.unknownRemovals++;
      return;
    }
    this.media[slot] = (this.media[slot] as number) & ~bit;
    if (this.media[slot] === 0) {
      this.release(slot);
      this.stats.removed++;
    }
  }

  private clearMedium(bit: number): void {
    for (let s = this.head; s !== NONE; ) {
      const n = this.next[s] as number;
      this.media[s] = (this.media[s] as number) & ~bit;
      if (this.media[s] === 0) this.release(s);
      s = n;
    }
  }

  /**
   * Applies one event: `BlockStored` learns its hashes (a block whose parent is unknown, and all
   * after it in the event, are skipped and counted), `BlockRemoved` forgets them in that medium,
   * `AllBlocksCleared` forgets everything (or one medium). Never throws.
   */
  apply(event: KvEvent): void {
    switch (event.type) {
      case 'BlockStored': {
        const n = event.blockHashes.length;
        const bs = event.blockSize;
        if (!(bs > 0) || event.tokenIds.length !== n * bs) {
          this.stats.malformedEvents++;
          return;
        }
        let ph: number;
        let pl: number;
        if (event.parentBlockHash == null) {
          const r = this.root(event.loraName ?? (event.loraId == null ? undefined : String(event.loraId)));
          ph = r[0] as number;
          pl = r[1] as number;
        } else {
          const p = this.findU64(event.parentBlockHash);
          if (p === NONE) {
            this.stats.unknownParentBlocks += n;
            return;
          }
          ph = this.hi[p] as number;
          pl = this.lo[p] as number;
        }
        const bit = mediumBit(event.medium);
        const out = this.scratch;
        for (let i = 0; i < n; i++) {
          const h = event.blockHashes[i] as bigint;
          const x = event.extraKeys?.[i];
          chainBlockKey(ph, pl, event.tokenIds, i * bs, (i + 1) * bs, x == null ? 0 : blockKeyExtraDigest(x), out, 0);
          ph = out[0] as number;
          pl = out[1] as number;
          this.storeOne(Number((h >> 32n) & U32), Number(h & U32), ph, pl, bit);
        }
        return;
      }
      case 'BlockRemoved': {
        const bit = mediumBit(event.medium);
        for (const h of event.blockHashes) this.removeOne(Number((h >> 32n) & U32), Number(h & U32), bit);
        return;
      }
      case 'AllBlocksCleared': {
        this.stats.clears++;
        if (event.medium == null) this.clear();
        else this.clearMedium(mediumBit(event.medium));
        return;
      }
    }
  }

  /** Applies events in order (see {@link apply}). */
  applyEvents(events: readonly KvEvent[]): void {
    for (let i = 0; i < events.length; i++) this.apply(events[i] as KvEvent);
  }

  /**
   * Applies events in compact form (as `KvEventDecoder.applyBatch` decodes them), with exactly the
   * effect of {@link applyEvents} on the same events. Never throws.
   *
   * @param events - a decoded batch; read, not kept.
   */
  applyCompact(events: CompactKvEvents): void {
    const out = this.scratch;
    const { kind, hashStart, hashCount, hashHi, hashLo, tokenStart, tokenCount, tokens, blockSize, extra, medium, hasParent, parentHi, parentLo, lora } = events;
    for (let e = 0; e < events.count; e++) {
      const k = kind[e];
      const hs = hashStart[e] as number;
      const n = hashCount[e] as number;
      const bit = medium[e] as number;
      if (k === EVENT_STORED) {
        const bs = blockSize[e] as number;
        if (tokenCount[e] !== n * bs) {
          this.stats.malformedEvents++;
          continue;
        }
        let ph: number;
        let pl: number;
        if (hasParent[e] === 0) {
          const r = this.root(lora[e] ?? undefined);
          ph = r[0] as number;
          pl = r[1] as number;
        } else {
          const p = this.find(parentHi[e] as number, parentLo[e] as number);
          if (p === NONE) {
            this.stats.unknownParentBlocks += n;
            continue;
          }
          ph = this.hi[p] as number;
          pl = this.lo[p] as number;
        }
        const ts = tokenStart[e] as number;
        for (let i = 0; i < n; i++) {
          chainBlockKey(ph, pl, tokens, ts + i * bs, ts + (i + 1) * bs, extra[hs + i] as number, out, 0);
          ph = out[0] as number;
          pl = out[1] as number;
          this.storeOne(hashHi[hs + i] as number, hashLo[hs + i] as number, ph, pl, bit);
        }
      } else if (k === EVENT_REMOVED) {
        for (let i = hs; i < hs + n; i++) this.removeOne(hashHi[i] as number, hashLo[i] as number, bit);
      } else if (k === EVENT_CLEARED) {
        this.stats.clears++;
        if (bit === 0) this.clear();
        else this.clearMedium(bit);
      }
    }
  }

  private findU64(engineHash: bigint): number {
    // a value outside [0, 2^64) gives a half outside u32 and matches nothing
    return this.find(Number(engineHash >> 32n), Number(engineHash & U32));
  }

  /**
   * Writes the local key of an engine hash to `out[2*index]` (hi) and `out[2*index + 1]` (lo).
   *
   * @returns false (and writes nothing) when the hash is not held.
   */
  lookup(engineHash: bigint, out: Uint32Array, index = 0): boolean {
    const slot = this.findU64(engineHash);
    if (slot === NONE) return false;
    out[2 * index] = this.hi[slot] as number;
    out[2 * index + 1] = this.lo[slot] as number;
    return true;
  }

  /**
   * {@link lookup} without BigInt: the engine hash as two unsigned 32-bit halves.
   *
   * @param engineHi - high 32 bits of the engine hash.
   * @param engineLo - low 32 bits of the engine hash.
   * @returns false (and writes nothing) when the hash is not held.
   */
  lookupHalves(engineHi: number, engineLo: number, out: Uint32Array, index = 0): boolean {
    const slot = this.find(engineHi >>> 0, engineLo >>> 0);
    if (slot === NONE) return false;
    out[2 * index] = this.hi[slot] as number;
    out[2 * index + 1] = this.lo[slot] as number;
    return true;
  }

  /** The local key of an engine hash as a u64 bigint (for logs and tests), or undefined. */
  localKey(engineHash: bigint): bigint | undefined {
    const slot = this.findU64(engineHash);
    return slot === NONE ? undefined : blockKeyToU64(this.hi[slot] as number, this.lo[slot] as number);
  }

  /** Forgets every hash (the publisher restarted or the cache was reset). */
  clear(): void {
    this.table.fill(0);
    this.media.fill(0);
    this.count = 0;
    this.head = NONE;
    this.tail = NONE;
    this.freeTop = 0;
    this.fresh = 0;
  }
}
