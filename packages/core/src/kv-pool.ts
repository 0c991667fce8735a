/**
 * Block allocation interfaces (implemented by `@kvmgr/kv-pool`, backed optionally by
 * `@kvmgr/native`). Pure types.
 */
import type { KVCacheSpec, Tier } from './kv-cache-spec.js';

/** Integer id of a block inside one pool/tier, `0 ≤ id < numBlocks`. */
export type BlockId = number;

/** Allocates and frees fixed-size KV blocks. */
export interface BlockAllocator {
  readonly numBlocks: number;
  readonly numFreeBlocks: number;
  /**
   * Allocates `n` blocks, all or nothing.
   * Throws `KVMGR_OUT_OF_BLOCKS` (details: free, requested) and changes nothing when short.
   */
  allocate(n: number): BlockId[];
  /** Drops one reference of each block; a block at zero returns to the free queue. */
  free(blocks: ArrayLike<BlockId>): void;
}

/** A KV pool: allocator plus ref counts and the geometry of its blocks. */
export interface KVPool extends BlockAllocator {
  readonly spec: KVCacheSpec;
  /** Adds one reference to each block (prefix sharing). */
  share(blocks: ArrayLike<BlockId>): void;
  refCount(block: BlockId): number;
  /** Fraction of blocks in use, 0..1. */
  readonly usage: number;
}

/** A slab of device or host memory holding `numBlocks` blocks of `bytesPerBlock` bytes. */
export interface BlockSlab {
  readonly tier: Tier;
  readonly numBlocks: number;
  readonly bytesPerBlock: number;
}

/** One batch of block copies: `src[i]` of the source slab goes to `dst[i]` of the target slab. */
export interface BlockCopyBatch {
  readonly src: ArrayLike<BlockId>;
  readonly dst: ArrayLike<BlockId>;
}

/**
 * Memory behind a pool. The kv-pool bookkeeping backend only counts; `@kvmgr/native` arenas
 * hold real memory (host, CUDA, ROCm, Ascend) and move bytes.
 */
export interface BlockBackend<S extends BlockSlab = BlockSlab> {
  /** Backend name, e.g. `bookkeeping`, `host`, `cuda`, `ts-fallback`. */
  readonly name: string;
  /** Allocates one slab for a tier. Throws `KVMGR_INVALID_ARGUMENT` / `KVMGR_UNAVAILABLE`. */
  createSlab(tier: Tier, numBlocks: number, bytesPerBlock: number): S;
  /**
   * Copies blocks between slabs (or within one, for compaction), in one batch; resolves when
   * the bytes have landed. Throws `KVMGR_INVALID_ARGUMENT` for ids out of range or size mismatch.
   */
  copyBlocks(from: S, to: S, batch: BlockCopyBatch): Promise<void>;
  /** Frees a slab; later use throws `KVMGR_INVALID_STATE`. */
  releaseSlab(slab: S): void;
}
