/**
 * SGLang engine profile as data (for baselines): radix cache (page size 1) with LRU leaves,
 * longest-prefix-match scheduling that falls back to FCFS above 128 waiting requests, and
 * retraction of the request with the fewest generated tokens when memory runs out.
 *
 * @see sgl-project/sglang:python/sglang/srt/managers/schedule_policy.py
 */
import type { EngineProfile } from '@kvmgr/core';

/** SGLang's defaults. */
export const SGLANG_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'sglang-default',
  engine: 'sglang',
  description: 'SGLang defaults: longest-prefix-match (FCFS above 128 waiting), radix cache with LRU leaves, retract fewest-generated',
  blockSize: 1,
  tokenBudget: 8192,
  maxSeqs: 1024,
  victimSelector: 'sglang',
  cacheEviction: 'lru',
  scheduler: 'sglang-default',
  lifetimePredictor: 'global-median',
  router: 'round-robin',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.88,
});
