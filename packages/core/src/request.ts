/**
 * Request metadata shared by router, scheduler, simulator and adapters. Pure types.
 */

/** SLO classes, most urgent first. Routing weights the transfer penalty per class. */
export type SloClass = 'critical' | 'standard' | 'batch' | 'background';

/** Latency targets of a request, in milliseconds. Absent = no target. */
export interface SloTargets {
  /** Time to first token target, ms. */
  readonly ttftMs?: number;
  /** Time per output token (inter-token latency) target, ms. */
  readonly tpotMs?: number;
  /** End-to-end latency target, ms. */
  readonly e2eMs?: number;
}

/** What a server knows about a request at arrival. */
export interface RequestMetadata {
  /** Unique request id. */
  readonly requestId: string;
  /** Arrival time, µs since the start of the run (or epoch µs for live traffic). */
  readonly arrivalUs: number;
  /** Prompt token ids when known (live traffic); absent for traces that only give counts. */
  readonly promptTokenIds?: readonly number[] | Uint32Array;
  /** Prompt length in tokens. */
  readonly promptTokens: number;
  /**
   * Block keys of the prompt when only hashes are known (traces): one u32 key per engine block.
   */
  readonly blockKeys?: readonly number[] | Uint32Array;
  /** Max output tokens (the request's `max_tokens`). */
  readonly maxTokens: number;
  /** Larger = more important. @default 0 */
  readonly priority?: number;
  readonly sloClass?: SloClass;
  readonly slo?: SloTargets;
  /** Tenant (fairness and cache namespace). */
  readonly tenant?: string;
  /** LoRA adapter name (cache namespace). */
  readonly lora?: string;
  /** Cache salt (vLLM `cache_salt`): isolates cache entries. */
  readonly cacheSalt?: string;
  /** Conversation/session id, for multi-turn workloads. */
  readonly sessionId?: string;
  /** Model name. */
  readonly model?: string;
  /** Kind of work: generation (default) or an embedding request (workspace memory, no KV). */
  readonly kind?: 'generate' | 'embed';
}

/** Telemetry of one request, filled as it runs. */
export interface RequestTelemetry {
  /** KV tokens the predictor expected (prompt + predicted output). */
  predictedKvTokens?: number;
  /** KV tokens actually held at the end (prompt + output). */
  actualKvTokens?: number;
  /** Remaining slack against the tightest SLO at the last decision, ms (negative = violated). */
  sloSlackMs?: number;
  /** Times its cached prefix was evicted while it waited or ran. */
  evictionCount: number;
  /** Times it was preempted. */
  preemptionCount: number;
  /** Prompt tokens served from the prefix cache. */
  cachedPromptTokens: number;
  /** Tokens computed again after preemption or prefix eviction. */
  reprefillTokens: number;
}

/** Outcome of one finished (or rejected) request, as reported by engines and the simulator. */
export interface RequestOutcome {
  readonly requestId: string;
  readonly arrivalUs: number;
  /** Time of the first output token, µs; absent if rejected. */
  readonly firstTokenUs?: number;
  /** Completion time, µs; absent if rejected. */
  readonly finishUs?: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Reason when the request was rejected rather than served. */
  readonly rejectedReason?: string;
  readonly instanceId?: string;
  readonly telemetry: Readonly<RequestTelemetry>;
}
