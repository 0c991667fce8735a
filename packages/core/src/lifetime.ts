/**
 * Output-length / remaining-lifetime prediction (implemented by `@kvmgr/lifetime-predictor`).
 * Pure types.
 */

/** What a server knows about a request at arrival. */
export interface LifetimeFeatures {
  /** Prompt length, tokens. */
  readonly promptTokens: number;
  /** Prefix / template id (e.g. the first block hash). */
  readonly prefixId?: number | string;
  readonly tenant?: string;
  readonly sessionId?: string;
  /** Output lengths of the session's previous turns, oldest first, tokens. */
  readonly sessionHistory?: readonly number[];
  readonly model?: string;
  /** Arrival time, ms since the start of the trace (time-of-day features derive from it). */
  readonly arrivalMs?: number;
  /** Upper bound on output (the request's max_tokens). */
  readonly maxTokens?: number;
}

/** A predicted output length distribution, tokens. */
export interface LifetimePrediction {
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  /** Extra quantiles when the predictor offers them, keyed by level (e.g. 0.99). */
  readonly quantiles?: Readonly<Record<string, number>>;
}

/** Predicts how many output tokens a request will generate, and learns online. */
export interface LifetimePredictor {
  /** Registry name, e.g. `global-median`, `gbdt`. */
  readonly name: string;
  /** Distribution of total output tokens. Throws `KVMGR_INVALID_ARGUMENT` on NaN/negative features. */
  predict(features: LifetimeFeatures): LifetimePrediction;
  /** Distribution of remaining output tokens given `generatedSoFar` already produced. */
  predictRemaining(features: LifetimeFeatures, generatedSoFar: number): LifetimePrediction;
  /** Learns from a finished request. */
  observe(features: LifetimeFeatures, actualOutputTokens: number): void;
  /** Re-fits conformal quantile adjustments on recent observations. */
  calibrate(): void;
}
