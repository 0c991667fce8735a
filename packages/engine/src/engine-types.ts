/**
 * The shapes that cross the {@link EngineCore} seam: requests in, step shapes to the latency
 * function, tokens, finished-request stats, step stats and KV events out. Pure types.
 */
import type { KvEvent, RequestMetadata } from '@kvmgr/core';
import type { BlockKeyLog } from './block-key-log.js';

/**
 * A request given to {@link EngineCore.addRequest}: core's request metadata without the arrival
 * time (the driver passes `nowUs`). Prompt tokens come from `promptTokenIds`, else from
 * `blockKeys` (a trace that only gives one u32 key per block: tokens are derived from the keys so
 * equal keys give equal blocks), else `promptTokens` tokens from the token generator. Keys past the
 * prompt's full blocks (up to `promptTokens + maxTokens` tokens) name the blocks the output fills
 * (a multi-turn trace whose next turn repeats the answer): those blocks are cached under them.
 */
export interface EngineRequest extends Omit<RequestMetadata, 'arrivalUs' | 'promptTokens'> {
  /** Prompt length in tokens; required without `promptTokenIds`. */
  readonly promptTokens?: number;
  /**
   * When the request reached the front end (API server), µs on the driver's clock: the scheduler's
   * FCFS order, TTFT and queue times count from it, as vLLM's `arrival_time`. A driver that models
   * a front-end delay (the simulator) passes the earlier time. @default the `nowUs` of `addRequest`
   */
  readonly arrivalUs?: number;
  /**
   * Output tokens to generate before finishing with reason `length` (a simulator knows them from
   * the trace). @default maxTokens
   */
  readonly outputTokens?: number;
  /** Finish with reason `stop` when one of these tokens is sampled. @default none */
  readonly stopTokenIds?: readonly number[];
  /**
   * KV computed elsewhere: the decode leg of a P/D pair (vLLM's `do_remote_prefill`). The KV of
   * the first `computedTokens` tokens arrives with the request, and `outputTokenIds` were sampled
   * by the prefill leg (they count towards `outputTokens`). The request is admitted like a
   * swapped-in one: GPU blocks for that KV without computing it (the driver charges the link
   * transfer, e.g. by adding the request after it), then it decodes. `computedTokens` must leave
   * at least one token to compute (prompt + remote outputs − 1 at most). @default none
   */
  readonly remoteKv?: { readonly computedTokens: number; readonly outputTokenIds?: readonly number[] };
}

/**
 * What one step computes, the input of the injected latency function. Field names match the
 * simulator's `StepWork`, so its latency models plug in as they are.
 */
export interface StepShape {
  /** Prompt tokens computed (cache misses and recomputation), tokens. */
  prefillTokens: number;
  /** Decode tokens (one per decoding request). */
  decodeTokens: number;
  /** Requests computing tokens this step. */
  numSeqs: number;
  /** Σ over prefill chunks of chunk × (tokens before it + chunk / 2): attention work, token pairs. */
  prefillAttnPairs: number;
  /** Σ context length of the decoding requests, tokens. */
  decodeContextTokens: number;
}

/** Step time of a shape, µs (e.g. BLIS: β0 + β1·prefillTokens + β2·decodeTokens). */
export type StepLatencyFn = (shape: Readonly<StepShape>) => number;

/**
 * Token id of a request's `index`-th generated token (0-based). Deterministic functions of their
 * arguments (or seeded generators) keep runs reproducible.
 */
export type TokenGenerator = (requestId: string, index: number) => number;

/** Why a request left the engine (vLLM's `finished_reason` label values plus `rejected`). */
export type FinishReason = 'stop' | 'length' | 'abort' | 'rejected';

/** Per-request stats reported by `onFinished`. Times are µs on the driver's clock. */
export interface RequestFinishedStats {
  readonly requestId: string;
  readonly finishReason: FinishReason;
  readonly arrivalUs: number;
  /** First admission, µs; -1 when never admitted. */
  readonly firstScheduledUs: number;
  /** First output token, µs; -1 when none. */
  readonly firstTokenUs: number;
  readonly finishUs: number;
  /** Time to first token, µs; -1 when none. */
  readonly ttftUs: number;
  /** Arrival to finish, µs. */
  readonly e2eUs: number;
  /** Arrival to first admission, µs (`vllm:request_queue_time_seconds`); -1 when never admitted. */
  readonly queueUs: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Prompt tokens served from the prefix cache at first admission. */
  readonly cachedPromptTokens: number;
  readonly preemptions: number;
  /** Tokens computed by prefill work on this engine: chunks and recomputation, not cache hits or remote KV. */
  readonly prefillComputedTokens: number;
  /** Of those, tokens computed again after a recompute preemption dropped their KV. */
  readonly recomputedTokens: number;
  /**
   * Of those, prompt tokens computed again because this engine had computed and cached their
   * blocks before and evicted them since: full blocks newly cached by this request whose key this
   * engine cached before (a recompute after the request's own preemption is in
   * `recomputedTokens` instead). Counted for keyed requests (`blockKeys`) when the engine's
   * `trackEvictionRecompute` option is on; 0 otherwise.
   */
  readonly evictionRecomputedTokens: number;
  /**
   * Most KV blocks the request held at once on this engine (its prefix-cache hits and blocks
   * shared with other requests included, as the admission footprint counts them); 0 when never
   * admitted.
   */
  readonly peakBlocks: number;
  /**
   * Its predicted KV footprint at first admission, blocks: scheduler-IR's
   * `predictedFootprintBlocks` (p90 remaining output from the engine's predictor, margin 0.1,
   * fallback 256 tokens: the `admission` pass's defaults); -1 when never admitted.
   */
  readonly predictedBlocks: number;
  /** Why the plan rejected it (the scheduler's reason, e.g. `slo-infeasible`); only for `finishReason` `rejected`. */
  readonly rejectedReason?: string;
}

/** Summary of one planned step, returned by {@link EngineCore.startStep}. */
export interface StepSummary {
  /** Tokens computed this step. */
  readonly scheduledTokens: number;
  readonly prefillTokens: number;
  readonly decodeTokens: number;
  /** Requests computing tokens. */
  readonly numSeqs: number;
  /** Requests admitted from the waiting queue this step. */
  readonly admitted: number;
  /** Requests preempted (recompute) this step, by the plan or on allocation failure. */
  readonly preempted: number;
  /** Requests rejected by the plan this step. */
  readonly rejected: number;
  /** Canonical text of the scheduler pipeline that planned it. */
  readonly pipeline: string;
}

/** Result of {@link EngineCore.startStep}. */
export interface StepStart {
  /** Step duration, µs: the latency function's time plus `transferUs`. Call `finishStep(nowUs + durationUs)`. */
  readonly durationUs: number;
  /** Swap transfers (out and in) started by this step and charged to it, µs (0 without swaps). */
  readonly transferUs: number;
  readonly shape: Readonly<StepShape>;
  readonly plan: StepSummary;
}

/** Stats of one finished step (`onStepStats`). */
export interface StepStats {
  /** End of the step, µs. */
  readonly nowUs: number;
  readonly durationUs: number;
  readonly shape: Readonly<StepShape>;
  readonly numRequestsRunning: number;
  readonly numRequestsWaiting: number;
  /** 0..1 after the step. */
  readonly kvCacheUsagePerc: number;
  /** Σ computed tokens of the running requests after the step (a shared prefix counts once per request), tokens. */
  readonly runningComputedTokens: number;
  /** Σ blocks held by the running requests after the step (a shared block counts once per request). */
  readonly runningBlocks: number;
  readonly generatedTokens: number;
  readonly finishedRequests: number;
  readonly preemptions: number;
}

/**
 * Cumulative engine counters and current gauges, named after vLLM's metrics
 * (`VLLM_METRICS` in `@kvmgr/core` gives the Prometheus names).
 */
export interface EngineMetrics {
  /** `vllm:num_requests_running`. */
  readonly numRequestsRunning: number;
  /** `vllm:num_requests_waiting`. */
  readonly numRequestsWaiting: number;
  /** `vllm:kv_cache_usage_perc`, 0..1. */
  readonly kvCacheUsagePerc: number;
  /** `vllm:prefix_cache_queries_total`, tokens. */
  readonly prefixCacheQueries: number;
  /** `vllm:prefix_cache_hits_total`, tokens. */
  readonly prefixCacheHits: number;
  /** `vllm:num_preemptions_total`. */
  readonly numPreemptions: number;
  /** `vllm:prompt_tokens_total` (counted at first admission). */
  readonly promptTokens: number;
  /** `vllm:generation_tokens_total`. */
  readonly generationTokens: number;
  /** `vllm:prompt_tokens_cached_total`. */
  readonly promptTokensCached: number;
  /** `vllm:request_success_total` by `finished_reason`. */
  readonly requestSuccess: Readonly<Record<FinishReason, number>>;
  /** Steps run. */
  readonly steps: number;
  /** Steps that ran the scheduler pipeline (the others were pure-decode steps, not planned). */
  readonly plannedSteps: number;
  /** Σ step durations, µs. */
  readonly busyUs: number;
  /** Blocks moved to the swap space by swap preemption (`vllm:num_preemptions` counts the preemptions). */
  readonly swappedOutBlocks: number;
  /** Blocks moved back from the swap space. */
  readonly swappedInBlocks: number;
  /** Swap-space blocks held now by swapped-out requests. */
  readonly swapBlocksUsed: number;
  /** Σ transfer time charged to steps (swap, and CPU-tier reloads), µs. */
  readonly transferUs: number;
  /** Prompt tokens found on the KV cache manager's CPU tier (`vllm:external_prefix_cache_hits_total`); 0 without one. */
  readonly cpuPrefixCacheHits: number;
  /** Evicted GPU blocks written to the CPU tier. */
  readonly offloadedBlocks: number;
  /** Blocks reloaded from the CPU tier. */
  readonly reloadedBlocks: number;
}

/** Callbacks of an {@link EngineCore}; each is optional. */
export interface EngineHooks {
  /** A token was sampled for the request at `nowUs` (end of the step). */
  onToken?(requestId: string, tokenId: number, nowUs: number): void;
  /** The request (as given to `addRequest`) left the engine, finished, aborted or rejected; its blocks are freed already. */
  onFinished?(request: EngineRequest, stats: RequestFinishedStats): void;
  /** KV events of one step (or of a reset), in order; one call per step that has any. */
  onKvEvents?(events: readonly KvEvent[]): void;
  /**
   * The same step's GPU events in compact form (`EngineCoreOptions.kvBlockKeys`), called just
   * before `onKvEvents`; the log is cleared after the call (read it, do not keep it).
   */
  onKvBlockKeys?(log: BlockKeyLog): void;
  /** After every `finishStep`. */
  onStepStats?(stats: StepStats): void;
}

/** A request kind for block quotas: `generate` (LLM) or `embed` (pooling). */
export type BlockQuotaKind = 'generate' | 'embed';

/**
 * Block quotas per request kind ({@link EngineCore.setBlockQuota}): requests of a kind may hold
 * at most this many blocks together; the sum should not exceed the pool.
 */
export interface BlockQuota {
  /** Blocks LLM (generate) requests may hold. */
  readonly generate: number;
  /** Blocks embedding requests may hold. */
  readonly embed: number;
}

/** What requests of one kind hold and wait for ({@link EngineCore.blockUsage}). */
export interface KindBlockUsage {
  /**
   * Blocks held: for `embed`, Σ blocks of running embedding requests; for `generate`, the
   * manager's held blocks minus those (so the two add up to `kv.numHeldBlocks`).
   */
  readonly heldBlocks: number;
  /** Σ blocks the waiting requests of the kind need for their known tokens (prompt + generated). */
  readonly waitingBlocks: number;
  /** Waiting requests of the kind. */
  readonly waiting: number;
  /** Arrival of the oldest waiting request of the kind, µs; -1 when none waits. */
  readonly oldestWaitingArrivalUs: number;
}
