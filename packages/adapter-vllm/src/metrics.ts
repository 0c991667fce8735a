/**
 * vLLM V1 `/metrics` → {@link EngineSnapshot}.
 *
 * Read: `vllm:num_requests_running` / `_waiting` (summed over engines), `vllm:kv_cache_usage_perc`
 * (0..1, mean over data-parallel engines; falls back to the deprecated `vllm:gpu_cache_usage_perc`),
 * `vllm:prefix_cache_{queries,hits}_total` (tokens; falls back to `vllm:gpu_prefix_cache_*`),
 * `vllm:num_preemptions_total`, `vllm:cache_config_info` (labels `block_size`, `num_gpu_blocks`,
 * `enable_prefix_caching`) and, when present, the newer families
 * `vllm:num_requests_waiting_by_reason{reason}`, `vllm:prompt_tokens_cached_total`,
 * `vllm:external_prefix_cache_{queries,hits}_total`.
 *
 * `freeBlocks` is `round(totalBlocks × (1 − kvUtilization))`. vLLM's usage counts blocks held by
 * running requests; cached blocks with no running owner sit in the free queue and count as free,
 * so `freeBlocks` includes evictable cached blocks, as vLLM's allocator sees them.
 *
 * vLLM exports no transfer latency or thrashing rate: `pendingTransferLatency` and
 * `kvThrashingRate` are 0 and listed in `missing`.
 *
 * @see vllm-project/vllm:vllm/v1/metrics/loggers.py (names, labels `model_name`, `engine`)
 * @see vllm-project/vllm:vllm/config/cache.py (`metrics_info()` labels of `vllm:cache_config_info`)
 */
import {
  type EngineMetricsMapper,
  type EngineSnapshot,
  type MetricsExposition,
  type MetricsMapContext,
  VLLM_METRICS,
  aggregateSamples,
  independentSeries,
  requireEnginePrefix,
  sumByLabel,
} from '@kvmgr/core';

/** The cache geometry read from `vllm:cache_config_info`, summed over engines. */
export interface VllmCacheConfig {
  /** Tokens per block (`block_size`); the largest when engines differ. */
  readonly blockSize?: number;
  /** GPU blocks of all engines together (`num_gpu_blocks`). */
  readonly totalBlocks?: number;
  /** `enable_prefix_caching` of any engine is `True`. */
  readonly prefixCaching?: boolean;
}

/** Reads `vllm:cache_config_info` label values (strings, as vLLM writes them: `"16"`, `"True"`). */
export function readVllmCacheConfig(expo: MetricsExposition): VllmCacheConfig {
  const infos = independentSeries(expo, VLLM_METRICS.cacheConfigInfo);
  let blockSize: number | undefined;
  let totalBlocks: number | undefined;
  let prefixCaching: boolean | undefined;
  for (const s of infos) {
    const bs = Number(s.labels['block_size']);
    if (Number.isFinite(bs) && bs > 0) blockSize = Math.max(blockSize ?? 0, bs);
    const nb = Number(s.labels['num_gpu_blocks']);
    // vLLM writes "None" before the KV cache is profiled.
    if (s.labels['num_gpu_blocks'] !== undefined && Number.isFinite(nb)) totalBlocks = (totalBlocks ?? 0) + nb;
    const pc = s.labels['enable_prefix_caching'];
    if (pc !== undefined) prefixCaching = (prefixCaching ?? false) || pc.toLowerCase() === 'true';
  }
  return {
    ...(blockSize === undefined ? {} : { blockSize }),
    ...(totalBlocks === undefined ? {} : { totalBlocks }),
    ...(prefixCaching === undefined ? {} : { prefixCaching }),
  };
}

/**
 * Maps a vLLM V1 exposition to a snapshot (see the module comment for each field's source).
 *
 * @param expo - a parsed vLLM `/metrics` body.
 * @param ctx - instance id, role and scrape time (µs).
 * @returns the snapshot; required fields vLLM did not export are 0 and listed in `missing`.
 * @throws KvmgrError `KVMGR_PROTOCOL` when the exposition has no `vllm:` sample at all.
 */
export const mapVllmMetrics: EngineMetricsMapper = (expo: MetricsExposition, ctx: MetricsMapContext): EngineSnapshot => {
  requireEnginePrefix(expo, 'vllm:', 'vLLM');
  const missing: (keyof EngineSnapshot)[] = ['pendingTransferLatency', 'kvThrashingRate'];
  const read = (field: keyof EngineSnapshot, names: readonly string[], how: 'sum' | 'mean'): number => {
    for (const n of names) {
      const v = aggregateSamples(expo, n, how);
      if (v !== undefined) return v;
    }
    missing.push(field);
    return 0;
  };
  const kvUtilization = read('kvUtilization', [VLLM_METRICS.kvCacheUsagePerc, VLLM_METRICS.gpuCacheUsagePerc], 'mean');
  const waiting = read('waiting', [VLLM_METRICS.numRequestsWaiting], 'sum');
  const running = read('running', [VLLM_METRICS.numRequestsRunning], 'sum');
  const prefixCacheQueries = read('prefixCacheQueries', [VLLM_METRICS.prefixCacheQueriesTotal, 'vllm:gpu_prefix_cache_queries_total'], 'sum');
  const prefixCacheHits = read('prefixCacheHits', [VLLM_METRICS.prefixCacheHitsTotal, 'vllm:gpu_prefix_cache_hits_total'], 'sum');
  const preemptions = aggregateSamples(expo, VLLM_METRICS.numPreemptionsTotal, 'sum');
  const promptTokensCached = aggregateSamples(expo, VLLM_METRICS.promptTokensCachedTotal, 'sum');
  const externalPrefixCacheQueries = aggregateSamples(expo, VLLM_METRICS.externalPrefixCacheQueriesTotal, 'sum');
  const externalPrefixCacheHits = aggregateSamples(expo, VLLM_METRICS.externalPrefixCacheHitsTotal, 'sum');
  const byReason = sumByLabel(expo, VLLM_METRICS.numRequestsWaitingByReason, 'reason');
  const cache = readVllmCacheConfig(expo);
  return {
    instanceId: ctx.instanceId,
    role: ctx.role,
    timeUs: ctx.timeUs,
    engine: 'vllm',
    kvUtilization,
    waiting,
    running,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries,
    prefixCacheHits,
    ...(cache.totalBlocks === undefined
      ? {}
      : { totalBlocks: cache.totalBlocks, freeBlocks: Math.round(cache.totalBlocks * (1 - Math.min(1, Math.max(0, kvUtilization)))) }),
    ...(cache.blockSize === undefined ? {} : { blockSize: cache.blockSize }),
    ...(preemptions === undefined ? {} : { preemptions }),
    ...(promptTokensCached === undefined ? {} : { promptTokensCached }),
    ...(externalPrefixCacheQueries === undefined ? {} : { externalPrefixCacheQueries }),
    ...(externalPrefixCacheHits === undefined ? {} : { externalPrefixCacheHits }),
    ...(Object.keys(byReason).length === 0 ? {} : { waitingByReason: byReason }),
    missing,
  };
};
