/**
 * TGI engine profile as data. TGI reserves prompt + `max_new_tokens` at admission and never
 * preempts (the `tgi-default` scheduler preset does both); it pages KV in blocks (16 tokens with paged attention) and has prefix caching in
 * v3. Its token budget is `max_batch_prefill_tokens` (default 4096) with
 * `max_batch_total_tokens` derived from memory.
 *
 * @see huggingface/text-generation-inference:backends/v3/src/queue.rs
 */
import type { EngineProfile } from '@kvmgr/core';

/** TGI v3 defaults. */
export const TGI_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'tgi-default',
  engine: 'tgi',
  description: 'TGI v3 defaults: reserve input + max_new_tokens at admission, never preempt, prefill budget 4096',
  blockSize: 16,
  tokenBudget: 4096,
  maxSeqs: 1024,
  victimSelector: 'vllm',
  cacheEviction: 'lru',
  scheduler: 'tgi-default',
  lifetimePredictor: 'global-median',
  router: 'round-robin',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.9,
});
