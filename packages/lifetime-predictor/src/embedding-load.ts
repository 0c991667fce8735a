/**
 * Embedding-load forecaster: predicts the memory (bytes) that embedding batches will need over
 * the next horizon from the queue state, with the same predict / observe / calibrate shape as
 * the lifetime predictors. The model is online least squares (recursive least squares with a
 * forgetting factor) on `[1, queuedRequests, queuedTokens, arrivalRatePerS, last observed load]`,
 * and the p50/p90 come from split-conformal quantiles of the recent absolute residuals.
 *
 * @see Haykin, "Adaptive Filter Theory", ch. 10 (RLS with exponential forgetting).
 */
import { invalidArgument, requireInRange, requirePositiveInt } from '@kvmgr/core';
import { SlidingWindow } from './sliding-window.js';

/** Queue state of an embedding instance when the forecast is made. */
export interface EmbeddingQueueState {
  /** Requests waiting. */
  readonly queuedRequests: number;
  /** Input tokens waiting. */
  readonly queuedTokens: number;
  /** Recent arrival rate, requests per second. @default 0 */
  readonly arrivalRatePerS?: number;
}

/** A forecast of embedding memory over the horizon, bytes. */
export interface EmbeddingLoadPrediction {
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
}

/** Options of {@link EmbeddingLoadForecaster}. */
export interface EmbeddingLoadOptions {
  /** RLS forgetting factor (1 = never forget). @default 0.995 */
  readonly forgetting?: number;
  /** Residuals kept for the conformal quantiles. @default 512 */
  readonly window?: number;
  /** Recalibrate after this many observations. @default 32 */
  readonly calibrateEvery?: number;
}

const DIM = 5;

function check(state: EmbeddingQueueState): void {
  if (typeof state !== 'object' || state === null) throw invalidArgument('state', state, 'an object');
  for (const k of ['queuedRequests', 'queuedTokens', 'arrivalRatePerS'] as const) {
    const v = state[k];
    if (v === undefined && k === 'arrivalRatePerS') continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalidArgument(`state.${k}`, v, 'a finite number >= 0');
  }
}

/**
 * Online forecaster of upcoming embedding memory.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class EmbeddingLoadForecaster {
  readonly name = 'embedding-load';
  private readonly lambda: number;
  private readonly calibrateEvery: number;
  private readonly w = new Float64Array(DIM);
  private readonly P = new Float64Array(DIM * DIM);
  private readonly x = new Float64Array(DIM);
  private readonly px = new Float64Array(DIM);
  private readonly residuals: SlidingWindow;
  private q50 = 0;
  private q90 = 0;
  private last = 0;
  private since = 0;

  constructor(options: EmbeddingLoadOptions = {}) {
    this.lambda = requireInRange('forgetting', options.forgetting ?? 0.995, 0.5, 1);
    this.residuals = new SlidingWindow(requirePositiveInt('window', options.window ?? 512));
    this.calibrateEvery = requirePositiveInt('calibrateEvery', options.calibrateEvery ?? 32);
    for (let i = 0; i < DIM; i++) this.P[i * DIM + i] = 1e4;
  }

  /**
   * Forecasts embedding memory over the horizon.
   * @param state - the queue now.
   * @returns mean (least-squares estimate), p50 and p90 (mean + conformal residual quantiles), ≥ 0.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a negative or NaN field.
   */
  predict(state: EmbeddingQueueState): EmbeddingLoadPrediction {
    check(state);
    const m = this.point(state);
    const mean = Math.max(0, m);
    return { mean, p50: Math.max(0, m + this.q50), p90: Math.max(0, m + this.q90, m + this.q50) };
  }

  /**
   * Learns the load that actually materialised for a forecast made at `state`.
   * @param state - the queue when the forecast was made.
   * @param actualBytes - embedding memory actually used over the horizon, bytes.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on bad input; nothing is updated then.
   */
  observe(state: EmbeddingQueueState, actualBytes: number): void {
    check(state);
    if (typeof actualBytes !== 'number' || !Number.isFinite(actualBytes) || actualBytes < 0) {
      throw invalidArgument('actualBytes', actualBytes, 'a finite number >= 0');
    }
    const err = actualBytes - this.point(state);
    this.residuals.push(err);
    // RLS update with features in this.x (set by point())
    const { P, x, px, w } = this;
    let denom = this.lambda;
    for (let i = 0; i < DIM; i++) {
      let s = 0;
      for (let j = 0; j < DIM; j++) s += (P[i * DIM + j] as number) * (x[j] as number);
      px[i] = s;
      denom += (x[i] as number) * s;
    }
    for (let i = 0; i < DIM; i++) w[i] = (w[i] as number) + ((px[i] as number) / denom) * err;
    for (let i = 0; i < DIM; i++) {
      for (let j = 0; j < DIM; j++) {
        P[i * DIM + j] = ((P[i * DIM + j] as number) - ((px[i] as number) * (px[j] as number)) / denom) / this.lambda;
      }
    }
    this.last = actualBytes;
    if (++this.since >= this.calibrateEvery) this.calibrate();
  }

  /** Re-reads the residual quantiles (p50, p90) from the recent window. */
  calibrate(): void {
    this.since = 0;
    if (this.residuals.size === 0) return;
    this.q50 = this.residuals.quantile(0.5);
    this.q90 = this.residuals.quantile(0.9);
  }

  private point(state: EmbeddingQueueState): number {
    // features scaled to similar magnitudes so that RLS is well conditioned
    const x = this.x;
    x[0] = 1;
    x[1] = state.queuedRequests;
    x[2] = state.queuedTokens / 1000;
    x[3] = state.arrivalRatePerS ?? 0;
    x[4] = this.last / 1e6;
    let s = 0;
    for (let i = 0; i < DIM; i++) s += (this.w[i] as number) * (x[i] as number);
    return s;
  }
}
