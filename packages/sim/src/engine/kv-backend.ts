/**
 * What an engine instance needs from its KV bookkeeping. Three implementations: {@link KvManager}
 * (vLLM-style block-hash cache over `@kvmgr/kv-pool`'s `BlockPool`, any `@kvmgr/eviction`
 * policy, its own CPU tier), {@link RadixKvManager} (the same pool and CPU tier with
 * `@kvmgr/prefix-cache`'s `RadixPrefixCache` as the prefix index) and {@link TieredKvBackend}
 * (`@kvmgr/kv-pool`'s `TieredPool`: LRU free queue, CPU/disk tiers with watermark offload and
 * queued transfer links). Pure types.
 */
import type { BlockId } from '@kvmgr/core';
import type { KvCounters } from './kv-manager-base.js';

/** KV bookkeeping of one simulated instance. */
export interface KvBackend {
  /** `kvmgr` (KvManager) or `tiered-pool`. */
  readonly kind: string;
  readonly blockSize: number;
  /** GPU blocks. */
  readonly numBlocks: number;
  /** CPU-tier blocks (0 = none). */
  readonly cpuCapacity: number;
  readonly counters: KvCounters;
  /** Current time, µs (set by the instance before it works on the cache). */
  nowUs: number;
  /** Called with the key of each prompt block that becomes cached / is evicted from the GPU. */
  onStore: ((key: number) => void) | undefined;
  onEvict: ((key: number) => void) | undefined;
  /** Blocks allocatable now (free + evictable cached). */
  readonly freeBlocks: number;
  /** Blocks used by at least one request. */
  readonly blocksInUse: number;
  /** GPU blocks holding a cached prefix. */
  readonly cachedBlocks: number;
  /** Cached GPU blocks no request uses. */
  readonly evictableBlocks: number;
  /** CPU-tier blocks used. */
  readonly cpuBlocksUsed: number;
  hasCached(key: number): boolean;
  /** Cached prefix of `keys` (≤ `limit`): GPU blocks in `out[0]`, then lower-tier blocks in `out[1]`. */
  matchPrefix(keys: Float64Array, limit: number, out: Int32Array): void;
  /** Takes the first `n` GPU-cached blocks of `keys` (appended to `out`). */
  acquireCached(keys: Float64Array, n: number, out: BlockId[]): void;
  /** Allocates `n` blocks (appended to `out`); false (nothing changed) when short. */
  allocate(n: number, out: BlockId[]): boolean;
  /** Caches a full block under `key`; false when the block or key is taken. */
  commit(key: number, block: BlockId): boolean;
  /**
   * Path indexes (radix): caches the prefix `keys[0, to)` held in `blocks[0, to)` at once (the
   * instance then never calls {@link commit}); may replace duplicate blocks in `blocks` by the
   * cached ones. Absent on block-hash backends.
   */
  commitPrefix?(keys: Float64Array, to: number, blocks: BlockId[]): void;
  /** Reloads keys `[from, from + n)` from a lower tier; transfer µs, or -1 when short. */
  reload(keys: Float64Array, from: number, n: number, out: BlockId[]): number;
  /** Releases a request's blocks (emptied). */
  release(blocks: BlockId[], nowUs: number): void;
  canSwapOut(n: number): boolean;
  /** Swap preemption: transfer µs. */
  swapOut(blocks: BlockId[], nowUs: number): number;
  /** Transfer µs, or -1 when short. */
  swapIn(n: number, out: BlockId[]): number;
  dropSwapped(n: number): void;
  /** Evicts every evictable cached block; returns how many. */
  clearCache(): number;
  /** First accounting violation, or undefined. */
  checkConservation(): string | undefined;
  /** `EngineSnapshot.pendingTransferLatency`, µs. */
  pendingTransferLatency(nowUs: number): number;
  /** `EngineSnapshot.kvThrashingRate`, cycles/s. */
  kvThrashingRate(nowUs: number): number;
}
