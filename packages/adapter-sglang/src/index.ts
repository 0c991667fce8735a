/**
 * @kvmgr/adapter-sglang — SGLang: metrics scraping (`mapSglangMetrics`) and the differences of
 * SGLang's HTTP API from vLLM's (`toSglangGenerate`, `/generate` types). The `sglang-default`
 * engine profile is still published by `@kvmgr/adapter-vllm`.
 */
export { mapSglangMetrics } from './metrics.js';
export { toSglangGenerate } from './api.js';
export type { SglangGenerateRequest, SglangSamplingParams, SglangMetaInfo } from './api.js';
