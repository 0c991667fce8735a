/**
 * One `/v1/completions` or `/v1/chat/completions` request, streamed or not, timed from the
 * client: the send time, each token chunk's arrival (streamed), the end, and the server's `usage`
 * (prompt, completion and cached tokens). Failures are records too, with inference-perf's
 * `error_type` (`<status> <reason>`, or the exception's name) and `error_msg` (the body, or the
 * message).
 */
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import { request as undiciRequest } from 'undici';

/** What a request measured. Times are s on the run's clock (see {@link SendOptions.clock}). */
export interface BenchRecord {
  readonly id: string;
  readonly stage: number;
  readonly scheduledS: number;
  readonly startS: number;
  readonly endS: number;
  /** Arrival of each chunk that carried a token (one per token on vLLM-style servers); empty when not streamed. */
  readonly chunkTimesS: readonly number[];
  /** Server-reported prompt tokens, else the prompt's length. */
  readonly promptTokens: number;
  /** Server-reported completion tokens, else the number of token chunks. */
  readonly outputTokens: number;
  /** `usage.prompt_tokens_details.cached_tokens`; null when the server does not report it. */
  readonly cachedTokens: number | null;
  readonly text: string;
  /** The request body, prompt shortened (see {@link requestSummary}). */
  readonly request: string;
  readonly error: { readonly error_type: string; readonly error_msg: string } | null;
  /**
   * The endpoint that served it when the target is the kvmgr gateway (its `x-kvmgr-endpoint`
   * response header: the endpoint's name); absent otherwise.
   */
  readonly endpoint?: string;
}

/** Which OpenAI API a request goes to: `/v1/completions` (`prompt`) or `/v1/chat/completions` (one user message). */
export type BenchApi = 'completion' | 'chat';

/** Options of {@link sendCompletion}. */
export interface SendOptions {
  readonly url: string;
  readonly model: string;
  readonly id: string;
  readonly stage: number;
  /** Token ids (completions only) or text. */
  readonly prompt: readonly number[] | string;
  /** Prompt tokens to record when the server reports no usage. @default the token ids' count, 0 for text */
  readonly promptTokens?: number;
  /** @default 'completion' */
  readonly api?: BenchApi;
  /** Stream the response (SSE, `stream_options.include_usage`). @default true */
  readonly stream?: boolean;
  readonly outputTokens: number;
  readonly scheduledS: number;
  /** Extra headers (SLOs). */
  readonly headers: Readonly<Record<string, string>>;
  /** Seconds on the run's clock (model time when the target is time-scaled). */
  readonly clock: () => number;
  readonly signal: AbortSignal;
  /** undici dispatcher (a pooled `Agent` shared by the run). @default undici's global dispatcher */
  readonly dispatcher?: Dispatcher;
}

/**
 * The body as recorded: the prompt cut to its first 16 token ids or 200 characters (whole prompts
 * would make the per-request file gigabytes).
 */
export function requestSummary(body: Record<string, unknown>, prompt: readonly number[] | string): string {
  if (typeof prompt === 'string') {
    const cut = prompt.length > 200 ? `${prompt.slice(0, 200)}… (${prompt.length} characters)` : prompt;
    if ('messages' in body) return JSON.stringify({ ...body, messages: [{ role: 'user', content: cut }] });
    return JSON.stringify({ ...body, prompt: cut });
  }
  const head = prompt.slice(0, 16);
  return JSON.stringify({ ...body, prompt: prompt.length > head.length ? [...head, `… ${prompt.length} token ids`] : head });
}

/**
 * The request body: vLLM's extensions `min_tokens` = `max_tokens` and `ignore_eos` make the
 * output length exact, as inference-perf and `vllm bench serve` send them.
 */
export function requestBody(o: Pick<SendOptions, 'model' | 'prompt' | 'api' | 'stream' | 'outputTokens'>): Record<string, unknown> {
  const stream = o.stream !== false;
  const common = {
    model: o.model,
    max_tokens: o.outputTokens,
    min_tokens: o.outputTokens,
    ignore_eos: true,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  };
  if (o.api === 'chat') return { ...common, messages: [{ role: 'user', content: o.prompt }] };
  return { ...common, prompt: o.prompt };
}

interface Choice {
  text?: string | null;
  delta?: { role?: string; content?: string | null };
  message?: { content?: string | null };
}

/** A streamed choice's token text, or undefined for a chunk that carries no token (chat's opening role chunk). */
function chunkText(c: Choice): string | undefined {
  if (c.delta !== undefined) return c.delta.role !== undefined && !c.delta.content ? undefined : (c.delta.content ?? '');
  return c.text ?? '';
}

/** The `data:` lines of one SSE event, joined with `\n` (comments and other fields dropped), trimmed. */
function sseData(event: string): string {
  let data = '';
  let first = true;
  for (const line of event.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = first ? v : `${data}\n${v}`;
    first = false;
  }
  return data.trim();
}

interface Chunk {
  choices?: Choice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number | null } | null } | null;
  error?: { message?: string } | string;
}

/** The short reason of a failed fetch: the socket error's code (`ECONNREFUSED`), else the cause's message. */
export function networkReason(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }).cause;
  const own = (e as { code?: string; errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  return c?.code ?? c?.errors?.[0]?.code ?? own ?? (e as { code?: string }).code ?? c?.message ?? (e as Error).message;
}

const TIMEOUT_CODES = new Set(['UND_ERR_ABORTED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Sends one request and measures it; never throws (a failure is a record with `error`).
 * @returns the record, with times from `options.clock`.
 */
export async function sendCompletion(o: SendOptions): Promise<BenchRecord> {
  const stream = o.stream !== false;
  const body = requestBody(o);
  const request = requestSummary(body, o.prompt);
  const startS = o.clock();
  const chunkTimesS: number[] = [];
  let text = '';
  let usage: Chunk['usage'] = null;
  let endpoint: string | undefined;
  const done = (error: BenchRecord['error']): BenchRecord => ({
    id: o.id,
    stage: o.stage,
    scheduledS: o.scheduledS,
    startS,
    endS: o.clock(),
    chunkTimesS,
    promptTokens: usage?.prompt_tokens ?? o.promptTokens ?? (typeof o.prompt === 'string' ? 0 : o.prompt.length),
    outputTokens: usage?.completion_tokens ?? chunkTimesS.length,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    text,
    request,
    error,
    ...(endpoint !== undefined ? { endpoint } : {}),
  });
  try {
    // undici's request on the run's pooled Agent (less per-request work than fetch's WHATWG layer; see bench/client-capacity.ts).
    const res = await undiciRequest(`${o.url}/v1/${o.api === 'chat' ? 'chat/completions' : 'completions'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json', 'x-request-id': o.id, ...o.headers },
      body: JSON.stringify(body),
      signal: o.signal,
      ...(o.dispatcher !== undefined ? { dispatcher: o.dispatcher } : {}),
    });
    const ep = res.headers['x-kvmgr-endpoint'];
    if (typeof ep === 'string') endpoint = ep;
    if (res.statusCode !== 200) {
      const msg = await res.body.text().catch(() => '');
      return done({ error_type: `${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ''}`.trim(), error_msg: msg });
    }
    if (!stream) {
      const j = (await res.body.json()) as Chunk;
      if (j.error !== undefined) return done({ error_type: 'response error', error_msg: typeof j.error === 'string' ? j.error : (j.error.message ?? JSON.stringify(j.error)) });
      const c = j.choices?.[0];
      text = c?.message?.content ?? c?.text ?? '';
      usage = j.usage ?? null;
      if (usage?.completion_tokens === undefined) return done({ error_type: 'no usage', error_msg: 'the response reports no usage.completion_tokens' });
      return done(null);
    }
    // SSE read in place (not an async generator per line: per token, that is most of the client's CPU).
    const decoder = new TextDecoder();
    let buf = '';
    let streamError: BenchRecord['error'] = null;
    let finished = false;
    const onEvent = (payload: string): void => {
      if (payload === '') return; // a comment or keep-alive
      if (payload === '[DONE]') {
        finished = true;
        return;
      }
      let c: Chunk;
      try {
        c = JSON.parse(payload) as Chunk;
      } catch {
        streamError = { error_type: 'stream error', error_msg: `not JSON: ${payload.slice(0, 60)}` };
        return;
      }
      if (c.error !== undefined) {
        streamError = { error_type: 'stream error', error_msg: typeof c.error === 'string' ? c.error : (c.error.message ?? JSON.stringify(c.error)) };
        return;
      }
      const choice = c.choices?.[0];
      const t = choice === undefined ? undefined : chunkText(choice);
      if (t !== undefined) {
        chunkTimesS.push(o.clock());
        text += t;
      }
      if (c.usage) usage = c.usage;
    };
    try {
      for await (const bytes of res.body as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(bytes, { stream: true });
        if (buf.indexOf('\r') >= 0) buf = buf.replace(/\r\n?/g, '\n');
        let end = buf.indexOf('\n\n');
        while (end >= 0 && !finished && streamError === null) {
          onEvent(sseData(buf.slice(0, end)));
          buf = buf.slice(end + 2);
          end = buf.indexOf('\n\n');
        }
        if (finished || streamError !== null) break;
      }
      if (!finished && streamError === null && buf.trim() !== '') onEvent(sseData(buf));
    } finally {
      // read what is left so the connection goes back to the pool
      await res.body.dump().catch(() => undefined);
    }
    if (streamError !== null) return done(streamError);
    if (chunkTimesS.length === 0) return done({ error_type: 'empty response', error_msg: 'the stream ended without a token' });
    return done(null);
  } catch (e) {
    const err = e as Error & { code?: string };
    const timeout = err.name === 'TimeoutError' || err.name === 'AbortError' || TIMEOUT_CODES.has(err.code ?? '');
    return done({ error_type: timeout ? 'Timeout' : err.name || 'Error', error_msg: `${err.message} (${networkReason(e)})` });
  }
}
