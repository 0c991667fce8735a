/**
 * `/v1/completions` and `/v1/chat/completions` bodies → one engine request, checked the way vLLM
 * checks them (schema from `@kvmgr/adapter-vllm`, then the served model, `n`, and the context
 * length). Pure: nothing here touches the engine, so a refused request changes no state.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_engine.py (`_validate_input`, `_check_model`)
 */
import {
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  type CompletionRequest,
  CompletionRequestSchema,
  type KvTransferParams,
  type OpenAiErrorResponse,
  type Tokenizer,
  DEFAULT_TOKENIZER,
  getTokenizer,
  openAiError,
  parseOpenAiRequest,
  chatPromptOr400,
} from '@kvmgr/adapter-vllm';

/** Token ids at or above this are outside Llama 3's vocabulary. */
export const LLAMA3_VOCAB_SIZE = 128_256;

/** A validated generation request. */
export interface GenerationRequest {
  readonly kind: 'completion' | 'chat';
  /** The model name to answer with (the request's, else the served name). */
  readonly model: string;
  readonly promptTokenIds: readonly number[];
  readonly maxTokens: number;
  readonly minTokens: number;
  readonly stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `usage` and no choices. */
  readonly includeUsage: boolean;
  /** `stream_options.continuous_usage_stats`: `usage` on every chunk (vLLM). */
  readonly continuousUsage: boolean;
  /** Completions' `echo`: the prompt's text precedes the output. */
  readonly echo: boolean;
  /** Finish with `stop` on these (vLLM's `stop_token_ids`); empty unless given. */
  readonly stopTokenIds: readonly number[];
  readonly kvTransferParams: KvTransferParams | undefined;
}

/** What the checks need to know about the server. */
export interface RequestContext {
  /** Names the server answers to (the first is the served model name). */
  readonly modelNames: readonly string[];
  /** Context length, tokens (prompt + output). */
  readonly maxModelLen: number;
  /** The model's tokenizer (prompts, chat template, vocabulary size). @default Llama 3's */
  readonly tokenizer?: Tokenizer;
}

/** Either the request or the error response to send. */
export type ParsedGeneration = { readonly ok: true; readonly value: GenerationRequest } | { readonly ok: false; readonly error: OpenAiErrorResponse };

const bad = (message: string, param: string | null = null, code = 'invalid_value'): ParsedGeneration => ({ ok: false, error: openAiError(400, message, { param, code }) });

function stopTokenIdsOf(body: Record<string, unknown>): number[] | string {
  const v = body['stop_token_ids'];
  if (v == null) return [];
  if (!Array.isArray(v) || !v.every((t) => Number.isInteger(t) && t >= 0)) return 'stop_token_ids: expected an array of token ids';
  return v as number[];
}

/** What the schema sees in place of a prompt {@link tokenIdPrompt} already checked. */
const STAND_IN_PROMPT: readonly number[] = Object.freeze([0]);

/**
 * The body's `prompt` when it is a non-empty array of token ids (non-negative integers, what
 * safe integers, what the schema's `z.array(TokenId).min(1)` accepts), else null (left to the schema).
 */
function tokenIdPrompt(body: unknown): number[] | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const p = (body as { prompt?: unknown }).prompt;
  if (!Array.isArray(p) || p.length === 0) return null;
  for (let i = 0; i < p.length; i++) {
    const t = p[i];
    if (!(typeof t === 'number' && Number.isSafeInteger(t) && t >= 0)) return null;
  }
  return p as number[];
}

const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isNumberIn = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
const isString = (v: unknown): boolean => typeof v === 'string';
const isBoolean = (v: unknown): boolean => typeof v === 'boolean';
/** Declines: the field takes the schema path (nested objects such as `kv_transfer_params`). */
const viaSchema = (): boolean => false;

function isStreamOptions(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const k in v) {
    if ((k === 'include_usage' || k === 'continuous_usage_stats') && typeof (v as Record<string, unknown>)[k] !== 'boolean') return false;
  }
  return true;
}

/** A chat message of a role and a string content (and optional string `name` / `tool_call_id`). */
function isPlainMessage(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const m = v as Record<string, unknown>;
  const role = m['role'];
  if (!(role === 'system' || role === 'developer' || role === 'user' || role === 'assistant' || role === 'tool')) return false;
  for (const k in m) {
    const x = m[k];
    if (k === 'content' || k === 'name' || k === 'tool_call_id') {
      if (typeof x !== 'string') return false;
    } else if (k === 'tool_calls') return false;
  }
  return true;
}

/** Fields of both request schemas (`sampling` in adapter-vllm's openai-api.ts), with the exact test each schema applies to a non-null value. */
const SAMPLING_CHECKS: Readonly<Record<string, (v: unknown) => boolean>> = {
  model: isString,
  max_tokens: isCount,
  temperature: (v) => isNumberIn(v, 0, Number.POSITIVE_INFINITY),
  top_p: (v) => isNumberIn(v, 0, 1) && (v as number) > 0,
  n: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
  seed: (v) => Number.isSafeInteger(v),
  stop: (v) => typeof v === 'string' || (Array.isArray(v) && v.every(isString)),
  stream: isBoolean,
  stream_options: isStreamOptions,
  presence_penalty: (v) => isNumberIn(v, -2, 2),
  frequency_penalty: (v) => isNumberIn(v, -2, 2),
  user: isString,
  ignore_eos: isBoolean,
  min_tokens: isCount,
  kv_transfer_params: viaSchema,
};

/**
 * Per endpoint, every field its schema models (unknown fields pass through the schema unchecked),
 * with the test the schema applies to a value that is not null. `prompt` is checked by
 * {@link tokenIdPrompt}; `messages` element by element.
 */
export const PLAIN_FIELD_CHECKS: Readonly<Record<'completion' | 'chat', Readonly<Record<string, (v: unknown) => boolean>>>> = {
  completion: { ...SAMPLING_CHECKS, prompt: () => true, echo: isBoolean, logprobs: isCount, suffix: isString },
  chat: {
    ...SAMPLING_CHECKS,
    messages: (v) => Array.isArray(v) && v.length > 0 && v.every(isPlainMessage),
    max_completion_tokens: isCount,
    logprobs: isBoolean,
    top_logprobs: isCount,
    // the request's tools are validated and reshaped by the schema (ChatToolSchema)
    tools: viaSchema,
    tool_choice: viaSchema,
    add_generation_prompt: isBoolean,
    // true is checked against add_generation_prompt by the schema (vLLM refuses both)
    continue_final_message: (v) => v === false,
    // keys vLLM refuses (`tokenize`, `chat_template`, …) are the schema's to report
    chat_template_kwargs: viaSchema,
  },
};

/**
 * The checks by field, with every field the schema models but the table lacks declined: a field
 * added to a schema later takes the schema path until it gets a check here (the test that the
 * table and the schemas list the same fields says so too).
 */
const FIELD_CHECKS: Readonly<Record<'completion' | 'chat', ReadonlyMap<string, (v: unknown) => boolean>>> = {
  completion: checksFor(Object.keys(CompletionRequestSchema.shape), PLAIN_FIELD_CHECKS.completion),
  chat: checksFor(Object.keys(ChatCompletionRequestSchema.shape), PLAIN_FIELD_CHECKS.chat),
};

function checksFor(modelled: readonly string[], table: Readonly<Record<string, (v: unknown) => boolean>>): ReadonlyMap<string, (v: unknown) => boolean> {
  const m = new Map<string, (v: unknown) => boolean>();
  for (const k of modelled) m.set(k, table[k] ?? viaSchema);
  return m;
}

/**
 * Whether the schema would accept `body` as it is and return it unchanged (the same fields with
 * the same values): every modelled field holds a plain value its schema accepts. Null values,
 * nested P/D parameters, tool calls and content parts are left to the schema (false), as is
 * anything it would refuse, so errors keep their exact messages. A completion's `prompt` must
 * already have passed {@link tokenIdPrompt}. Skipping the schema for such bodies saves the zod
 * walk (and its copies of the body) on every request of a benchmark or gateway.
 */
export function isPlainRequest(kind: 'completion' | 'chat', body: Record<string, unknown>): boolean {
  const checks = FIELD_CHECKS[kind];
  for (const k in body) {
    const check = checks.get(k);
    if (check !== undefined && !check(body[k])) return false;
  }
  return kind === 'completion' || 'messages' in body;
}

/**
 * Validates a body and turns it into a {@link GenerationRequest}.
 *
 * @param kind - which endpoint received it.
 * @param body - the decoded JSON body.
 * @param ctx - served model names and context length.
 * @param bodyText - the body's JSON text, which `body` was parsed from: a chat request's `tools`
 *   and `chat_template_kwargs` are rendered with its number types and key order (`1.0` stays a
 *   float, as vLLM's `json.loads` reads it). Unused for a request with neither.
 * @returns the request, or an OpenAI error: 400 for a schema violation, `n` > 1, several prompts,
 *   an empty prompt, a token id outside the vocabulary, `max_tokens` < 1, `min_tokens` >
 *   `max_tokens`, or prompt + `max_tokens` beyond the context; 404 for an unknown model (as vLLM).
 */
export function parseGenerationRequest(kind: 'completion' | 'chat', body: unknown, ctx: RequestContext, bodyText?: string): ParsedGeneration {
  // A completion prompt of token ids (what benchmarks and gateways send) is checked in one loop
  // instead of element by element through the schema (the schema's walk over a 13k-token prompt
  // costs about a millisecond); the rest of the body still goes through the schema, with a
  // one-token stand-in prompt, so every other field is checked and reported exactly as before.
  // Any other prompt, valid or not, takes the schema path (the same errors as before).
  // A body whose fields are all plain values the schema accepts as they are skips the schema: it
  // would return the same fields with the same values (`isPlainRequest`).
  const ids = kind === 'completion' ? tokenIdPrompt(body) : null;
  let r: CompletionRequest | ChatCompletionRequest;
  if ((kind === 'chat' || ids !== null) && typeof body === 'object' && body !== null && !Array.isArray(body) && isPlainRequest(kind, body as Record<string, unknown>)) {
    r = body as CompletionRequest | ChatCompletionRequest;
  } else {
    const parsed =
      kind === 'completion'
        ? parseOpenAiRequest(CompletionRequestSchema, ids === null ? body : { ...(body as Record<string, unknown>), prompt: STAND_IN_PROMPT })
        : parseOpenAiRequest(ChatCompletionRequestSchema, body);
    if (!parsed.ok) return parsed;
    r = parsed.value;
  }
  const served = ctx.modelNames[0] ?? '';
  if (r.model != null && !ctx.modelNames.includes(r.model)) {
    return { ok: false, error: openAiError(404, `The model \`${r.model}\` does not exist.`, { param: 'model', code: 'model_not_found' }) };
  }
  if (r.n != null && r.n > 1) return bad(`n: only n=1 is supported by the kvmgr engine server, got ${r.n}`, 'n');
  const tok = ctx.tokenizer ?? getTokenizer(DEFAULT_TOKENIZER);
  let prompt: number[];
  if (kind === 'completion') {
    const prompts = ids !== null ? [ids] : tok.completionPromptTokenIds((r as { prompt: Parameters<Tokenizer['completionPromptTokenIds']>[0] }).prompt);
    if (prompts.length !== 1) return bad(`prompt: expected one prompt, got ${prompts.length} (batched prompts are not supported)`, 'prompt');
    prompt = prompts[0] as number[];
  } else {
    const chat = r as ChatCompletionRequest;
    // the body text is read only for a request with tools or template variables (no plain request)
    const rendered = chatPromptOr400(tok, chat, bodyText);
    if (!rendered.ok) return rendered;
    prompt = rendered.value;
  }
  if (prompt.length === 0) return bad('prompt: expected at least one token', 'prompt');
  const vocab = tok.vocabSize;
  const oov = prompt.find((t) => t >= vocab);
  if (oov !== undefined) return bad(`prompt: token id ${oov} is out of vocabulary (size ${vocab})`, 'prompt');
  const stop = stopTokenIdsOf(r as Record<string, unknown>);
  if (typeof stop === 'string') return bad(stop, 'stop_token_ids');
  const room = ctx.maxModelLen - prompt.length;
  let maxTokens: number;
  if (kind === 'completion') maxTokens = r.max_tokens ?? 16;
  else {
    const a = r.max_tokens ?? undefined;
    const b = (r as { max_completion_tokens?: number | null }).max_completion_tokens ?? undefined;
    maxTokens = a !== undefined && b !== undefined ? Math.min(a, b) : (a ?? b ?? room);
  }
  if (room < 1) {
    return bad(`This model's maximum context length is ${ctx.maxModelLen} tokens. However, your request has ${prompt.length} input tokens. Please reduce the length of the input.`, 'prompt', 'context_length_exceeded');
  }
  if (maxTokens < 1) return bad(`max_tokens: expected at least 1, got ${maxTokens}`, 'max_tokens');
  if (prompt.length + maxTokens > ctx.maxModelLen) {
    return bad(
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, you requested ${prompt.length + maxTokens} tokens (${prompt.length} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  const minTokens = r.min_tokens ?? 0;
  if (minTokens > maxTokens) return bad(`min_tokens: expected at most max_tokens (${maxTokens}), got ${minTokens}`, 'min_tokens');
  const stream = r.stream ?? false;
  return {
    ok: true,
    value: {
      kind,
      model: r.model ?? served,
      promptTokenIds: prompt,
      maxTokens,
      minTokens,
      stream,
      includeUsage: stream && (r.stream_options?.include_usage ?? false),
      continuousUsage: stream && (r.stream_options?.continuous_usage_stats ?? false),
      echo: kind === 'completion' && ((r as { echo?: boolean | null }).echo ?? false),
      stopTokenIds: stop,
      kvTransferParams: r.kv_transfer_params ?? undefined,
    },
  };
}
