/**
 * @kvmgr/router — KV-aware, SLO-aware cluster routing: the cluster KV block index, scorers,
 * filters and pickers, the P/D decider and the SLO pair optimizer.
 */
export { KvBlockIndex, DEFAULT_TIER_WEIGHTS, createPrefixMatch } from './kv-block-index.js';
export type { BlockIndex, BlockIndexListener, HolderTier, KvBlockIndexOptions, KvBlockIndexStats, PrefixMatch, TierWeights } from './kv-block-index.js';
export { MemoryBlockIndexStore } from './index-store.js';
export type { BlockIndexStore, EndpointPrefix, MemoryBlockIndexStoreOptions, PrefixLookup } from './index-store.js';
export { RedisBlockIndexStore, blockKeyHex, redisKeyPrefix } from './redis-block-index-store.js';
export type { RedisBlockIndexStoreOptions } from './redis-block-index-store.js';
export { FallbackBlockIndexStore } from './index-store-fallback.js';
export type { FallbackBlockIndexStoreOptions, FallbackStats } from './index-store-fallback.js';
export { RedisLink } from './redis-link.js';
export type { RedisLinkOptions, RedisLinkStats } from './redis-link.js';
export { EngineLeases } from './redis-lease.js';
export type { EngineLeasesOptions } from './redis-lease.js';
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
