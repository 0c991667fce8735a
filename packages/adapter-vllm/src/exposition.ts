/**
 * vLLM's Prometheus metric families as a prom-client registry, for kvmgr's own servers (engine
 * server, gateway) to update and serve on `/metrics`, so that dashboards and routers written
 * for vLLM read them unchanged.
 *
 * Names, types, help texts, label sets (`model_name`, `engine`; `finished_reason` on
 * `vllm:request_success_total`; `reason` on `vllm:num_requests_waiting_by_reason`) and histogram
 * buckets follow vLLM V1. Counter names carry `_total` as prometheus_client writes them in text
 * format 0.0.4. `vllm:cache_config_info` is an info gauge set to 1 whose labels carry the cache
 * configuration (vLLM stringifies Python values: `"16"`, `"True"`).
 *
 * `promtool check metrics` reports two lint warnings on these names, as it does on vLLM's own
 * `/metrics`: the `:` in names (reserved for recording rules) and `_total` on the histogram
 * `vllm:iteration_tokens_total`. Both are vLLM's names, kept for compatibility.
 *
 * @see vllm-project/vllm:vllm/v1/metrics/loggers.py
 */
import { VLLM_METRICS } from '@kvmgr/core';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** TTFT buckets, seconds (vLLM V1). */
export const VLLM_TTFT_BUCKETS_S: readonly number[] = Object.freeze([
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
]);
/** Inter-token latency buckets, seconds (vLLM V1). */
export const VLLM_ITL_BUCKETS_S: readonly number[] = Object.freeze([
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
]);
/** E2E latency and queue time buckets, seconds (vLLM V1 `request_latency_buckets`). */
export const VLLM_REQUEST_LATENCY_BUCKETS_S: readonly number[] = Object.freeze([
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
]);
/** Tokens-per-step buckets (vLLM V1 `vllm:iteration_tokens_total`). */
export const VLLM_ITERATION_TOKENS_BUCKETS: readonly number[] = Object.freeze([1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]);

/** The labels every vLLM family carries. */
export type VllmLabel = 'model_name' | 'engine';

/** Options of {@link createVllmMetricsRegistry}. */
export interface VllmMetricsRegistryOptions {
  /** Value of `model_name` (the served model name). */
  readonly modelName: string;
  /** Value of `engine` (data-parallel engine index). @default '0' */
  readonly engine?: string;
  /** Register into this registry instead of a new one. */
  readonly registry?: Registry;
}

/** The registry and a handle per family. Update with `handle.set(m.labels, v)`, `inc(m.labels, n)`, `observe(m.labels, s)`. */
export interface VllmMetrics {
  readonly registry: Registry;
  /** `{ model_name, engine }` for this server. */
  readonly labels: Readonly<Record<VllmLabel, string>>;
  readonly numRequestsRunning: Gauge<VllmLabel>;
  readonly numRequestsWaiting: Gauge<VllmLabel>;
  /** Extra label `reason` (`capacity`, `deferred`). */
  readonly numRequestsWaitingByReason: Gauge<VllmLabel | 'reason'>;
  /** 0..1. */
  readonly kvCacheUsagePerc: Gauge<VllmLabel>;
  /** Set with {@link setVllmCacheConfig}. */
  readonly cacheConfigInfo: Gauge<string>;
  readonly prefixCacheQueries: Counter<VllmLabel>;
  readonly prefixCacheHits: Counter<VllmLabel>;
  readonly externalPrefixCacheQueries: Counter<VllmLabel>;
  readonly externalPrefixCacheHits: Counter<VllmLabel>;
  readonly promptTokensCached: Counter<VllmLabel>;
  readonly numPreemptions: Counter<VllmLabel>;
  readonly promptTokens: Counter<VllmLabel>;
  readonly generationTokens: Counter<VllmLabel>;
  /** Extra label `finished_reason` (`stop`, `length`, `abort`). */
  readonly requestSuccess: Counter<VllmLabel | 'finished_reason'>;
  /** Seconds. */
  readonly timeToFirstToken: Histogram<VllmLabel>;
  /** Seconds. */
  readonly interTokenLatency: Histogram<VllmLabel>;
  /** Seconds. */
  readonly e2eRequestLatency: Histogram<VllmLabel>;
  /** Seconds in the waiting queue. */
  readonly requestQueueTime: Histogram<VllmLabel>;
  /** Tokens (prefill + decode) per engine step. */
  readonly iterationTokens: Histogram<VllmLabel>;
}

/**
 * Creates vLLM's metric families in a prom-client registry.
 *
 * @returns the registry and typed handles; the gauges start at 0 for this server's labels so a
 *   scrape before the first update already shows every family.
 * @throws Error from prom-client when `registry` already holds a family of the same name.
 *
 * @example
 * ```ts
 * const m = createVllmMetricsRegistry({ modelName: 'meta-llama/Llama-3.1-8B-Instruct' });
 * m.numRequestsRunning.set(m.labels, 3);
 * const text = await m.registry.metrics();
 * ```
 */
export function createVllmMetricsRegistry(options: VllmMetricsRegistryOptions): VllmMetrics {
  const registry = options.registry ?? new Registry();
  const labels = Object.freeze({ model_name: options.modelName, engine: options.engine ?? '0' });
  const labelNames: VllmLabel[] = ['model_name', 'engine'];
  const registers = [registry];
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
  const histogram = (name: string, help: string, buckets: readonly number[]) => new Histogram({ name, help, labelNames, buckets: [...buckets], registers });
  const m: VllmMetrics = {
    registry,
    labels,
    numRequestsRunning: gauge(VLLM_METRICS.numRequestsRunning, 'Number of requests in model execution batches.'),
    numRequestsWaiting: gauge(VLLM_METRICS.numRequestsWaiting, 'Number of requests waiting to be processed.'),
    numRequestsWaitingByReason: new Gauge({
      name: VLLM_METRICS.numRequestsWaitingByReason,
      help: 'Number of requests waiting to be processed, by reason.',
      labelNames: [...labelNames, 'reason'],
      registers,
    }),
    kvCacheUsagePerc: gauge(VLLM_METRICS.kvCacheUsagePerc, 'KV-cache usage. 1 means 100 percent usage.'),
    cacheConfigInfo: new Gauge({
      name: VLLM_METRICS.cacheConfigInfo,
      help: 'Information of the LLMEngine CacheConfig',
      labelNames: ['block_size', 'cache_dtype', 'enable_prefix_caching', 'gpu_memory_utilization', 'num_cpu_blocks', 'num_gpu_blocks', 'engine'],
      registers,
    }),
    prefixCacheQueries: counter(VLLM_METRICS.prefixCacheQueriesTotal, 'Prefix cache queries, in terms of number of queried tokens.'),
    prefixCacheHits: counter(VLLM_METRICS.prefixCacheHitsTotal, 'Prefix cache hits, in terms of number of cached tokens.'),
    externalPrefixCacheQueries: counter(VLLM_METRICS.externalPrefixCacheQueriesTotal, 'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.'),
    externalPrefixCacheHits: counter(VLLM_METRICS.externalPrefixCacheHitsTotal, 'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.'),
    promptTokensCached: counter(VLLM_METRICS.promptTokensCachedTotal, 'Number of cached prompt tokens (local prefix cache).'),
    numPreemptions: counter(VLLM_METRICS.numPreemptionsTotal, 'Cumulative number of preemption from the engine.'),
    promptTokens: counter(VLLM_METRICS.promptTokensTotal, 'Number of prefill tokens processed.'),
    generationTokens: counter(VLLM_METRICS.generationTokensTotal, 'Number of generation tokens processed.'),
    requestSuccess: new Counter({
      name: VLLM_METRICS.requestSuccessTotal,
      help: 'Count of successfully processed requests.',
      labelNames: [...labelNames, 'finished_reason'],
      registers,
    }),
    timeToFirstToken: histogram(VLLM_METRICS.timeToFirstTokenSeconds, 'Histogram of time to first token in seconds.', VLLM_TTFT_BUCKETS_S),
    interTokenLatency: histogram(VLLM_METRICS.interTokenLatencySeconds, 'Histogram of inter-token latency in seconds.', VLLM_ITL_BUCKETS_S),
    e2eRequestLatency: histogram(VLLM_METRICS.e2eRequestLatencySeconds, 'Histogram of e2e request latency in seconds.', VLLM_REQUEST_LATENCY_BUCKETS_S),
    requestQueueTime: histogram(VLLM_METRICS.requestQueueTimeSeconds, 'Histogram of time spent in WAITING phase for request.', VLLM_REQUEST_LATENCY_BUCKETS_S),
    iterationTokens: histogram(VLLM_METRICS.iterationTokensTotal, 'Histogram of number of tokens per engine_step.', VLLM_ITERATION_TOKENS_BUCKETS),
  };
  for (const g of [m.numRequestsRunning, m.numRequestsWaiting, m.kvCacheUsagePerc]) g.set(labels, 0);
  for (const c of [m.prefixCacheQueries, m.prefixCacheHits, m.numPreemptions, m.promptTokens, m.generationTokens]) c.inc(labels, 0);
  return m;
}

/** The cache configuration published in `vllm:cache_config_info`. */
export interface VllmCacheConfigInfo {
  /** Tokens per block. */
  readonly blockSize: number;
  /** GPU KV blocks of this engine. */
  readonly numGpuBlocks: number;
  readonly enablePrefixCaching: boolean;
  /** @default 0.9 */
  readonly gpuMemoryUtilization?: number;
  /** @default 'auto' */
  readonly cacheDtype?: string;
  /** @default 0 */
  readonly numCpuBlocks?: number;
}

/**
 * Sets `vllm:cache_config_info` to 1 with the configuration as labels (replacing any earlier
 * configuration of this engine).
 */
export function setVllmCacheConfig(m: VllmMetrics, config: VllmCacheConfigInfo): void {
  m.cacheConfigInfo.reset();
  m.cacheConfigInfo.set(
    {
      block_size: String(config.blockSize),
      cache_dtype: config.cacheDtype ?? 'auto',
      // Python's str(bool), as vLLM writes it.
      enable_prefix_caching: config.enablePrefixCaching ? 'True' : 'False',
      gpu_memory_utilization: String(config.gpuMemoryUtilization ?? 0.9),
      num_cpu_blocks: String(config.numCpuBlocks ?? 0),
      num_gpu_blocks: String(config.numGpuBlocks),
      engine: m.labels.engine,
    },
    1,
  );
}
