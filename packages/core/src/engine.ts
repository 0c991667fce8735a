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
}

/** The engines kvmgr models. */
export type EngineKind = 'vllm' | 'sglang' | 'tgi' | 'lmdeploy' | 'kvmgr';

/**
 * An engine's scheduling and cache defaults as data: what a simulated instance needs to
 * behave like that engine. Adapters publish their engine's profiles; the simulator and CLI
 * read them by name.
 */
export interface EngineProfile {
  /** Profile name, e.g. `vllm-default`. */
  readonly name: string;
  readonly engine: EngineKind;
  /** One-line description shown by `kvmgr --help` and reports. */
  readonly description: string;
  /** Tokens per KV block. vLLM 16, LMDeploy 64. */
  readonly blockSize: number;
  /** Token budget per step (chunked prefill). vLLM on H100-class: 8192. */
  readonly maxNumBatchedTokens: number;
  /** Max sequences per step. vLLM on H100-class: 1024. */
  readonly maxNumSeqs: number;
  /** Whether prompts are split across steps by the token budget. */
  readonly chunkedPrefill: boolean;
  /** Whether a prefix cache is kept. */
  readonly prefixCaching: boolean;
  /** How running requests are preempted when blocks run out; `none` = never preempt. */
  readonly preemptionMode: 'recompute' | 'swap' | 'none';
  /** Request-level victim selector name (`@kvmgr/eviction`): `vllm`, `sglang`, `slo-aware`. */
  readonly victimSelector: string;
  /** Node-level eviction policy of the prefix cache (`@kvmgr/eviction` name), e.g. `lru`. */
  readonly cacheEviction: string;
  /** Scheduler-IR pipeline (preset name or textual pipeline). */
  readonly schedulerPipeline: string;
  /** Router preset or config string used in front of a cluster of this profile. */
  readonly router: string;
  /** Reserve prompt + max output tokens at admission (TGI). @default false */
  readonly reserveFullOutput?: boolean;
  /** Fraction of GPU memory the engine takes (weights + KV). vLLM default 0.9. */
  readonly gpuMemoryUtilization: number;
}
