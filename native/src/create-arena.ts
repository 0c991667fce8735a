/** `createArena`: picks a backend and allocates one slab on it. */
import { KvmgrError, type Tier, invalidArgument, requireNonNegativeInt, requireOneOf, requirePositiveInt } from '@kvmgr/core';
import { loadAddon, noticeFallback } from './addon.js';
import { type BackendChoice, type BackendName, libraryCandidates, resolveBackend } from './backends.js';
import type { ArenaLocation, DeviceArena } from './device-arena.js';
import { NativeDeviceArena } from './native-arena.js';
import { native } from './native-error.js';
import { TsFallbackArena } from './ts-fallback-arena.js';

/** Options of {@link createArena}. */
export interface ArenaOptions {
  /** Number of blocks in the slab (≥ 1). */
  numBlocks: number;
  /** Bytes per block (≥ 1), e.g. `spec.bytesPerBlock` from core's `createKVCacheSpec`. */
  bytesPerBlock: number;
  /** Backend, or `auto` (cuda → rocm → ascend → host → ts-fallback). @default 'auto' */
  backend?: BackendChoice;
  /**
   * `device` memory or `host` memory. On device backends `host` gives runtime-pinned host memory
   * (cudaHostAlloc / hipHostMalloc / aclrtMallocHost), the usual offload target.
   * @default 'device' on cuda/rocm/ascend, 'host' on host and ts-fallback
   */
  location?: ArenaLocation;
  /** Device ordinal on device backends. @default 0 */
  device?: number;
  /** Tier the slab serves (reported on the slab). @default 'gpu' for device memory, else 'cpu' */
  tier?: Tier;
  /** Host backend: back slabs ≥ 2 MiB with transparent huge pages (madvise). @default true */
  hugePages?: boolean;
  /** Host backend: mlock the slab (fails with `KVMGR_UNAVAILABLE` beyond RLIMIT_MEMLOCK). @default false */
  lock?: boolean;
}

const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'host', 'cuda', 'rocm', 'ascend', 'ts-fallback'];
const MAX_FALLBACK_BYTES = 2 ** 31;

/**
 * Allocates one slab of `numBlocks × bytesPerBlock` bytes on a backend.
 *
 * @param options - see {@link ArenaOptions}.
 * @returns a {@link DeviceArena}; free it with `close()` (or let GC do it).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad sizes/options (zero blocks, `device`
 *   location on a host backend); `KVMGR_UNAVAILABLE` when the named backend is not available or
 *   memory cannot be locked; `KVMGR_OUT_OF_MEMORY` when the allocation fails.
 * @example
 * ```ts
 * const gpu = createArena({ numBlocks: 1024, bytesPerBlock: 131072 });        // auto
 * const cpu = createArena({ numBlocks: 4096, bytesPerBlock: 131072, location: 'host', backend: gpu.backend });
 * await gpu.copyBlocksTo(cpu, { src: [3, 4], dst: [0, 1] });                   // offload
 * ```
 */
export function createArena(options: ArenaOptions): DeviceArena {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options', options, 'an object');
  const numBlocks = requirePositiveInt('numBlocks', options.numBlocks);
  const bytesPerBlock = requirePositiveInt('bytesPerBlock', options.bytesPerBlock);
  if (!Number.isSafeInteger(numBlocks * bytesPerBlock)) {
    throw invalidArgument('numBlocks × bytesPerBlock', numBlocks * bytesPerBlock, 'a safe integer byte count');
  }
  const choice = requireOneOf('backend', options.backend ?? 'auto', BACKEND_CHOICES);
  const device = requireNonNegativeInt('device', options.device ?? 0);
  if (options.location !== undefined) requireOneOf('location', options.location, ['host', 'device'] as const);
  if (options.tier !== undefined) requireOneOf('tier', options.tier, ['gpu', 'cpu', 'disk'] as const);
  const backend: BackendName = resolveBackend(choice);
  const isDeviceBackend = backend === 'cuda' || backend === 'rocm' || backend === 'ascend';
  const location: ArenaLocation = options.location ?? (isDeviceBackend ? 'device' : 'host');
  if (location === 'device' && !isDeviceBackend) {
    throw invalidArgument('location', location, `'host' on the ${backend} backend (it has no device memory)`);
  }
  const tier: Tier = options.tier ?? (location === 'device' ? 'gpu' : 'cpu');

  if (backend === 'ts-fallback') {
    if (choice === 'auto') noticeFallback(loadAddon().reason || 'no native backend available');
    if (numBlocks * bytesPerBlock > MAX_FALLBACK_BYTES) {
      throw invalidArgument('numBlocks × bytesPerBlock', numBlocks * bytesPerBlock, `at most ${MAX_FALLBACK_BYTES} bytes on the ts-fallback backend`);
    }
    return new TsFallbackArena(numBlocks, bytesPerBlock, tier);
  }
  const { addon } = loadAddon();
  if (!addon) throw new KvmgrError('KVMGR_UNAVAILABLE', `backend ${backend} needs the native addon, which is not loaded`);
  const handle = native(
    () =>
      new addon.Arena({
        backend,
        numBlocks,
        bytesPerBlock,
        location,
        device,
        hugePages: options.hugePages ?? true,
        lock: options.lock ?? false,
        libraries: isDeviceBackend ? libraryCandidates(backend) : [],
      }),
  );
  return new NativeDeviceArena(handle, tier);
}
