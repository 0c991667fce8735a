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
