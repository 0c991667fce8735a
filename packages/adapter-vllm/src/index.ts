/**
 * @kvmgr/adapter-vllm — vLLM: engine profiles as data, KV events over ZMQ + msgpack (both ways),
 * metrics scraping and exposition, the OpenAI API shapes vLLM serves, and the schedule lowering
 * to vLLM's `SchedulerOutput`.
 */
export { VLLM_DEFAULT_PROFILE, VLLM_SMALL_GPU_PROFILE } from './profiles.js';
export { VLLM_PROFILES } from './registry.js';
export { vllmLowering } from './lowering.js';
export type { VllmCachedRequestData, VllmNewRequestData, VllmSchedulerOutput } from './lowering.js';
export { mapVllmMetrics, readVllmCacheConfig } from './metrics.js';
export type { VllmCacheConfig } from './metrics.js';
export {
  createVllmMetricsRegistry,
  setVllmCacheConfig,
  VLLM_TTFT_BUCKETS_S,
  VLLM_ITL_BUCKETS_S,
  VLLM_REQUEST_LATENCY_BUCKETS_S,
  VLLM_ITERATION_TOKENS_BUCKETS,
} from './exposition.js';
export type { VllmMetrics, VllmMetricsRegistryOptions, VllmCacheConfigInfo, VllmLabel } from './exposition.js';
export {
  KvTransferParamsSchema,
  StreamOptionsSchema,
  CompletionPromptSchema,
  CompletionRequestSchema,
  ChatContentPartSchema,
  ChatMessageSchema,
  ChatToolSchema,
  ChatToolsSchema,
  ChatTemplateKwargsSchema,
  ChatTemplateFields,
  chatTemplateFieldsCheck,
  ChatCompletionRequestSchema,
  UsageSchema,
  CompletionResponseSchema,
  ChatCompletionResponseSchema,
  CompletionChunkSchema,
  ChatCompletionChunkSchema,
} from './openai-api.js';
export type {
  KvTransferParams,
  CompletionPrompt,
  CompletionRequest,
  ChatContentPart,
  ChatMessage,
  ChatTool,
  ChatCompletionRequest,
  Usage,
  CompletionResponse,
  ChatCompletionResponse,
  CompletionChunk,
  ChatCompletionChunk,
} from './openai-api.js';
export { openAiError, openAiErrorType, zodErrorToOpenAi, parseOpenAiRequest, formatIssuePath } from './openai-api-errors.js';
export type { OpenAiErrorInfo, OpenAiErrorBody, OpenAiErrorResponse, OpenAiParseResult } from './openai-api-errors.js';
export { SSE_DONE, formatSseChunk, parseSseStream } from './openai-api-sse.js';
export { pythonJsonDumps, jinjaTrim, templateTools } from './chat-tools.js';
export { markRequestToolsJson } from './json-marks.js';
export { CONTINUE_FINAL_MESSAGE_TAG, ChatTemplateError, type RenderChatResult, chatPromptOr400, renderChatOr400 } from './chat-template-kwargs.js';
export type { ChatRenderOptions } from './chat-template-kwargs.js';
export type { TemplateTool } from './chat-tools.js';
export { LLAMA3_BOS_TOKEN_ID, encodeText, decodeTokens, decodeToken, renderChatTemplate, chatPromptTokenIds, completionPromptTokenIds, tokenizerCacheStats } from './tokenizer.js';
export type { Llama3ChatTemplate } from './tokenizer.js';
export { CachedLlama3Encoder } from './tokenizer-cache.js';
export { DEFAULT_TOKENIZER, TOKENIZER_NAMES, getTokenizer, tokenizerNameForModel, resolveTokenizer } from './tokenizers.js';
export type { Tokenizer, TokenizerName } from './tokenizers.js';
export { CachedQwenEncoder, QWEN_TEXT_VOCAB_SIZE, QWEN_ADDED_TOKENS, renderQwenChat } from './tokenizer-qwen.js';
export type { QwenVariant } from './tokenizer-qwen.js';
export type { CachedLlama3EncoderOptions, TokenizerCacheStats } from './tokenizer-cache.js';
export type { ParseSseOptions } from './openai-api-sse.js';
export { KvEventDecoder } from './kv-events/decode.js';
export type { KvEventMessageFrames, KvEventBatchInfo } from './kv-events/decode.js';
export type { CompactKvEvents } from './kv-events/compact-events.js';
export { KvEventEncoder } from './kv-events/encode.js';
export type { KvEventEncoding, KvEventEncoderOptions } from './kv-events/encode.js';
export { REPLAY_END_SEQ, encodeSeq, decodeSeq } from './kv-events/wire.js';
export { endpointBinds, endpointForDpRank, requireEndpoint } from './kv-events/endpoint.js';
export { KvEventPublisher } from './kv-events/publisher.js';
export type { KvEventPublisherOptions } from './kv-events/publisher.js';
export { KvEventSubscriber } from './kv-events/subscriber.js';
export type {
  KvEventSource,
  KvEventDelivery,
  KvEventSubscriberOptions,
  KvEventSubscriberStats,
  KvEventEndpointStats,
  KvEventSourceStats,
  KvEventSubscriberLogger,
} from './kv-events/subscriber.js';
export { EngineKeyMap } from './kv-events/engine-key-map.js';
export type { EngineKeyMapOptions, EngineKeyMapStats } from './kv-events/engine-key-map.js';
export { vllmNoneHash, vllmSha256CborBlockHash, vllmSha256CborBlockHashes, vllmEventHash } from './kv-events/key-vllm.js';
export { sglangBlockHash, sglangBlockHashes, sglangEventHash } from './kv-events/key-sglang.js';
export { DynamoBlockHasher, DYNAMO_XXH3_SEED } from './kv-events/key-dynamo.js';
export { encodeCanonicalCbor } from './kv-events/cbor.js';
