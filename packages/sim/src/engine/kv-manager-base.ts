/**
 * What {@link KvManager} (block-hash map) and {@link RadixKvManager} (`RadixPrefixCache`) share:
 * the options, the counters, the CPU tier (evicted keys in an index-based LRU plus the blocks of
 * swapped-out requests), the host-link transfer model and the swap-preemption bookkeeping. The
 * prefix index itself (match, acquire, allocate, commit, reload, release, eviction, accounting)
 * is each subclass's own.
 *
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py, kv_cache_manager.py (swap and offload
 *   bookkeeping)
 */
import type { BlockId, EvictionPolicy, KVPool } from '@kvmgr/core';
import { KeyLru } from './key-lru.js';

/** Counters of a {@link KvManager} or {@link RadixKvManager}. */
export interface KvCounters {
  /** GPU cached blocks evicted. */
  evictedBlocks: number;
  /** Blocks written to the CPU tier. */
  offloadedBlocks: number;
  /** Blocks reloaded from the CPU tier. */
  reloadedBlocks: number;
  /** Blocks swapped out by swap preemption. */
  swappedOutBlocks: number;
  swappedInBlocks: number;
}

/** Options of {@link KvManager} (and {@link RadixKvManager}). */
export interface KvManagerOptions {
  readonly pool: KVPool;
  readonly policy: EvictionPolicy;
  /** Tokens per block. */
  readonly blockSize: number;
  /** CPU-tier capacity in blocks (0 = no offload tier). @default 0 */
  readonly cpuBlocks?: number;
  /** Host link bandwidth (reload, swap), bytes/s. @default 64e9 */
  readonly hostBytesPerSec?: number;
  /** Fixed latency of one transfer batch, µs. @default 50 */
  readonly transferBaseUs?: number;
}

/**
 * The shared part of the `kvmgr` KV backends: options, counters, CPU tier, transfer times and
 * swap preemption. Subclasses provide the prefix index and the GPU block accounting
 * ({@link allocate}, {@link release} and the rest of `KvBackend`).
 */
export abstract class KvManagerBase {
  readonly pool: KVPool;
  readonly policy: EvictionPolicy;
  /** Tokens per block. */
  readonly blockSize: number;
  /** GPU blocks (the pool's). */
  readonly numBlocks: number;
  /** CPU-tier blocks (0 = none). */
  readonly cpuCapacity: number;
  readonly counters: KvCounters = { evictedBlocks: 0, offloadedBlocks: 0, reloadedBlocks: 0, swappedOutBlocks: 0, swappedInBlocks: 0 };
  /** Current time, µs (set by the instance; passed to the policy / cache as access time). */
  nowUs = 0;
  /** Called with the key of each block evicted from the GPU tier (router block index). */
  onEvict: ((key: number) => void) | undefined;
  /** Called with the key of each block that became cached. */
  onStore: ((key: number) => void) | undefined;
  /** Prefix key of each cached block (valid while the block is cached). */
  protected readonly blockKey: Float64Array;
  /** CPU tier of evicted prefix keys. */
  protected readonly cpu: KeyLru;
  /** Scratch block ids for `pool.free` (one per GPU block). */
  protected readonly scratch: Int32Array;
  /** CPU-tier blocks held by swapped-out requests. */
  protected swappedBlocks = 0;
  private readonly hostBytesPerSec: number;
  private readonly transferBaseUs: number;
  private readonly bytesPerBlock: number;

  /**
   * @param options - pool, policy, block size, CPU tier (@default 0 blocks), host bandwidth
   *   (@default 64e9 B/s), transfer base latency (@default 50 µs).
   */
  constructor(options: KvManagerOptions) {
    this.pool = options.pool;
    this.policy = options.policy;
    this.blockSize = options.blockSize;
    this.numBlocks = options.pool.numBlocks;
    this.cpuCapacity = options.cpuBlocks ?? 0;
    this.hostBytesPerSec = options.hostBytesPerSec ?? 64e9;
    this.transferBaseUs = options.transferBaseUs ?? 50;
    this.bytesPerBlock = options.pool.spec.bytesPerBlock;
    this.blockKey = new Float64Array(this.numBlocks);
    this.scratch = new Int32Array(this.numBlocks);
    this.cpu = new KeyLru(this.cpuCapacity);
  }

  /**
   * Allocates `n` blocks for a request (appended to `out`). All or nothing.
   * @returns false (nothing changed) when the GPU is short of blocks.
   */
  abstract allocate(n: number, out: BlockId[]): boolean;

  /** Releases a request's blocks (`blocks` is emptied). */
  abstract release(blocks: BlockId[], nowUs: number): void;

  /** Blocks in the CPU tier (offloaded prefixes + swapped requests). */
  get cpuBlocksUsed(): number {
    return this.cpu.size + this.swappedBlocks;
  }

  /**
   * Offloads the prefix `key` just evicted from the GPU to the CPU tier (when there is one),
   * counting it in `offloadedBlocks` when it was not there yet.
   */
  protected offload(key: number): void {
    if (this.cpuCapacity > 0) {
      const had = this.cpu.has(key);
      if (this.cpu.touch(key, this.cpuCapacity - this.swappedBlocks) && !had) this.counters.offloadedBlocks++;
    }
  }

  /** Transfer time of `blocks` blocks over the host link, µs (base + bytes / bandwidth). */
  transferUs(blocks: number): number {
    return blocks <= 0 ? 0 : this.transferBaseUs + ((blocks * this.bytesPerBlock) / this.hostBytesPerSec) * 1e6;
  }

  /**
   * Counts `n` blocks reloaded from the CPU tier.
   * @returns their transfer time, µs.
   */
  protected reloaded(n: number): number {
    this.counters.reloadedBlocks += n;
    return this.transferUs(n);
  }

  /** KV transfers still in flight, µs (none: transfers are charged to the step). */
  pendingTransferLatency(): number {
    return 0;
  }

  /** Offload→reload cycles per second (not tracked here). */
  kvThrashingRate(): number {
    return 0;
  }

  /**
   * Moves a request's blocks to the CPU tier (swap preemption): releases them on the GPU.
   * @returns the transfer time, µs.
   */
  swapOut(blocks: BlockId[], nowUs: number): number {
    const n = blocks.length;
    this.swappedBlocks += n;
    this.counters.swappedOutBlocks += n;
    this.release(blocks, nowUs);
    return this.transferUs(n);
  }

  /**
   * Brings `n` swapped blocks back (allocated on the GPU, appended to `out`).
   * @returns the transfer time, µs, or -1 (nothing changed) when the GPU is short of blocks.
   */
  swapIn(n: number, out: BlockId[]): number {
    if (!this.allocate(n, out)) return -1;
    this.swappedBlocks -= n;
    this.counters.swappedInBlocks += n;
    return this.transferUs(n);
  }

  /** Whether the CPU tier can hold `n` more swapped blocks. */
  canSwapOut(n: number): boolean {
    return this.cpuCapacity - this.swappedBlocks >= n;
  }

  /** Drops `n` swapped blocks (a swapped request was dropped). */
  dropSwapped(n: number): void {
    this.swappedBlocks -= n;
  }
}
