/**
 * vLLM's engine profiles alone, as the subpath `@kvmgr/adapter-vllm/profiles`: what the simulator
 * needs from this adapter, without the package root's tokenizer (its vocabulary is decoded when
 * imported, about a second of CPU) or its ZMQ binding. The same values as the root exports (in a
 * built package, each entry holds its own copy: compare profiles by value, not identity).
 */
export { VLLM_DEFAULT_PROFILE, VLLM_SMALL_GPU_PROFILE } from './profiles.js';
export { VLLM_PROFILES } from './registry.js';
