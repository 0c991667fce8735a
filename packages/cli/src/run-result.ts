/**
 * The normalized result of one simulated run, as the CLI reports it. The simulator's output
 * is mapped onto this shape in `replay.ts`; reports, CSV and A/B statistics read only this.
 */

/** One request of a run (times in ms since the start of the trace). */
export interface RunRequestRow {
  readonly requestId: string;
  readonly instance: string;
  readonly arrivalMs: number;
  /** Absent when rejected. */
  readonly firstTokenMs?: number;
  readonly finishMs?: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
  readonly ttftMs?: number;
  readonly tpotMs?: number;
  readonly e2eMs?: number;
  readonly preemptions: number;
  readonly reprefillTokens: number;
  readonly sloMet: boolean;
  readonly rejectedReason?: string;
}

/** Run-level metrics (definitions: DESIGN.md section 7). */
export interface RunSummary {
  readonly requests: number;
  readonly finished: number;
  readonly rejected: number;
  /** Simulated duration, s (first arrival to last finish). */
  readonly durationS: number;
  /** Cached prompt tokens served / prompt tokens. */
  readonly hitRate: number;
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  readonly tpotP50Ms: number;
  readonly tpotP99Ms: number;
  readonly e2eP50Ms: number;
  readonly e2eP99Ms: number;
  readonly throughputReqPerS: number;
  readonly throughputTokPerS: number;
  /** Requests per second that meet both SLOs. */
  readonly goodputReqPerS: number;
  /** Fraction of requests meeting both SLOs. */
  readonly sloAttainment: number;
  readonly preemptions: number;
  /** Re-computed prompt tokens / all prefill tokens computed. */
  readonly reprefillRate: number;
  /** Time-averaged GPU KV utilization, 0..1, mean over instances. */
  readonly kvUtilization: number;
}

/** Cluster-wide time series, one point per bucket. */
export interface RunTimeseries {
  /** Bucket start, s. */
  readonly tSec: readonly number[];
  /** Output tokens per second in the bucket. */
  readonly throughputTokPerS: readonly number[];
  /** Mean GPU KV utilization over instances in the bucket, 0..1. */
  readonly kvUtilization: readonly number[];
  /** Prefix hit rate of requests arriving in the bucket, 0..1. */
  readonly hitRate: readonly number[];
}

/** One run. */
export interface RunResult {
  readonly label: string;
  readonly profile: string;
  readonly pipeline: string;
  readonly router: string;
  readonly summary: RunSummary;
  readonly requests: readonly RunRequestRow[];
  readonly timeseries: RunTimeseries;
  /** Wall-clock seconds the simulation took. */
  readonly wallS: number;
}
