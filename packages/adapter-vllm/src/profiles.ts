/**
 * vLLM engine profiles as data (kvmgr's own profiles live in `@kvmgr/sim`'s registry, SGLang's in
 * `@kvmgr/adapter-sglang`).
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
