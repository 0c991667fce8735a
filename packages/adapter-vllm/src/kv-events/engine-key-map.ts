/**
 * The bridge between the two key spaces of DESIGN §6: engine block hashes (from events) → kvmgr
 * block keys (`@kvmgr/core` `blockKeysFromTokens`), learned from `BlockStored` token ids and
 * chained through `parent_block_hash`, forgotten on `BlockRemoved` (per medium) and on reset,
 * bounded by `maxEntries` (the least recently stored entry goes first).
 *
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock (engine key → request key)
 * @see ai-dynamo/dynamo: lib/llm/src/kv_router/indexer.rs
 */
import type { BlockKeyNamespace, KvEvent } from '@kvmgr/core';
import { blockKeyExtraDigest, blockKeyRoot, blockKeyToU64, chainBlockKey, requirePositiveInt } from '@kvmgr/core';

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

function mediumBit(medium: string | null | undefined): number {
  if (medium == null) return 1;
  const m = medium.toUpperCase();
  if (m === 'GPU' || m === 'CUDA' || m === 'HBM') return 1;
  if (m === 'CPU' || m === 'CPU_PINNED' || m === 'DRAM') return 2;
  if (m === 'DISK' || m === 'SSD' || m === 'NVME') return 4;
  return 8;
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
  /** Engine hash → slot; Map order = store order (the eviction order). */
  private readonly slots = new Map<bigint, number>();
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly media: Uint8Array;
  private readonly free: Int32Array;
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
    this.hi = new Uint32Array(this.maxEntries);
    this.lo = new Uint32Array(this.maxEntries);
    this.media = new Uint8Array(this.maxEntries);
    this.free = new Int32Array(this.maxEntries);
  }

  /** Engine hashes held. */
  get size(): number {
    return this.slots.size;
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

  private alloc(): number {
    if (this.freeTop > 0) return this.free[--this.freeTop] as number;
    if (this.fresh < this.maxEntries) return this.fresh++;
    const oldest = this.slots.keys().next().value as bigint;
    const slot = this.slots.get(oldest) as number;
    this.slots.delete(oldest);
    this.stats.evicted++;
    return slot;
  }

  private release(hash: bigint, slot: number): void {
    this.slots.delete(hash);
    this.media[slot] = 0;
    this.free[this.freeTop++] = slot;
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
          const p = this.slots.get(event.parentBlockHash);
          if (p === undefined) {
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
          let slot = this.slots.get(h);
          if (slot === undefined) {
            slot = this.alloc();
          } else {
            this.slots.delete(h); // re-insert: now the most recently stored
          }
          this.slots.set(h, slot);
          this.hi[slot] = out[0] as number;
          this.lo[slot] = out[1] as number;
          this.media[slot] = (this.media[slot] as number) | bit;
          this.stats.stored++;
          ph = out[0] as number;
          pl = out[1] as number;
        }
        return;
      }
      case 'BlockRemoved': {
        const bit = mediumBit(event.medium);
        for (const h of event.blockHashes) {
          const slot = this.slots.get(h);
          if (slot === undefined || ((this.media[slot] as number) & bit) === 0) {
            this.stats.unknownRemovals++;
            continue;
          }
          this.media[slot] = (this.media[slot] as number) & ~bit;
          if (this.media[slot] === 0) {
            this.release(h, slot);
            this.stats.removed++;
          }
        }
        return;
      }
      case 'AllBlocksCleared': {
        this.stats.clears++;
        if (event.medium == null) {
          this.clear();
          return;
        }
        const bit = mediumBit(event.medium);
        for (const [h, slot] of [...this.slots]) {
          this.media[slot] = (this.media[slot] as number) & ~bit;
          if (this.media[slot] === 0) this.release(h, slot);
        }
        return;
      }
    }
  }

  /** Applies events in order (see {@link apply}). */
  applyEvents(events: readonly KvEvent[]): void {
    for (let i = 0; i < events.length; i++) this.apply(events[i] as KvEvent);
  }

  /**
   * Writes the local key of an engine hash to `out[2*index]` (hi) and `out[2*index + 1]` (lo).
   *
   * @returns false (and writes nothing) when the hash is not held.
   */
  lookup(engineHash: bigint, out: Uint32Array, index = 0): boolean {
    const slot = this.slots.get(engineHash);
    if (slot === undefined) return false;
    out[2 * index] = this.hi[slot] as number;
    out[2 * index + 1] = this.lo[slot] as number;
    return true;
  }

  /** The local key of an engine hash as a u64 bigint (for logs and tests), or undefined. */
  localKey(engineHash: bigint): bigint | undefined {
    const slot = this.slots.get(engineHash);
    return slot === undefined ? undefined : blockKeyToU64(this.hi[slot] as number, this.lo[slot] as number);
  }

  /** Forgets every hash (the publisher restarted or the cache was reset). */
  clear(): void {
    this.slots.clear();
    this.media.fill(0);
    this.freeTop = 0;
    this.fresh = 0;
  }
}
