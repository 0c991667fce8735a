/**
 * @kvmgr/kv-pool — the KV block pool: O(1) paged free queue with vLLM v1 semantics, ref counts and
 * copy-on-write, buddy runs, compaction plans executed by a {@link BlockBackend}, fragmentation
 * sampling, a gpu/cpu/disk tiered pool, and memory quotas between consumers.
 */
export { FreeBlockQueue } from './free-block-queue.js';
export { BlockPool } from './block-pool.js';
export type { BlockPoolOptions, BlockPoolState, CopyOnWriteResult } from './block-pool.js';
export { BuddyAllocator } from './buddy-allocator.js';
export type { BlockRun, BuddyAllocatorOptions, BuddyState } from './buddy-allocator.js';
export { compactionCopyBatch, runCompaction } from './compaction.js';
export type { BlockMove, CompactionPlan, Compactable } from './compaction.js';
export { FragmentationSampler, unusableFreeTokens } from './fragmentation.js';
export type { FragmentationReport, FragmentationSamplerOptions, PoolOccupancy } from './fragmentation.js';
export { BookkeepingBackend } from './bookkeeping-backend.js';
export type { BookkeepingSlab, BookkeepingStats } from './bookkeeping-backend.js';
export { TieredPool } from './tiered-pool.js';
export type { AcquireResult, TierConfig, TieredPoolOptions, TieredPoolState, TieredPoolStats } from './tiered-pool.js';
export { QuotaAllocator } from './quota-allocator.js';
export type { QuotaAllocatorOptions, QuotaConsumerConfig, QuotaDemand, QuotaRound } from './quota-allocator.js';
export type { BlockBackend, BlockCopyBatch, BlockId, BlockSlab } from '@kvmgr/core';
