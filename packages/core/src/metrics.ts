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
  /** Deprecated V0/early-V1 name of `kv_cache_usage_perc`, still read as a fallback. */
  gpuCacheUsagePerc: 'vllm:gpu_cache_usage_perc',
  numRequestsWaitingByReason: 'vllm:num_requests_waiting_by_reason',
  promptTokensTotal: 'vllm:prompt_tokens_total',
  generationTokensTotal: 'vllm:generation_tokens_total',
  promptTokensCachedTotal: 'vllm:prompt_tokens_cached_total',
  externalPrefixCacheQueriesTotal: 'vllm:external_prefix_cache_queries_total',
  externalPrefixCacheHitsTotal: 'vllm:external_prefix_cache_hits_total',
  requestSuccessTotal: 'vllm:request_success_total',
  requestQueueTimeSeconds: 'vllm:request_queue_time_seconds',
  iterationTokensTotal: 'vllm:iteration_tokens_total',
} as const);

/** SGLang's Prometheus metric names. */
export const SGLANG_METRICS = Object.freeze({
  tokenUsage: 'sglang:token_usage',
  cacheHitRate: 'sglang:cache_hit_rate',
  numQueueReqs: 'sglang:num_queue_reqs',
  numRunningReqs: 'sglang:num_running_reqs',
  genThroughput: 'sglang:gen_throughput',
  maxTotalNumTokens: 'sglang:max_total_num_tokens',
  numUsedTokens: 'sglang:num_used_tokens',
  promptTokensTotal: 'sglang:prompt_tokens_total',
  cachedTokensTotal: 'sglang:cached_tokens_total',
  timeToFirstTokenSeconds: 'sglang:time_to_first_token_seconds',
} as const);

/** LMDeploy's Prometheus metric names. */
export const LMDEPLOY_METRICS = Object.freeze({
  gpuCacheUsagePerc: 'lmdeploy:gpu_cache_usage_perc',
  prefixCacheHitRate: 'lmdeploy:prefix_cache_hit_rate',
  numRequestsRunning: 'lmdeploy:num_requests_running',
  numRequestsWaiting: 'lmdeploy:num_requests_waiting',
  promptTokensTotal: 'lmdeploy:prompt_tokens_total',
} as const);

/** TGI's Prometheus metric names (TGI exports no KV usage: estimate it). */
export const TGI_METRICS = Object.freeze({
  queueSize: 'tgi_queue_size',
  batchCurrentSize: 'tgi_batch_current_size',
  batchCurrentMaxTokens: 'tgi_batch_current_max_tokens',
  requestInputLength: 'tgi_request_input_length',
  requestMaxNewTokens: 'tgi_request_max_new_tokens',
  requestGeneratedTokens: 'tgi_request_generated_tokens',
  requestDuration: 'tgi_request_duration',
  requestQueueDuration: 'tgi_request_queue_duration',
  requestCount: 'tgi_request_count',
  requestSuccess: 'tgi_request_success',
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
