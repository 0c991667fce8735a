/**
 * What the gateway needs to know about an OpenAI request before routing it: the prompt's token
 * ids (tokenised here with the model's tokenizer from adapter-vllm, as the engine does, through its exact
 * segment and pre-token caches; token-id prompts as they are), the predicted KV footprint, and the SLO fields from the headers
 * `x-slo-ttft-ms`, `x-slo-tpot-ms`, `x-slo-class`, `x-request-priority`.
 */
import { performance } from 'node:perf_hooks';
import type { SloClass, SloTargets } from '@kvmgr/core';
import type { RouteRequest } from '@kvmgr/router';
import {
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  type CompletionRequest,
  CompletionRequestSchema,
  type OpenAiErrorResponse,
  type Tokenizer,
  DEFAULT_TOKENIZER,
  getTokenizer,
  openAiError,
  parseOpenAiRequest,
  chatPromptOr400,
} from '@kvmgr/adapter-vllm';

/** The two routed OpenAI endpoints. */
export type OpenAiRoute = 'completions' | 'chat';

/** A validated request, ready to route. */
export interface RequestInfo {
  readonly route: OpenAiRoute;
  /** The body as the client sent it (unknown fields kept), forwarded as is. */
  readonly body: Readonly<Record<string, unknown>>;
  /** Token ids the prompt is routed by (the first prompt of a batch). */
  readonly tokenIds: readonly number[];
  /** Prompt tokens of all prompts. */
  readonly promptTokens: number;
  /** Output tokens reserved per prompt: `max_tokens` (or `max_completion_tokens`), else the default. */
  readonly maxTokens: number;
  /** KV tokens reserved at admission: Σ prompts (prompt + maxTokens) × n. */
  readonly footprintTokens: number;
  readonly stream: boolean;
  readonly model: string | undefined;
  readonly slo: SloTargets;
  readonly sloClass: SloClass;
  readonly priority: number;
}

/**
 * The router's view of a parsed request, arriving now: routed by its (first) prompt's token ids,
 * with its output reservation, SLO class, SLO targets and priority.
 */
export function routeRequestOf(requestId: string, info: RequestInfo): RouteRequest {
  return {
    requestId,
    arrivalUs: Math.round(performance.now() * 1000),
    promptTokenIds: info.tokenIds,
    promptTokens: info.tokenIds.length,
    maxTokens: info.maxTokens,
    priority: info.priority,
    sloClass: info.sloClass,
    slo: info.slo,
    ...(info.model === undefined ? {} : { model: info.model }),
  };
}

const SLO_CLASSES: readonly SloClass[] = ['critical', 'standard', 'batch', 'background'];

function header(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function positiveHeader(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): number | undefined | OpenAiErrorResponse {
  const raw = header(headers, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v <= 0) return openAiError(400, `header ${name}: expected a positive number of milliseconds, got ${JSON.stringify(raw)}`, { param: name, code: 'invalid_value' });
  return v;
}

/**
 * Validates and reads a request.
 *
 * @param route - which endpoint it came to.
 * @param body - the decoded JSON body.
 * @param headers - the request headers (lower-case names).
 * @param defaultMaxTokens - output tokens assumed when the body sets none.
 * @param tokenizer - the model's tokenizer (prompt keys and footprint). @default Llama 3's
 * @param bodyText - the body as received (text or UTF-8 bytes), which `body` was parsed from: a
 *   chat request's `tools` (and `chat_template_kwargs`) are rendered with the number types and key
 *   order it holds, as vLLM's `json.loads` reads them (`1.0` stays a float). Decoded only for a
 *   request with tools or template variables. Without it, they are rendered from `body` alone.
 * @returns the request's info, or the OpenAI error (400) to send.
 */
export function readRequest(
  route: OpenAiRoute,
  body: unknown,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  defaultMaxTokens: number,
  tokenizer: Tokenizer = getTokenizer(DEFAULT_TOKENIZER),
  bodyText?: string | Uint8Array,
): { ok: true; info: RequestInfo } | { ok: false; error: OpenAiErrorResponse } {
  const parsed = route === 'chat' ? parseOpenAiRequest(ChatCompletionRequestSchema, body) : parseOpenAiRequest(CompletionRequestSchema, body);
  if (!parsed.ok) return parsed;
  let prompts: readonly (readonly number[])[];
  let maxTokens: number;
  if (route === 'chat') {
    const c = parsed.value as ChatCompletionRequest;
    // a template variable kvmgr does not model is left out of the predicted prompt (the engine renders
    // the real one): routed on a near prompt rather than refused
    const rendered = chatPromptOr400(tokenizer, c, bodyText, true);
    if (!rendered.ok) return rendered;
    prompts = [rendered.value];
    const m = [c.max_tokens, c.max_completion_tokens].filter((x): x is number => typeof x === 'number');
    maxTokens = m.length === 0 ? defaultMaxTokens : Math.min(...m);
  } else {
    const c = parsed.value as CompletionRequest;
    prompts = tokenizer.completionPromptTokenIds(c.prompt);
    maxTokens = c.max_tokens ?? defaultMaxTokens;
  }
  const ttft = positiveHeader(headers, 'x-slo-ttft-ms');
  if (typeof ttft === 'object') return { ok: false, error: ttft };
  const tpot = positiveHeader(headers, 'x-slo-tpot-ms');
  if (typeof tpot === 'object') return { ok: false, error: tpot };
  const cls = header(headers, 'x-slo-class') ?? 'standard';
  if (!(SLO_CLASSES as readonly string[]).includes(cls)) {
    return { ok: false, error: openAiError(400, `header x-slo-class: expected one of ${SLO_CLASSES.join(', ')}, got ${JSON.stringify(cls)}`, { param: 'x-slo-class', code: 'invalid_value' }) };
  }
  const rawPrio = header(headers, 'x-request-priority');
  const bodyPrio = (parsed.value as Record<string, unknown>)['priority'];
  const priority = rawPrio !== undefined ? Number(rawPrio) : typeof bodyPrio === 'number' ? bodyPrio : 0;
  if (!Number.isSafeInteger(priority)) {
    return { ok: false, error: openAiError(400, `header x-request-priority: expected an integer, got ${JSON.stringify(rawPrio)}`, { param: 'x-request-priority', code: 'invalid_value' }) };
  }
  const n = typeof parsed.value.n === 'number' ? parsed.value.n : 1;
  let promptTokens = 0;
  for (const p of prompts) promptTokens += p.length;
  const slo: SloTargets = { ...(ttft === undefined ? {} : { ttftMs: ttft }), ...(tpot === undefined ? {} : { tpotMs: tpot }) };
  return {
    ok: true,
    info: {
      route,
      body: parsed.value as Record<string, unknown>,
      tokenIds: prompts[0] ?? [],
      promptTokens,
      maxTokens,
      footprintTokens: promptTokens + prompts.length * maxTokens * n,
      stream: parsed.value.stream === true,
      model: parsed.value.model ?? undefined,
      slo,
      sloClass: cls as SloClass,
      priority,
    },
  };
}
