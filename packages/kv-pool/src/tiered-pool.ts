/**
 * A tiered KV pool: GPU blocks in a {@link BlockPool}, with CPU and disk tiers below it. Cached
 * GPU blocks next in line for eviction are offloaded to CPU when GPU usage is above a watermark
 * (BLIS `--kv-offload-threshold`); a hit on a key held only in a lower tier reloads it; CPU blocks
 * evicted from CPU are demoted to disk. Transfer time = base latency + bytes / bandwidth, queued
 * per link. Every copy goes through a {@link BlockBackend} (the bookkeeping one by default,
 * `@kvmgr/native` for real memory). Time is an explicit argument, in µs.
 *
 * Without a GPU tier (`tiers.gpu` omitted) the pool is the CPU tier below a GPU pool someone else
 * owns (an engine's KV cache manager): it stores copies of that GPU's blocks under their exact
 * 64-bit block keys (two u32 words, `@kvmgr/core`'s block-key module), evicts its own least
 * recently used key when full, and accounts the transfers on its link.
 *
 * @see BLIS (inference-sim) `--kv-offload-threshold`
 * @see vllm-project/vllm:vllm/v1/kv_offload (CPU offloading connector)
 */
import type { BlockBackend, BlockId, BlockSlab, KVCacheSpec, Tier } from '@kvmgr/core';
import { HashTable64, KvmgrError, invalidArgument, requireInRange, requireNonNegativeInt, requireNonNegativeNumber, requirePositiveInt, requirePositiveNumber, transferTimeUs, US_PER_S } from '@kvmgr/core';
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
  /**
   * Tiers; `cpu`/`disk` are absent when omitted or of capacity 0. Without `gpu` the pool is the
   * lower tier of a GPU pool the caller owns (block-key mode: `cpu` required, no `disk`; see
   * {@link TieredPool.storeBlockKeys}).
   */
  readonly tiers: { readonly gpu?: TierConfig; readonly cpu?: TierConfig; readonly disk?: TierConfig };
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
  /** Block-key mode: called when a block key lands in `tier` (see {@link TieredPool.storeBlockKeys}). */
  readonly onBlockKeyStored?: (hi: number, lo: number, tier: Tier) => void;
  /** Block-key mode: called when `tier` drops a block key to make room (its least recently used). */
  readonly onBlockKeyEvicted?: (hi: number, lo: number, tier: Tier) => void;
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
  /** Null in block-key mode (no GPU tier). */
  readonly gpu: ReturnType<BlockPool['state']> | null;
  readonly cpu: ReturnType<BlockPool['state']> | null;
  readonly disk: ReturnType<BlockPool['state']> | null;
  readonly keys: readonly (readonly [number, number, number, number])[];
  /** Block-key mode: `[hi, lo, cpu block]`, sorted (empty otherwise). */
  readonly blockKeys: readonly (readonly [number, number, number])[];
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
  private readonly gpuPool: BlockPool | null;
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
  /** See {@link TieredPoolOptions.onBlockKeyStored}; may be replaced. */
  onBlockKeyStored: ((hi: number, lo: number, tier: Tier) => void) | undefined;
  /** See {@link TieredPoolOptions.onBlockKeyEvicted}; may be replaced. */
  onBlockKeyEvicted: ((hi: number, lo: number, tier: Tier) => void) | undefined;
  /** Block-key mode: block key → CPU block, and each CPU block's key words. */
  private readonly blockKeyTable: HashTable64 | null;
  private readonly cpuHi: Uint32Array;
  private readonly cpuLo: Uint32Array;
  /** One block id for `share` / `free` (no array per call on the block-key hot path). */
  private readonly one = new Int32Array(1);
  private readonly blockBytes: number;
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
   *   watermark or window, tiers with different block sizes (a backend copies equal blocks), or
   *   block-key mode (no `gpu`) without a CPU tier or with a disk tier.
   */
  constructor(options: TieredPoolOptions<S>) {
    this.spec = options.spec;
    const tiers = options.tiers;
    if (typeof tiers !== 'object' || tiers === null) throw invalidArgument('tiers', tiers, 'an object of tier configs');
    const keyed = tiers.gpu === undefined;
    if (!keyed && (typeof tiers.gpu !== 'object' || tiers.gpu === null)) throw invalidArgument('tiers.gpu', tiers.gpu, 'a tier config, or omitted (block-key mode)');
    if (keyed && !((tiers.cpu?.capacityBlocks ?? 0) > 0)) throw invalidArgument('tiers.cpu.capacityBlocks', tiers.cpu?.capacityBlocks, 'a positive block count when tiers.gpu is omitted (block-key mode)');
    if (keyed && (tiers.disk?.capacityBlocks ?? 0) > 0) throw invalidArgument('tiers.disk', tiers.disk, 'absent when tiers.gpu is omitted (block-key mode holds a CPU tier only)');
    this.offloadWatermark = requireInRange('offloadWatermark', options.offloadWatermark ?? 0.9, 0, 1);
    this.offloadBatchBlocks = requirePositiveInt('offloadBatchBlocks', options.offloadBatchBlocks ?? 64);
    this.thrashingWindowUs = requirePositiveNumber('thrashingWindowUs', options.thrashingWindowUs ?? 10_000_000);
    this.onKeyEvicted = options.onKeyEvicted;
    this.onBlockKeyStored = options.onBlockKeyStored;
    this.onBlockKeyEvicted = options.onBlockKeyEvicted;
    const links = {} as Record<Tier, Link>;
    const sizes = new Set<number>();
    const pools = {} as Record<Tier, BlockPool | null>;
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const cfg = tiers[tier];
      const cap =
        tier === 'gpu' ? (keyed ? 0 : requirePositiveInt('tiers.gpu.capacityBlocks', cfg?.capacityBlocks)) : requireNonNegativeInt(`tiers.${tier}.capacityBlocks`, cfg?.capacityBlocks ?? 0);
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
    this.gpuPool = pools.gpu;
    this.cpu = pools.cpu;
    this.disk = pools.disk;
    this.blockBytes = this.spec.bytesPerBlockByTier[keyed ? 'cpu' : 'gpu'];
    const cpuCap = this.cpu?.numBlocks ?? 0;
    this.blockKeyTable = keyed ? new HashTable64(Math.min(cpuCap, 1 << 16)) : null;
    this.cpuHi = new Uint32Array(keyed ? cpuCap : 0);
    this.cpuLo = new Uint32Array(keyed ? cpuCap : 0);
    if (this.gpuPool) this.gpuPool.onCachedBlockEvicted = (b, key) => this.lost(key, 'gpu', b);
    if (keyed) (this.cpu as BlockPool).onCachedBlockEvicted = (b) => this.lostBlockKey(b);
    else if (this.cpu) this.cpu.onCachedBlockEvicted = (b, key) => this.lost(key, 'cpu', b);
    this.disk && (this.disk.onCachedBlockEvicted = (b, key) => this.lost(key, 'disk', b));
    this.backend = options.backend ?? (new BookkeepingBackend() as unknown as BlockBackend<S>);
    this.slabs = { gpu: null, cpu: null, disk: null };
    for (const tier of ['gpu', 'cpu', 'disk'] as const) {
      const p = this.pool(tier);
      if (p) this.slabs[tier] = this.backend.createSlab(tier, p.numBlocks, p.bytesPerBlock);
    }
  }

  /**
   * The GPU tier. Read it, and use `share`/`fork`/`copyOnWrite` on it freely; register cached
   * blocks through {@link cacheBlock} (not `gpu.markCached`) so the tiers track them.
   * @throws KvmgrError `KVMGR_INVALID_STATE` in block-key mode (no GPU tier); so does every
   *   method that works on GPU blocks (`allocate`, `free`, `cacheBlock`, `acquire`, `offload`,
   *   `prefetch`, `kvUtilization`, `snapshotFields`).
   */
  get gpu(): BlockPool {
    if (this.gpuPool === null) throw new KvmgrError('KVMGR_INVALID_STATE', 'this TieredPool has no GPU tier (tiers.gpu was omitted: block-key mode); use storeBlockKeys / reloadBlockKeys');
    return this.gpuPool;
  }

  /** True when the pool has no GPU tier of its own (block-key mode). */
  get isBlockKeyMode(): boolean {
    return this.blockKeyTable !== null;
  }

  private pool(tier: Tier): BlockPool | null {
    return tier === 'gpu' ? this.gpuPool : tier === 'cpu' ? this.cpu : this.disk;
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

  /** Number of keys held in any tier (block keys in block-key mode). */
  get numKeys(): number {
    return this.blockKeyTable?.size ?? this.where.size;
  }

  private queueTransfer(link: Tier, blocks: number, nowUs: number): number {
    const l = this.links[link];
    const start = Math.max(nowUs, l.busyUntilUs);
    l.busyUntilUs = start + transferTimeUs(blocks * this.blockBytes, l.bandwidth, l.baseUs);
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

  private keyTable(method: string): HashTable64 {
    if (this.blockKeyTable === null) throw new KvmgrError('KVMGR_INVALID_STATE', `TieredPool.${method} needs block-key mode (a pool created without tiers.gpu)`);
    return this.blockKeyTable;
  }

  private requireKeyWords(keys: ArrayLike<number>): void {
    requireList('keys', keys);
    if (keys.length % 2 !== 0) throw invalidArgument('keys.length', keys.length, 'an even number of u32 words (hi, lo per block key)');
    for (let i = 0; i < keys.length; i++) {
      const w = keys[i];
      if (!(typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) throw invalidArgument(`keys[${i}]`, w, 'a u32 word');
    }
  }

  /** Makes CPU block `b` the most recently used (it moves to the tail of the free queue). */
  private touchCpu(b: BlockId): void {
    const cpu = this.cpu as BlockPool;
    this.one[0] = b;
    cpu.share(this.one);
    cpu.free(this.one);
  }

  private lostBlockKey(b: BlockId): void {
    const hi = this.cpuHi[b]!;
    const lo = this.cpuLo[b]!;
    (this.blockKeyTable as HashTable64).delete(hi, lo);
    this.counters.droppedKeys++;
    this.onBlockKeyEvicted?.(hi, lo, 'cpu');
  }

  /**
   * Block-key mode: stores copies of GPU blocks (the caller's) under their 64-bit block keys on
   * CPU, e.g. cached blocks the caller's GPU pool evicts (vLLM's CPU offloading connector writes
   * them back as it evicts). A new key takes a free CPU block, or the block of the least recently
   * used key when full (reported through `onBlockKeyEvicted`); it is reported through
   * `onBlockKeyStored`. A key already held is not copied again (a full block never changes): it
   * becomes the most recently used. The new copies are one transfer batch on the CPU link (base
   * latency + bytes / bandwidth, queued after the link's earlier transfers); the bytes themselves
   * live in the caller's GPU memory, so the backend copies nothing here.
   *
   * @param keys - block keys as u32 words, `[hi0, lo0, hi1, lo1, …]`.
   * @param nowUs - time, µs.
   * @returns keys newly stored.
   * @throws KvmgrError `KVMGR_INVALID_STATE` outside block-key mode; `KVMGR_INVALID_ARGUMENT`
   *   for an odd word count, a word that is not a u32, or a bad time. Nothing changes on a throw.
   */
  storeBlockKeys(keys: ArrayLike<number>, nowUs: number): number {
    const t = this.keyTable('storeBlockKeys');
    this.requireKeyWords(keys);
    requireNonNegativeNumber('nowUs', nowUs);
    const cpu = this.cpu as BlockPool;
    let stored = 0;
    for (let i = 0; i < keys.length; i += 2) {
      const hi = keys[i]!;
      const lo = keys[i + 1]!;
      const held = t.get(hi, lo);
      if (held >= 0) {
        this.touchCpu(held);
        continue;
      }
      const [c] = cpu.allocate(1) as [BlockId]; // drops the LRU key when no block is free
      this.cpuHi[c] = hi;
      this.cpuLo[c] = lo;
      cpu.markCached(c, c);
      this.one[0] = c;
      cpu.free(this.one);
      t.set(hi, lo, c);
      stored++;
      this.onBlockKeyStored?.(hi, lo, 'cpu');
    }
    if (stored > 0) this.queueTransfer('cpu', stored, nowUs);
    this.counters.offloadedBlocks += stored;
    this.counters.offloadBytes += stored * this.blockBytes;
    return stored;
  }

  /**
   * Block-key mode: the tier holding a block key, or undefined.
   * @param hi - high u32 word of the key.
   * @param lo - low u32 word of the key.
   */
  lookupBlockKey(hi: number, lo: number): Tier | undefined {
    return this.keyTable('lookupBlockKey').get(hi >>> 0, lo >>> 0) >= 0 ? 'cpu' : undefined;
  }

  /**
   * Block-key mode: a hit on keys held on CPU, reloaded into the caller's GPU blocks. The CPU
   * copies stay (inclusive, as vLLM's CPU offloading keeps them) and become the most recently
   * used. One transfer batch on the CPU link; counted in `reloadedBlocks` and in
   * {@link kvThrashingRate}.
   *
   * @param keys - block keys as u32 words, `[hi0, lo0, hi1, lo1, …]`, each held on CPU.
   * @param nowUs - time, µs.
   * @returns when the reloaded blocks are usable, µs (= `nowUs` for no keys).
   * @throws KvmgrError `KVMGR_INVALID_STATE` outside block-key mode; `KVMGR_NOT_FOUND` naming the
   *   first key not held; `KVMGR_INVALID_ARGUMENT` for bad words or time. Nothing changes on a throw.
   */
  reloadBlockKeys(keys: ArrayLike<number>, nowUs: number): number {
    const t = this.keyTable('reloadBlockKeys');
    this.requireKeyWords(keys);
    requireNonNegativeNumber('nowUs', nowUs);
    for (let i = 0; i < keys.length; i += 2) {
      if (t.get(keys[i]!, keys[i + 1]!) < 0) {
        throw new KvmgrError('KVMGR_NOT_FOUND', `block key #${i / 2} (${keys[i]}:${keys[i + 1]}) is not held on CPU`, { details: { index: i / 2 } });
      }
    }
    const n = keys.length / 2;
    if (n === 0) return nowUs;
    for (let i = 0; i < keys.length; i += 2) {
      this.touchCpu(t.get(keys[i]!, keys[i + 1]!));
      this.reloadTimes.push(nowUs);
    }
    this.pruneReloadTimes(nowUs);
    this.counters.reloadedBlocks += n;
    this.counters.reloadBytes += n * this.blockBytes;
    return this.queueTransfer('cpu', n, nowUs);
  }

  /**
   * Block-key mode: drops every block key (no `onBlockKeyEvicted` calls; e.g. a prefix-cache reset).
   * @returns keys dropped.
   * @throws KvmgrError `KVMGR_INVALID_STATE` outside block-key mode.
   */
  clearBlockKeys(): number {
    const t = this.keyTable('clearBlockKeys');
    const cpu = this.cpu as BlockPool;
    const n = t.size;
    for (let b = 0; b < cpu.numBlocks; b++) cpu.uncache(b);
    t.clear();
    return n;
  }

  /**
   * Block-key mode: calls `fn(hi, lo, tier)` for every held block key, by CPU block id.
   * @throws KvmgrError `KVMGR_INVALID_STATE` outside block-key mode.
   */
  forEachBlockKey(fn: (hi: number, lo: number, tier: Tier) => void): void {
    this.keyTable('forEachBlockKey');
    const cpu = this.cpu as BlockPool;
    for (let b = 0; b < cpu.numBlocks; b++) if (cpu.cachedKey(b) !== undefined) fn(this.cpuHi[b]!, this.cpuLo[b]!, 'cpu');
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
    // reload times are pushed in time order: skip the ones after `nowUs` from the end (O(1) for a
    // query at or after the latest reload, as a router's snapshot each arrival)
    let end = this.reloadTimes.length;
    while (end > this.reloadHead && this.reloadTimes[end - 1]! > nowUs) end--;
    return (end - this.reloadHead) / (this.thrashingWindowUs / US_PER_S);
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
    const blockKeys: (readonly [number, number, number])[] = [];
    if (this.blockKeyTable) {
      const cpu = this.cpu as BlockPool;
      for (let b = 0; b < cpu.numBlocks; b++) if (cpu.cachedKey(b) !== undefined) blockKeys.push([this.cpuHi[b]!, this.cpuLo[b]!, b]);
      blockKeys.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    }
    return { gpu: this.gpuPool?.state() ?? null, cpu: this.cpu?.state() ?? null, disk: this.disk?.state() ?? null, keys, blockKeys };
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
    if (this.blockKeyTable) {
      const cpu = this.cpu as BlockPool;
      for (let b = 0; b < cpu.numBlocks; b++) {
        if (cpu.cachedKey(b) === undefined) continue;
        locations++;
        const at = this.blockKeyTable.get(this.cpuHi[b]!, this.cpuLo[b]!);
        if (at !== b) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: CPU block ${b} holds block key ${this.cpuHi[b]}:${this.cpuLo[b]}, which the key table maps to ${at}`);
      }
      if (this.blockKeyTable.size !== locations) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: ${this.blockKeyTable.size} block keys but ${locations} cached CPU blocks`);
    }
    if (locations !== cachedLocations) throw new KvmgrError('KVMGR_VERIFY_FAILED', `TieredPool: ${locations} key locations but ${cachedLocations} cached blocks`);
  }
}
