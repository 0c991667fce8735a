/**
 * `BlockIndexStore`: the block index as a store that several router replicas can share —
 * store, remove, clear per endpoint, and one prefix lookup per prompt. Asynchronous, because
 * the shared implementation (`RedisBlockIndexStore`) lives across a network; the in-memory one
 * ({@link MemoryBlockIndexStore}) is the existing {@link KvBlockIndex} behind the same contract,
 * so a contract test can run the same operations against both and expect the same lookups.
 *
 * Times are milliseconds on a clock every replica shares (`Date.now()`): a speculative entry
 * written by one replica must expire at the same moment for all of them.
 */
import type { Tier } from '@kvmgr/core';
import { invalidArgument, requirePositiveInt } from '@kvmgr/core';
import type { LocalKeys } from './hash64.js';
import { KvBlockIndex, type TierWeights, createPrefixMatch } from './kv-block-index.js';

/** Consecutive matched blocks of one endpoint. */
export interface EndpointPrefix {
  /** Consecutive blocks from the first that the endpoint holds (any tier, live speculative entries included). */
  readonly blocks: number;
  /** Sum over those blocks of the best tier weight the endpoint holds each block in. */
  readonly weightedBlocks: number;
}

/** Result of {@link BlockIndexStore.lookup}: endpoints with at least one matched block. */
export type PrefixLookup = ReadonlyMap<string, EndpointPrefix>;

/** A block index several replicas can share. Every method is safe to call concurrently. */
export interface BlockIndexStore {
  /**
   * Records blocks `[fromBlock, blocks)` of `keys` as held by `endpoint` in `tier`. A confirmed
   * copy replaces the endpoint's speculative entry for the same key.
   * @param keys - local keys, `[hi, lo]` per block.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad range or tier (nothing stored).
   */
  store(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock?: number, blocks?: number): Promise<void>;
  /**
   * Speculative entries for blocks `[fromBlock, blocks)` until `expiresAtMs` (ignored for keys the
   * endpoint holds confirmed; an existing speculative entry gets the new expiry).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad range or a non-finite expiry.
   */
  storeSpeculative(endpoint: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtMs: number): Promise<void>;
  /**
   * Removes the endpoint's `tier` copy of blocks `[fromBlock, blocks)`.
   * @returns holders removed (keys it did not hold in that tier are not counted).
   */
  remove(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock?: number, blocks?: number): Promise<number>;
  /** Drops every block of an endpoint (all tiers and speculative entries), or only one tier. */
  clear(endpoint: string, tier?: Tier): Promise<void>;
  /**
   * Consecutive prefix matches of the first `blocks` blocks of `keys`, per endpoint, with
   * speculative entries live at `nowMs`.
   * @param tierWeights - weights of the weighted sum (gpu, cpu, disk, speculative).
   */
  lookup(keys: LocalKeys, blocks: number, nowMs: number, tierWeights: TierWeights): Promise<PrefixLookup>;
  /** Releases connections; further calls may throw. Idempotent. */
  close(): Promise<void>;
}

/**
 * Requires integer blocks `0 ≤ fromBlock ≤ blocks ≤ keys.length / 2`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requireStoreRange(keys: unknown, fromBlock: unknown, blocks: unknown): void {
  if (!(keys instanceof Uint32Array) && !Array.isArray(keys)) throw invalidArgument('keys', keys, 'local keys (a Uint32Array of [hi, lo] pairs)');
  const n = keys.length >>> 1;
  if (typeof blocks !== 'number' || !Number.isInteger(blocks) || blocks < 0 || blocks > n) throw invalidArgument('blocks', blocks, `an integer in [0, ${n}] (keys hold ${n} blocks)`);
  if (typeof fromBlock !== 'number' || !Number.isInteger(fromBlock) || fromBlock < 0 || fromBlock > blocks) throw invalidArgument('fromBlock', fromBlock, `an integer in [0, ${blocks}]`);
}

/** Options of a {@link MemoryBlockIndexStore}. */
export interface MemoryBlockIndexStoreOptions {
  /** The index to serve (shared with whoever feeds it events). @default a new KvBlockIndex */
  readonly index?: KvBlockIndex;
  /** Most keys when the store makes its own index. @default 1048576 */
  readonly maxKeys?: number;
}

/**
 * The in-process {@link BlockIndexStore}: a {@link KvBlockIndex} (milliseconds become its
 * microseconds). Memory is bounded by the index's global LRU over keys (`maxKeys`) and its
 * holders per key, not per endpoint as in Redis.
 */
export class MemoryBlockIndexStore implements BlockIndexStore {
  /** The index served. */
  readonly index: KvBlockIndex;

  constructor(options: MemoryBlockIndexStoreOptions = {}) {
    this.index = options.index ?? new KvBlockIndex({ maxKeys: requirePositiveInt('maxKeys', options.maxKeys ?? 1 << 20) });
  }

  async store(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<void> {
    this.index.recordBlocks(endpoint, keys, tier, fromBlock, blocks);
  }

  async storeSpeculative(endpoint: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtMs: number): Promise<void> {
    if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) throw invalidArgument('expiresAtMs', expiresAtMs, 'a finite time in ms');
    this.index.addSpeculative(endpoint, keys, fromBlock, blocks, expiresAtMs * 1000);
  }

  async remove(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<number> {
    requireStoreRange(keys, fromBlock, blocks);
    if (this.index.instanceIndex(endpoint) < 0) return 0;
    const before = this.index.stats.unknownKeyRemovals;
    this.index.removeBlocks(endpoint, keys, tier, fromBlock, blocks);
    return blocks - fromBlock - (this.index.stats.unknownKeyRemovals - before);
  }

  async clear(endpoint: string, tier?: Tier): Promise<void> {
    this.index.clear(endpoint, tier);
  }

  async lookup(keys: LocalKeys, blocks: number, nowMs: number, tierWeights: TierWeights): Promise<PrefixLookup> {
    const out = createPrefixMatch(this.index.maxInstances);
    const w = this.index.tierWeights;
    if (w.gpu !== tierWeights.gpu || w.cpu !== tierWeights.cpu || w.disk !== tierWeights.disk || w.speculative !== tierWeights.speculative) {
      throw invalidArgument('tierWeights', tierWeights, `the index's own weights ${JSON.stringify(w)} (a KvBlockIndex fixes them at construction)`);
    }
    this.index.matchPrefix(keys, blocks, nowMs * 1000, out);
    const res = new Map<string, EndpointPrefix>();
    for (let i = 0; i < this.index.maxInstances; i++) {
      const m = out.matchedBlocks[i] as number;
      if (m === 0) continue;
      const id = this.index.instanceId(i);
      if (id !== undefined) res.set(id, { blocks: m, weightedBlocks: out.weightedBlocks[i] as number });
    }
    return res;
  }

  async close(): Promise<void> {}
}
