/**
 * The KV bookkeeping of one simulated engine, vLLM v1 style: a block pool (core `KVPool`,
 * normally `@kvmgr/kv-pool`'s `BlockPool`), a block-hash → block map for prefix caching, an
 * eviction policy (core `EvictionPolicy`, normally from `@kvmgr/eviction`) over cached blocks no
 * request uses, and an optional CPU tier that keeps evicted prefixes for reload.
 *
 * Accounting: the pool holds exactly one reference per block that is in use by ≥ 1 request or
 * cached; `userRefs` counts the requests using a block. A cached block with no user counts as
 * free (vLLM counts evictable cached blocks as free). The policy tracks a cached block from
 * the moment it is cached until it is evicted, and sees one access (`touch`) each time a request
 * stops using it (so LRU order is vLLM's free-queue order, and frequency-aware policies see
 * reuse); a victim that is still in use is parked (taken out of the policy) and re-inserted when
 * its last user leaves.
 *
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py, kv_cache_manager.py
 */
import type { BlockId } from '@kvmgr/core';
import type { KvBackend } from './kv-backend.js';
import type { KvManagerOptions } from './kv-manager-base.js';
import { KvManagerBase } from './kv-manager-base.js';
import { KeyTable } from './key-table.js';

export type { KvCounters, KvManagerOptions } from './kv-manager-base.js';

/** KV bookkeeping of one instance. */
export class KvManager extends KvManagerBase implements KvBackend {
  readonly kind = 'kvmgr';
  /** Requests using each block. */
  readonly userRefs: Int32Array;
  private readonly hasKey: Uint8Array;
  private readonly cache: KeyTable;
  private usedByRequests = 0;
  private evictable = 0;
  private readonly parked: Uint8Array;

  /**
   * @param options - pool, policy, block size, CPU tier (@default 0 blocks), host bandwidth
   *   (@default 64e9 B/s), transfer base latency (@default 50 µs).
   */
  constructor(options: KvManagerOptions) {
    super(options);
    this.userRefs = new Int32Array(this.numBlocks);
    this.hasKey = new Uint8Array(this.numBlocks);
    this.cache = new KeyTable(this.numBlocks);
    this.parked = new Uint8Array(this.numBlocks);
  }

  /** Blocks allocatable now: free in the pool plus cached blocks no request uses. */
  get freeBlocks(): number {
    return this.pool.numFreeBlocks + this.evictable;
  }

  /** Cached blocks no request uses (evictable). */
  get evictableBlocks(): number {
    return this.evictable;
  }

  /** Blocks used by at least one request. */
  get blocksInUse(): number {
    return this.usedByRequests;
  }

  /** Blocks holding a cached prefix (used or not). */
  get cachedBlocks(): number {
    return this.cache.size;
  }

  /** True when `key` is cached on the GPU. */
  hasCached(key: number): boolean {
    return this.cache.has(key);
  }

  /**
   * Length of the cached prefix of `keys` (blocks), looking at most at `limit` keys: first on
   * the GPU, then continuing on the CPU tier.
   * @returns GPU blocks in `out[0]`, CPU blocks in `out[1]`.
   */
  matchPrefix(keys: Float64Array, limit: number, out: Int32Array): void {
    const n = Math.min(limit, keys.length);
    let g = 0;
    while (g < n && this.cache.has(keys[g] as number)) g++;
    let c = g;
    if (this.cpu.size > 0) while (c < n && this.cpu.has(keys[c] as number)) c++;
    out[0] = g;
    out[1] = c - g;
  }

  /**
   * Takes the first `n` cached GPU blocks of `keys` for a request (appended to `out`).
   * The caller checked they are cached with {@link matchPrefix}.
   */
  acquireCached(keys: Float64Array, n: number, out: BlockId[]): void {
    for (let i = 0; i < n; i++) {
      const b = this.cache.get(keys[i] as number);
      const u = this.userRefs[b] as number;
      if (u === 0) {
        this.evictable--;
        this.usedByRequests++;
      }
      this.userRefs[b] = u + 1;
      out.push(b);
    }
  }

  /**
   * Allocates `n` blocks for a request (appended to `out`), evicting cached blocks by the policy
   * when the pool is short. All or nothing.
   * @returns false (nothing changed) when even eviction cannot free enough.
   */
  allocate(n: number, out: BlockId[]): boolean {
    if (n === 0) return true;
    if (n > this.pool.numFreeBlocks + this.evictable) return false;
    while (this.pool.numFreeBlocks < n) this.evictOne();
    const blocks = this.pool.allocate(n);
    for (let i = 0; i < n; i++) {
      const b = blocks[i] as number;
      this.userRefs[b] = 1;
      out.push(b);
    }
    this.usedByRequests += n;
    return true;
  }

  /** Evicts the policy's victim (counted, `onEvict`, offloaded to the CPU tier). */
  private evictOne(): void {
    const key = this.dropVictim();
    this.counters.evictedBlocks++;
    this.onEvict?.(key);
    this.offload(key);
  }

  /**
   * Uncaches the policy's first victim no request uses (victims in use are parked until their
   * last user leaves) and frees its block. The caller checked `evictable > 0`.
   * @returns the victim's key.
   */
  private dropVictim(): number {
    let v = this.policy.victim();
    while ((this.userRefs[v] as number) > 0) {
      // In use: not evictable now; park it until its last user leaves.
      this.policy.remove(v);
      this.parked[v] = 1;
      v = this.policy.victim();
    }
    this.policy.remove(v);
    this.evictable--;
    const key = this.blockKey[v] as number;
    this.cache.delete(key);
    this.hasKey[v] = 0;
    this.scratch[0] = v;
    this.pool.free(this.scratch.subarray(0, 1));
    return key;
  }

  /**
   * Registers `block` as holding prefix `key` (a full block a request computed). No-op when the
   * block already has a key or another block holds the key (the request keeps its duplicate).
   * @returns true when the block became cached.
   */
  commit(key: number, block: BlockId): boolean {
    if (this.hasKey[block] === 1 || this.cache.has(key)) return false;
    this.cache.set(key, block);
    this.blockKey[block] = key;
    this.hasKey[block] = 1;
    this.policy.insert(block, { nowUs: this.nowUs });
    this.onStore?.(key);
    return true;
  }

  /**
   * Reloads `n` CPU-tier keys into freshly allocated GPU blocks (appended to `out`) and caches them.
   * @returns the transfer time, µs, or -1 (nothing changed) when the GPU is short of blocks.
   */
  reload(keys: Float64Array, from: number, n: number, out: BlockId[]): number {
    const start = out.length;
    if (!this.allocate(n, out)) return -1;
    for (let i = 0; i < n; i++) {
      const key = keys[from + i] as number;
      this.cpu.delete(key);
      this.commit(key, out[start + i] as number);
    }
    return this.reloaded(n);
  }

  /**
   * Releases a request's blocks, last block first (so its tail is evicted first, as vLLM does).
   * Cached blocks whose last user left become evictable; others return to the pool.
   */
  release(blocks: BlockId[], nowUs: number): void {
    let k = 0;
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i] as number;
      const u = (this.userRefs[b] as number) - 1;
      this.userRefs[b] = u;
      if (u === 0) {
        this.usedByRequests--;
        if (this.hasKey[b] === 1) {
          this.evictable++;
          if (this.parked[b] === 1) {
            this.parked[b] = 0;
            this.policy.insert(b, { nowUs });
          } else this.policy.touch(b, { nowUs });
        } else this.scratch[k++] = b;
      }
    }
    if (k > 0) this.pool.free(this.scratch.subarray(0, k));
    blocks.length = 0;
  }

  /**
   * Evicts every cached block no request uses and clears the CPU tier.
   * @returns blocks evicted.
   */
  clearCache(): number {
    let n = 0;
    while (this.evictable > 0) {
      this.dropVictim();
      n++;
    }
    this.cpu.clear();
    return n;
  }

  /**
   * Checks the accounting: pool used blocks = blocks used by requests + cached blocks no request
   * uses. Returns a description of the first violation, or undefined.
   */
  checkConservation(): string | undefined {
    const used = this.numBlocks - this.pool.numFreeBlocks;
    const expected = this.usedByRequests + this.evictable;
    if (used !== expected) return `pool has ${used} used blocks, expected ${this.usedByRequests} in use + ${this.evictable} cached-evictable`;
    let parked = 0;
    for (let b = 0; b < this.numBlocks; b++) parked += this.parked[b] as number;
    if (this.policy.size + parked !== this.cache.size) return `policy tracks ${this.policy.size} + ${parked} parked blocks, cache holds ${this.cache.size}`;
    let users = 0;
    for (let b = 0; b < this.numBlocks; b++) if ((this.userRefs[b] as number) > 0) users++;
    if (users !== this.usedByRequests) return `${users} blocks have users, counter says ${this.usedByRequests}`;
    return undefined;
  }
}
