/**
 * A tiered KV pool: GPU blocks in a {@link BlockPool}, with CPU and disk tiers below it. Cached
 * GPU blocks next in line for eviction are offloaded to CPU when GPU usage is above a watermark
 * (BLIS `--kv-offload-threshold`); a hit on a key held only in a lower tier reloads it; CPU blocks
 * evicted from CPU are demoted to disk. Transfer time = base latency + bytes / bandwidth, queued
 * per link. Every copy goes through a {@link BlockBackend} (the bookkeeping one by default,
 * `@kvmgr/native` for real memory). Time is an explicit argument, in µs.
 *
 * @see BLIS (inference-sim) `--kv-offload-threshold`
 * @see vllm-project/vllm:vllm/v1/kv_offload (CPU offloading connector)
 */
import type { BlockBackend, BlockId, BlockSlab, KVCacheSpec, Tier } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requireInRange, requireNonNegativeInt, requireNonNegativeNumber, requirePositiveInt, requirePositiveNumber, transferTimeUs, US_PER_S } from '@kvmgr/core';
import { requireList } from './arguments.js';
import { BlockPool } from './block-pool.js';
import { BookkeepingBackend, type BookkeepingSlab } from './bookkeeping-backend.js';

/** Pending copies held before they are folded into one promise (see `TieredPool.flush`). */
const PENDING_FOLD = 1024;
const noop = (): void => undefined;

/** Capacity and link of one tier. */
export interface TierConfig {
  /** Blocks the tier holds (0 = absent). */
  readonly capacityBlocks: number;
  /**
   * Bandwidth of the link between this tier and the one above it, bytes/s (cpu: PCIe, disk:
   * storage). @default cpu 25e9, disk 3e9
   */
  readonly bandwidthBytesPerSec?: number;
  /** Fixed cost per transfer batch on the link, µs. @default cpu 10, disk 100 */
  readonly baseLatencyUs?: number;
}

/** Options of {@link TieredPool}. */
export interface TieredPoolOptions<S extends BlockSlab = BookkeepingSlab> {
  /** Block geometry (bytes per block per tier). */
  readonly spec: KVCacheSpec;
  /** Tiers; `gpu` is required, `cpu`/`disk` are absent when omitted or of capacity 0. */
  readonly tiers: { readonly gpu: TierConfig; readonly cpu?: TierConfig; readonly disk?: TierConfig };
  /** GPU usage (fraction of blocks in use) above which cached GPU blocks are offloaded. @default 0.9 */
  readonly offloadWatermark?: number;
  /** Most blocks offloaded per automatic offload round. @default 64 */
  readonly offloadBatchBlocks?: number;
  /** Window of {@link TieredPool.kvThrashingRate}, µs. @default 10_000_000 (10 s) */
  readonly thrashingWindowUs?: number;
  /** Memory behind the tiers. @default a new {@link BookkeepingBackend} */
  readonly backend?: BlockBackend<S>;
  /** Called when a key is no longer held by `tier` (evicted there), with the tiers still holding it. */
  readonly onKeyEvicted?: (key: number, tier: Tier, remaining: readonly Tier[]) => void;
}

/** Result of {@link TieredPool.acquire}. */
export interface AcquireResult {
  /** GPU blocks holding the keys, in the keys' order; each gained a reference. */
  readonly blocks: BlockId[];
  /** Keys that were already on the GPU. */
  readonly gpuHits: number;
  /** Keys reloaded from CPU / disk. */
  readonly reloadedFromCpu: number;
  readonly reloadedFromDisk: number;
  /** When the reloaded blocks are usable, µs (= nowUs when nothing was reloaded). */
  readonly readyAtUs: number;
}

/** Counters of a {@link TieredPool}. */
export interface TieredPoolStats {
  readonly offloadedBlocks: number;
  readonly reloadedBlocks: number;
  readonly prefetchedBlocks: number;
  readonly demotedBlocks: number;
  /** Keys lost from every tier. */
  readonly droppedKeys: number;
  readonly offloadBytes: number;
  readonly reloadBytes: number;
}

/** A comparable dump of a tiered pool (tests). */
export interface TieredPoolState {
  readonly gpu: ReturnType<BlockPool['state']>;
  readonly cpu: ReturnType<BlockPool['state']> | null;
  readonly disk: ReturnType<BlockPool['state']> | null;
  readonly keys: readonly (readonly [number, number, number, number])[];
}

const LOWER: readonly Tier[] = ['cpu', 'disk'];
const DEFAULT_BW: Readonly<Record<Tier, number>> = { gpu: 1e12, cpu: 25e9, disk: 3e9 };
const DEFAULT_BASE_US: Readonly<Record<Tier, number>> = { gpu: 0, cpu: 10, disk: 100 };
const TIER_INDEX: Readonly<Record<Tier, number>> = { gpu: 0, cpu: 1, disk: 2 };

interface Link {
  readonly bandwidth: number;
  readonly baseUs: number;
  busyUntilUs: number;
}

/**
 * A three-tier KV pool over per-tier {@link BlockPool}s, keyed by cache keys (block hashes).
 *
 * GPU blocks are allocated and freed as in {@link BlockPool} (`allocate`, `free`, `gpu`); full
 * blocks are registered with {@link cacheBlock}. Lower tiers hold copies of cached keys only
 * (inclusive: a reload keeps the lower copy). Routers read {@link pendingTransferLatency} and
 * {@link kvThrashingRate} into `EngineSnapshot`.
 *
 * @example
 * ```ts
 * const pool = new TieredPool({ spec, tiers: { gpu: { capacityBlocks: 1000 }, cpu: { capacityBlocks: 4000 } } });
 * const [b] = pool.allocate(1, 0);
 * pool.cacheBlock(b!, 0x1234);
 * pool.free([b!], 10);
 * pool.offload(20);                  // copy cached GPU blocks to CPU (normally above the watermark)
 * pool.acquire([0x1234], 30).blocks; // a hit, reloaded from CPU if the GPU copy was evicted
 * ```
 */
export class TieredPool<S extends BlockSlab = BookkeepingSlab> {
  /** Block geometry. */
  readonly spec: KVCacheSpec;
  /**
   * The GPU tier. Read it, and use `share`/`fork`/`copyOnWrite` on it freely; register cached
   * blocks through {@link cacheBlock} (not `gpu.markCached`) so the tiers track them.
   */
  readonly gpu: BlockPool;
  /** The CPU tier, or null when absent. */
  readonly cpu: BlockPool | null;
  /** The disk tier, or null when absent. */
  readonly disk: BlockPool | null;
  /** The backend executing copies. */
  readonly backend: BlockBackend<S>;
  /** See {@link TieredPoolOptions.offloadWatermark}. */
  readonly offloadWatermark: number;
  /** See {@link TieredPoolOptions.offloadBatchBlocks}. */
  readonly offloadBatchBlocks: number;
  /** See {@link TieredPoolOptions.thrashingWindowUs}. */
  readonly thrashingWindowUs: number;
  /** See {@link TieredPoolOptions.onKeyEvicted}; may be replaced. */
  onKeyEvicted: ((key: number, tier: Tier, remaining: readonly Tier[]) => void) | undefined;
  private readonly slabs: Record<Tier, S | null>;
  private readonly links: Record<Tier, Link>;
  /** key → [gpu block, cpu block, disk block] (-1 = absent) */
  private readonly where = new Map<number, Int32Array>();
  private readonly reloadTimes: number[] = [];
  private reloadHead = 0;
  /**
   * Copies issued since the last {@link flush}, folded into one `Promise.all` every
   * {@link PENDING_FOLD} entries: at most that many are held however long the pool goes
   * unflushed, and a failed copy is still reported by the next `flush`.
   */
  private readonly pending: Promise<unknown>[] = [];
  private counters = { offloadedBlocks: 0, reloadedBlocks: 0, prefetchedBlocks: 0, demotedBlocks: 0, droppedKeys: 0, offloadBytes: 0, reloadBytes: 0 };

  /**
   * @param options - see {@link TieredPoolOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad capacity, bandwidth, latency,
   *   watermark or window, or tiers with different block sizes (a backend copies equal blocks).
   */
  constructor(options: TieredPoolOptions<S>) {
    this.spec = options.spec;
    const tiers = options.tiers;
    if (typeof tiers !== 'object' || tiers === null || typeof tiers.gpu !== 'object') throw invalidArgument('tiers.gpu', tiers?.gpu, 'a tier config');
    this.offloadWatermark = requireInRange('offloadWatermark', options.offloadWatermark ?? 0.9, 0, 1);
    this.offloadBatchBlocks = requirePositiveInt('offloadBatchBlocks', options.offloadBatchBlocks ?? 64);
    this.thrashingWindowUs = requirePositiveNumber('thrashingWindowUs', options.thrashingWindowUs ?? 10_000_000);
    this.onKeyEvicted = options.onKeyEvicted;
    const links = {} as Record<Tier, Link>;
    const sizes = new Set<number>();
    const pools = {} as Record<Tier, BlockPool | null>;
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const cfg = tiers[tier];
      const cap = tier === 'gpu' ? requirePositiveInt('tiers.gpu.capacityBlocks', cfg?.capacityBlocks) : requireNonNegativeInt(`tiers.${tier}.capacityBlocks`, cfg?.capacityBlocks ?? 0);
      links[tier] = {
        bandwidth: requirePositiveNumber(`tiers.${tier}.bandwidthBytesPerSec`, cfg?.bandwidthBytesPerSec ?? DEFAULT_BW[tier]),
        baseUs: requireNonNegativeNumber(`tiers.${tier}.baseLatencyUs`, cfg?.baseLatencyUs ?? DEFAULT_BASE_US[tier]),
        busyUntilUs: 0,
      };
      pools[tier] = cap > 0 ? new BlockPool({ spec: this.spec, numBlocks: cap, tier }) : null;
      if (cap > 0) sizes.add(this.spec.bytesPerBlockByTier[tier]);
    }
    if (sizes.size > 1) throw invalidArgument('spec.tierDtypes', this.spec.tierDtypes, 'the same block size in every present tier');
    this.links = links;
    this.gpu = pools.gpu as BlockPool;
    this.cpu = pools.cpu;
    this.disk = pools.disk;
    this.gpu.onCachedBlockEvicted = (b, key) => this.lost(key, 'gpu', b);
    this.cpu && (this.cpu.onCachedBlockEvicted = (b, key) => this.lost(key, 'cpu', b));
    this.disk && (this.disk.onCachedBlockEvicted = (b, key) => this.lost(key, 'disk', b));
    this.backend = options.backend ?? (new BookkeepingBackend() as unknown as BlockBackend<S>);
    this.slabs = { gpu: null, cpu: null, disk: null };
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const p = this.pool(tier);
      if (p) this.slabs[tier] = this.backend.createSlab(tier, p.numBlocks, p.bytesPerBlock);
    }
  }

  private pool(tier: Tier): BlockPool | null {
    return tier === 'gpu' ? this.gpu : tier === 'cpu' ? this.cpu : this.disk;
  }

  /** The backend slab of a tier (null when the tier is absent). */
  slab(tier: Tier): S | null {
    return this.slabs[tier];
  }

  private lost(key: number, tier: Tier, block: BlockId): void {
    const loc = this.where.get(key);
    if (!loc || loc[TIER_INDEX[tier]] !== block) return;
    loc[TIER_INDEX[tier]] = -1;
    const remaining = (['gpu', 'cpu', 'disk'] as const).filter((t) => loc[TIER_INDEX[t]]! >= 0);
    if (remaining.length === 0) {
      this.where.delete(key);
      this.counters.droppedKeys++;
    }
    this.onKeyEvicted?.(key, tier, remaining);
  }

  /** Fraction of GPU blocks in use, 0..1. */
  get kvUtilization(): number {
    return this.gpu.usage;
  }

  /**
   * Write-back before eviction: when handing out `n` more blocks takes GPU usage above the
   * watermark, cached blocks among the next `n + offloadBatchBlocks` of the free queue (those
   * this allocation evicts, then the next ones) are offloaded first.
   */
  private offloadBefore(n: number, nowUs: number): void {
    if (!this.cpu || (this.gpu.numUsedBlocks + n) / this.gpu.numBlocks <= this.offloadWatermark) return;
    this.offloadScan(nowUs, n + this.offloadBatchBlocks, n + this.offloadBatchBlocks);
  }

  /**
   * Allocates `n` GPU blocks (all or nothing); when that takes usage above the watermark, the
   * cached blocks it would evict (and the next `offloadBatchBlocks`) are offloaded to CPU first.
   * @param n - blocks.
   * @param nowUs - time, µs.
   * @throws KvmgrError `KVMGR_OUT_OF_BLOCKS` `{ free, requested }` (nothing changes),
   *   `KVMGR_INVALID_ARGUMENT` for a bad `n` or time.
   */
  allocate(n: number, nowUs: number): BlockId[] {
    requireNonNegativeNumber('nowUs', nowUs);
    if (!(Number.isInteger(n) && n >= 0 && n <= this.gpu.numFreeBlocks)) return this.gpu.allocate(n); // throws
    this.offloadBefore(n, nowUs);
    return this.gpu.allocate(n);
  }

  /**
   * Drops one reference of each GPU block (see {@link BlockPool.free}).
   * @throws KvmgrError as {@link BlockPool.free}.
   */
  free(blocks: ArrayLike<BlockId>, nowUs: number): void {
    requireList('blocks', blocks);
    requireNonNegativeNumber('nowUs', nowUs);
    this.gpu.free(blocks);
  }

  /**
   * Registers a GPU block in use as holding `key` (a full block entering the prefix cache).
   * @throws KvmgrError `KVMGR_INVALID_STATE` when the key is already on the GPU in another block
   *   or the block holds another key; as {@link BlockPool.markCached} otherwise.
   */
  cacheBlock(block: BlockId, key: number): void {
    // argument faults first (as BlockPool.markCached reports them), then the state checks
    if (typeof block !== 'number' || !Number.isInteger(block) || block < 0 || block >= this.gpu.numBlocks) {
      throw invalidArgument('block', block, `a block id in [0, ${this.gpu.numBlocks})`);
    }
    if (typeof key !== 'number' || !Number.isFinite(key)) throw invalidArgument('key', key, 'a finite number');
    const loc = this.where.get(key);
    if (loc && loc[0]! >= 0 && loc[0] !== block) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `key ${key} is already cached in GPU block ${loc[0]}`, { details: { key, block: loc[0] } });
    }
    this.gpu.markCached(block, key);
    if (loc) loc[0] = block;
    else this.where.set(key, Int32Array.of(block, -1, -1));
  }

  /** Fastest tier holding `key`, or undefined. */
  lookup(key: number): Tier | undefined {
    const loc = this.where.get(key);
    if (!loc) return undefined;
    return loc[0]! >= 0 ? 'gpu' : loc[1]! >= 0 ? 'cpu' : loc[2]! >= 0 ? 'disk' : undefined;
  }

  /** Tiers holding `key` (fastest first). */
  tiersOf(key: number): Tier[] {
    const loc = this.where.get(key);
    return loc ? (['gpu', 'cpu', 'disk'] as const).filter((t) => loc[TIER_INDEX[t]]! >= 0) : [];
  }

  /** Number of keys held in any tier. */
  get numKeys(): number {
    return this.where.size;
  }

  private queueTransfer(link: Tier, blocks: number, nowUs: number): number {
    const l = this.links[link];
    const start = Math.max(nowUs, l.busyUntilUs);
    l.busyUntilUs = start + transferTimeUs(blocks * this.gpu.bytesPerBlock, l.bandwidth, l.baseUs);
    return l.busyUntilUs;
  }

  private copy(from: Tier, to: Tier, src: number[], dst: number[]): void {
    if (src.length === 0) return;
    const a = this.slabs[from];
    const b = this.slabs[to];
    if (!a || !b) throw new KvmgrError('KVMGR_INVALID_STATE', 'TieredPool is closed: its slabs were released');
    this.track(this.backend.copyBlocks(a, b, { src, dst }));
  }

  /** Takes a block of a lower tier for a new copy, demoting its current cached content down. */
  private takeLower(tier: 'cpu' | 'disk', nowUs: number): BlockId {
    const p = this.pool(tier) as BlockPool;
    const head = p.peekFree();
    if (tier === 'cpu' && this.disk && this.disk.numFreeBlocks > 0 && head >= 0) {
      const key = p.cachedKey(head);
      if (key !== undefined) {
        const loc = this.where.get(key);
        if (loc && loc[2] === -1) {
          const d = this.takeLower('disk', nowUs);
          this.copy('cpu', 'disk', [head], [d]);
          this.queueTransfer('disk', 1, nowUs);
          this.disk.markCached(d, key);
          this.disk.free([d]);
          loc[2] = d;
          this.counters.demotedBlocks++;
        }
      }
    }
    const [b] = p.allocate(1) as [BlockId];
    return b;
  }

  /**
   * Copies cached GPU blocks that no lower tier holds yet to CPU, walking the GPU free queue
   * from the head (the blocks evicted next). Runs automatically in {@link allocate} and
   * {@link acquire} when they take usage above the watermark.
   *
   * @param nowUs - time, µs.
   * @param maxBlocks - most blocks to offload. @default offloadBatchBlocks
   * @returns blocks offloaded (0 without a CPU tier).
   */
  offload(nowUs: number, maxBlocks: number = this.offloadBatchBlocks): number {
    requireNonNegativeNumber('nowUs', nowUs);
    requireNonNegativeInt('maxBlocks', maxBlocks);
    return this.offloadScan(nowUs, this.gpu.numBlocks, maxBlocks);
  }

  private offloadScan(nowUs: number, scanBlocks: number, maxBlocks: number): number {
    const cpu = this.cpu;
    if (!cpu || this.gpu.numCachedBlocks === 0) return 0;
    const src: number[] = [];
    const dst: number[] = [];
    // at most the CPU free blocks (pinned reload sources excluded) per batch, so the batch never reuses its own blocks
    const limit = Math.min(maxBlocks, cpu.numFreeBlocks);
    let scanned = 0;
    for (let b = this.gpu.peekFree(); b !== -1 && src.length < limit && scanned < scanBlocks; b = this.gpu.nextFree(b), scanned++) {
      const key = this.gpu.cachedKey(b);
      if (key === undefined) continue;
      const loc = this.where.get(key);
      // a key set on `gpu` directly (not through cacheBlock) is not tracked by the tiers
      if (!loc || loc[1]! >= 0 || loc[2]! >= 0) continue;
      const c = this.takeLower('cpu', nowUs);
      cpu.markCached(c, key);
      cpu.free([c]);
      loc[1] = c;
      src.push(b);
      dst.push(c);
    }
    this.copy('gpu', 'cpu', src, dst);
    if (src.length > 0) this.queueTransfer('cpu', src.length, nowUs);
    this.counters.offloadedBlocks += src.length;
    this.counters.offloadBytes += src.length * this.gpu.bytesPerBlock;
    return src.length;
  }

  private reloadInto(keys: readonly number[], gpuBlocks: readonly BlockId[], nowUs: number): { cpu: number; disk: number; readyAtUs: number } {
    const fromCpu: [number[], number[]] = [[], []];
    const fromDisk: [number[], number[]] = [[], []];
    keys.forEach((key, i) => {
      const loc = this.where.get(key) as Int32Array;
      const g = gpuBlocks[i] as number;
      const batch = loc[1]! >= 0 ? fromCpu : fromDisk;
      batch[0].push(loc[1]! >= 0 ? loc[1]! : loc[2]!);
      batch[1].push(g);
      loc[0] = g;
      this.gpu.markCached(g, key);
      this.reloadTimes.push(nowUs);
    });
    this.pruneReloadTimes(nowUs);
    let ready = nowUs;
    if (fromCpu[0].length > 0) {
      this.copy('cpu', 'gpu', fromCpu[0], fromCpu[1]);
      ready = Math.max(ready, this.queueTransfer('cpu', fromCpu[0].length, nowUs));
    }
    if (fromDisk[0].length > 0) {
      this.copy('disk', 'gpu', fromDisk[0], fromDisk[1]);
      ready = Math.max(ready, this.queueTransfer('disk', fromDisk[0].length, nowUs));
    }
    this.counters.reloadedBlocks += keys.length;
    this.counters.reloadBytes += keys.length * this.gpu.bytesPerBlock;
    return { cpu: fromCpu[0].length, disk: fromDisk[0].length, readyAtUs: ready };
  }

  /**
   * A prefix hit on `keys`: GPU-resident keys gain a reference (taken out of the free queue);
   * keys held only in CPU/disk are reloaded into new GPU blocks. All or nothing.
   *
   * @param keys - cache keys, distinct, each held by some tier.
   * @param nowUs - time, µs.
   * @returns blocks (in key order), hit counts and when the reloads land.
   * @throws KvmgrError `KVMGR_NOT_FOUND` for a key no tier holds, `KVMGR_INVALID_ARGUMENT` for a
   *   repeated key, `KVMGR_OUT_OF_BLOCKS` `{ free, requested }` when the GPU lacks blocks for the
   *   reloads. Nothing changes on a throw.
   */
  acquire(keys: readonly number[], nowUs: number): AcquireResult {
    requireList('keys', keys);
    requireNonNegativeNumber('nowUs', nowUs);
    const seen = new Set<number>();
    let gpuFreeHits = 0;
    const reload: number[] = [];
    const onGpu: BlockId[] = [];
    keys.forEach((key, i) => {
      if (seen.has(key)) throw invalidArgument(`keys[${i}]`, key, 'a key not listed twice');
      seen.add(key);
      const loc = this.where.get(key);
      if (!loc) throw new KvmgrError('KVMGR_NOT_FOUND', `keys[${i}] = ${key} is not held by any tier`, { details: { key } });
      if (loc[0]! >= 0) {
        onGpu.push(loc[0]!);
        if (this.gpu.isFree(loc[0]!)) gpuFreeHits++;
      } else reload.push(key);
    });
    const available = this.gpu.numFreeBlocks - gpuFreeHits;
    if (reload.length > available) {
      throw new KvmgrError('KVMGR_OUT_OF_BLOCKS', `cannot reload ${reload.length} blocks: only ${available} GPU blocks are free`, {
        details: { free: available, requested: reload.length },
      });
    }
    this.gpu.share(onGpu);
    // pin the reload sources so the offload below cannot demote or drop them
    const cpuPins: BlockId[] = [];
    const diskPins: BlockId[] = [];
    for (const key of reload) {
      const loc = this.where.get(key) as Int32Array;
      if (loc[1]! >= 0) cpuPins.push(loc[1]!);
      else diskPins.push(loc[2]!);
    }
    this.cpu?.share(cpuPins);
    this.disk?.share(diskPins);
    this.offloadBefore(reload.length, nowUs);
    const fresh = this.gpu.allocate(reload.length);
    const r = this.reloadInto(reload, fresh, nowUs);
    this.cpu?.free(cpuPins);
    this.disk?.free(diskPins);
    const blocks = keys.map((k) => (this.where.get(k) as Int32Array)[0]!);
    return { blocks, gpuHits: keys.length - reload.length, reloadedFromCpu: r.cpu, reloadedFromDisk: r.disk, readyAtUs: r.readyAtUs };
  }

  /**
   * Prefetch hint: reloads keys held only in lower tiers into free GPU blocks as cached, unused
   * blocks (at the tail of the free queue), while GPU usage stays at or below the watermark and
   * uncached free blocks remain (a prefetch never evicts a cached GPU block). Unknown keys and
   * keys already on the GPU are skipped.
   *
   * @param keys - cache keys.
   * @param nowUs - time, µs.
   * @returns blocks prefetched and when they land (µs).
   */
  prefetch(keys: readonly number[], nowUs: number): { readonly prefetched: number; readonly readyAtUs: number } {
    requireList('keys', keys);
    requireNonNegativeNumber('nowUs', nowUs);
    const todo: number[] = [];
    const seen = new Set<number>();
    let budget = this.gpu.usage > this.offloadWatermark ? 0 : this.gpu.numFreeBlocks - this.gpu.numCachedFreeBlocks;
    for (const key of keys) {
      if (budget <= 0) break;
      const loc = this.where.get(key);
      if (!loc || loc[0]! >= 0 || seen.has(key)) continue;
      seen.add(key);
      todo.push(key);
      budget--;
    }
    if (todo.length === 0) return { prefetched: 0, readyAtUs: nowUs };
    // only uncached free blocks: a prefetch must not evict a cached GPU block
    const blocks: BlockId[] = [];
    for (let b = this.gpu.peekFree(); b !== -1 && blocks.length < todo.length; b = this.gpu.nextFree(b)) {
      if (this.gpu.cachedKey(b) === undefined) blocks.push(b);
    }
    this.gpu.allocateSpecific(blocks);
    const r = this.reloadInto(todo, blocks, nowUs);
    this.gpu.free(blocks);
    this.counters.prefetchedBlocks += todo.length;
    return { prefetched: todo.length, readyAtUs: r.readyAtUs };
  }

  /**
   * Latency of the KV transfers queued on this pool's links at `nowUs`, µs: the sum over links of
   * the time until each link is idle (`EngineSnapshot.pendingTransferLatency`).
   */
  pendingTransferLatency(nowUs: number): number {
    let t = 0;
    for (const tier of LOWER) t += Math.max(0, this.links[tier].busyUntilUs - nowUs);
    return t;
  }

  /**
   * Offload→reload cycles per second inside the window `(nowUs − thrashingWindowUs, nowUs]`: every
   * reload (demand or prefetch) of a key brought back from CPU or disk completes one cycle
   * (`EngineSnapshot.kvThrashingRate`). Times must not go back between calls.
   */
  kvThrashingRate(nowUs: number): number {
    const from = nowUs - this.thrashingWindowUs;
    while (this.reloadHead < this.reloadTimes.length && this.reloadTimes[this.reloadHead]! <= from) this.reloadHead++;
    if (this.reloadHead > 1024 && this.reloadHead * 2 > this.reloadTimes.length) {
      this.reloadTimes.splice(0, this.reloadHead);
      this.reloadHead = 0;
    }
    let n = 0;
    for (let i = this.reloadHead; i < this.reloadTimes.length; i++) if (this.reloadTimes[i]! <= nowUs) n++;
    return n / (this.thrashingWindowUs / US_PER_S);
  }

  /** The tiered fields of an `EngineSnapshot` at `nowUs`. */
  snapshotFields(nowUs: number): { kvUtilization: number; pendingTransferLatency: number; kvThrashingRate: number; freeBlocks: number; totalBlocks: number } {
    return {
      kvUtilization: this.gpu.usage,
      pendingTransferLatency: this.pendingTransferLatency(nowUs),
      kvThrashingRate: this.kvThrashingRate(nowUs),
      freeBlocks: this.gpu.numFreeBlocks,
      totalBlocks: this.gpu.numBlocks,
    };
  }

  /** Counters so far. */
  get stats(): TieredPoolStats {
    return { ...this.counters };
  }

  /** Resolves when every copy issued so far has landed; rejects with the first failed copy. */
  async flush(): Promise<void> {
    const all = this.pending.splice(0);
    await Promise.all(all);
  }

  private track(copy: Promise<void>): void {
    this.pending.push(copy);
    // one promise for the batch, not one `then` per copy (flush subscribes the same way); it
    // resolves to undefined so folds do not nest their result arrays
    if (this.pending.length >= PENDING_FOLD) this.pending.push(Promise.all(this.pending.splice(0)).then(noop));
  }

  /**
   * Drops reload times older than two windows before `nowUs` as they are added, so the list
   * stays bounded when {@link kvThrashingRate} is never called. Two windows, not one: a query
   * up to one window behind the latest reload still counts exactly what it did before.
   */
  private pruneReloadTimes(nowUs: number): void {
    const from = nowUs - 2 * this.thrashingWindowUs;
    let h = this.reloadHead;
    while (h < this.reloadTimes.length && this.reloadTimes[h]! <= from) h++;
    this.reloadHead = h;
    if (h > 1024 && h * 2 > this.reloadTimes.length) {
      this.reloadTimes.splice(0, h);
      this.reloadHead = 0;
    }
  }

  /**
   * Waits for pending copies, then releases every tier's slab through the backend (frees real
   * memory with `@kvmgr/native`). The pool must not be used afterwards.
   * @throws KvmgrError from a failed pending copy or from `releaseSlab`.
   */
  async close(): Promise<void> {
    await this.flush();
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const slab = this.slabs[tier];
      if (slab) {
        this.slabs[tier] = null;
        this.backend.releaseSlab(slab);
      }
    }
  }

  /** A comparable dump (tests: a failed operation leaves the pool as it was). */
  state(): TieredPoolState {
    const keys = [...this.where.entries()].map(([k, l]) => [k, l[0]!, l[1]!, l[2]!] as const).sort((a, b) => a[0] - b[0]);
    return { gpu: this.gpu.state(), cpu: this.cpu?.state() ?? null, disk: this.disk?.state() ?? null, keys };
  }

  /**
   * Checks the invariants: every tier's pool is consistent and within capacity, every key's
   * location holds that key, and every cached block is a known key's location.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` naming the first broken invariant.
   */
  verify(): void {
    let cachedLocations = 0;
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const p = this.pool(tier);
      if (!p) continue;
      p.verify();
      if (p.numUsedBlocks > p.numBlocks) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: ${tier} over capacity`);
      cachedLocations += p.numCachedBlocks;
    }
    let locations = 0;
    for (const [key, loc] of this.where) {
      let any = false;
      for (const tier of ['gpu', 'cpu', 'disk'] as const) {
        const b = loc[TIER_INDEX[tier]]!;
        if (b < 0) continue;
        any = true;
        locations++;
        const p = this.pool(tier);
        if (!p || p.cachedKey(b) !== key) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: key ${key} says ${tier} block ${b}, which holds ${p?.cachedKey(b)}`);
      }
      if (!any) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: key ${key} is held by no tier`);
    }
    if (locations !== cachedLocations) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: ${locations} key locations but ${cachedLocations} cached blocks`);
  }
}
