/**
 * @kvmgr/adapter-sglang — SGLang: metrics scraping (`mapSglangMetrics`) and the differences of
 * SGLang's HTTP API from vLLM's (`toSglangGenerate`, `/generate` types), and the `sglang-default`
 * engine profile.
 */
export { SGLANG_DEFAULT_PROFILE } from './profiles.js';
export { mapSglangMetrics } from './metrics.js';
export { toSglangGenerate } from './api.js';
export type { SglangGenerateRequest, SglangSamplingParams, SglangMetaInfo } from './api.js';
