import type { EngineProfile } from '@kvmgr/core';
import { KVMGR_DEFAULT_PROFILE, KVMGR_OFFLOAD_PROFILE, SGLANG_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE, VLLM_SMALL_GPU_PROFILE } from './profiles.js';

/** Every profile this adapter publishes, by name. */
export const VLLM_PROFILES: Readonly<Record<string, EngineProfile>> = Object.freeze({
  [VLLM_DEFAULT_PROFILE.name]: VLLM_DEFAULT_PROFILE,
  [VLLM_SMALL_GPU_PROFILE.name]: VLLM_SMALL_GPU_PROFILE,
  [SGLANG_DEFAULT_PROFILE.name]: SGLANG_DEFAULT_PROFILE,
  [KVMGR_DEFAULT_PROFILE.name]: KVMGR_DEFAULT_PROFILE,
  [KVMGR_OFFLOAD_PROFILE.name]: KVMGR_OFFLOAD_PROFILE,
});
