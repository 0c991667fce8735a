/**
 * @kvmgr/adapter-vllm — vLLM's engine profiles as data. Wire protocols (KV events over ZMQ +
 * msgpack, metrics scraping, schedule lowering) arrive in later releases.
 */
export { VLLM_DEFAULT_PROFILE, VLLM_SMALL_GPU_PROFILE, SGLANG_DEFAULT_PROFILE, KVMGR_DEFAULT_PROFILE, KVMGR_OFFLOAD_PROFILE } from './profiles.js';
export { VLLM_PROFILES } from './registry.js';
