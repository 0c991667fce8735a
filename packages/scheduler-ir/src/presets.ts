/**
 * Named pipelines that reproduce engines' default schedulers, and kvmgr's own.
 */

/**
 * Preset name → pipeline text.
 * - `vllm-default`: FCFS, chunked prefill 8192 tokens / 1024 seqs, recompute-preempt the newest.
 *   @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py
 * - `sglang-default`: longest prefix match, FCFS above 128 waiting, retract fewest-generated.
 *   @see sgl-project/sglang:python/sglang/srt/managers/schedule_policy.py
 * - `tgi-default`: FCFS, reserve input + max_new_tokens at admission, never preempt, 4096
 *   prefill tokens per batch (`max_batch_prefill_tokens`).
 * - `lmdeploy-default`: FCFS, preempt newest by recompute, 256 seqs; LMDeploy's 64-token blocks
 *   come from the state's `kv.blockSize`.
 * - `kvmgr-default`: prefix-aware order with a starvation guard, requests that can no longer
 *   meet their TTFT behind the on-time ones (`slo-aware{edf=false late=back}`),
 *   admission by the p90 predicted footprint, memory-aware preemption (selector, swap when
 *   cheaper), chunked prefill.
 */
export const PRESETS: Readonly<Record<string, string>> = {
  'vllm-default': 'sched.step(fcfs,memory-aware-preemption{mode=recompute victim=newest},chunked-prefill{budget=8192 max-seqs=1024})',
  'sglang-default':
    'sched.step(prefix-cache-aware{fcfs-above=128 starvation-ms=0},memory-aware-preemption{mode=recompute victim=fewest-generated},chunked-prefill{budget=8192 max-seqs=1024})',
  'tgi-default': 'sched.step(fcfs,lifetime-aware{reserve=max},memory-aware-preemption{mode=none},chunked-prefill{budget=4096 max-seqs=1024})',
  'lmdeploy-default': 'sched.step(fcfs,memory-aware-preemption{mode=recompute victim=newest},chunked-prefill{budget=8192 max-seqs=256})',
  'kvmgr-default':
    'sched.step(prefix-cache-aware{starvation-ms=2000},slo-aware{edf=false late=back},admission{quantile=p90 safety=0.95 margin=0.1 starvation-ms=2000},memory-aware-preemption{mode=auto victim=selector},chunked-prefill{budget=8192 max-seqs=1024})',
};
