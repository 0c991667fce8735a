/**
 * Engine profiles as plain data: what an engine's defaults are (block size, token budget, max
 * sequences, preemption mode, prefix-cache eviction, scheduler pipeline, router, CPU offload).
 * The adapters own the engine facts; the simulator's two built-ins, the profiles `kvmgr replay`
 * compares, come from `@kvmgr/adapter-vllm`: `vllm-default` (FCFS + chunked prefill 8192/1024,
 * LRU, recompute newest, round-robin) and `kvmgr-default` (the `kvmgr-default` pipeline,
 * `pa:1,pl:3` routing, adaptive eviction; docs/sim.md). Any other profile is
 * passed to `runReplay` as an object.
 */
import { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE } from '@kvmgr/adapter-vllm';
import type { EngineProfile } from '@kvmgr/core';
import { invalidArgument } from '@kvmgr/core';

export { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE };

/** An engine profile (the type lives in `@kvmgr/core`; re-exported here). */
export type { EngineProfile };

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
