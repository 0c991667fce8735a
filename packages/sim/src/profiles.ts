/**
 * The one engine-profile registry: every profile `kvmgr` accepts by name, as plain data. Engine
 * facts come from the adapters that own them (`@kvmgr/adapter-vllm`: `vllm-default`,
 * `vllm-small-gpu`; `@kvmgr/adapter-sglang`: `sglang-default`; `@kvmgr/adapter-tgi`:
 * `tgi-default`; `@kvmgr/adapter-lmdeploy`: `lmdeploy-default`); kvmgr's own profiles
 * (`kvmgr-default`, `kvmgr-offload`) are defined here, next to the simulator that chose them. A
 * profile holds engine facts (block size, budgets, memory, CPU tier) and one scheduler-IR
 * pipeline (`scheduler`) that owns every step-scheduling decision. Any other profile is passed
 * to `runReplay` as an object.
 */
import { LMDEPLOY_DEFAULT_PROFILE } from '@kvmgr/adapter-lmdeploy';
import { SGLANG_DEFAULT_PROFILE } from '@kvmgr/adapter-sglang';
import { TGI_DEFAULT_PROFILE } from '@kvmgr/adapter-tgi';
import { VLLM_DEFAULT_PROFILE, VLLM_PROFILES } from '@kvmgr/adapter-vllm/profiles';
import { type EngineProfile, KvmgrError } from '@kvmgr/core';

export { VLLM_DEFAULT_PROFILE };

/** An engine profile (the type lives in `@kvmgr/core`; re-exported here). */
export type { EngineProfile };

/**
 * kvmgr's best profile on a vLLM engine, chosen by A/B in the simulator on the Mooncake
 * conversation trace (docs/sim.md): the `kvmgr-default` scheduler pipeline (prefix-aware order
 * with a starvation guard, late requests behind on-time ones, admission by the p90 predicted
 * footprint, SLO-aware victims), prefix-affinity plus predicted-latency routing (`pa:1,pl:3`), the
 * `adaptive` prefix eviction policy (it follows whichever of LRU/LFU/ARC/GDSF/S3-FIFO/predictive
 * leads on the traffic it sees: LFU, the earlier default, won on the Mooncake trace but lost a
 * fifth of the hit rate on multi-turn chat — issue #20), an EWMA output-length predictor. Same
 * hardware and memory as vLLM: no CPU tier.
 */
export const KVMGR_DEFAULT_PROFILE: EngineProfile = Object.freeze({
  name: 'kvmgr-default',
  engine: 'kvmgr',
  description: 'kvmgr: kvmgr-default scheduler pipeline, prefix-affinity + predicted-latency routing, adaptive prefix eviction',
  blockSize: 16,
  tokenBudget: 8192,
  maxSeqs: 1024,
  cacheEviction: 'adaptive',
  scheduler: 'kvmgr-default',
  victimSelector: 'slo-aware',
  lifetimePredictor: 'ewma',
  router: 'pa:1,pl:3',
  cpuOffloadGiB: 0,
  gpuMemoryUtilization: 0.9,
});

/**
 * `kvmgr-default` plus a 200 GiB host-memory KV tier per instance: evicted prefixes are
 * offloaded to CPU and reloaded on a hit (transfer time charged). Uses memory vLLM's defaults
 * leave idle, so it is a separate, opt-in profile.
 */
export const KVMGR_OFFLOAD_PROFILE: EngineProfile = Object.freeze({
  ...KVMGR_DEFAULT_PROFILE,
  name: 'kvmgr-offload',
  description: 'kvmgr-default + 200 GiB CPU KV tier per instance (offload evicted prefixes, reload on hit)',
  cpuOffloadGiB: 200,
});

/**
 * Every built-in profile by name, in the order `kvmgr list profiles` prints them: `vllm-default`,
 * `vllm-small-gpu`, `sglang-default`, `kvmgr-default`, `kvmgr-offload`, `tgi-default`,
 * `lmdeploy-default`.
 */
export const ENGINE_PROFILES: Readonly<Record<string, EngineProfile>> = Object.freeze({
  ...VLLM_PROFILES,
  [SGLANG_DEFAULT_PROFILE.name]: SGLANG_DEFAULT_PROFILE,
  [KVMGR_DEFAULT_PROFILE.name]: KVMGR_DEFAULT_PROFILE,
  [KVMGR_OFFLOAD_PROFILE.name]: KVMGR_OFFLOAD_PROFILE,
  [TGI_DEFAULT_PROFILE.name]: TGI_DEFAULT_PROFILE,
  [LMDEPLOY_DEFAULT_PROFILE.name]: LMDEPLOY_DEFAULT_PROFILE,
});

/**
 * Looks up a built-in profile by name (own keys only: `toString` is not a profile).
 * @param name - a key of {@link ENGINE_PROFILES}, e.g. `vllm-default`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` `unknown profile "x"; known: …` listing the names.
 */
export function getEngineProfile(name: string): EngineProfile {
  const p = Object.hasOwn(ENGINE_PROFILES, name) ? ENGINE_PROFILES[name] : undefined;
  if (p === undefined) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `unknown profile ${JSON.stringify(name)}; known: ${Object.keys(ENGINE_PROFILES).join(', ')}`, {
      details: { field: 'profile', value: name },
    });
  }
  return p;
}
