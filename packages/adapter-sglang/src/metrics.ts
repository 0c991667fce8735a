/**
 * SGLang `/metrics` (`--enable-metrics`) → {@link EngineSnapshot}.
 *
 * Read: `sglang:token_usage` (0..1 of the KV token pool → `kvUtilization`, mean over DP ranks),
 * `sglang:num_running_reqs` / `sglang:num_queue_reqs` (summed), `sglang:cache_hit_rate`
 * (→ `prefixCacheHitRate`, mean over DP ranks), `sglang:gen_throughput` (tokens/s, summed),
 * `sglang:max_total_num_tokens` (pool size in tokens; SGLang's page size is 1 token by default,
 * so `totalBlocks` = tokens and `blockSize` 1), and, when present, `sglang:prompt_tokens_total` /
 * `sglang:cached_tokens_total` as prefix-cache queries / hits. Series of the TP ranks of one
 * scheduler (`tp_rank`) are replicas; DP ranks (`dp_rank`) are summed or averaged (see
 * `@kvmgr/core` `metrics-scrape`). Old expositions (label `name` instead of `model_name`, `_sum`
 * before `_bucket`) read the same.
 *
 * @see sgl-project/sglang:python/sglang/srt/metrics/collector.py
 * @see sgl-project/sglang:docs/references/production_metrics.md
 */
import {
  type EngineMetricsMapper,
  type EngineSnapshot,
  type MetricsExposition,
  type MetricsMapContext,
  SGLANG_METRICS,
  aggregateSamples,
  requireEnginePrefix,
} from '@kvmgr/core';

/**
 * Maps an SGLang exposition to a snapshot.
 *
 * @returns the snapshot; required fields SGLang did not export are 0 and listed in `missing`
 *   (`prefixCacheQueries`/`Hits` on releases without token counters: read `prefixCacheHitRate`).
 * @throws KvmgrError `KVMGR_PROTOCOL` when the exposition has no `sglang:` sample.
 */
export const mapSglangMetrics: EngineMetricsMapper = (expo: MetricsExposition, ctx: MetricsMapContext): EngineSnapshot => {
  requireEnginePrefix(expo, 'sglang:', 'SGLang');
  const missing: (keyof EngineSnapshot)[] = ['pendingTransferLatency', 'kvThrashingRate'];
  const read = (field: keyof EngineSnapshot, name: string, how: 'sum' | 'mean'): number => {
    const v = aggregateSamples(expo, name, how);
    if (v === undefined) missing.push(field);
    return v ?? 0;
  };
  const kvUtilization = read('kvUtilization', SGLANG_METRICS.tokenUsage, 'mean');
  const waiting = read('waiting', SGLANG_METRICS.numQueueReqs, 'sum');
  const running = read('running', SGLANG_METRICS.numRunningReqs, 'sum');
  const prefixCacheQueries = read('prefixCacheQueries', SGLANG_METRICS.promptTokensTotal, 'sum');
  const prefixCacheHits = read('prefixCacheHits', SGLANG_METRICS.cachedTokensTotal, 'sum');
  const prefixCacheHitRate = aggregateSamples(expo, SGLANG_METRICS.cacheHitRate, 'mean');
  const generationTokensPerS = aggregateSamples(expo, SGLANG_METRICS.genThroughput, 'sum');
  const totalTokens = aggregateSamples(expo, SGLANG_METRICS.maxTotalNumTokens, 'sum');
  return {
    instanceId: ctx.instanceId,
    role: ctx.role,
    timeUs: ctx.timeUs,
    engine: 'sglang',
    kvUtilization,
    waiting,
    running,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries,
    prefixCacheHits,
    ...(prefixCacheHitRate === undefined ? {} : { prefixCacheHitRate }),
    ...(generationTokensPerS === undefined ? {} : { generationTokensPerS }),
    ...(totalTokens === undefined
      ? {}
      : { blockSize: 1, totalBlocks: totalTokens, freeBlocks: Math.round(totalTokens * (1 - Math.min(1, Math.max(0, kvUtilization)))) }),
    missing,
  };
};
