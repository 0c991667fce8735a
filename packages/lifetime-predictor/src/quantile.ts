/**
 * Per-key streaming quantiles with shrinkage toward the global distribution: the median of a
 * key's last `keyWindow` lengths is pulled toward the global median with weight
 * `n / (n + shrinkage)` (n = the key's observations so far), so a key seen once barely moves the prediction and a key seen often
 * owns it (empirical-Bayes style partial pooling).
 */
import type { LifetimeFeatures } from '@kvmgr/core';
import { requireNonNegativeNumber, requirePositiveInt } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import type { KeyField } from './ewma.js';
import { requireKeyBy } from './ewma.js';
import { groupKeys } from './features.js';
import { SlidingWindow } from './sliding-window.js';

/** Options of {@link QuantilePredictor}. */
export interface QuantilePredictorOptions extends BasePredictorOptions {
  /** Lengths kept per key. @default 16 */
  readonly keyWindow?: number;
  /** Lengths kept globally. @default 4096 */
  readonly globalWindow?: number;
  /** Pseudo-count λ of the global prior. @default 2 */
  readonly shrinkage?: number;
  /** Keys consulted, most specific first. @default ['session', 'prefix', 'tenant'] */
  readonly keyBy?: readonly KeyField[];
  /** Maximum keys tracked; the table is cleared when full. @default 65536 */
  readonly maxKeys?: number;
  /** Prediction before any observation, tokens. @default 256 */
  readonly initial?: number;
}

/**
 * Per-key sliding-window median and spread, shrunk toward the global ones.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class QuantilePredictor extends BasePredictor {
  readonly name = 'quantile';
  private readonly keyWindow: number;
  private readonly shrinkage: number;
  private readonly keyBy: readonly KeyField[];
  private readonly maxKeys: number;
  private readonly initial: number;
  private readonly global: SlidingWindow;
  private readonly perKey = new Map<string, { readonly w: SlidingWindow; n: number }>();

  constructor(options: QuantilePredictorOptions = {}) {
    super(options);
    this.keyWindow = requirePositiveInt('keyWindow', options.keyWindow ?? 16);
    this.global = new SlidingWindow(requirePositiveInt('globalWindow', options.globalWindow ?? 4096));
    this.shrinkage = requireNonNegativeNumber('shrinkage', options.shrinkage ?? 2);
    this.keyBy = requireKeyBy(options.keyBy, ['session', 'prefix', 'tenant']);
    this.maxKeys = requirePositiveInt('maxKeys', options.maxKeys ?? 65536);
    this.initial = requireNonNegativeNumber('initial', options.initial ?? 256);
  }

  protected estimate(features: LifetimeFeatures, out: Estimate): void {
    const g = this.global;
    const gMed = g.size === 0 ? this.initial : g.quantile(0.5);
    const gSpread = g.size === 0 ? this.initial / 2 : (g.quantile(0.9) - g.quantile(0.1)) / 2;
    for (const k of groupKeys(features, this.keyBy)) {
      const e = this.perKey.get(k);
      if (e !== undefined) {
        const w = e.w;
        const n = e.n;
        const wt = n / (n + this.shrinkage);
        const kSpread = (w.quantile(0.9) - w.quantile(0.1)) / 2;
        out[0] = wt * w.quantile(0.5) + (1 - wt) * gMed;
        out[1] = wt * kSpread + (1 - wt) * gSpread + 1;
        return;
      }
    }
    out[0] = gMed;
    out[1] = gSpread + 1;
  }

  protected learn(features: LifetimeFeatures, actual: number): void {
    this.global.push(actual);
    for (const k of groupKeys(features, this.keyBy)) {
      let e = this.perKey.get(k);
      if (e === undefined) {
        if (this.perKey.size >= this.maxKeys) this.perKey.clear();
        e = { w: new SlidingWindow(this.keyWindow), n: 0 };
        this.perKey.set(k, e);
      }
      e.w.push(actual);
      e.n++;
    }
  }
}
