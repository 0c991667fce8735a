/**
 * @kvmgr/engine-server — a vLLM-compatible inference server driven by the kvmgr engine core on
 * the wall clock: vLLM's OpenAI HTTP API, `/metrics` with vLLM's names, and KV events over ZMQ in
 * vLLM's wire format (`kvmgr engine`).
 */
export { createEngineServer } from './server.js';
export type { EngineServer, EngineServerOptions } from './server.js';
export type { RequestTiming } from './generation.js';
export { RealtimeDriver } from './realtime-driver.js';
export type { RealtimeDriverOptions, RealtimeDriverStats, RequestSink, DriverStep } from './realtime-driver.js';
export { parseKvEventsConfig, KvEventsConfigSchema } from './kv-events-config.js';
export type { KvEventsConfig } from './kv-events-config.js';
export { parseGenerationRequest, LLAMA3_VOCAB_SIZE } from './openai-requests.js';
export type { GenerationRequest, ParsedGeneration, RequestContext } from './openai-requests.js';
export { IncrementalDetokenizer } from './detokenizer.js';
export { EngineMetricsExporter } from './engine-metrics.js';
export type { EngineMetricsExporterOptions } from './engine-metrics.js';
export type { PdOptions } from './pd.js';
