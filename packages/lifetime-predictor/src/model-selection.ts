/**
 * Online model selection with a fallback: serve a learned predictor only while its recent
 * prequential error beats a simple baseline's, else serve the baseline.
 */
import type { LifetimeFeatures, LifetimePredictor } from '@kvmgr/core';
import { requirePositiveInt } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import { GbdtPredictor } from './gbdt.js';
import { GlobalMedianPredictor } from './global-median.js';

/** Options of {@link AutoPredictor}. */
export interface AutoPredictorOptions extends BasePredictorOptions {
  /** The learned model. @default new GbdtPredictor() */
  readonly learned?: LifetimePredictor;
  /** The fallback. @default new GlobalMedianPredictor() */
  readonly baseline?: LifetimePredictor;
  /** Recent requests whose absolute p50 errors are compared. @default 512 */
  readonly window?: number;
  /** Requests observed before the learned model may serve. @default 256 */
  readonly minObservations?: number;
}

/** Which of the two models an {@link AutoPredictor} serves. */
export type ServingModel = 'learned' | 'baseline';

/**
 * Online model selection. Both models see every finished request (`observe`); before they
 * learn from it, the absolute error of each one's p50 on it enters a sliding window of the
 * last `window` requests (prequential: each error is that of a forecast made before the
 * outcome was known). The learned model serves only while its windowed MAE is below the
 * baseline's, after `minObservations` requests; otherwise the baseline serves. A model that
 * stops helping (a trace whose features carry no signal, a shift) is dropped within about
 * `window` requests, and one that starts to help is picked up as fast.
 *
 * The served distribution gets its own conformal calibration (split conformal with adaptive
 * levels, as every predictor here): the center is the served model's p50, the scale its
 * p90 − p50 (at least 1 token), so the p90 keeps its coverage across switches.
 *
 * @see Dawid, "The Prequential Approach", JRSS A 147 (1984) — model choice by predictive error.
 * @see Gibbs, Candès, "Adaptive Conformal Inference Under Distribution Shift", NeurIPS 2021.
 */
export class AutoPredictor extends BasePredictor {
  readonly name = 'auto';
  private readonly learned: LifetimePredictor;
  private readonly baseline: LifetimePredictor;
  private readonly errors: Float64Array;
  private readonly minObservations: number;
  private head = 0;
  private count = 0;
  private observed = 0;
  /** Windowed sums of absolute errors: learned, baseline. */
  private sumLearned = 0;
  private sumBaseline = 0;
  private useLearned = false;
  private servedLearned = 0;

  /** @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option. */
  constructor(options: AutoPredictorOptions = {}) {
    super(options);
    const window = requirePositiveInt('window', options.window ?? 512);
    this.minObservations = requirePositiveInt('minObservations', options.minObservations ?? 256);
    this.learned = options.learned ?? new GbdtPredictor();
    this.baseline = options.baseline ?? new GlobalMedianPredictor();
    this.errors = new Float64Array(2 * window);
  }

  /** The model serving now. */
  get serving(): ServingModel {
    return this.useLearned ? 'learned' : 'baseline';
  }

  /** Registry names of the two models: `{ learned: 'gbdt', baseline: 'global-median' }`. */
  get models(): { readonly learned: string; readonly baseline: string } {
    return { learned: this.learned.name, baseline: this.baseline.name };
  }

  /** Fraction of observed requests that were served by the learned model (0 before any). */
  get learnedShare(): number {
    return this.observed === 0 ? 0 : this.servedLearned / this.observed;
  }

  /** Windowed MAE of each model, tokens (NaN before any observation). */
  recentMae(): { readonly learned: number; readonly baseline: number } {
    return { learned: this.sumLearned / this.count, baseline: this.sumBaseline / this.count };
  }

  protected estimate(features: LifetimeFeatures, out: Estimate): void {
    const d = (this.useLearned ? this.learned : this.baseline).predict(features);
    out[0] = d.p50;
    out[1] = Math.max(1, d.p90 - d.p50);
  }

  protected learn(features: LifetimeFeatures, actual: number): void {
    const eL = Math.abs(this.learned.predict(features).p50 - actual);
    const eB = Math.abs(this.baseline.predict(features).p50 - actual);
    const w = this.errors.length / 2;
    if (this.count === w) {
      this.sumLearned -= this.errors[2 * this.head] as number;
      this.sumBaseline -= this.errors[2 * this.head + 1] as number;
    } else this.count++;
    this.errors[2 * this.head] = eL;
    this.errors[2 * this.head + 1] = eB;
    this.sumLearned += eL;
    this.sumBaseline += eB;
    this.head = (this.head + 1) % w;
    if (this.useLearned) this.servedLearned++;
    this.observed++;
    this.learned.observe(features, actual);
    this.baseline.observe(features, actual);
    this.useLearned = this.observed >= this.minObservations && this.sumLearned < this.sumBaseline;
  }
}
