/**
 * Engine profiles as plain data: what an engine's defaults are (block size, token budget, max
 * sequences, preemption mode, prefix-cache eviction, scheduler pipeline, router, CPU offload).
 * The adapters (`@kvmgr/adapter-vllm`, …) own the engine facts; these are the simulator's
 * built-in copies for the two profiles `kvmgr replay` compares.
 */
import type { EngineProfile } from '@kvmgr/core';
import { invalidArgument } from '@kvmgr/core';

/** An engine profile (the type lives in `@kvmgr/core`; re-exported here). */
export type { EngineProfile };

/**
 * vLLM defaults on H100-class GPUs: block 16, `max_num_batched_tokens` 8192, `max_num_seqs`
 * 1024, FCFS with chunked prefill, LRU free-block queue, recompute preemption of the most
 * recently admitted request, no CPU offload, round-robin routing in front.
 */
export const VLLM_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'vllm-default',
  engine: 'vllm',
  description: 'vLLM v1 defaults: FCFS + chunked prefill 8192/1024, LRU prefix eviction, recompute newest, round-robin routing',
  blockSize: 16,
  tokenBudget: 8192,
  maxSeqs: 1024,
  preemption: 'recompute',
  cacheEviction: 'lru',
  scheduler: 'vllm-default',
  victimSelector: 'vllm',
  lifetimePredictor: 'global-median',
  router: 'round-robin',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.9,
});

/**
 * kvmgr's pipeline on the same hardware: the `kvmgr-default` scheduler-IR pipeline (prefix-aware
 * order, SLO urgency, admission by the p90 predicted footprint, SLO-aware victims), routing by
 * precise prefix affinity plus a TTFT prediction from the latency model (`pa:1,pl:3`), and LFU
 * prefix-cache eviction (best hit rate of lru/lfu/arc/s3fifo/sieve/gdsf on the Mooncake
 * conversation trace; see docs/sim.md).
 */
export const KVMGR_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'kvmgr-default',
  engine: 'kvmgr',
  description: 'kvmgr: kvmgr-default scheduler pipeline, prefix-affinity + predicted-latency routing, LFU prefix eviction',
  blockSize: 16,
  tokenBudget: 8192,
  maxSeqs: 1024,
  preemption: 'recompute',
  cacheEviction: 'lfu',
  scheduler: 'kvmgr-default',
  victimSelector: 'slo-aware',
  lifetimePredictor: 'ewma',
  router: 'pa:1,pl:3',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.9,
});

/** Built-in profiles by name. */
export const ENGINE_PROFILES: Readonly<Record<string, EngineProfile>> = Object.freeze({
  'vllm-default': VLLM_DEFAULT_PROFILE,
  'kvmgr-default': KVMGR_DEFAULT_PROFILE,
});

/**
 * Looks up a built-in profile.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` listing the known names.
 */
export function getEngineProfile(name: string): EngineProfile {
  const p = ENGINE_PROFILES[name];
  if (p === undefined) throw invalidArgument('profile', name, `one of ${Object.keys(ENGINE_PROFILES).join(', ')}`);
  return p;
}
