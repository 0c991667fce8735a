/**
 * LMDeploy `/metrics` (`lmdeploy serve api_server --enable-metrics`) → {@link EngineSnapshot}.
 *
 * Read: `lmdeploy:gpu_cache_usage_perc` (0..1, mean over DP engines), `lmdeploy:num_requests_running`
 * / `_waiting` (summed over the `engine` label, one per DP rank), `lmdeploy:prefix_cache_hit_rate`
 * (→ `prefixCacheHitRate`, mean). LMDeploy exports no prefix-cache token counters: the
 * snapshot's `prefixCacheQueries`/`Hits` are 0 and listed in `missing`.
 *
 * API differences from vLLM: `lmdeploy serve api_server` serves the OpenAI routes
 * (`/v1/completions`, `/v1/chat/completions`, SSE ending `data: [DONE]`) with vLLM-compatible
 * bodies, plus its own `/generate` (`prompt`, `session_id`, `interactive_mode`); sampling
 * extensions such as `top_k`, `repetition_penalty` pass through the shared schemas of
 * `@kvmgr/adapter-vllm`. It has no `kv_transfer_params`.
 *
 * @see InternLM/lmdeploy:lmdeploy/metrics/loggers.py (PrometheusStatLogger)
 * @see InternLM/lmdeploy:lmdeploy/serve/openai/api_server.py
 */
import {
  type EngineMetricsMapper,
  type EngineSnapshot,
  LMDEPLOY_METRICS,
  type MetricsExposition,
  type MetricsMapContext,
  aggregateSamples,
  requireEnginePrefix,
} from '@kvmgr/core';

/**
 * Maps an LMDeploy exposition to a snapshot.
 *
 * @throws KvmgrError `KVMGR_PROTOCOL` when the exposition has no `lmdeploy:` sample.
 */
export const mapLmdeployMetrics: EngineMetricsMapper = (expo: MetricsExposition, ctx: MetricsMapContext): EngineSnapshot => {
  requireEnginePrefix(expo, 'lmdeploy:', 'LMDeploy');
  const missing: (keyof EngineSnapshot)[] = ['pendingTransferLatency', 'kvThrashingRate', 'prefixCacheQueries', 'prefixCacheHits'];
  const read = (field: keyof EngineSnapshot, name: string, how: 'sum' | 'mean'): number => {
    const v = aggregateSamples(expo, name, how);
    if (v === undefined) missing.push(field);
    return v ?? 0;
  };
  const kvUtilization = read('kvUtilization', LMDEPLOY_METRICS.gpuCacheUsagePerc, 'mean');
  const waiting = read('waiting', LMDEPLOY_METRICS.numRequestsWaiting, 'sum');
  const running = read('running', LMDEPLOY_METRICS.numRequestsRunning, 'sum');
  const prefixCacheHitRate = aggregateSamples(expo, LMDEPLOY_METRICS.prefixCacheHitRate, 'mean');
  return {
    instanceId: ctx.instanceId,
    role: ctx.role,
    timeUs: ctx.timeUs,
    engine: 'lmdeploy',
    kvUtilization,
    waiting,
    running,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    ...(prefixCacheHitRate === undefined ? {} : { prefixCacheHitRate }),
    missing,
  };
};
