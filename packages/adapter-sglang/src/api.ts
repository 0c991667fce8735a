/**
 * How SGLang's HTTP API differs from vLLM's, for the gateway and the engine server. The OpenAI
 * routes (`/v1/completions`, `/v1/chat/completions`, SSE ending `data: [DONE]`) take the same
 * bodies as vLLM's (`@kvmgr/adapter-vllm` `CompletionRequestSchema`, …), with these differences:
 *
 * - Native route `POST /generate`: `{ text | input_ids, sampling_params: { max_new_tokens,
 *   temperature, top_p, stop, … }, stream, return_logprob, rid }`. `input_ids` is SGLang's
 *   token-id prompt (vLLM takes token ids in `prompt`). Streaming sends `data: {text, meta_info}`
 *   events with the text so far (cumulative, not a delta), ending `data: [DONE]`.
 * - `meta_info` carries `prompt_tokens`, `completion_tokens`, `cached_tokens` (prefix-cache hit,
 *   vLLM's `usage.prompt_tokens_details.cached_tokens`) and `finish_reason: {type: "stop" |
 *   "length" | "abort", matched?}` (an object, where vLLM has a string).
 * - P/D disaggregation uses `bootstrap_host`, `bootstrap_port`, `bootstrap_room` on both legs
 *   (Mooncake/NIXL transfer through a bootstrap server), not vLLM's `kv_transfer_params`.
 * - `/flush_cache` resets the radix cache (vLLM: `/reset_prefix_cache`); `/get_server_info`
 *   reports `max_total_num_tokens`, `page_size` and the scheduler's settings.
 *
 * @see sgl-project/sglang:python/sglang/srt/managers/io_struct.py (GenerateReqInput)
 * @see sgl-project/sglang:python/sglang/srt/entrypoints/http_server.py
 */

/** Sampling parameters of SGLang's native `/generate` (subset kvmgr reads; others pass through). */
export interface SglangSamplingParams {
  /** @default 128 */
  readonly max_new_tokens?: number;
  readonly temperature?: number;
  readonly top_p?: number;
  readonly stop?: string | readonly string[];
  readonly ignore_eos?: boolean;
  readonly [key: string]: unknown;
}

/** Body of SGLang's native `POST /generate`: exactly one of `text` and `input_ids`. */
export interface SglangGenerateRequest {
  readonly text?: string | readonly string[];
  /** Token ids of the prompt (or one list per prompt). */
  readonly input_ids?: readonly number[] | readonly (readonly number[])[];
  readonly sampling_params?: SglangSamplingParams;
  readonly stream?: boolean;
  /** Request id. */
  readonly rid?: string;
  readonly bootstrap_host?: string;
  readonly bootstrap_port?: number;
  readonly bootstrap_room?: number;
  readonly [key: string]: unknown;
}

/** `meta_info` of a `/generate` response or stream event. */
export interface SglangMetaInfo {
  readonly id: string;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  /** Prompt tokens served from the radix cache. */
  readonly cached_tokens?: number;
  readonly finish_reason?: { readonly type: 'stop' | 'length' | 'abort'; readonly matched?: string | number | null } | null;
  readonly [key: string]: unknown;
}

/**
 * Translates an OpenAI `/v1/completions` prompt and `max_tokens` into SGLang's native
 * `/generate` body: strings go to `text`, token ids to `input_ids`.
 *
 * @param prompt - a string, token ids, strings, or token-id arrays.
 * @param maxTokens - `max_tokens` → `sampling_params.max_new_tokens` (omitted when undefined).
 */
export function toSglangGenerate(prompt: string | readonly string[] | readonly number[] | readonly (readonly number[])[], maxTokens?: number): SglangGenerateRequest {
  const sampling_params: SglangSamplingParams = maxTokens === undefined ? {} : { max_new_tokens: maxTokens };
  const isText = typeof prompt === 'string' || (prompt.length > 0 && typeof prompt[0] === 'string');
  return isText
    ? { text: prompt as string | readonly string[], sampling_params }
    : { input_ids: prompt as readonly number[] | readonly (readonly number[])[], sampling_params };
}
