/**
 * The scheduling IR: one engine step's scheduling problem (`SchedState`) and its answer
 * (`StepPlan`, a list of `PlanOp`s). Pure types. The simulator keeps one `SchedState` per
 * instance and mutates it between steps; passes never mutate it.
 */
import type { PreemptionMode, Tier } from '@kvmgr/core';

/**
 * Where a request stands before the step.
 * - `waiting`: never admitted (or returned to the queue).
 * - `running`: admitted; holds GPU blocks.
 * - `preempted`: preempted by recompute; back in the waiting queue with `computedTokens = 0`.
 * - `swapped`: preempted by swap; in the waiting queue, its `blocksHeld` live on the CPU tier.
 */
export type RequestStatus = 'waiting' | 'running' | 'preempted' | 'swapped';

/** One request as the scheduler sees it. All token counts are tokens, all times µs unless named `Ms`. */
export interface SchedRequest {
  /** Unique request id. */
  id: string;
  status: RequestStatus;
  /** Prompt length, tokens. */
  promptTokens: number;
  /** Tokens whose KV is computed (prompt progress + generated tokens already fed back). */
  computedTokens: number;
  /** Prompt tokens found in the prefix cache (counted only while `computedTokens` is 0). */
  cachedPrefixTokens: number;
  /** Output tokens generated so far. */
  generatedTokens: number;
  /** The request's `max_tokens`. */
  maxTokens: number;
  /** Larger = more important (core convention). */
  priority: number;
  /** Arrival time, µs. */
  arrivalUs: number;
  /** Admission time, µs; -1 when never admitted. */
  admittedUs: number;
  /** KV blocks the request holds (GPU; CPU when `status` is `swapped`). */
  blocksHeld: number;
  /** Time-to-first-token target, ms. */
  ttftMs?: number;
  /** Time-per-output-token target, ms. */
  tpotMs?: number;
  /** When the first output token was produced, µs; absent or negative before that. */
  firstTokenUs?: number;
  /** Predicted remaining output tokens (mean or median). */
  predictedRemainingTokens?: number;
  /** Predicted remaining output tokens at the 90th percentile. */
  predictedRemainingP90?: number;
}

/** Blocks per tier. */
export interface TierBlocks {
  gpu: number;
  cpu: number;
  disk: number;
}

/** The KV pool as the scheduler sees it. */
export interface KvView {
  /** Tokens per block. @default 16 */
  blockSize: number;
  /** Blocks that can be allocated now, per tier (vLLM counts evictable cached blocks as free). */
  freeBlocks: TierBlocks;
  /** Pool capacity per tier, blocks. */
  totalBlocks: TierBlocks;
  /**
   * GPU blocks held only by the prefix cache that may be evicted to make room (SGLang-style
   * accounting, where cached blocks are not free). 0 with vLLM-style accounting.
   */
  evictablePrefixBlocks: number;
}

/** Step budgets. */
export interface Budgets {
  /** Max tokens computed in one step (vLLM `max_num_batched_tokens`). @default 8192 */
  tokenBudget: number;
  /** Max running sequences (vLLM `max_num_seqs`). @default 1024 */
  maxSeqs: number;
}

/** Role of the instance (P/D disaggregation). */
export type StepRole = 'prefill' | 'decode' | 'both';

/** One step's scheduling problem. */
export interface SchedState {
  /** Current time, µs. */
  nowUs: number;
  /** Waiting queue, arrival order by convention (swapped and preempted requests included). */
  waiting: SchedRequest[];
  /** Running requests in admission order (vLLM's `self.running`). */
  running: SchedRequest[];
  kv: KvView;
  budgets: Budgets;
  /** Instance role. @default 'both' */
  role?: StepRole;
}

/** Why a waiting request was deferred. */
export type DeferReason =
  | 'predicted-footprint'
  | 'no-free-blocks'
  | 'max-seqs'
  | 'token-budget'
  | 'pd-needs-prefill'
  | 'preemption-this-step';

/** Why a request was rejected. */
export type RejectReason = 'exceeds-capacity' | 'slo-infeasible';

/** Admits a waiting request (it becomes running this step). */
export interface AdmitOp {
  readonly op: 'admit';
  readonly requestId: string;
  /** Blocks reserved for the request's lifetime (0 = grow on demand). */
  readonly reserveBlocks: number;
}
/** Computes `tokens` prompt tokens starting at `startToken`. */
export interface PrefillOp {
  readonly op: 'prefill';
  readonly requestId: string;
  readonly tokens: number;
  /** Tokens already computed (or served from cache) before this chunk. */
  readonly startToken: number;
  /** Prompt tokens served from the prefix cache (first chunk only; block aligned). */
  readonly cachedTokens: number;
  /** GPU blocks to allocate now (beyond blocks held and cached blocks shared). */
  readonly newBlocks: number;
}
/** Decodes `tokens` tokens (1 without speculation). */
export interface DecodeOp {
  readonly op: 'decode';
  readonly requestId: string;
  readonly tokens: number;
  readonly newBlocks: number;
}
/** Preempts a running request. */
export interface PreemptOp {
  readonly op: 'preempt';
  readonly requestId: string;
  readonly mode: PreemptionMode;
  /** GPU blocks released. */
  readonly freedBlocks: number;
}
/** Moves a request's KV blocks down a tier. */
export interface OffloadOp {
  readonly op: 'offload';
  readonly requestId: string;
  readonly blocks: number;
  readonly from: Tier;
  readonly to: Tier;
}
/** Moves a request's KV blocks back up a tier. */
export interface ReloadOp {
  readonly op: 'reload';
  readonly requestId: string;
  readonly blocks: number;
  readonly from: Tier;
  readonly to: Tier;
}
/** Leaves a waiting request waiting, with a reason. */
export interface DeferOp {
  readonly op: 'defer';
  readonly requestId: string;
  readonly reason: DeferReason;
}
/** Rejects a request (the engine answers it with an error). */
export interface RejectOp {
  readonly op: 'reject';
  readonly requestId: string;
  readonly reason: RejectReason;
}
/** Evicts cached prefix blocks (least valuable first, by the prefix cache's policy). */
export interface EvictPrefixOp {
  readonly op: 'evict-prefix';
  readonly blocks: number;
}

/** One plan operation. */
export type PlanOp = AdmitOp | PrefillOp | DecodeOp | PreemptOp | OffloadOp | ReloadOp | DeferOp | RejectOp | EvictPrefixOp;

/** The plan kind names. */
export type PlanOpKind = PlanOp['op'];

/** One step's plan, with summary numbers. */
export interface StepPlan {
  /**
   * Operations in the order an engine applies them: evict-prefix, preempt (+ offload), reject,
   * defer, then for each scheduled request in schedule order: reload?, admit?, prefill|decode.
   */
  readonly ops: PlanOp[];
  /** Tokens computed this step (prefill + decode). */
  readonly scheduledTokens: number;
  readonly prefillTokens: number;
  readonly decodeTokens: number;
  /** Requests computing tokens this step. */
  readonly scheduledSeqs: number;
  /** GPU blocks newly allocated. */
  readonly newBlocks: number;
  /** GPU blocks free after the step's allocations, evictions and preemptions. */
  readonly freeBlocksAfter: number;
  readonly preemptions: number;
  /** scheduledTokens / tokenBudget, 0..1. */
  readonly batchingEfficiency: number;
}
