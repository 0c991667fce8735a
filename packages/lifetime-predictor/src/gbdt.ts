/**
 * The gradient-boosted-trees predictor: a histogram GBDT on `log1p(output tokens)` over the
 * encoded features, retrained from scratch every `retrainEvery` observations on a sliding window
 * of the last `window` requests. Until the first fit it predicts the window median.
 */
import type { LifetimeFeatures } from '@kvmgr/core';
import { invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import { FEATURE_DIM, FeatureEncoder } from './feature-encoder.js';
import { predictHistGbdt, trainHistGbdt } from './hist-gbdt.js';
import type { HistGbdtModel, HistGbdtOptions } from './hist-gbdt.js';
import { SlidingWindow } from './sliding-window.js';

/** Options of {@link GbdtPredictor}. */
export interface GbdtPredictorOptions extends BasePredictorOptions {
  /** Training window, requests. @default 2048 */
  readonly window?: number;
  /** Retrain after this many observations. @default 256 */
  readonly retrainEvery?: number;
  /** Observations before the first fit. @default 256 */
  readonly minTrain?: number;
  /**
   * Regression target: `log` fits `log1p(tokens)` (relative errors), `raw` fits tokens.
   * @default 'raw'
   */
  readonly target?: 'log' | 'raw';
  /** Tree options. */
  readonly trees?: HistGbdtOptions;
}

/**
 * Histogram GBDT regressor retrained on a sliding window.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class GbdtPredictor extends BasePredictor {
  readonly name = 'gbdt';
  private readonly window: number;
  private readonly retrainEvery: number;
  private readonly minTrain: number;
  private readonly treeOptions: HistGbdtOptions;
  private readonly encoder = new FeatureEncoder();
  private readonly rows: Float64Array;
  private readonly targets: Float64Array;
  private readonly median = new SlidingWindow(1024);
  private readonly row = new Float64Array(FEATURE_DIM);
  private head = 0;
  private count = 0;
  private sinceFit = 0;
  private model: HistGbdtModel | undefined;
  private readonly logTarget: boolean;

  constructor(options: GbdtPredictorOptions = {}) {
    super(options);
    this.window = requirePositiveInt('window', options.window ?? 2048);
    this.retrainEvery = requirePositiveInt('retrainEvery', options.retrainEvery ?? 256);
    this.minTrain = requirePositiveInt('minTrain', options.minTrain ?? 256);
    this.treeOptions = options.trees ?? {};
    const target = options.target ?? 'raw';
    if (target !== 'log' && target !== 'raw') throw invalidArgument('target', target, '"log" or "raw"');
    this.logTarget = target === 'log';

    this.rows = new Float64Array(this.window * FEATURE_DIM);
    this.targets = new Float64Array(this.window);
  }

  /** Number of fits so far is observable through whether a model exists. */
  get trained(): boolean {
    return this.model !== undefined;
  }

  protected estimate(features: LifetimeFeatures, out: Estimate): void {
    if (this.model === undefined) {
      const m = this.median.size === 0 ? 256 : this.median.quantile(0.5);
      out[0] = m;
      out[1] = m + 1;
      return;
    }
    this.encoder.encode(features, this.row);
    const raw = predictHistGbdt(this.model, this.row);
    const c = this.logTarget ? Math.expm1(raw) : raw;
    out[0] = Math.max(c , 0);
    out[1] = out[0] + 1;
  }

  protected learn(features: LifetimeFeatures, actual: number): void {
    this.encoder.encode(features, this.row);
    this.rows.set(this.row, this.head * FEATURE_DIM);
    this.targets[this.head] = this.logTarget ? Math.log1p(actual) : actual;
    this.head = (this.head + 1) % this.window;
    if (this.count < this.window) this.count++;
    this.median.push(actual);
    this.encoder.learn(features, actual);
    if (++this.sinceFit >= this.retrainEvery && this.count >= this.minTrain) this.retrain();
    else if (this.model === undefined && this.count >= this.minTrain) this.retrain();
  }

  /** Refits the trees on the current window now. */
  retrain(): void {
    this.sinceFit = 0;
    if (this.count === 0) return;
    const n = this.count;
    this.model = trainHistGbdt(
      this.rows.subarray(0, n * FEATURE_DIM),
      this.targets.subarray(0, n),
      FEATURE_DIM,
      this.treeOptions,
    );
  }
}
