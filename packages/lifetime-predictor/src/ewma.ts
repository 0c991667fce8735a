/**
 * Exponentially weighted moving average per key (session, then prefix/template, then tenant),
 * backing off to a global EWMA for keys never seen.
 */
import type { LifetimeFeatures } from '@kvmgr/core';
import { invalidArgument, requireInRange, requireNonNegativeNumber, requirePositiveInt } from '@kvmgr/core';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import { groupKeys } from './features.js';

/** Grouping fields, most specific first. */
export type KeyField = 'session' | 'prefix' | 'tenant' | 'model';

/** Options of {@link EwmaPredictor}. */
export interface EwmaPredictorOptions extends BasePredictorOptions {
  /** Smoothing factor α of `m ← m + α (x − m)`. @default 0.3 */
  readonly alpha?: number;
  /** Global EWMA smoothing factor. @default 0.02 */
  readonly globalAlpha?: number;
  /** Keys consulted, most specific first. @default ['session', 'prefix', 'tenant'] */
  readonly keyBy?: readonly KeyField[];
  /** Maximum keys tracked; the table is cleared when full (bounded memory). @default 65536 */
  readonly maxKeys?: number;
  /** Prediction before any observation, tokens. @default 256 */
  readonly initial?: number;
}

const KEY_FIELDS: readonly KeyField[] = ['session', 'prefix', 'tenant', 'model'];

/** Checks a `keyBy` option. */
export function requireKeyBy(value: readonly KeyField[] | undefined, fallback: readonly KeyField[]): readonly KeyField[] {
  const v = value ?? fallback;
  if (!Array.isArray(v) || v.some((k) => !KEY_FIELDS.includes(k))) {
    throw invalidArgument('keyBy', v, `an array of ${KEY_FIELDS.join(', ')}`);
  }
  return v;
}

/**
 * Per-key EWMA of output length. Slot values live in a `Float64Array` indexed by a key map.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class EwmaPredictor extends BasePredictor {
  readonly name = 'ewma';
  private readonly alpha: number;
  private readonly globalAlpha: number;
  private readonly keyBy: readonly KeyField[];
  private readonly maxKeys: number;
  private readonly slots = new Map<string, number>();
  private readonly means: Float64Array;
  private readonly absDev: Float64Array;
  private global: number;
  private globalDev: number;
  private seen = 0;

  constructor(options: EwmaPredictorOptions = {}) {
    super(options);
    this.alpha = requireInRange('alpha', options.alpha ?? 0.3, 0.0001, 1);
    this.globalAlpha = requireInRange('globalAlpha', options.globalAlpha ?? 0.02, 0.0001, 1);
    this.keyBy = requireKeyBy(options.keyBy, ['session', 'prefix', 'tenant']);
    this.maxKeys = requirePositiveInt('maxKeys', options.maxKeys ?? 65536);
    this.global = requireNonNegativeNumber('initial', options.initial ?? 256);
    this.globalDev = this.global / 2;
    this.means = new Float64Array(this.maxKeys);
    this.absDev = new Float64Array(this.maxKeys);
  }

  protected estimate(features: LifetimeFeatures, out: Estimate): void {
    for (const k of groupKeys(features, this.keyBy)) {
      const s = this.slots.get(k);
      if (s !== undefined) {
        out[0] = this.means[s] as number;
        out[1] = (this.absDev[s] as number) + 1;
        return;
      }
    }
    out[0] = this.global;
    out[1] = this.globalDev + 1;
  }

  protected learn(features: LifetimeFeatures, actual: number): void {
    if (this.seen++ === 0) {
      this.global = actual;
      this.globalDev = actual / 2;
    } else {
      this.globalDev += this.globalAlpha * (Math.abs(actual - this.global) - this.globalDev);
      this.global += this.globalAlpha * (actual - this.global);
    }
    for (const k of groupKeys(features, this.keyBy)) {
      let s = this.slots.get(k);
      if (s === undefined) {
        if (this.slots.size >= this.maxKeys) this.slots.clear();
        s = this.slots.size;
        this.slots.set(k, s);
        this.means[s] = actual;
        this.absDev[s] = this.globalDev;
      } else {
        this.absDev[s] = (this.absDev[s] as number) + this.alpha * (Math.abs(actual - (this.means[s] as number)) - (this.absDev[s] as number));
        this.means[s] = (this.means[s] as number) + this.alpha * (actual - (this.means[s] as number));
      }
    }
  }
}
