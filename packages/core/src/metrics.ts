/**
 * Metric names, defined once. Engine names are what the engines export (Prometheus text);
 * kvmgr names are what kvmgr servers export. Definitions of the derived metrics (hit rate,
 * re-prefill rate, fragmentation, goodput, Jain's index) are in DESIGN.md section 7.
 */

/** vLLM's Prometheus metric names. */
export const VLLM_METRICS = Object.freeze({
  numRequestsRunning: 'vllm:num_requests_running',
  numRequestsWaiting: 'vllm:num_requests_waiting',
  kvCacheUsagePerc: 'vllm:kv_cache_usage_perc',
  prefixCacheQueriesTotal: 'vllm:prefix_cache_queries_total',
  prefixCacheHitsTotal: 'vllm:prefix_cache_hits_total',
  numPreemptionsTotal: 'vllm:num_preemptions_total',
  timeToFirstTokenSeconds: 'vllm:time_to_first_token_seconds',
  interTokenLatencySeconds: 'vllm:inter_token_latency_seconds',
  e2eRequestLatencySeconds: 'vllm:e2e_request_latency_seconds',
  cacheConfigInfo: 'vllm:cache_config_info',
} as const);

/** SGLang's Prometheus metric names. */
export const SGLANG_METRICS = Object.freeze({
  tokenUsage: 'sglang:token_usage',
  cacheHitRate: 'sglang:cache_hit_rate',
  numQueueReqs: 'sglang:num_queue_reqs',
} as const);

/** LMDeploy's Prometheus metric names. */
export const LMDEPLOY_METRICS = Object.freeze({
  gpuCacheUsagePerc: 'lmdeploy:gpu_cache_usage_perc',
  prefixCacheHitRate: 'lmdeploy:prefix_cache_hit_rate',
} as const);

/** TGI's Prometheus metric names (TGI exports no KV usage: estimate it). */
export const TGI_METRICS = Object.freeze({
  queueSize: 'tgi_queue_size',
  batchCurrentSize: 'tgi_batch_current_size',
} as const);

/** Metrics that kvmgr components export (prefix `kvmgr_`, base units in the name). */
export const KVMGR_METRICS = Object.freeze({
  prefixCacheQueriesTokensTotal: 'kvmgr_prefix_cache_queries_tokens_total',
  prefixCacheHitsTokensTotal: 'kvmgr_prefix_cache_hits_tokens_total',
  prefixCacheEvictedTokensTotal: 'kvmgr_prefix_cache_evicted_tokens_total',
  kvBlocksFree: 'kvmgr_kv_blocks_free',
  kvBlocksTotal: 'kvmgr_kv_blocks_total',
  kvUtilizationRatio: 'kvmgr_kv_utilization_ratio',
  kvFragmentationRatio: 'kvmgr_kv_fragmentation_ratio',
  kvOffloadBytesTotal: 'kvmgr_kv_offload_bytes_total',
  kvReloadBytesTotal: 'kvmgr_kv_reload_bytes_total',
  preemptionsTotal: 'kvmgr_preemptions_total',
  reprefillTokensTotal: 'kvmgr_reprefill_tokens_total',
  routingDecisionsTotal: 'kvmgr_routing_decisions_total',
  scheduleStepSeconds: 'kvmgr_schedule_step_seconds',
  ttftSeconds: 'kvmgr_time_to_first_token_seconds',
  tpotSeconds: 'kvmgr_time_per_output_token_seconds',
  e2eSeconds: 'kvmgr_e2e_request_latency_seconds',
  sloAttainmentRatio: 'kvmgr_slo_attainment_ratio',
} as const);
