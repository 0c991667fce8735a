/**
 * What a simulated cluster run takes and returns: the router seam, the P/D link, progress
 * reports, per-instance time-series samples and counters, and the result. Pure types (plus the
 * counters' zero value).
 */
import type { EngineSnapshot, InstanceRole } from '@kvmgr/core';
import type { SimRequest } from '../traces/types.js';
import type { QuotaReport } from './quota-split.js';
import type { RequestState } from './request-state.js';

/** What the cluster needs of a router (the `@kvmgr/router` `Router` fits through `createSimRouter`). */
export interface SimRouter {
  readonly name: string;
  /**
   * Picks the instance (position in `snapshots`) for a request; for P/D clusters also the
   * prefill instance (`prefill` = -1 or equal to `decode` when not disaggregated).
   */
  route(
    request: SimRequest,
    keys: Uint32Array,
    snapshots: readonly EngineSnapshot[],
    nowUs: number,
    /** The request's block keys as `[hi, lo]` u32 pairs; replaces `keys` when given. */
    localKeys?: Uint32Array,
  ): { readonly decode: number; readonly prefill: number };
  /** An instance stored / removed the block with this 64-bit key (from its KV events). */
  onKeyStored?(instance: number, hi: number, lo: number): void;
  onKeyRemoved?(instance: number, hi: number, lo: number): void;
  /** Called when a request finished, with observed latencies (predictor feedback). */
  onFinished?(requestId: string, ttftMs: number, tpotMs: number): void;
}

/** P/D transfer link. */
export interface PdLink {
  /** Bandwidth between instances, bytes/s. @default 25e9 */
  readonly bytesPerSec?: number;
  /** Fixed cost per transfer, µs. @default 1000 */
  readonly baseUs?: number;
}

/** Progress report. */
export interface SimProgress {
  readonly done: number;
  readonly total: number;
  readonly simTimeUs: number;
  readonly events: number;
}

/** One time-series sample of one instance. */
export interface InstanceSample {
  /** Sample time, ms. */
  readonly tMs: number;
  readonly instance: number;
  /** GPU blocks used by requests / capacity. */
  readonly kvUtilGpu: number;
  /** GPU blocks holding cached prefixes (used or evictable) / capacity. */
  readonly kvCachedGpu: number;
  /** CPU-tier blocks used / capacity (0 without a CPU tier). */
  readonly kvUtilCpu: number;
  readonly waiting: number;
  readonly running: number;
  /** Mean batch size over the interval (sequences per step). */
  readonly batchSize: number;
  /** Mean step time over the interval, ms. */
  readonly stepMs: number;
  /** Output tokens per second over the interval. */
  readonly outputTokPerSec: number;
  /** Prefill tokens computed per second over the interval. */
  readonly prefillTokPerSec: number;
  /** Prefix hit rate of the requests admitted in the interval (tokens). */
  readonly hitRate: number;
  readonly evictions: number;
  /** Blocks offloaded + reloaded + swapped over the interval. */
  readonly transfers: number;
  readonly preemptions: number;
  readonly finished: number;
}

/** What a result tells of one instance (an engine-core instance's counters). */
export interface SimInstanceView {
  readonly id: string;
  readonly role: InstanceRole;
  readonly counters: InstanceCounters;
  readonly kv: { readonly counters: { readonly evictedBlocks: number; readonly offloadedBlocks: number; readonly reloadedBlocks: number } };
  readonly migrations: MigrationCounters;
}

/**
 * KV migrations of an instance, in blocks, and how they ended. A migration is a block moved to a
 * GPU ahead of the step that needs it: a CPU→GPU prefetch (hot-spot prefetch of a queued request)
 * or a block of a P/D KV transfer arriving at this (decode) instance. It fails when the KV is not
 * there, complete, when the step needs it: a prefetched block that was evicted before any request
 * took it, or that a request took before its transfer landed (the step waited); a P/D block whose
 * source was evicted on the prefill instance before the transfer ended (recomputed here).
 * Demand reloads at admission are not migrations (the step always waits for them).
 */
export interface MigrationCounters {
  /** Blocks reloaded from the CPU tier ahead of their step (hot-spot prefetch). */
  readonly prefetchedBlocks: number;
  /** Prefetched blocks a request took after they landed. */
  readonly prefetchHitBlocks: number;
  /** Prefetched blocks a request took before they landed (its step waited for the transfer). */
  readonly prefetchLateBlocks: number;
  /** Prefetched blocks evicted (or reset away) before any request took them. */
  readonly prefetchEvictedBlocks: number;
  /** Full prompt blocks of P/D transfers that ended at this instance. */
  readonly pdTransferBlocks: number;
  /** Of those, blocks whose source was evicted before the transfer ended. */
  readonly pdFailedBlocks: number;
}

/** What a cluster simulation returns. */
export interface ClusterResult {
  readonly states: readonly RequestState[];
  readonly instances: readonly SimInstanceView[];
  readonly samples: readonly InstanceSample[];
  /** Simulated end time, µs. */
  readonly endUs: number;
  readonly events: number;
  /** Conservation violations found at the end (empty when every check passed). */
  readonly violations: readonly string[];
  /** The LLM / embedding quota split (`CoreClusterOptions.quota`); absent without one. */
  readonly quota?: QuotaReport;
}

/** Cumulative counters of an instance (the time series samples differences). */
export interface InstanceCounters {
  steps: number;
  busyUs: number;
  prefillTokens: number;
  decodeTokens: number;
  /** Output tokens sampled. */
  outputTokens: number;
  promptTokens: number;
  cachedTokens: number;
  preemptions: number;
  finished: number;
  rejected: number;
  /** Transfer time charged to steps, µs. */
  transferUs: number;
  /** Σ step duration × used token slots / capacity (utilization integral), µs. */
  usedSlotUs: number;
  /** Σ step duration × (allocated-unused slots + unusable free) / capacity, µs. */
  fragSlotUs: number;
  /** Σ step duration × batch size. */
  batchUs: number;
  /** Plans that went through the planner (not the pure-decode fast path). */
  plannedSteps: number;
  /** Full prompt blocks of P/D transfers that ended here (this instance decodes them). */
  pdTransferBlocks: number;
  /** Of those, blocks evicted at the source before the transfer ended. */
  pdFailedBlocks: number;
}

/** Counters at zero. */
export function newInstanceCounters(): InstanceCounters {
  return {
    steps: 0,
    busyUs: 0,
    prefillTokens: 0,
    decodeTokens: 0,
    outputTokens: 0,
    promptTokens: 0,
    cachedTokens: 0,
    preemptions: 0,
    finished: 0,
    rejected: 0,
    transferUs: 0,
    usedSlotUs: 0,
    fragSlotUs: 0,
    batchUs: 0,
    plannedSteps: 0,
    pdTransferBlocks: 0,
    pdFailedBlocks: 0,
  };
}
