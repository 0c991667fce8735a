/**
 * Fragmentation and utilization as DESIGN.md section 7 defines them, integrated over time:
 *
 * - fragmentation = ∫ (allocated-but-unused token slots + free token slots unusable for the next
 *   request) dt / (capacity × T)
 * - utilization = ∫ used token slots dt / (capacity × T)
 *
 * The state is piecewise constant: each {@link FragmentationSampler.record} closes the interval
 * since the previous record with the previous state.
 */
import { KvmgrError, invalidArgument, requireNonNegativeInt, requireNonNegativeNumber, requirePositiveInt } from '@kvmgr/core';

/** The pool state from one instant on, in token slots. */
export interface PoolOccupancy {
  /** Token slots holding KV tokens (prompt + generated of live requests). */
  readonly usedTokens: number;
  /** Token slots in allocated blocks (blocks × blockSize), ≥ `usedTokens`. */
  readonly allocatedTokens: number;
  /**
   * Free token slots that the next request cannot use because of their layout (0 for a paged
   * pool; for a buddy pool, all free slots while the next request would fit by count but not
   * by runs). See {@link unusableFreeTokens}.
   * @default 0
   */
  readonly unusableFreeTokens?: number;
}

/** Time-averaged results of a {@link FragmentationSampler}. */
export interface FragmentationReport {
  /** Integrated span, µs. */
  readonly durationUs: number;
  /** Time-averaged (allocated − used + unusable free) / capacity, 0..1. */
  readonly fragmentation: number;
  /** Time-averaged allocated-but-unused slots / capacity (internal part), 0..1. */
  readonly internalFragmentation: number;
  /** Time-averaged unusable free slots / capacity (external part), 0..1. */
  readonly externalFragmentation: number;
  /** Time-averaged used slots / capacity, 0..1. */
  readonly utilization: number;
  /** Time-averaged allocated slots / capacity, 0..1. */
  readonly allocatedFraction: number;
}

/** Options of {@link FragmentationSampler}. */
export interface FragmentationSamplerOptions {
  /** Pool capacity in token slots (blocks × blockSize). */
  readonly capacityTokens: number;
  /** Start of the integration, µs. @default 0 */
  readonly startUs?: number;
}

/**
 * Integrates pool occupancy over time (µs) into time-averaged fragmentation and utilization.
 *
 * @example
 * ```ts
 * const s = new FragmentationSampler({ capacityTokens: 1600 });
 * s.record(0, { usedTokens: 1000, allocatedTokens: 1008 });
 * s.record(5_000, { usedTokens: 1500, allocatedTokens: 1504 });
 * s.report(10_000).utilization; // (1000·5000 + 1500·5000) / (1600·10000) = 0.78125
 * ```
 */
export class FragmentationSampler {
  /** Capacity in token slots. */
  readonly capacityTokens: number;
  private readonly startUs: number;
  private lastUs: number;
  private used = 0;
  private alloc = 0;
  private unusable = 0;
  private usedInt = 0;
  private allocInt = 0;
  private unusableInt = 0;

  /**
   * @param options - see {@link FragmentationSamplerOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive capacity or negative start.
   */
  constructor(options: FragmentationSamplerOptions) {
    this.capacityTokens = requirePositiveInt('capacityTokens', options.capacityTokens);
    this.startUs = requireNonNegativeNumber('startUs', options.startUs ?? 0);
    this.lastUs = this.startUs;
  }

  private advance(nowUs: number): void {
    if (typeof nowUs !== 'number' || !Number.isFinite(nowUs)) throw invalidArgument('nowUs', nowUs, 'a finite time in µs');
    if (nowUs < this.lastUs) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `nowUs must not go back in time: ${nowUs} < ${this.lastUs}`, { details: { nowUs, lastUs: this.lastUs } });
    }
    const dt = nowUs - this.lastUs;
    this.usedInt += this.used * dt;
    this.allocInt += this.alloc * dt;
    this.unusableInt += this.unusable * dt;
    this.lastUs = nowUs;
  }

  /**
   * Records the occupancy from `nowUs` on.
   *
   * @param nowUs - time, µs, ≥ the previous record.
   * @param occupancy - token slot counts (see {@link PoolOccupancy}).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when time goes back, a count is negative,
   *   `usedTokens > allocatedTokens`, or allocated + unusable exceeds capacity. Nothing changes.
   */
  record(nowUs: number, occupancy: PoolOccupancy): void {
    const used = requireNonNegativeInt('usedTokens', occupancy.usedTokens);
    const alloc = requireNonNegativeInt('allocatedTokens', occupancy.allocatedTokens);
    const unusable = requireNonNegativeInt('unusableFreeTokens', occupancy.unusableFreeTokens ?? 0);
    if (used > alloc) throw invalidArgument('usedTokens', used, `at most allocatedTokens (${alloc})`);
    if (alloc + unusable > this.capacityTokens) throw invalidArgument('allocatedTokens + unusableFreeTokens', alloc + unusable, `at most capacityTokens (${this.capacityTokens})`);
    this.advance(nowUs);
    this.used = used;
    this.alloc = alloc;
    this.unusable = unusable;
  }

  /**
   * Time-averaged results over `[startUs, nowUs]` (the current state holds until `nowUs`).
   * Does not change the sampler; all fractions are 0 for an empty span.
   *
   * @param nowUs - end of the span, µs. @default the last record's time
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `nowUs` is before the last record.
   */
  report(nowUs: number = this.lastUs): FragmentationReport {
    if (typeof nowUs !== 'number' || !Number.isFinite(nowUs) || nowUs < this.lastUs) throw invalidArgument('nowUs', nowUs, `a time ≥ ${this.lastUs} µs`);
    const dt = nowUs - this.lastUs;
    const used = this.usedInt + this.used * dt;
    const alloc = this.allocInt + this.alloc * dt;
    const unusable = this.unusableInt + this.unusable * dt;
    const span = nowUs - this.startUs;
    const denom = span * this.capacityTokens;
    if (denom === 0) return { durationUs: 0, fragmentation: 0, internalFragmentation: 0, externalFragmentation: 0, utilization: 0, allocatedFraction: 0 };
    return {
      durationUs: span,
      fragmentation: (alloc - used + unusable) / denom,
      internalFragmentation: (alloc - used) / denom,
      externalFragmentation: unusable / denom,
      utilization: used / denom,
      allocatedFraction: alloc / denom,
    };
  }
}

/**
 * Free token slots unusable for the next request: all free slots when the next request fits by
 * block count but the allocator cannot place it (layout), else 0. A request that does not fit by
 * count is short of memory, not fragmented.
 *
 * @param freeBlocks - free blocks now.
 * @param nextRequestBlocks - blocks the next request needs (0 when none is waiting).
 * @param canAllocate - whether the allocator can place `nextRequestBlocks` now.
 * @param blockSize - tokens per block.
 * @returns token slots.
 */
export function unusableFreeTokens(freeBlocks: number, nextRequestBlocks: number, canAllocate: boolean, blockSize: number): number {
  return nextRequestBlocks > 0 && nextRequestBlocks <= freeBlocks && !canAllocate ? freeBlocks * blockSize : 0;
}
