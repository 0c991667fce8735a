/**
 * core's `BlockBackend` over device arenas, so a kv-pool `TieredPool` keeps its gpu / cpu / disk
 * tiers in real memory and its offload, reload and compaction move plans move real bytes.
 */
import { type BlockBackend, type BlockCopyBatch, KvmgrError, type Tier, invalidArgument, requireNonNegativeInt, requireOneOf } from '@kvmgr/core';
import { type BackendChoice, type BackendName, resolveBackend } from './backends.js';
import { createArena } from './create-arena.js';
import type { ArenaLocation, DeviceArena } from './device-arena.js';
import { NativeDeviceArena } from './native-arena.js';
import { TsFallbackArena } from './ts-fallback-arena.js';

function isArena(x: unknown): x is DeviceArena {
  return x instanceof NativeDeviceArena || x instanceof TsFallbackArena;
}

/** Options of {@link ArenaBlockBackend}. */
export interface ArenaBlockBackendOptions {
  /** Backend of every slab, resolved once at construction. @default 'auto' */
  backend?: BackendChoice;
  /** Device ordinal for device backends. @default 0 */
  device?: number;
  /**
   * Memory per tier. On device backends `gpu` is device memory and `cpu`/`disk` runtime-pinned
   * host memory; on host backends everything is host memory. (`disk` is held in memory: there is
   * no file-backed arena yet.)
   * @default { gpu: 'device' on device backends else 'host', cpu: 'host', disk: 'host' }
   */
  locations?: Partial<Record<Tier, ArenaLocation>>;
  /** Host backend: transparent huge pages for slabs ≥ 2 MiB. @default true */
  hugePages?: boolean;
  /** Host backend: mlock every slab. @default false */
  lock?: boolean;
}

/** Copy counters of an {@link ArenaBlockBackend}. */
export interface ArenaBackendStats {
  readonly slabs: number;
  readonly liveSlabs: number;
  readonly liveBytes: number;
  readonly copyBatches: number;
  readonly copiedBlocks: number;
  readonly copiedBytes: number;
}

/**
 * A `BlockBackend` whose slabs are {@link DeviceArena}s.
 *
 * @example
 * ```ts
 * const backend = new ArenaBlockBackend();            // cuda → rocm → ascend → host → ts-fallback
 * const pool = new TieredPool({ spec, tiers: { gpu: { capacityBlocks: 1024 }, cpu: { capacityBlocks: 4096 } }, backend });
 * pool.slab('gpu')?.backend;                          // e.g. 'host'
 * ```
 */
export class ArenaBlockBackend implements BlockBackend<DeviceArena> {
  /** The resolved backend (`host`, `cuda`, …, `ts-fallback`). */
  readonly name: BackendName;
  private readonly device: number;
  private readonly locations: Record<Tier, ArenaLocation>;
  private readonly hugePages: boolean;
  private readonly lock: boolean;
  private counters = { slabs: 0, liveSlabs: 0, liveBytes: 0, copyBatches: 0, copiedBlocks: 0, copiedBytes: 0 };

  /**
   * @param options - see {@link ArenaBlockBackendOptions}.
   * @throws KvmgrError `KVMGR_UNAVAILABLE` when the named backend is not available,
   *   `KVMGR_INVALID_ARGUMENT` for bad options.
   */
  constructor(options: ArenaBlockBackendOptions = {}) {
    this.name = resolveBackend(options.backend ?? 'auto');
    this.device = requireNonNegativeInt('device', options.device ?? 0);
    const onDevice = this.name === 'cuda' || this.name === 'rocm' || this.name === 'ascend';
    const loc = options.locations ?? {};
    this.locations = {
      gpu: requireOneOf('locations.gpu', loc.gpu ?? (onDevice ? 'device' : 'host'), ['host', 'device'] as const),
      cpu: requireOneOf('locations.cpu', loc.cpu ?? 'host', ['host', 'device'] as const),
      disk: requireOneOf('locations.disk', loc.disk ?? 'host', ['host', 'device'] as const),
    };
    this.hugePages = options.hugePages ?? true;
    this.lock = options.lock ?? false;
  }

  /**
   * Allocates a slab for a tier.
   * @param tier - `gpu`, `cpu` or `disk`.
   * @param numBlocks - blocks (≥ 1).
   * @param bytesPerBlock - bytes per block (≥ 1).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (tier, sizes), `KVMGR_UNAVAILABLE`, `KVMGR_OUT_OF_MEMORY`.
   */
  createSlab(tier: Tier, numBlocks: number, bytesPerBlock: number): DeviceArena {
    if (tier !== 'gpu' && tier !== 'cpu' && tier !== 'disk') throw invalidArgument('tier', tier, "'gpu', 'cpu' or 'disk'");
    const arena = createArena({
      backend: this.name,
      numBlocks,
      bytesPerBlock,
      location: this.locations[tier],
      device: this.device,
      tier,
      hugePages: this.hugePages,
      lock: this.lock,
    });
    this.counters.slabs++;
    this.counters.liveSlabs++;
    this.counters.liveBytes += arena.byteLength;
    return arena;
  }

  /**
   * Copies `batch.src[i]` of `from` to `batch.dst[i]` of `to` (same slab for compaction); all
   * sources are read before any destination is written. Copies touching a slab land in issue order.
   * @returns a promise that resolves when the bytes have landed.
   * @throws KvmgrError (as a rejected promise) `KVMGR_INVALID_ARGUMENT` (ids out of range,
   *   lengths differ, repeated destination, block sizes differ, a slab not made by an arena
   *   backend), `KVMGR_INVALID_STATE` (released slab).
   */
  copyBlocks(from: DeviceArena, to: DeviceArena, batch: BlockCopyBatch): Promise<void> {
    if (!isArena(from)) return Promise.reject(invalidArgument('from', from, 'a slab made by an ArenaBlockBackend'));
    if (!isArena(to)) return Promise.reject(invalidArgument('to', to, 'a slab made by an ArenaBlockBackend'));
    const p = from.copyBlocksTo(to, batch);
    return p.then(() => {
      this.counters.copyBatches++;
      this.counters.copiedBlocks += batch.src.length;
      this.counters.copiedBytes += batch.src.length * from.bytesPerBlock;
    });
  }

  /**
   * Frees a slab now.
   * @throws KvmgrError `KVMGR_INVALID_STATE` when it was already released,
   *   `KVMGR_INVALID_ARGUMENT` for a slab not made by an arena backend.
   */
  releaseSlab(slab: DeviceArena): void {
    if (!isArena(slab)) throw invalidArgument('slab', slab, 'a slab made by an ArenaBlockBackend');
    if (slab.closed) throw new KvmgrError('KVMGR_INVALID_STATE', `releaseSlab: the ${slab.tier} slab was already released`);
    slab.close();
    this.counters.liveSlabs--;
    this.counters.liveBytes -= slab.byteLength;
  }

  /** Counters so far. */
  get stats(): ArenaBackendStats {
    return { ...this.counters };
  }
}
