/**
 * The predictor registry: `createPredictor(name, options)` builds any predictor by its name, so
 * CLIs and configs can say `--predictor gbdt`.
 */
import type { LifetimePredictor } from '@kvmgr/core';
import { KvmgrError } from '@kvmgr/core';
import { ConstantPredictor } from './constant.js';
import type { ConstantPredictorOptions } from './constant.js';
import { EwmaPredictor } from './ewma.js';
import type { EwmaPredictorOptions } from './ewma.js';
import { GbdtPredictor } from './gbdt.js';
import type { GbdtPredictorOptions } from './gbdt.js';
import { GlobalMedianPredictor } from './global-median.js';
import type { GlobalMedianPredictorOptions } from './global-median.js';
import { LstmPredictor } from './lstm.js';
import { AutoPredictor } from './model-selection.js';
import type { AutoPredictorOptions } from './model-selection.js';
import type { LstmPredictorOptions } from './lstm.js';
import { QuantilePredictor } from './quantile.js';
import type { QuantilePredictorOptions } from './quantile.js';

/** Options by registry name. */
export interface PredictorOptionsByName {
  constant: ConstantPredictorOptions;
  'global-median': GlobalMedianPredictorOptions;
  ewma: EwmaPredictorOptions;
  quantile: QuantilePredictorOptions;
  gbdt: GbdtPredictorOptions;
  lstm: LstmPredictorOptions;
  auto: AutoPredictorOptions;
}

/** A registered predictor name. */
export type PredictorName = keyof PredictorOptionsByName;

const FACTORIES: { readonly [K in PredictorName]: (o: PredictorOptionsByName[K]) => LifetimePredictor } = {
  constant: (o) => new ConstantPredictor(o),
  'global-median': (o) => new GlobalMedianPredictor(o),
  ewma: (o) => new EwmaPredictor(o),
  quantile: (o) => new QuantilePredictor(o),
  gbdt: (o) => new GbdtPredictor(o),
  lstm: (o) => new LstmPredictor(o),
  auto: (o) => new AutoPredictor(o),
};

/** The registered predictor names, in order of model complexity. */
export function listPredictors(): PredictorName[] {
  return Object.keys(FACTORIES) as PredictorName[];
}

/**
 * Creates a predictor by registry name.
 * @param name - one of {@link listPredictors}.
 * @param options - that predictor's options (defaults documented on each class).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown name (the message lists the known
 *   ones) or a bad option.
 */
export function createPredictor<K extends PredictorName>(name: K, options?: PredictorOptionsByName[K]): LifetimePredictor;
export function createPredictor(name: string, options?: Record<string, unknown>): LifetimePredictor;
export function createPredictor(name: string, options: Record<string, unknown> = {}): LifetimePredictor {
  if (!Object.hasOwn(FACTORIES, name)) {
    throw new KvmgrError(
      'KVMGR_INVALID_ARGUMENT',
      `unknown predictor ${JSON.stringify(name)}; known: ${listPredictors().join(', ')}`,
      { details: { field: 'name', value: name, known: listPredictors() } },
    );
  }
  const factory = FACTORIES[name as PredictorName] as (o: Record<string, unknown>) => LifetimePredictor;
  return factory(options);
}
