/**
 * LMDeploy (PyTorch engine) profile as data: block size 64, prefix caching with trie leaves
 * evicted by access time, FCFS with preemption of the newest request, `cache_max_entry_count`
 * 0.8 of free memory for KV.
 *
 * @see InternLM/lmdeploy:lmdeploy/pytorch/paging/block_trie.py
 */
import type { EngineProfile } from '@kvmgr/core';

/** LMDeploy defaults. */
export const LMDEPLOY_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'lmdeploy-default',
  engine: 'lmdeploy',
  description: 'LMDeploy defaults: block size 64, trie prefix cache evicted by access time, FCFS, preempt newest',
  blockSize: 64,
  tokenBudget: 8192,
  maxSeqs: 256,
  victimSelector: 'vllm',
  cacheEviction: 'lru',
  scheduler: 'lmdeploy-default',
  lifetimePredictor: 'global-median',
  router: 'round-robin',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.8,
});
