/**
 * One generation request on the wire: submits it to the {@link RealtimeDriver} and answers in
 * vLLM's shapes — a JSON body when it finishes, or SSE chunks as tokens come (one chunk per
 * token, the finish reason on the last token's chunk, a usage chunk with
 * `stream_options.include_usage`, then `data: [DONE]`). A client that goes away aborts the
 * request, which frees its blocks at once.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_completion.py
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_chat.py
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { SSE_DONE, type Tokenizer, formatSseChunk, openAiError } from '@kvmgr/adapter-vllm';
import type { RequestFinishedStats } from '@kvmgr/engine';
import type { FastifyReply } from 'fastify';
import { IncrementalDetokenizer } from './detokenizer.js';
import type { EngineMetricsExporter } from './engine-metrics.js';
import type { GenerationRequest } from './openai-requests.js';
import type { RealtimeDriver } from './realtime-driver.js';
import { SseChunkTemplate } from './sse-chunk-template.js';

/** What a generation needs from its server. */
export interface GenerationContext {
  readonly driver: RealtimeDriver;
  /** The model's tokenizer: output text and `echo`. */
  readonly tokenizer: Tokenizer;
  readonly exporter: EngineMetricsExporter;
  /** Model µs a request spends before it reaches the engine queue (the latency model's API-server α terms). */
  readonly queueingUs: (promptTokens: number) => number;
  /** Called once per request at its first token (fault injection hooks in here). */
  readonly onFirstToken?: (requestId: string) => void;
  /** Extra fields for the final response (P/D: `kv_transfer_params`), from the finished stats. */
  readonly responseExtras?: (req: GenerationRequest, requestId: string, stats: RequestFinishedStats) => Record<string, unknown> | undefined;
  /** Model µs to wait before the request may enter the engine queue (P/D: the KV transfer), added to the queueing delay. */
  readonly extraDelayUs?: (req: GenerationRequest) => number;
  /** KV the request brings computed elsewhere (a P/D decode leg), as `EngineRequest.remoteKv`. */
  readonly remoteKv?: (req: GenerationRequest) => { computedTokens: number } | undefined;
  /** The request joins the engine's stop tokens and min-tokens table. */
  readonly register: (requestId: string, req: GenerationRequest) => void;
  /** Receives each finished request's wall-clock stages (instrumentation; off when undefined). */
  readonly onTiming?: (timing: RequestTiming) => void;
}

/**
 * Wall-clock stages of one request, for measuring what the HTTP path adds to the engine's
 * timeline (`bench/fidelity.ts`). Every time is the driver's clock, `performance.now()` ms; model
 * times are mapped to it with `RealtimeDriver.wallMsOf`.
 */
export interface RequestTiming {
  readonly requestId: string;
  readonly promptTokens: number;
  /** The request's headers reached the server (node:http's `request` event): its arrival stamp. */
  readonly receivedMs: number;
  /** Its body was parsed and validated and it was handed to the driver. */
  readonly submittedMs: number;
  /** When it enters the engine queue on the model's timeline (arrival + the latency model's queueing term). */
  readonly enqueueDueMs: number;
  /** Per output token: the end of its step on the model's timeline. */
  readonly tokenDueMs: readonly number[];
  /** Per output token: when the step loop emitted it (ran `finishStep`). */
  readonly tokenEmittedMs: readonly number[];
  /** Per output token: when its SSE chunk had been handed to the kernel (streams only, else empty). */
  readonly tokenWrittenMs: readonly number[];
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number } | null;
}

function usageOf(promptTokens: number, completionTokens: number, cached: number | null): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: cached === null ? null : { cached_tokens: cached },
  };
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' } as const;

/**
 * Runs one validated request to its end and writes the response.
 *
 * @param arrivalUs - when the request reached the server, model µs.
 * @returns when the response is complete (or the client is gone).
 */
export function serveGeneration(ctx: GenerationContext, req: GenerationRequest, reply: FastifyReply, arrivalUs: number): Promise<void> {
  const chat = req.kind === 'chat';
  const requestId = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const detok = new IncrementalDetokenizer(ctx.tokenizer);
  const promptLen = req.promptTokenIds.length;
  const echoText = req.echo ? ctx.tokenizer.decode(req.promptTokenIds) : '';
  const res: ServerResponse = reply.raw;
  let outTokens = 0;
  let lastTokenUs = -1;
  let done = false;
  // The text of a token that may be the last, held until onFinished (same step) so that its chunk carries the finish reason.
  let pendingText: string | null = null;
  let flushQueued = false;
  const timing = ctx.onTiming === undefined ? null : { due: [] as number[], emitted: [] as number[], written: [] as number[] };

  // A token's chunk is a per-request template plus its text; with `continuous_usage_stats` (usage
  // on every chunk) it is built as an object instead.
  const template = req.stream && !req.continuousUsage ? new SseChunkTemplate({ id: requestId, object, created, model: req.model }, chat) : null;
  const tokenEvent = (text: string, finish: string | null): string => {
    if (template !== null) return template.chunk(text, finish);
    const choice = chat
      ? { index: 0, delta: { content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null };
    return formatSseChunk({ id: requestId, object, created, model: req.model, choices: [choice], usage: usageOf(promptLen, outTokens, null) });
  };

  const writeSse = (s: string): void => {
    if (!res.destroyed && !res.writableEnded) res.write(s);
  };

  /**
   * Writes the pending token's chunk. With `send` (every token but the last), the socket is
   * uncorked at once; the last token's chunk stays corked so that the usage chunk, `[DONE]` and the
   * chunked terminator that `res.end()` writes leave with it in one writev (`end()` uncorks fully).
   */
  const flush = (finish: string | null, send = true): void => {
    flushQueued = false;
    if (pendingText === null) return;
    const text = pendingText;
    pendingText = null;
    writeSse(tokenEvent(text, finish));
    // Node corks a response's socket on each write and uncorks it on the next tick (so that the
    // chunk-size line, the data and the CRLF leave in one writev): here that tick comes after the
    // rest of the step's tokens, the step hooks and the next step's planning, so every stream's
    // token would wait for the whole step end. Uncorking now sends this chunk (one writev, as
    // before) while the loop goes on; Node's own uncork on the next tick then finds nothing corked.
    if (!send) return; // the caller stamps `written` once it has ended the response
    const socket = res.socket;
    if (socket !== null && socket.writableCorked > 0) socket.uncork();
    timing?.written.push(performance.now());
  };

  return new Promise<void>((resolve) => {
    res.on('close', () => {
      if (!done) ctx.driver.abort(requestId);
      resolve();
    });
    const finishReasonOf = (stats: RequestFinishedStats): string => (stats.finishReason === 'stop' ? 'stop' : stats.finishReason === 'length' ? 'length' : 'abort');
    ctx.register(requestId, req);
    const atUs = arrivalUs + ctx.queueingUs(promptLen) + (ctx.extraDelayUs?.(req) ?? 0);
    const submittedMs = timing === null ? 0 : performance.now();
    const remoteKv = ctx.remoteKv?.(req);
    ctx.driver.submit(
      {
        requestId,
        promptTokenIds: req.promptTokenIds,
        maxTokens: req.maxTokens,
        ...(req.stopTokenIds.length > 0 ? { stopTokenIds: req.stopTokenIds } : {}),
        ...(remoteKv === undefined ? {} : { remoteKv }),
      },
      atUs,
      {
        onToken: (tokenId, now) => {
          if (timing !== null) {
            timing.due.push(ctx.driver.wallMsOf(now));
            timing.emitted.push(performance.now());
          }
          outTokens++;
          const gapUs = lastTokenUs >= 0 ? now - lastTokenUs : -1;
          lastTokenUs = now;
          let text = detok.push(tokenId);
          if (outTokens === 1) {
            text = echoText + text;
            if (req.stream && chat) writeSse(formatSseChunk({ id: requestId, object, created, model: req.model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }));
            ctx.onFirstToken?.(requestId);
          }
          if (req.stream) {
            flush(null);
            pendingText = text;
            // A token that cannot be the last goes out at once. One that may be (the length limit or a
            // stop token: the core decides right after this hook and calls onFinished synchronously)
            // waits so that its chunk carries the finish reason; the microtask is the fallback.
            if (outTokens < req.maxTokens && !req.stopTokenIds.includes(tokenId)) flush(null);
            else if (!flushQueued) {
              flushQueued = true;
              queueMicrotask(() => flush(null));
            }
          }
          // Bookkeeping after the write: the chunk does not wait for it.
          if (gapUs >= 0) ctx.exporter.observeItl(gapUs);
        },
        onFinished: (stats) => {
          done = true;
          ctx.exporter.onFinished(stats);
          if (timing !== null) {
            // After the last token's chunk, which is written below.
            queueMicrotask(() =>
              ctx.onTiming?.({
                requestId,
                promptTokens: promptLen,
                receivedMs: ctx.driver.wallMsOf(arrivalUs),
                submittedMs,
                enqueueDueMs: ctx.driver.wallMsOf(atUs),
                tokenDueMs: timing.due,
                tokenEmittedMs: timing.emitted,
                tokenWrittenMs: timing.written,
              }),
            );
          }
          const extras = ctx.responseExtras?.(req, requestId, stats);
          if (res.destroyed || res.writableEnded) return resolve();
          const reason = finishReasonOf(stats);
          if (stats.finishReason === 'rejected' && outTokens === 0) {
            const err = openAiError(503, 'the engine rejected the request (scheduler plan)', { code: 'rejected' });
            if (req.stream) {
              writeSse(formatSseChunk(err.body));
              writeSse(SSE_DONE);
              res.end();
            } else {
              reply.code(err.status).send(err.body);
            }
            return resolve();
          }
          const tail = detok.flush();
          if (pendingText !== null) pendingText += tail;
          else if (tail !== '') pendingText = tail;
          const usage = usageOf(promptLen, outTokens, stats.cachedPromptTokens);
          if (req.stream) {
            if (pendingText === null) pendingText = '';
            flush(reason, false);
            if (req.includeUsage) writeSse(formatSseChunk({ id: requestId, object, created, model: req.model, choices: [], usage }));
            writeSse(SSE_DONE);
            res.end();
            timing?.written.push(performance.now());
            return resolve();
          }
          const text = echoText + detok.text;
          const body = chat
            ? {
                id: requestId,
                object: 'chat.completion',
                created,
                model: req.model,
                choices: [{ index: 0, message: { role: 'assistant', content: detok.text }, logprobs: null, finish_reason: reason }],
                usage,
                ...(extras ?? {}),
              }
            : {
                id: requestId,
                object: 'text_completion',
                created,
                model: req.model,
                choices: [{ index: 0, text, logprobs: null, finish_reason: reason, stop_reason: null }],
                usage,
                ...(extras ?? {}),
              };
          reply.code(200).send(body);
          resolve();
        },
      },
    );
    // The status line and headers after the submit: the request reaches the step loop first (its
    // first token comes in a later event-loop turn, so the headers still precede every chunk).
    if (req.stream) {
      reply.hijack();
      res.writeHead(200, SSE_HEADERS);
    }
  });
}
