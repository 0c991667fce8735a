/**
 * The shared shell of every predictor: boundary checks, the conformal distribution around a
 * predictor's point estimate, conditional (remaining-length) prediction, and the
 * predict-then-learn order of `observe`.
 */
import type { LifetimeFeatures, LifetimePrediction, LifetimePredictor } from '@kvmgr/core';
import { invalidArgument } from '@kvmgr/core';
import { ConformalCalibrator } from './conformal.js';
import type { ConformalOptions } from './conformal.js';
import { validateActual, validateFeatures } from './features.js';

/** Options every predictor accepts. */
export interface BasePredictorOptions {
  /** Conformal calibration of the quantiles. */
  readonly conformal?: ConformalOptions;
}

/**
 * A point estimate (`center`, tokens) and a scale (`spread`, tokens, > 0) written by
 * {@link BasePredictor.estimate} into a reused buffer: `[center, spread]`.
 */
export type Estimate = Float64Array;

/**
 * Base class: subclasses implement `estimate` (center and spread, no allocation) and `learn`.
 * Quantiles are `center + spread · Q_s(level)` over calibrated nonconformity scores, clamped to
 * `[0, maxTokens]`.
 */
export abstract class BasePredictor implements LifetimePredictor {
  abstract readonly name: string;
  protected readonly calibrator: ConformalCalibrator;
  private readonly est: Estimate = new Float64Array(2);

  constructor(options: BasePredictorOptions = {}) {
    this.calibrator = new ConformalCalibrator(options.conformal ?? {});
  }

  /** Writes `[center, spread]` for validated features into `out`. */
  protected abstract estimate(features: LifetimeFeatures, out: Estimate): void;
  /** Learns from a finished request (features validated, `actual` ≥ 0). */
  protected abstract learn(features: LifetimeFeatures, actual: number): void;

  /**
   * Predicts the total output length distribution, tokens.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on negative/NaN features.
   */
  predict(features: LifetimeFeatures): LifetimePrediction {
    validateFeatures(features);
    return this.distribution(features, 0);
  }

  /**
   * Predicts the remaining output tokens given `generatedSoFar` tokens already produced: the
   * calibrated distribution conditioned on `total > generatedSoFar`, minus `generatedSoFar`
   * (at least 1 token). When no calibrated score lies beyond `generatedSoFar`, the tail is taken
   * as memoryless with mean `spread / 2 + 1` tokens.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on bad features or a negative/NaN `generatedSoFar`.
   */
  predictRemaining(features: LifetimeFeatures, generatedSoFar: number): LifetimePrediction {
    validateFeatures(features);
    if (typeof generatedSoFar !== 'number' || !Number.isFinite(generatedSoFar) || generatedSoFar < 0) {
      throw invalidArgument('generatedSoFar', generatedSoFar, 'a finite number >= 0');
    }
    return this.distribution(features, generatedSoFar);
  }

  /**
   * Learns from a finished request: records its conformal score against the current estimate,
   * then updates the model.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on bad features or a negative/NaN length; the
   *   predictor is left unchanged.
   */
  observe(features: LifetimeFeatures, actualOutputTokens: number): void {
    validateFeatures(features);
    validateActual('actualOutputTokens', actualOutputTokens);
    this.estimate(features, this.est);
    const center = this.est[0] as number;
    const spread = this.est[1] as number;
    this.calibrator.observe((actualOutputTokens - center) / spread);
    this.learn(features, actualOutputTokens);
  }

  /** Re-fits the conformal adjustment on the recent score window. */
  calibrate(): void {
    this.calibrator.calibrate();
  }

  private distribution(features: LifetimeFeatures, g: number): LifetimePrediction {
    this.estimate(features, this.est);
    const center = this.est[0] as number;
    const spread = this.est[1] as number;
    const cal = this.calibrator;
    const cap = features.maxTokens ?? Number.POSITIVE_INFINITY;
    let mean: number;
    let p50: number;
    let p90: number;
    let p99: number;
    if (g === 0) {
      mean = center + spread * cal.meanScore();
      p50 = center + spread * cal.scoreQuantile(cal.level(0));
      p90 = center + spread * cal.scoreQuantile(cal.level(1));
      p99 = center + spread * cal.scoreQuantile(cal.level(2));
    } else {
      const from = cal.firstAbove((g - center) / spread);
      if (from >= cal.calibratedSize) {
        const m = spread / 2 + 1;
        mean = g + m;
        p50 = g + Math.LN2 * m;
        p90 = g + Math.LN10 * m;
        p99 = g + 2 * Math.LN10 * m;
      } else {
        mean = center + spread * cal.tailMean(from);
        p50 = center + spread * cal.tailQuantile(from, cal.level(0));
        p90 = center + spread * cal.tailQuantile(from, cal.level(1));
        p99 = center + spread * cal.tailQuantile(from, cal.level(2));
      }
    }
    const lo = g === 0 ? 0 : g + 1;
    const hi = Math.max(lo, cap);
    const c = (x: number): number => (x < lo ? lo : Math.min(x , hi)) - g;
    const q50 = c(p50);
    const q90 = Math.max(q50, c(p90));
    return { mean: c(mean), p50: q50, p90: q90, quantiles: { '0.99': Math.max(q90, c(p99)) } };
  }
}
