/**
 * What routers read about an engine instance. Pure types.
 */
import type { InstanceRole } from './kv-cache-spec.js';

/** A point-in-time view of one engine instance. */
export interface EngineSnapshot {
  readonly instanceId: string;
  readonly role: InstanceRole;
  /** Time of the snapshot, µs. */
  readonly timeUs: number;
  /** Fraction of GPU KV blocks in use, 0..1 (`vllm:kv_cache_usage_perc`). */
  readonly kvUtilization: number;
  /** Requests waiting (`vllm:num_requests_waiting`). */
  readonly waiting: number;
  /** Requests running (`vllm:num_requests_running`). */
  readonly running: number;
  /** Prompt tokens queued and not yet prefilled. */
  readonly queuedPrefillTokens?: number;
  /** Latency of KV transfers (offload/reload) queued on this instance, µs. */
  readonly pendingTransferLatency: number;
  /** Offload→reload cycles per second inside the tiered pool's window. */
  readonly kvThrashingRate: number;
  /** Prefix cache queries in tokens (`vllm:prefix_cache_queries_total`). */
  readonly prefixCacheQueries: number;
  /** Prefix cache hits in tokens (`vllm:prefix_cache_hits_total`). */
  readonly prefixCacheHits: number;
  /** Free and total GPU blocks. */
  readonly freeBlocks?: number;
  readonly totalBlocks?: number;
  /** Tokens per KV block, when the engine reports it (`vllm:cache_config_info{block_size}`). */
  readonly blockSize?: number;
  /** The engine this snapshot was read from. */
  readonly engine?: EngineKind;
  /** Preemptions since the engine started, cumulative count (`vllm:num_preemptions_total`). */
  readonly preemptions?: number;
  /**
   * Prefix cache hit rate 0..1 as the engine reports it, for engines that export a rate instead
   * of counters (`sglang:cache_hit_rate`, `lmdeploy:prefix_cache_hit_rate`).
   */
  readonly prefixCacheHitRate?: number;
  /** Prompt tokens served from the local prefix cache, cumulative (`vllm:prompt_tokens_cached_total`). */
  readonly promptTokensCached?: number;
  /** External (KV connector) prefix cache queries and hits in tokens, cumulative. */
  readonly externalPrefixCacheQueries?: number;
  readonly externalPrefixCacheHits?: number;
  /** Waiting requests by reason (`vllm:num_requests_waiting_by_reason{reason}`), e.g. `capacity`, `deferred`. */
  readonly waitingByReason?: Readonly<Record<string, number>>;
  /** Generation throughput, tokens/s, as the engine reports it (`sglang:gen_throughput`). */
  readonly generationTokensPerS?: number;
  /** Fields whose value is estimated rather than read (TGI's `kvUtilization`). */
  readonly estimated?: readonly (keyof EngineSnapshot)[];
  /** Required fields the engine does not export: their value is a placeholder 0, not a measurement. */
  readonly missing?: readonly (keyof EngineSnapshot)[];
  /** True when the snapshot is older than the scraper's staleness bound (N × scrape interval). */
  readonly stale?: boolean;
}

/** The engines kvmgr models. */
export type EngineKind = 'vllm' | 'sglang' | 'tgi' | 'lmdeploy' | 'kvmgr';

/**
 * An engine's facts and defaults as data: what a simulated (or `kvmgr engine`) instance needs to
 * behave like that engine. Geometry, budgets and memory (`blockSize`, `tokenBudget`, `maxSeqs`,
 * `gpuMemoryUtilization`, `cpuOffloadGiB`) are engine facts; every step-scheduling decision
 * (order, admission, chunking, preemption mode and victim rule) is owned by the one scheduler-IR
 * pipeline in `scheduler`; the remaining fields name the modules that pipeline and the cache are
 * composed with. Adapters publish their engine's profiles; `@kvmgr/sim`'s `ENGINE_PROFILES` is
 * the one registry that collects them with kvmgr's own.
 */
export interface EngineProfile {
  /** Profile name, e.g. `vllm-default`. */
  readonly name: string;
  /** The engine it describes. */
  readonly engine?: EngineKind;
  /** One-line description shown by `kvmgr --help` and reports. */
  readonly description: string;
  /** Tokens per KV block. vLLM 16, LMDeploy 64. */
  readonly blockSize: number;
  /** Token budget per step (chunked prefill, `max_num_batched_tokens`). vLLM on H100-class: 8192. */
  readonly tokenBudget: number;
  /** Max sequences per step (`max_num_seqs`). vLLM on H100-class: 1024. */
  readonly maxSeqs: number;
  /** Node-level eviction policy of the prefix cache (`@kvmgr/eviction` name), e.g. `lru`. */
  readonly cacheEviction: string;
  /** Scheduler-IR pipeline: a preset name (`vllm-default`) or pipeline text. */
  readonly scheduler: string;
  /** Request-level victim selector (`@kvmgr/eviction` name): `vllm`, `sglang`, `slo-aware`. */
  readonly victimSelector: string;
  /** Output-length predictor (`@kvmgr/lifetime-predictor` name) injected into the scheduler. */
  readonly lifetimePredictor: string;
  /** Router preset or config string used in front of a cluster of this profile. */
  readonly router: string;
  /** Host memory for a CPU KV tier per instance, GiB (0 = no offload tier). */
  readonly cpuOffloadGiB: number;
  /** Fraction of GPU memory the engine takes (weights + KV). vLLM default 0.9. */
  readonly gpuMemoryUtilization: number;
}
