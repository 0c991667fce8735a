/**
 * Latency predictors used by the predicted-latency scorer and the SLO pair optimizer. The
 * heuristic one is the fallback when a learned or remote predictor is absent or fails.
 *
 * @see llm-d/llm-d-inference-scheduler: SLO-aware routing (latency predictor sidecar) proposal
 */
import type { EngineSnapshot } from '@kvmgr/core';

/** Inputs of a prefill-time prediction. */
export interface PrefillInput {
  /** The instance that would prefill. */
  readonly snapshot: EngineSnapshot;
  /** Prompt tokens of the request. */
  readonly promptTokens: number;
  /** Prompt tokens not cached on that instance. */
  readonly uncachedTokens: number;
}

/**
 * Predicts latencies in milliseconds. Any method may throw or return a non-finite number; the
 * router then counts a predictor failure and uses the heuristic.
 */
export interface LatencyPredictor {
  /** Time to prefill the request on `snapshot`, including its own queue, ms. */
  prefillMs(input: PrefillInput): number;
  /** Wait before a decode instance admits a new request, ms. */
  decodeWaitMs(snapshot: EngineSnapshot): number;
  /** Time per output token on a decode instance, ms. */
  tpotMs(snapshot: EngineSnapshot): number;
}

/** Coefficients of the {@link HeuristicPredictor}. */
export interface HeuristicPredictorOptions {
  /** Prefill ms per uncached prompt token. @default 0.5 */
  readonly prefillMsPerToken?: number;
  /** Queue wait ms per waiting request. @default 10 */
  readonly queueMsPerRequest?: number;
  /** Base TPOT, ms. @default 20 */
  readonly tpotBaseMs?: number;
  /** TPOT added per running request, ms. @default 5 */
  readonly tpotMsPerRunning?: number;
  /** TPOT added at full KV utilization (scaled by `kvUtilization`), ms. @default 10 */
  readonly tpotMsAtFullKv?: number;
}

/**
 * The heuristic predictor: prefill = 0.5 ms × uncached tokens + 10 ms × waiting on the prefill
 * instance; decode wait = 10 ms × waiting; TPOT = 20 ms + 5 ms × running + 10 ms × kvUtilization.
 */
export class HeuristicPredictor implements LatencyPredictor {
  readonly prefillMsPerToken: number;
  readonly queueMsPerRequest: number;
  readonly tpotBaseMs: number;
  readonly tpotMsPerRunning: number;
  readonly tpotMsAtFullKv: number;

  /** @param options - coefficients; see {@link HeuristicPredictorOptions} for defaults. */
  constructor(options: HeuristicPredictorOptions = {}) {
    this.prefillMsPerToken = options.prefillMsPerToken ?? 0.5;
    this.queueMsPerRequest = options.queueMsPerRequest ?? 10;
    this.tpotBaseMs = options.tpotBaseMs ?? 20;
    this.tpotMsPerRunning = options.tpotMsPerRunning ?? 5;
    this.tpotMsAtFullKv = options.tpotMsAtFullKv ?? 10;
  }

  /** `prefillMsPerToken × uncachedTokens + queueMsPerRequest × waiting`. */
  prefillMs(input: PrefillInput): number {
    return this.prefillMsPerToken * input.uncachedTokens + this.queueMsPerRequest * input.snapshot.waiting;
  }

  /** `queueMsPerRequest × waiting`. */
  decodeWaitMs(snapshot: EngineSnapshot): number {
    return this.queueMsPerRequest * snapshot.waiting;
  }

  /** `tpotBaseMs + tpotMsPerRunning × running + tpotMsAtFullKv × kvUtilization`. */
  tpotMs(snapshot: EngineSnapshot): number {
    return this.tpotBaseMs + this.tpotMsPerRunning * snapshot.running + this.tpotMsAtFullKv * snapshot.kvUtilization;
  }
}
