import type { EngineProfile } from '@kvmgr/core';
import { VLLM_DEFAULT_PROFILE, VLLM_SMALL_GPU_PROFILE } from './profiles.js';

/** Every vLLM profile this adapter publishes, by name (`vllm-default`, `vllm-small-gpu`). */
export const VLLM_PROFILES: Readonly<Record<string, EngineProfile>> = Object.freeze({
  [VLLM_DEFAULT_PROFILE.name]: VLLM_DEFAULT_PROFILE,
  [VLLM_SMALL_GPU_PROFILE.name]: VLLM_SMALL_GPU_PROFILE,
});
