/**
 * The OpenAI API as vLLM serves it, as zod schemas shared by kvmgr's engine server and gateway:
 * `/v1/completions` and `/v1/chat/completions` requests, responses and streaming chunks, `usage`
 * with `prompt_tokens_details.cached_tokens`, and vLLM's `kv_transfer_params` for P/D
 * disaggregation.
 *
 * Requests are loose objects: fields kvmgr does not model (vLLM's sampling extensions such as
 * `top_k`, `min_p`, `repetition_penalty`, `guided_json`, …) pass through unchanged, as vLLM's
 * pydantic models accept them, so a gateway forwards them to the engine. The fields modelled here
 * are checked with vLLM's bounds.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/protocol.py
 * @see vllm-project/vllm:vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py (kv_transfer_params)
 */
import { z } from 'zod';
import { chatTemplateFieldsProblem } from './chat-template-kwargs.js';

/** A token id: a non-negative integer. */
const TokenId = z.number({ error: 'expected a token id (non-negative integer)' }).int('expected a token id (non-negative integer)').nonnegative('expected a token id (non-negative integer)');

/**
 * P/D disaggregation parameters (vLLM KV connectors, NIXL): on the prefill leg the client sends
 * `{do_remote_decode: true}`; the prefill engine answers with `do_remote_prefill: true`, its
 * `remote_engine_id`, `remote_block_ids`, `remote_host` and `remote_port`, which the client sends
 * on the decode leg. Unknown keys (connector-specific) pass through.
 */
export const KvTransferParamsSchema = z.looseObject({
  do_remote_decode: z.boolean().optional(),
  do_remote_prefill: z.boolean().optional(),
  remote_engine_id: z.string().nullish(),
  /** Block ids on the remote engine; one list per KV cache group in hybrid models. */
  remote_block_ids: z.union([z.array(TokenId), z.array(z.array(TokenId))], { error: 'expected an array of block ids (or one array per KV cache group)' }).nullish(),
  remote_host: z.string().nullish(),
  remote_port: z.number().int().min(0).max(65535).nullish(),
  remote_request_id: z.string().nullish(),
});
export type KvTransferParams = z.infer<typeof KvTransferParamsSchema>;

/** `stream_options` (only meaningful with `stream: true`). */
export const StreamOptionsSchema = z.looseObject({
  /** Send a final chunk with `usage` and empty `choices`. */
  include_usage: z.boolean().nullish(),
  /** vLLM: `usage` on every chunk. */
  continuous_usage_stats: z.boolean().nullish(),
});

/** `prompt` of `/v1/completions`: a string, a token-id array, a list of strings, or a list of token-id arrays. */
export const CompletionPromptSchema = z.union([z.string(), z.array(TokenId).min(1), z.array(z.string()).min(1), z.array(z.array(TokenId).min(1)).min(1)], {
  error: 'expected a string, an array of token ids, an array of strings, or an array of token-id arrays',
});
export type CompletionPrompt = z.infer<typeof CompletionPromptSchema>;

/**
 * Token ids of each prompt of a `/v1/completions` request, whatever its shape: a string is
 * encoded with `encodePrompt` (which adds the tokenizer's BOS, if any); a token-id array is used
 * as it is; a list gives one entry per prompt.
 *
 * @param prompt - the request's `prompt`.
 * @param encodePrompt - a text prompt's ids, as vLLM's completion path tokenises it.
 * @returns one token-id array per prompt (length 1 unless the request is a batch).
 */
export function completionPromptIds(prompt: CompletionPrompt, encodePrompt: (text: string) => number[]): number[][] {
  if (typeof prompt === 'string') return [encodePrompt(prompt)];
  if (prompt.length === 0) return [];
  if (typeof prompt[0] === 'number') return [prompt as number[]];
  return (prompt as (string | number[])[]).map((p) => (typeof p === 'string' ? encodePrompt(p) : p));
}

/** `stop`: one string or up to several. */
const Stop = z.union([z.string(), z.array(z.string())], { error: 'expected a string or an array of strings' }).nullish();

/** Sampling fields shared by both endpoints (vLLM's bounds). */
const sampling = {
  /** Model name; vLLM uses the served model when omitted. */
  model: z.string().nullish(),
  /** @default vLLM: 16 for completions, up to the context for chat */
  max_tokens: z.number().int().nonnegative().nullish(),
  /** @default 1 (vLLM: the model's generation config) */
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.number().int().min(1).nullish(),
  seed: z.number().int().nullish(),
  stop: Stop,
  stream: z.boolean().nullish(),
  stream_options: StreamOptionsSchema.nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  user: z.string().nullish(),
  /** vLLM extension. */
  ignore_eos: z.boolean().nullish(),
  /** vLLM extension. */
  min_tokens: z.number().int().nonnegative().nullish(),
  /** vLLM extension: P/D parameters. */
  kv_transfer_params: KvTransferParamsSchema.nullish(),
} as const;

/** `POST /v1/completions` body. Unknown fields pass through. */
export const CompletionRequestSchema = z.looseObject({
  ...sampling,
  prompt: CompletionPromptSchema,
  echo: z.boolean().nullish(),
  /** Number of log probabilities per token, 0..20 in OpenAI (vLLM allows more). */
  logprobs: z.number().int().nonnegative().nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** A content part of a chat message (`text`, `image_url`, `input_audio`, vLLM's `video_url`). */
export const ChatContentPartSchema = z.discriminatedUnion(
  'type',
  [
    z.looseObject({ type: z.literal('text'), text: z.string() }),
    z.looseObject({ type: z.literal('image_url'), image_url: z.looseObject({ url: z.string(), detail: z.enum(['auto', 'low', 'high']).optional() }) }),
    z.looseObject({ type: z.literal('input_audio'), input_audio: z.looseObject({ data: z.string(), format: z.string() }) }),
    z.looseObject({ type: z.literal('video_url'), video_url: z.looseObject({ url: z.string() }) }),
  ],
  { error: 'expected a content part with type "text", "image_url", "input_audio" or "video_url"' },
);
export type ChatContentPart = z.infer<typeof ChatContentPartSchema>;

/** A chat message: `content` is a string or an array of content parts (null for an assistant turn with tool calls). */
export const ChatMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(ChatContentPartSchema)], { error: 'expected a string or an array of content parts' }).nullish(),
  name: z.string().optional(),
  tool_call_id: z.string().optional(),
  tool_calls: z.array(z.looseObject({ id: z.string(), type: z.literal('function'), function: z.looseObject({ name: z.string(), arguments: z.string() }) })).optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/**
 * A tool of a chat request, as vLLM's `ChatCompletionToolsParam`: `{type: "function", function:
 * {name, description?, parameters?}}` (`type` defaults to `"function"`; `parameters` a JSON-schema
 * object; extra fields kept). The chat templates write each one into the prompt.
 */
export const ChatToolSchema = z.looseObject({
  type: z.literal('function', { error: 'expected type "function"' }).optional(),
  function: z.looseObject(
    {
      name: z.string({ error: 'expected a function name (string)' }),
      description: z.string({ error: 'expected a string' }).nullish(),
      parameters: z.record(z.string(), z.unknown(), { error: 'expected a JSON-schema object' }).nullish(),
    },
    { error: 'expected a function object {name, description?, parameters?}' },
  ),
});
export type ChatTool = z.infer<typeof ChatToolSchema>;

/** A chat request's `tools`: an array of {@link ChatToolSchema} (null or absent: no tools). */
export const ChatToolsSchema = z.array(ChatToolSchema, { error: 'expected an array of tools' }).min(1, 'expected at least one tool (vLLM refuses an empty array: leave tools out)').nullish();

/**
 * A chat request's `chat_template_kwargs`: extra variables for the chat template (an object; null
 * or absent: none). Keys vLLM refuses are checked by {@link ChatCompletionRequestSchema}; which
 * keys a template reads, by each renderer.
 */
export const ChatTemplateKwargsSchema = z.record(z.string(), z.unknown(), { error: 'expected an object of chat template variables' }).nullish();

/**
 * `add_generation_prompt` / `continue_final_message`: booleans (vLLM's pydantic fields are `bool`,
 * so null is refused too).
 */
const TemplateFlag = z.boolean({ error: 'expected a boolean' }).optional();

/**
 * The chat-template fields of a chat request (vLLM's `ChatCompletionRequest` and its `/tokenize`
 * chat form): `chat_template_kwargs`, `add_generation_prompt`, `continue_final_message`. Use with
 * {@link chatTemplateFieldsCheck} on the object, which refuses the combinations vLLM refuses.
 */
export const ChatTemplateFields = {
  /** vLLM extension: extra chat-template variables (Qwen3's `enable_thinking`, Llama's `date_string`, …). */
  chat_template_kwargs: ChatTemplateKwargsSchema,
  /** vLLM extension: end the prompt with the assistant header. @default true */
  add_generation_prompt: TemplateFlag,
  /** vLLM extension: leave the final message open for the model to continue (needs `add_generation_prompt: false`). @default false */
  continue_final_message: TemplateFlag,
} as const;

/** `POST /v1/chat/completions` body. Unknown fields pass through. */
export const ChatCompletionRequestSchema = z.looseObject({
  ...sampling,
  messages: z.array(ChatMessageSchema).min(1, 'expected at least one message'),
  /** Tools the model may call: rendered into the prompt by the chat template (even with `tool_choice: "none"`, as vLLM). */
  tools: ChatToolsSchema,
  /** `"none"`, `"auto"`, `"required"` or `{type: "function", function: {name}}`: passed through to the engine. */
  tool_choice: z.unknown().optional(),
  /** OpenAI's newer name of `max_tokens`; vLLM takes the smaller when both are set. */
  max_completion_tokens: z.number().int().nonnegative().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().nonnegative().nullish(),
  ...ChatTemplateFields,
}).check(chatTemplateFieldsCheck);
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

/** The chat-template fields vLLM refuses whatever the model (`chatTemplateFieldsProblem`) as a zod issue: `schema.check(chatTemplateFieldsCheck)`. */
export function chatTemplateFieldsCheck(ctx: z.core.ParsePayload<Record<string, unknown>>): void {
  const problem = chatTemplateFieldsProblem(ctx.value as never);
  if (problem !== undefined) ctx.issues.push({ code: 'custom', message: problem.message, path: problem.path, input: ctx.value, continue: true });
}

/** Token counts of a request. `prompt_tokens_details.cached_tokens`: prompt tokens served from the prefix cache. */
export const UsageSchema = z.looseObject({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative().nullish(),
  total_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z.looseObject({ cached_tokens: z.number().int().nonnegative().nullish() }).nullish(),
});
export type Usage = z.infer<typeof UsageSchema>;

/** Why a choice ended: `stop`, `length`, `tool_calls`, vLLM's `abort`; null while streaming. */
const FinishReason = z.string().nullable();

/** `/v1/completions` response (`object: "text_completion"`). */
export const CompletionResponseSchema = z.looseObject({
  id: z.string(),
  object: z.literal('text_completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.looseObject({
      index: z.number().int().nonnegative(),
      text: z.string(),
      logprobs: z.unknown().nullish(),
      finish_reason: FinishReason,
      /** vLLM: the stop string or token id that ended the choice. */
      stop_reason: z.union([z.string(), z.number()]).nullish(),
    }),
  ),
  usage: UsageSchema.nullish(),
  kv_transfer_params: KvTransferParamsSchema.nullish(),
});
export type CompletionResponse = z.infer<typeof CompletionResponseSchema>;

/** `/v1/chat/completions` response (`object: "chat.completion"`). */
export const ChatCompletionResponseSchema = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.looseObject({
      index: z.number().int().nonnegative(),
      message: z.looseObject({ role: z.literal('assistant'), content: z.string().nullable(), reasoning_content: z.string().nullish() }),
      logprobs: z.unknown().nullish(),
      finish_reason: FinishReason,
    }),
  ),
  usage: UsageSchema.nullish(),
  kv_transfer_params: KvTransferParamsSchema.nullish(),
});
export type ChatCompletionResponse = z.infer<typeof ChatCompletionResponseSchema>;

/** One SSE chunk of a streamed `/v1/completions`; the usage chunk has `choices: []`. */
export const CompletionChunkSchema = z.looseObject({
  id: z.string(),
  object: z.literal('text_completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(z.looseObject({ index: z.number().int().nonnegative(), text: z.string(), finish_reason: FinishReason.optional() })),
  usage: UsageSchema.nullish(),
});
export type CompletionChunk = z.infer<typeof CompletionChunkSchema>;

/** One SSE chunk of a streamed `/v1/chat/completions`; the usage chunk has `choices: []`. */
export const ChatCompletionChunkSchema = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion.chunk'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.looseObject({
      index: z.number().int().nonnegative(),
      delta: z.looseObject({ role: z.literal('assistant').optional(), content: z.string().nullish(), reasoning_content: z.string().nullish() }),
      finish_reason: FinishReason.optional(),
    }),
  ),
  usage: UsageSchema.nullish(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;

/**
 * The text of a chat message as HF chat templates see it: string content as it is, the text parts
 * of a content array joined with `\n` (other parts skipped), `''` for none.
 */
export function chatMessageText(m: ChatMessage): string {
  const c = m.content;
  if (c == null) return '';
  if (typeof c === 'string') return c;
  let out = '';
  for (const part of c) if (part.type === 'text') out += out === '' ? part.text : `\n${part.text}`;
  return out;
}
