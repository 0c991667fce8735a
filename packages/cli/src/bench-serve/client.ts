/**
 * One streamed `/v1/completions` request, timed from the client: the send time, each chunk's
 * arrival, the end, and the server's `usage` (prompt, completion and cached tokens). Failures
 * are records too, with inference-perf's `error_type` (`<status> <reason>`, or the exception's
 * name) and `error_msg` (the body, or the message).
 */
import { parseSseStream } from '@kvmgr/adapter-vllm';

/** What a request measured. Times are s on the run's clock (see {@link SendOptions.clock}). */
export interface BenchRecord {
  readonly id: string;
  readonly stage: number;
  readonly scheduledS: number;
  readonly startS: number;
  readonly endS: number;
  /** Arrival of each chunk that carried a choice (one per token on vLLM-style servers). */
  readonly chunkTimesS: readonly number[];
  /** Server-reported prompt tokens, else the prompt's length. */
  readonly promptTokens: number;
  /** Server-reported completion tokens, else the number of chunks. */
  readonly outputTokens: number;
  /** `usage.prompt_tokens_details.cached_tokens`; null when the server does not report it. */
  readonly cachedTokens: number | null;
  readonly text: string;
  /** The request body, prompt shortened (see {@link requestSummary}). */
  readonly request: string;
  readonly error: { readonly error_type: string; readonly error_msg: string } | null;
}

/** Options of {@link sendCompletion}. */
export interface SendOptions {
  readonly url: string;
  readonly model: string;
  readonly id: string;
  readonly stage: number;
  readonly prompt: number[];
  readonly outputTokens: number;
  readonly scheduledS: number;
  /** Extra headers (SLOs). */
  readonly headers: Readonly<Record<string, string>>;
  /** Seconds on the run's clock (model time when the target is time-scaled). */
  readonly clock: () => number;
  readonly signal: AbortSignal;
}

/** The body as recorded: the prompt cut to its first 16 token ids (whole prompts would make the per-request file gigabytes). */
export function requestSummary(body: Record<string, unknown>, prompt: readonly number[]): string {
  const head = prompt.slice(0, 16);
  return JSON.stringify({ ...body, prompt: prompt.length > head.length ? [...head, `… ${prompt.length} token ids`] : head });
}

interface Chunk {
  choices?: Array<{ text?: string | null }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number | null } | null } | null;
  error?: { message?: string } | string;
}

/** The short reason of a failed fetch: the socket error's code (`ECONNREFUSED`), else the cause's message. */
export function networkReason(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }).cause;
  return c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (e as Error).message;
}

/** A web stream's chunks as an async iterable (the DOM typings lack `Symbol.asyncIterator`). */
async function* readChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Sends one request and measures it; never throws (a failure is a record with `error`).
 * @returns the record, with times from `options.clock`.
 */
export async function sendCompletion(o: SendOptions): Promise<BenchRecord> {
  const body = {
    model: o.model,
    prompt: o.prompt,
    max_tokens: o.outputTokens,
    min_tokens: o.outputTokens,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  };
  const request = requestSummary(body, o.prompt);
  const startS = o.clock();
  const chunkTimesS: number[] = [];
  let text = '';
  let usage: Chunk['usage'] = null;
  const done = (error: BenchRecord['error']): BenchRecord => ({
    id: o.id,
    stage: o.stage,
    scheduledS: o.scheduledS,
    startS,
    endS: o.clock(),
    chunkTimesS,
    promptTokens: usage?.prompt_tokens ?? o.prompt.length,
    outputTokens: usage?.completion_tokens ?? chunkTimesS.length,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    text,
    request,
    error,
  });
  try {
    const res = await fetch(`${o.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'x-request-id': o.id, ...o.headers },
      body: JSON.stringify(body),
      signal: o.signal,
    });
    if (res.status !== 200 || res.body === null) {
      const msg = await res.text().catch(() => '');
      return done({ error_type: `${res.status} ${res.statusText}`, error_msg: msg });
    }
    for await (const c of parseSseStream(readChunks(res.body)) as AsyncGenerator<Chunk>) {
      if (c.error !== undefined) {
        const msg = typeof c.error === 'string' ? c.error : (c.error.message ?? JSON.stringify(c.error));
        return done({ error_type: 'stream error', error_msg: msg });
      }
      if (c.choices !== undefined && c.choices.length > 0) {
        chunkTimesS.push(o.clock());
        text += c.choices[0]?.text ?? '';
      }
      if (c.usage) usage = c.usage;
    }
    if (chunkTimesS.length === 0) return done({ error_type: 'empty response', error_msg: 'the stream ended without a token' });
    return done(null);
  } catch (e) {
    const err = e as Error;
    const timeout = err.name === 'TimeoutError' || err.name === 'AbortError';
    return done({ error_type: timeout ? 'Timeout' : err.name || 'Error', error_msg: `${err.message} (${networkReason(e)})` });
  }
}
