/**
 * @kvmgr/router — KV-aware, SLO-aware cluster routing: the cluster KV block index, scorers,
 * filters and pickers, the P/D decider and the SLO pair optimizer.
 */
export { KvBlockIndex, DEFAULT_TIER_WEIGHTS, createPrefixMatch } from './kv-block-index.js';
export type { BlockIndex, HolderTier, KvBlockIndexOptions, KvBlockIndexStats, PrefixMatch, TierWeights } from './kv-block-index.js';
export { hashBlock, hashExtraKey, namespaceRoot, localKeysFromTokens, localKeysFromBlockIds } from './hash64.js';
export type { KeyNamespace, LocalKeys } from './hash64.js';
export {
  SCORER_ALIASES,
  SCORER_NAMES,
  SLO_CLASS_TRANSFER_WEIGHT,
  canonicalScorerName,
  createScorer,
  cachedTokensAt,
  prefixAffinityScorer,
  approxPrefixScorer,
  queueDepthScorer,
  kvUtilizationScorer,
  loadAwareScorer,
  activeRequestsScorer,
  noHitLruScorer,
  kvPressureScorer,
  kvPressureSloScorer,
  predictedLatencyScorer,
} from './scorers.js';
export type { KvPressureOptions, Scorer, ScoringContext } from './scorers.js';
export { HeuristicPredictor } from './predictors.js';
export type { HeuristicPredictorOptions, LatencyPredictor, PrefillInput } from './predictors.js';
export { evaluatePair, selectSloPair } from './slo-pair.js';
export type { DecodeCandidate, PairInput, PrefillCandidate, SloPairChoice, SloPairOptions } from './slo-pair.js';
export { ROUTER_PRESETS, parseRouterConfig, parseScorerWeights, resolveRouterConfig } from './config.js';
export type { PdConfig, ResolvedRouterConfig, RouterConfig, ScorerSpec } from './config.js';
export { Router, createRouter } from './router.js';
export type { PredictionRecord, RouterDeps, RouterStats } from './router.js';
export type { PairEvaluation, PdDecision, PdReason, RouteDecision, RouteReason, RouteRequest } from './types.js';
