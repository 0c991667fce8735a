/**
 * A {@link BlockIndexStore} that keeps serving when Redis is gone: every write goes to a local
 * store (always) and to the Redis store (while the link is healthy); lookups ask Redis and fall
 * back to the local store when the link is degraded, fails or times out. Nothing throws because
 * of Redis. When the link recovers, the endpoints this replica owns are rewritten in Redis from
 * the local store (clear, then their confirmed blocks), so whatever Redis lost or missed while it
 * was away — a restart with an empty dataset, writes dropped during a partition — comes back.
 */
import type { Tier } from '@kvmgr/core';
import type { LocalKeys } from './hash64.js';
import type { BlockIndexStore, MemoryBlockIndexStore, PrefixLookup } from './index-store.js';
import type { TierWeights } from './kv-block-index.js';
import type { RedisBlockIndexStore } from './redis-block-index-store.js';
import type { RedisLink } from './redis-link.js';

/** Options of a {@link FallbackBlockIndexStore}. */
export interface FallbackBlockIndexStoreOptions {
  /** The shared store and the link its client belongs to. */
  readonly remote: RedisBlockIndexStore;
  readonly link: RedisLink;
  /** The local store (its `index` is what a resync reads). */
  readonly local: MemoryBlockIndexStore;
  /**
   * Which endpoints this replica rewrites on resync (the engines whose lease it holds).
   * @default every endpoint of the local index
   */
  readonly owns?: (endpoint: string) => boolean;
  /** Keys per script call during a resync. @default 512 */
  readonly resyncChunkBlocks?: number;
}

/** Counters of a {@link FallbackBlockIndexStore}. */
export interface FallbackStats {
  /** Lookups answered by Redis. */
  remoteLookups: number;
  /** Lookups answered locally (link degraded, failed or timed out). */
  localLookups: number;
  /** Completed resyncs. */
  resyncs: number;
  /** Blocks rewritten by resyncs. */
  resyncedBlocks: number;
}

/**
 * Redis first, local always. See the module comment.
 */
export class FallbackBlockIndexStore implements BlockIndexStore {
  readonly remote: RedisBlockIndexStore;
  readonly local: MemoryBlockIndexStore;
  readonly link: RedisLink;
  readonly stats: FallbackStats = { remoteLookups: 0, localLookups: 0, resyncs: 0, resyncedBlocks: 0 };
  private readonly owns: (endpoint: string) => boolean;
  private readonly chunk: number;
  private readonly off: () => void;
  private resyncing: Promise<void> | undefined;
  /** Endpoints written through this store: a resync covers them even when the local index forgot them. */
  private readonly known = new Set<string>();

  constructor(options: FallbackBlockIndexStoreOptions) {
    this.remote = options.remote;
    this.local = options.local;
    this.link = options.link;
    this.owns = options.owns ?? (() => true);
    this.chunk = options.resyncChunkBlocks ?? 512;
    this.off = this.link.onChange((degraded) => {
      if (!degraded) void this.resync();
    });
  }

  /** True while lookups are answered locally. */
  get degraded(): boolean {
    return this.link.degraded;
  }

  async store(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<void> {
    await this.local.store(endpoint, keys, tier, fromBlock, blocks);
    this.known.add(endpoint);
    await this.link.run(() => this.remote.store(endpoint, keys, tier, fromBlock, blocks));
  }

  async storeSpeculative(endpoint: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtMs: number): Promise<void> {
    await this.local.storeSpeculative(endpoint, keys, fromBlock, blocks, expiresAtMs);
    this.known.add(endpoint);
    await this.link.run(() => this.remote.storeSpeculative(endpoint, keys, fromBlock, blocks, expiresAtMs));
  }

  async remove(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<number> {
    const n = await this.local.remove(endpoint, keys, tier, fromBlock, blocks);
    await this.link.run(() => this.remote.remove(endpoint, keys, tier, fromBlock, blocks));
    return n;
  }

  async clear(endpoint: string, tier?: Tier): Promise<void> {
    await this.local.clear(endpoint, tier);
    await this.link.run(() => this.remote.clear(endpoint, tier));
  }

  /** Redis' answer, or the local one when Redis cannot answer now. Never throws because of Redis. */
  async lookup(keys: LocalKeys, blocks: number, nowMs: number, tierWeights: TierWeights): Promise<PrefixLookup> {
    if (!this.link.degraded) {
      const r = await this.link.run(() => this.remote.lookup(keys, blocks, nowMs, tierWeights));
      if (r !== undefined) {
        this.stats.remoteLookups++;
        return r;
      }
    }
    this.stats.localLookups++;
    return this.local.lookup(keys, blocks, nowMs, tierWeights);
  }

  /**
   * Rewrites the owned endpoints in Redis from the local index: per endpoint a clear, then its
   * confirmed blocks by tier, all issued back to back on the one connection (so a write made
   * after the resync started lands after it). Speculative entries are not rewritten (they live
   * seconds). Runs on every recovery of the link; one at a time.
   */
  resync(): Promise<void> {
    if (this.resyncing !== undefined) return this.resyncing;
    this.resyncing = this.resyncOnce().finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  private async resyncOnce(): Promise<void> {
    const index = this.local.index;
    const ops: Promise<unknown>[] = [];
    let blocks = 0;
    const endpoints = new Set(this.known);
    for (let i = 0; i < index.maxInstances; i++) {
      const id = index.instanceId(i);
      if (id !== undefined) endpoints.add(id);
    }
    const ok = await this.link.run(async () => {
      for (const ep of endpoints) {
        if (!this.owns(ep)) continue;
        const byTier: Record<Tier, number[]> = { gpu: [], cpu: [], disk: [] };
        index.forEachHeld(ep, (hi, lo, tier) => byTier[tier].push(hi, lo));
        ops.push(this.remote.clear(ep));
        for (const tier of ['gpu', 'cpu', 'disk'] as const) {
          const flat = Uint32Array.from(byTier[tier]);
          const n = flat.length >>> 1;
          for (let b = 0; b < n; b += this.chunk) ops.push(this.remote.store(ep, flat, tier, b, Math.min(n, b + this.chunk)));
          blocks += n;
        }
      }
      await Promise.all(ops);
      return true;
    });
    if (ok) {
      this.stats.resyncs++;
      this.stats.resyncedBlocks += blocks;
    }
  }

  /** Stops listening to the link (the link and its client are the caller's). */
  async close(): Promise<void> {
    this.off();
    await this.resyncing;
  }
}
