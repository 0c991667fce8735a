/**
 * Every engine profile the CLI knows, by name: the adapters' engine facts (`@kvmgr/adapter-vllm`,
 * `-tgi`, `-lmdeploy`). The simulator keeps its own copies of `vllm-default` and `kvmgr-default`
 * for its tests; a CLI test checks that they equal the adapters'.
 */
import { LMDEPLOY_DEFAULT_PROFILE } from '@kvmgr/adapter-lmdeploy';
import { TGI_DEFAULT_PROFILE } from '@kvmgr/adapter-tgi';
import { VLLM_PROFILES } from '@kvmgr/adapter-vllm';
import { type EngineProfile, KvmgrError } from '@kvmgr/core';

/** Profiles by name. */
export const PROFILES: Readonly<Record<string, EngineProfile>> = Object.freeze({
  ...VLLM_PROFILES,
  [TGI_DEFAULT_PROFILE.name]: TGI_DEFAULT_PROFILE,
  [LMDEPLOY_DEFAULT_PROFILE.name]: LMDEPLOY_DEFAULT_PROFILE,
});

/**
 * Looks a profile up by name.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` listing the known names.
 */
export function getProfile(name: string): EngineProfile {
  const p = PROFILES[name];
  if (p === undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `unknown profile ${JSON.stringify(name)}; known: ${Object.keys(PROFILES).join(', ')}`);
  return p;
}
