/**
 * vLLM engine profiles as data.
 *
 * Facts (vLLM v1, 0.11–0.15): block size 16; chunked prefill on with `max_num_batched_tokens`
 * 8192 and `max_num_seqs` 1024 on H100-class servers (2048/256 elsewhere); prefix caching on
 * with an LRU free-block queue; recompute-only preemption of the most recently admitted running
 * request; the last prompt token is never served from cache; FCFS waiting queue.
 *
 * @see vllm-project/vllm:vllm/engine/arg_utils.py (usage-context defaults)
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py
 */
import type { EngineProfile } from '@kvmgr/core';

/** vLLM's defaults on an H100-class server. */
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

/** vLLM's defaults on smaller GPUs (token budget 2048, 256 seqs). */
export const VLLM_SMALL_GPU_PROFILE: EngineProfile = Object.freeze({
  ...VLLM_DEFAULT_PROFILE,
  name: 'vllm-small-gpu',
  description: 'vLLM v1 defaults below H100 class: chunked prefill 2048 tokens / 256 seqs',
  tokenBudget: 2048,
  maxSeqs: 256,
});

/** SGLang's defaults (for baselines): radix cache, LPM scheduling, retract fewest-generated. */
export const SGLANG_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'sglang-default',
  engine: 'sglang',
  description: 'SGLang defaults: longest-prefix-match (FCFS above 128 waiting), radix cache with LRU leaves, retract fewest-generated',
  blockSize: 1,
  tokenBudget: 8192,
  maxSeqs: 1024,
  preemption: 'recompute',
  victimSelector: 'sglang',
  cacheEviction: 'lru',
  scheduler: 'sglang-default',
  lifetimePredictor: 'global-median',
  router: 'round-robin',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.88,
});

/**
 * kvmgr's best profile on a vLLM engine, chosen by A/B in the simulator on the Mooncake
 * conversation trace (docs/sim.md): the `kvmgr-default` scheduler pipeline (prefix-aware order
 * with a starvation guard, late requests behind on-time ones, admission by the p90 predicted footprint, SLO-aware
 * victims), prefix-affinity plus predicted-latency routing (`pa:1,pl:3`), the `adaptive` prefix eviction
 * policy (it follows whichever of LRU/LFU/ARC/GDSF/S3-FIFO/predictive leads on the traffic it
 * sees: LFU, the earlier default, won on the Mooncake trace but lost a fifth of the hit rate on
 * multi-turn chat — issue #20), an EWMA output-length predictor. Same hardware and memory as
 * vLLM: no CPU tier.
 */
export const KVMGR_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'kvmgr-default',
  engine: 'kvmgr',
  description: 'kvmgr: kvmgr-default scheduler pipeline, prefix-affinity + predicted-latency routing, adaptive prefix eviction',
  blockSize: 16,
  tokenBudget: 8192,
  maxSeqs: 1024,
  preemption: 'recompute',
  cacheEviction: 'adaptive',
  scheduler: 'kvmgr-default',
  victimSelector: 'slo-aware',
  lifetimePredictor: 'ewma',
  router: 'pa:1,pl:3',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.9,
});

/**
 * `kvmgr-default` plus a 200 GiB host-memory KV tier per instance (`@kvmgr/kv-pool` tiers):
 * evicted prefixes are offloaded to CPU and reloaded on a hit (transfer time charged). Uses
 * memory vLLM's defaults leave idle, so it is a separate, opt-in profile.
 */
export const KVMGR_OFFLOAD_PROFILE: EngineProfile = Object.freeze({
  ...KVMGR_DEFAULT_PROFILE,
  name: 'kvmgr-offload',
  description: 'kvmgr-default + 200 GiB CPU KV tier per instance (offload evicted prefixes, reload on hit)',
  cpuOffloadGiB: 200,
});
