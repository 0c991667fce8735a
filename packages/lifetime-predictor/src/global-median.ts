/** The global-median baseline: the median output length of the last `window` requests. */
import type { LifetimeFeatures } from '@kvmgr/core';
import { requireNonNegativeNumber, requirePositiveInt } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import { SlidingWindow } from './sliding-window.js';

/** Options of {@link GlobalMedianPredictor}. */
export interface GlobalMedianPredictorOptions extends BasePredictorOptions {
  /** Requests in the sliding window. @default 4096 */
  readonly window?: number;
  /** Prediction before any observation, tokens. @default 256 */
  readonly initial?: number;
}

/**
 * Predicts the sliding-window median of observed output lengths for every request.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class GlobalMedianPredictor extends BasePredictor {
  readonly name = 'global-median';
  private readonly window: SlidingWindow;
  private readonly initial: number;

  constructor(options: GlobalMedianPredictorOptions = {}) {
    super(options);
    this.window = new SlidingWindow(requirePositiveInt('window', options.window ?? 4096));
    this.initial = requireNonNegativeNumber('initial', options.initial ?? 256);
  }

  protected estimate(_features: LifetimeFeatures, out: Estimate): void {
    const m = this.window.size === 0 ? this.initial : this.window.quantile(0.5);
    out[0] = m;
    out[1] = m + 1;
  }

  protected learn(_features: LifetimeFeatures, actual: number): void {
    this.window.push(actual);
  }
}
