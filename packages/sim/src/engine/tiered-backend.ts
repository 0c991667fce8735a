/**
 * A {@link KvBackend} over `@kvmgr/kv-pool`'s `TieredPool`: the GPU tier is a `BlockPool` whose
 * free queue is vLLM's LRU (cached blocks stay reusable until handed out), cached GPU blocks next
 * in line for eviction are offloaded to CPU above a usage watermark, a hit held only on CPU/disk
 * reloads into new GPU blocks, and transfers queue per link (base latency + bytes / bandwidth).
 * The reload time charged to the step is the time until the reloaded blocks land.
 */
import type { BlockId, KVCacheSpec } from '@kvmgr/core';
import { TieredPool } from '@kvmgr/kv-pool';
import type { KvBackend } from './kv-backend.js';
import type { KvCounters } from './kv-manager.js';

/** Options of {@link TieredKvBackend}. */
export interface TieredKvBackendOptions {
  readonly spec: KVCacheSpec;
  readonly gpuBlocks: number;
  /** CPU-tier blocks. @default 0 */
  readonly cpuBlocks?: number;
  /** Disk-tier blocks. @default 0 */
  readonly diskBlocks?: number;
  /** Host link bandwidth, bytes/s. @default 64e9 */
  readonly hostBytesPerSec?: number;
  /** Fixed latency of one transfer batch, µs. @default 50 */
  readonly transferBaseUs?: number;
  /** GPU usage above which cached blocks are offloaded. @default 0.9 */
  readonly offloadWatermark?: number;
}

/** KV bookkeeping on a `TieredPool`. */
export class TieredKvBackend implements KvBackend {
  readonly kind = 'tiered-pool';
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly cpuCapacity: number;
  readonly counters: KvCounters = { evictedBlocks: 0, offloadedBlocks: 0, reloadedBlocks: 0, swappedOutBlocks: 0, swappedInBlocks: 0 };
  readonly pool: TieredPool;
  nowUs = 0;
  onStore: ((key: number) => void) | undefined;
  onEvict: ((key: number) => void) | undefined;
  private gpuKeys = 0;
  private ops = 0;
  private readonly scratch: number[] = [];

  constructor(o: TieredKvBackendOptions) {
    this.blockSize = o.spec.blockSize;
    this.numBlocks = o.gpuBlocks;
    this.cpuCapacity = o.cpuBlocks ?? 0;
    const link = { bandwidthBytesPerSec: o.hostBytesPerSec ?? 64e9, baseLatencyUs: o.transferBaseUs ?? 50 };
    this.pool = new TieredPool({
      spec: o.spec,
      tiers: {
        gpu: { capacityBlocks: o.gpuBlocks },
        ...(this.cpuCapacity > 0 ? { cpu: { capacityBlocks: this.cpuCapacity, ...link } } : {}),
        ...((o.diskBlocks ?? 0) > 0 ? { disk: { capacityBlocks: o.diskBlocks as number } } : {}),
      },
      offloadWatermark: o.offloadWatermark ?? 0.9,
      onKeyEvicted: (key, tier) => {
        if (tier !== 'gpu') return;
        this.gpuKeys--;
        this.counters.evictedBlocks++;
        this.onEvict?.(key);
      },
    });
  }

  private fields() {
    return this.pool.snapshotFields(this.nowUs);
  }

  get freeBlocks(): number {
    return this.fields().freeBlocks;
  }

  get blocksInUse(): number {
    const f = this.fields();
    return f.totalBlocks - f.freeBlocks;
  }

  get cachedBlocks(): number {
    return this.gpuKeys;
  }

  get evictableBlocks(): number {
    return this.gpuKeys - this.cachedInUse();
  }

  private cachedInUse(): number {
    const st = this.pool.gpu.state();
    let n = 0;
    for (const [b] of st.cached) if ((st.refCounts[b] as number) > 0) n++;
    return n;
  }

  get cpuBlocksUsed(): number {
    return this.pool.stats.offloadedBlocks > 0 ? Math.min(this.cpuCapacity, this.pool.numKeys - this.gpuKeys) : 0;
  }

  hasCached(key: number): boolean {
    return this.pool.lookup(key) === 'gpu';
  }

  matchPrefix(keys: Float64Array, limit: number, out: Int32Array): void {
    const n = Math.min(limit, keys.length);
    let g = 0;
    while (g < n && this.pool.lookup(keys[g] as number) === 'gpu') g++;
    let c = g;
    if (this.cpuCapacity > 0) while (c < n && this.pool.lookup(keys[c] as number) !== undefined) c++;
    out[0] = g;
    out[1] = c - g;
  }

  acquireCached(keys: Float64Array, n: number, out: BlockId[]): void {
    if (n === 0) return;
    const ks = this.scratch;
    ks.length = 0;
    for (let i = 0; i < n; i++) ks.push(keys[i] as number);
    const r = this.pool.acquire(ks, this.nowUs);
    for (const b of r.blocks) out.push(b);
    this.tick();
  }

  allocate(n: number, out: BlockId[]): boolean {
    if (n === 0) return true;
    if (n > this.freeBlocks) return false;
    for (const b of this.pool.allocate(n, this.nowUs)) out.push(b);
    this.tick();
    return true;
  }

  commit(key: number, block: BlockId): boolean {
    if (this.pool.lookup(key) === 'gpu') return false;
    this.pool.cacheBlock(block, key);
    this.gpuKeys++;
    this.onStore?.(key);
    return true;
  }

  reload(keys: Float64Array, from: number, n: number, out: BlockId[]): number {
    const ks: number[] = [];
    for (let i = 0; i < n; i++) ks.push(keys[from + i] as number);
    if (n > this.freeBlocks) return -1;
    // A key the pool dropped since the prefix was matched (the GPU hits acquired just before can
    // push the CPU tier over its capacity): the caller computes those blocks instead.
    for (const k of ks) if (this.pool.lookup(k) === undefined) return -1;
    const r = this.pool.acquire(ks, this.nowUs);
    for (const b of r.blocks) out.push(b);
    this.gpuKeys += r.reloadedFromCpu + r.reloadedFromDisk;
    this.counters.reloadedBlocks += r.reloadedFromCpu + r.reloadedFromDisk;
    this.tick();
    return r.readyAtUs - this.nowUs;
  }

  release(blocks: BlockId[], nowUs: number): void {
    if (blocks.length > 0) this.pool.free(blocks.reverse(), nowUs);
    blocks.length = 0;
    this.counters.offloadedBlocks = this.pool.stats.offloadedBlocks;
  }

  canSwapOut(): boolean {
    // TieredPool moves cached prefixes, not running requests: swap falls back to recompute.
    return false;
  }

  swapOut(blocks: BlockId[], nowUs: number): number {
    this.release(blocks, nowUs);
    return 0;
  }

  swapIn(n: number, out: BlockId[]): number {
    return this.allocate(n, out) ? 0 : -1;
  }

  dropSwapped(): void {}

  clearCache(): number {
    const free = this.freeBlocks;
    const before = this.gpuKeys;
    if (free > 0) this.pool.free(this.pool.allocate(free, this.nowUs), this.nowUs);
    return before - this.gpuKeys;
  }

  checkConservation(): string | undefined {
    try {
      this.pool.verify();
    } catch (e) {
      return (e as Error).message;
    }
    return undefined;
  }

  pendingTransferLatency(nowUs: number): number {
    return this.pool.pendingTransferLatency(nowUs);
  }

  kvThrashingRate(nowUs: number): number {
    return this.pool.kvThrashingRate(nowUs);
  }

  private tick(): void {
    // The bookkeeping backend's copies resolve at once; drain their promises now and then.
    if (++this.ops % 4096 === 0) void this.pool.flush();
  }
}
