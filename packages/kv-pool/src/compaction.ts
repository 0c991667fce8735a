/**
 * Compaction move plans: which blocks move where, executed by a {@link BlockBackend} and then
 * applied atomically by the pool that planned them.
 */
import type { BlockBackend, BlockCopyBatch, BlockId, BlockSlab } from '@kvmgr/core';

/** One block move: the content of `from` goes to `to` (a block free when planned). */
export interface BlockMove {
  readonly from: BlockId;
  readonly to: BlockId;
}

/**
 * A compaction plan. Sources are live blocks and destinations are free blocks at planning
 * time, so the sets are disjoint and the copies can run in any order, in one batch.
 */
export interface CompactionPlan {
  /** Block moves; callers remap their block tables with them after applying. */
  readonly moves: readonly BlockMove[];
  /** Free blocks whose cached identity the plan drops (only when shrinking below the live count). */
  readonly droppedCached: readonly BlockId[];
  /** Pool version the plan was made against; applying to a changed pool throws. */
  readonly version: number;
  /** After applying, every block `≥ freeTailStart` is free (paged pool) or free space is merged (buddy). */
  readonly freeTailStart: number;
}

/** Something that plans and applies compactions ({@link BlockPool}, {@link BuddyAllocator}). */
export interface Compactable<O = undefined> {
  planCompaction(options?: O): CompactionPlan;
  applyCompaction(plan: CompactionPlan): void;
}

/**
 * The plan's moves as one copy batch (`src[i] → dst[i]`) for {@link BlockBackend.copyBlocks}.
 *
 * @param plan - a compaction plan.
 * @returns `{ src: Int32Array, dst: Int32Array }` of equal length.
 */
export function compactionCopyBatch(plan: CompactionPlan): BlockCopyBatch {
  const src = new Int32Array(plan.moves.length);
  const dst = new Int32Array(plan.moves.length);
  plan.moves.forEach((m, i) => {
    src[i] = m.from;
    dst[i] = m.to;
  });
  return { src, dst };
}

/**
 * Plans a compaction, has the backend move the bytes (one batch within `slab`), then applies the
 * plan. Nothing changes in the pool when the copy fails.
 *
 * @param target - the pool ({@link BlockPool} or {@link BuddyAllocator}).
 * @param backend - executes the copies.
 * @param slab - the slab holding the pool's blocks.
 * @param options - passed to `planCompaction`.
 * @returns the applied plan (remap block tables with `plan.moves`).
 * @throws KvmgrError from planning (`KVMGR_OUT_OF_BLOCKS` when shrinking below the blocks in
 *   use), from the backend, or `KVMGR_INVALID_STATE` when the pool changed during the copy.
 */
export async function runCompaction<S extends BlockSlab, O>(
  target: Compactable<O>,
  backend: BlockBackend<S>,
  slab: S,
  options?: O,
): Promise<CompactionPlan> {
  const plan = target.planCompaction(options);
  if (plan.moves.length > 0) await backend.copyBlocks(slab, slab, compactionCopyBatch(plan));
  target.applyCompaction(plan);
  return plan;
}
