/**
 * The arena contract shared by every backend: one slab of `numBlocks × bytesPerBlock` bytes,
 * blocks addressed by id, batched copies between arenas.
 */
import type { BlockCopyBatch, BlockId, BlockSlab, Tier } from '@kvmgr/core';
import type { BackendName } from './backends.js';

/** Where a slab lives: `device` memory (GPU/NPU) or `host` memory (CPU-addressable). */
export type ArenaLocation = 'host' | 'device';

/**
 * A slab of `numBlocks` blocks of `bytesPerBlock` bytes on one backend. Implements core's
 * `BlockSlab`, so a `BlockBackend` can hand it to a pool.
 *
 * Block `id` occupies bytes `[id × bytesPerBlock, (id + 1) × bytesPerBlock)` of the slab.
 * Every method throws `KVMGR_INVALID_STATE` after {@link DeviceArena.close}.
 */
export interface DeviceArena extends BlockSlab {
  /** Backend that holds the memory. */
  readonly backend: BackendName;
  /** `device` (not CPU-addressable: no views) or `host`. */
  readonly location: ArenaLocation;
  /** Device ordinal for device backends, 0 otherwise. */
  readonly device: number;
  /** Tier this slab serves in a pool (`gpu` for device memory, `cpu` for host by default). */
  readonly tier: Tier;
  readonly numBlocks: number;
  readonly bytesPerBlock: number;
  /** `numBlocks × bytesPerBlock`. */
  readonly byteLength: number;
  /** Transparent huge pages were requested and granted (host backend). */
  readonly hugePages: boolean;
  /** Memory is page-locked (host `lock` option, or runtime-pinned host memory). */
  readonly locked: boolean;
  /** `close()` was called. */
  readonly closed: boolean;

  /**
   * Byte offset of a block inside the slab.
   * @param id - block id, `0 ≤ id < numBlocks`.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when out of range.
   */
  blockOffset(id: BlockId): number;
  /**
   * The whole slab as an `ArrayBuffer`, without copying (host location only). The buffer keeps
   * the memory alive after the arena is dropped; `close()` detaches it (length becomes 0).
   * @throws KvmgrError `KVMGR_INVALID_STATE` for device memory or after close.
   */
  buffer(): ArrayBuffer;
  /**
   * A `Uint8Array` over one block, without copying (host location only).
   * @param id - block id.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (id), `KVMGR_INVALID_STATE` (device memory, closed).
   */
  blockView(id: BlockId): Uint8Array;
  /**
   * Copies bytes from the host into a block (synchronous; host→device for device memory).
   * @param id - block id.
   * @param data - bytes to write; `byteOffset + data.length ≤ bytesPerBlock`.
   * @param byteOffset - offset inside the block. @default 0
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad id, offset or length.
   */
  writeBlock(id: BlockId, data: Uint8Array, byteOffset?: number): void;
  /**
   * Copies a block (or part of it) to the host (synchronous; device→host for device memory).
   * @param id - block id.
   * @param into - destination; a new `Uint8Array(bytesPerBlock)` when omitted.
   * @param byteOffset - offset inside the block. @default 0
   * @returns `into`.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad id, offset or length.
   */
  readBlock(id: BlockId, into?: Uint8Array, byteOffset?: number): Uint8Array;
  /**
   * Copies `batch.src[i]` of this arena to `batch.dst[i]` of `target`, in batch order, off the
   * main thread where the backend allows (streams + events on GPUs, the libuv pool for host).
   * `target` may be this arena (compaction). Resolves when the bytes have landed.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (ids out of range, lengths or block sizes
   *   differ; nothing is copied), `KVMGR_INVALID_STATE` (either arena closed).
   */
  copyBlocksTo(target: DeviceArena, batch: BlockCopyBatch): Promise<void>;
  /** {@link DeviceArena.copyBlocksTo} on the calling thread; same checks, returns when done. */
  copyBlocksToSync(target: DeviceArena, batch: BlockCopyBatch): void;
  /**
   * Frees the memory now (after copies in flight land) and detaches the host view. Idempotent.
   */
  close(): void;
}
