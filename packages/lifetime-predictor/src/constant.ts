/** The constant baseline: every request is predicted to produce the same number of tokens. */
import type { LifetimeFeatures } from '@kvmgr/core';
import { requireNonNegativeNumber } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';

/** Options of {@link ConstantPredictor}. */
export interface ConstantPredictorOptions extends BasePredictorOptions {
  /** The predicted output length, tokens. @default 256 */
  readonly value?: number;
}

/**
 * Predicts `value` tokens for every request; only the conformal quantiles learn.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `value` is negative or NaN.
 */
export class ConstantPredictor extends BasePredictor {
  readonly name = 'constant';
  private readonly value: number;

  constructor(options: ConstantPredictorOptions = {}) {
    super(options);
    this.value = requireNonNegativeNumber('value', options.value ?? 256);
  }

  protected estimate(_features: LifetimeFeatures, out: Estimate): void {
    out[0] = this.value;
    out[1] = this.value + 1;
  }

  protected learn(): void {}
}
