/**
 * @kvmgr/lifetime-predictor — output-length and remaining-lifetime predictors implementing
 * core's `LifetimePredictor`, with online learning, conformal calibration, a registry, an
 * embedding-load forecaster, and prequential evaluation on real traces.
 */
export { BasePredictor } from './base-predictor.js';
export type { BasePredictorOptions, Estimate } from './base-predictor.js';
export { ConformalCalibrator, LEVELS } from './conformal.js';
export type { ConformalOptions } from './conformal.js';
export { ConstantPredictor } from './constant.js';
export type { ConstantPredictorOptions } from './constant.js';
export { GlobalMedianPredictor } from './global-median.js';
export type { GlobalMedianPredictorOptions } from './global-median.js';
export { EwmaPredictor } from './ewma.js';
export type { EwmaPredictorOptions, KeyField } from './ewma.js';
export { QuantilePredictor } from './quantile.js';
export type { QuantilePredictorOptions } from './quantile.js';
export { GbdtPredictor } from './gbdt.js';
export type { GbdtPredictorOptions } from './gbdt.js';
export { trainHistGbdt, predictHistGbdt } from './hist-gbdt.js';
export type { HistGbdtModel, HistGbdtOptions } from './hist-gbdt.js';
export { LstmPredictor } from './lstm.js';
export type { LstmPredictorOptions } from './lstm.js';
export { AutoPredictor } from './model-selection.js';
export type { AutoPredictorOptions, ServingModel } from './model-selection.js';
export { LstmForward } from './lstm-forward.js';
export type { LstmWeights } from './lstm-forward.js';
export { FeatureEncoder, FEATURE_NAMES, FEATURE_DIM } from './feature-encoder.js';
export { validateFeatures } from './features.js';
export { SlidingWindow } from './sliding-window.js';
export { createPredictor, listPredictors } from './registry.js';
export type { PredictorName, PredictorOptionsByName } from './registry.js';
export { EmbeddingLoadForecaster } from './embedding-load.js';
export type { EmbeddingLoadOptions, EmbeddingLoadPrediction, EmbeddingQueueState } from './embedding-load.js';
export { evaluatePrequential } from './evaluate.js';
export type { EvaluateOptions, EvaluationResult } from './evaluate.js';
export { kendallTau } from './kendall.js';
export { parseMooncakeTrace, parseAzureTrace, parseLengthTrace, loadTrace } from './traces.js';
export type { TraceRecord } from './traces.js';
export { templatedWorkload } from './synthetic.js';
export type { TemplatedWorkloadOptions } from './synthetic.js';
