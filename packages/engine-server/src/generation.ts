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
import type { EngineRequest, RequestFinishedStats } from '@kvmgr/engine';
import type { FastifyReply } from 'fastify';
import { IncrementalDetokenizer } from './detokenizer.js';
import type { EngineMetricsExporter } from './engine-metrics.js';
import type { GenerationRequest } from './openai-requests.js';
import type { RealtimeDriver, RequestSink } from './realtime-driver.js';
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

/** The request's per-token timestamps (instrumentation). */
interface TokenTimes {
  readonly due: number[];
  readonly emitted: number[];
  readonly written: number[];
}

const finishReasonOf = (stats: RequestFinishedStats): string => (stats.finishReason === 'stop' ? 'stop' : stats.finishReason === 'length' ? 'length' : 'abort');

/**
 * One request in flight: the driver's sink of its tokens and its end, writing them to the
 * response. A class with its state in fields rather than a set of closures per request: the step
 * end calls the same two methods on every stream.
 */
class GenerationStream implements RequestSink {
  readonly requestId: string;
  private readonly chat: boolean;
  private readonly created: number;
  private readonly object: string;
  private readonly promptLen: number;
  private readonly res: ServerResponse;
  // Made by `prepare()`, after the submit (no token comes before the next event-loop turn).
  private detok!: IncrementalDetokenizer;
  private echoText = '';
  /** A token's chunk is this per-request template plus its text; null with `continuous_usage_stats` (usage on every chunk: built as an object). */
  private template: SseChunkTemplate | null = null;
  private readonly timing: TokenTimes | null;
  private outTokens = 0;
  private lastTokenUs = -1;
  private done = false;
  /** The text of a token that may be the last, held until onFinished (same step) so that its chunk carries the finish reason. */
  private pendingText: string | null = null;
  private flushQueued = false;
  /** When the request enters the engine queue, model µs. */
  atUs = 0;
  submittedMs = 0;

  constructor(
    private readonly ctx: GenerationContext,
    private readonly req: GenerationRequest,
    private readonly reply: FastifyReply,
    private readonly arrivalUs: number,
    private readonly resolve: () => void,
  ) {
    const chat = req.kind === 'chat';
    this.chat = chat;
    this.requestId = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
    this.created = Math.floor(Date.now() / 1000);
    this.object = chat ? 'chat.completion.chunk' : 'text_completion';
    this.promptLen = req.promptTokenIds.length;
    this.res = reply.raw;
    this.timing = ctx.onTiming === undefined ? null : { due: [], emitted: [], written: [] };
  }

  /** What only the tokens need (detokenizer, chunk template, echo text): made after the submit, so the request reaches the step loop first. */
  prepare(): void {
    const { ctx, req } = this;
    this.detok = new IncrementalDetokenizer(ctx.tokenizer);
    if (req.echo) this.echoText = ctx.tokenizer.decode(req.promptTokenIds);
    if (req.stream && !req.continuousUsage) this.template = new SseChunkTemplate({ id: this.requestId, object: this.object, created: this.created, model: req.model }, this.chat);
  }

  private tokenEvent(text: string, finish: string | null): string {
    if (this.template !== null) return this.template.chunk(text, finish);
    const choice = this.chat
      ? { index: 0, delta: { content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null };
    return formatSseChunk({ id: this.requestId, object: this.object, created: this.created, model: this.req.model, choices: [choice], usage: usageOf(this.promptLen, this.outTokens, null) });
  }

  private writeSse(s: string): void {
    const res = this.res;
    if (!res.destroyed && !res.writableEnded) res.write(s);
  }

  /**
   * Writes the pending token's chunk. With `send` (every token but the last), the socket is
   * uncorked at once; the last token's chunk stays corked so that the usage chunk, `[DONE]` and the
   * chunked terminator that `res.end()` writes leave with it in one writev (`end()` uncorks fully).
   */
  private flush(finish: string | null, send = true): void {
    this.flushQueued = false;
    const text = this.pendingText;
    if (text === null) return;
    this.pendingText = null;
    this.writeSse(this.tokenEvent(text, finish));
    // Node corks a response's socket on each write and uncorks it on the next tick (so that the
    // chunk-size line, the data and the CRLF leave in one writev): here that tick comes after the
    // rest of the step's tokens, the step hooks and the next step's planning, so every stream's
    // token would wait for the whole step end. Uncorking now sends this chunk (one writev, as
    // before) while the loop goes on; Node's own uncork on the next tick then finds nothing corked.
    if (!send) return; // the caller stamps `written` once it has ended the response
    const socket = this.res.socket;
    if (socket !== null && socket.writableCorked > 0) socket.uncork();
    this.timing?.written.push(performance.now());
  }

  onToken(tokenId: number, now: number): void {
    const ctx = this.ctx;
    const req = this.req;
    const timing = this.timing;
    if (timing !== null) {
      timing.due.push(ctx.driver.wallMsOf(now));
      timing.emitted.push(performance.now());
    }
    const n = ++this.outTokens;
    const gapUs = this.lastTokenUs >= 0 ? now - this.lastTokenUs : -1;
    this.lastTokenUs = now;
    let text = this.detok.push(tokenId);
    if (n === 1) {
      text = this.echoText + text;
      if (req.stream && this.chat) {
        this.writeSse(
          formatSseChunk({ id: this.requestId, object: this.object, created: this.created, model: req.model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }),
        );
      }
      ctx.onFirstToken?.(this.requestId);
    }
    if (req.stream) {
      this.flush(null);
      this.pendingText = text;
      // A token that cannot be the last goes out at once. One that may be (the length limit or a
      // stop token: the core decides right after this hook and calls onFinished synchronously)
      // waits so that its chunk carries the finish reason; the microtask is the fallback.
      if (n < req.maxTokens && !req.stopTokenIds.includes(tokenId)) this.flush(null);
      else if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush(null));
      }
    }
    // Bookkeeping after the write: the chunk does not wait for it.
    if (gapUs >= 0) ctx.exporter.observeItl(gapUs);
  }

  onFinished(stats: RequestFinishedStats): void {
    const { ctx, req, res, timing } = this;
    this.done = true;
    ctx.exporter.onFinished(stats);
    if (timing !== null) {
      // After the last token's chunk, which is written below.
      queueMicrotask(() =>
        ctx.onTiming?.({
          requestId: this.requestId,
          promptTokens: this.promptLen,
          receivedMs: ctx.driver.wallMsOf(this.arrivalUs),
          submittedMs: this.submittedMs,
          enqueueDueMs: ctx.driver.wallMsOf(this.atUs),
          tokenDueMs: timing.due,
          tokenEmittedMs: timing.emitted,
          tokenWrittenMs: timing.written,
        }),
      );
    }
    const extras = ctx.responseExtras?.(req, this.requestId, stats);
    if (res.destroyed || res.writableEnded) {
      this.resolve();
      return;
    }
    const reason = finishReasonOf(stats);
    if (stats.finishReason === 'rejected' && this.outTokens === 0) {
      const err = openAiError(503, 'the engine rejected the request (scheduler plan)', { code: 'rejected' });
      if (req.stream) {
        this.writeSse(formatSseChunk(err.body));
        this.writeSse(SSE_DONE);
        res.end();
      } else {
        this.reply.code(err.status).send(err.body);
      }
      this.resolve();
      return;
    }
    const tail = this.detok.flush();
    if (this.pendingText !== null) this.pendingText += tail;
    else if (tail !== '') this.pendingText = tail;
    const usage = usageOf(this.promptLen, this.outTokens, stats.cachedPromptTokens);
    const { requestId, created } = this;
    if (req.stream) {
      if (this.pendingText === null) this.pendingText = '';
      this.flush(reason, false);
      if (req.includeUsage) this.writeSse(formatSseChunk({ id: requestId, object: this.object, created, model: req.model, choices: [], usage }));
      this.writeSse(SSE_DONE);
      res.end();
      timing?.written.push(performance.now());
      this.resolve();
      return;
    }
    const detok = this.detok;
    const text = this.echoText + detok.text;
    const body = this.chat
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
    this.reply.code(200).send(body);
    this.resolve();
  }

  /** The response closed (ended, or the client went away: then the request is aborted). */
  onClose(): void {
    if (!this.done) this.ctx.driver.abort(this.requestId);
    this.resolve();
  }
}

/**
 * Runs one validated request to its end and writes the response.
 *
 * @param arrivalUs - when the request reached the server, model µs.
 * @returns when the response is complete (or the client is gone).
 */
export function serveGeneration(ctx: GenerationContext, req: GenerationRequest, reply: FastifyReply, arrivalUs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const g = new GenerationStream(ctx, req, reply, arrivalUs, resolve);
    const res = reply.raw;
    const requestId = g.requestId;
    res.on('close', () => g.onClose());
    ctx.register(requestId, req);
    g.atUs = arrivalUs + ctx.queueingUs(req.promptTokenIds.length) + (ctx.extraDelayUs?.(req) ?? 0);
    if (ctx.onTiming !== undefined) g.submittedMs = performance.now();
    const remoteKv = ctx.remoteKv?.(req);
    const request: Mutable<EngineRequest> = { requestId, promptTokenIds: req.promptTokenIds, maxTokens: req.maxTokens };
    if (req.stopTokenIds.length > 0) request.stopTokenIds = req.stopTokenIds;
    if (remoteKv !== undefined) request.remoteKv = remoteKv;
    ctx.driver.submit(request, g.atUs, g);
    g.prepare();
    // The status line and headers after the submit: the request reaches the step loop first (its
    // first token comes in a later event-loop turn, so the headers still precede every chunk).
    if (req.stream) {
      reply.hijack();
      res.writeHead(200, SSE_HEADERS);
    }
  });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
