/**
 * @kvmgr/core — the shared vocabulary of kvmgr: KV geometry, errors, request metadata, the
 * interfaces the modules meet through, KV events, metric names, the seeded PRNG, the YAML config
 * helper and the Mooncake and Azure trace row readers.
 */
export { KvmgrError, isKvmgrError, invalidArgument, describeValue } from './errors.js';
export type { KvmgrErrorCode, KvmgrErrorOptions } from './errors.js';
export { parseYamlText, validateConfig, parseConfigText, configIssuePath } from './config-text.js';
export type { ConfigIssue, ConfigSchema } from './config-text.js';
export {
  requirePositiveInt,
  requireNonNegativeInt,
  requireNonNegativeNumber,
  requirePositiveNumber,
  requireInRange,
  requireOneOf,
} from './validate.js';
export {
  TIERS,
  DTYPE_BITS,
  createKVCacheSpec,
  createKVCacheSchema,
  blocksForTokens,
  validateCapability,
} from './kv-cache-spec.js';
export type {
  Tier,
  KVDtype,
  KVCacheSpec,
  KVCacheSpecInput,
  KVCacheSchema,
  KVCacheGroup,
  InstanceRole,
  DeviceKind,
  CapabilityDescriptor,
} from './kv-cache-spec.js';
export { HashTable64 } from './hash-table64.js';
export { KiB, MiB, GiB, US_PER_MS, US_PER_S, msToUs, usToMs, transferTimeUs } from './units.js';
export { VLLM_METRICS, SGLANG_METRICS, LMDEPLOY_METRICS, TGI_METRICS, KVMGR_METRICS } from './metrics.js';
export {
  parseExposition,
  independentSeries,
  aggregateSamples,
  sumByLabel,
  histogramTotals,
  detectEngine,
  requireEnginePrefix,
  fetchExposition,
  createMetricsScraper,
  REPLICA_LABELS,
} from './metrics-scrape.js';
export type {
  PromMetricType,
  PromSample,
  MetricsExposition,
  SeriesAggregate,
  HistogramTotals,
  MetricsMapContext,
  EngineMetricsMapper,
  FetchExpositionOptions,
  ScrapeFailureKind,
  ScrapeErrorCounts,
  ScrapeResult,
  MetricsScraperOptions,
  MetricsScraper,
} from './metrics-scrape.js';
export { createRng } from './rng.js';
export { chainBlockKey, blockKeyExtraDigest, blockKeyRoot, blockKeysFromTokens, blockKeyToU64, blockKeyFromU64 } from './block-key.js';
export type { BlockKeys, BlockKeyNamespace } from './block-key.js';
export { MOONCAKE_BLOCK_TOKENS, parseMooncakeRows } from './mooncake-trace.js';
export type { MooncakeRow, MooncakeBlockRow, MooncakeRowOptions, MooncakeRows } from './mooncake-trace.js';
export { parseAzureRows } from './azure-trace.js';
export type { AzureRow, AzureRowOptions, AzureRows } from './azure-trace.js';
export type { TraceRowOptions, TraceRows } from './trace-rows.js';
export type { Rng } from './rng.js';
export type * from './request.js';
export type * from './prefix-cache.js';
export type * from './kv-pool.js';
export type * from './eviction.js';
export type * from './lifetime.js';
export type * from './engine.js';
export type * from './events.js';
