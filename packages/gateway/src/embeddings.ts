/**
 * `POST /v1/embeddings` at the gateway, and the memory quotas that keep LLM and embedding
 * requests from starving each other.
 *
 * One memory budget in tokens (by default the KV capacity of the LLM endpoints at startup) is
 * split between two consumers, `llm` (the KV footprint of generation requests in flight: prompt
 * + max output) and `embedding` (the input tokens of embedding requests in flight), by
 * `@kvmgr/kv-pool`'s {@link QuotaAllocator}: each keeps a minimum share, and every `rebalanceMs`
 * the quotas move (damped, at most a tenth of the budget per round by default) toward a max–min
 * fair split of the demand (in flight + queued) weighted by `weight`. A request is admitted when
 * its class's tokens in flight plus its own fit in its class's quota; otherwise it waits in its
 * class's own DEFER queue (an embedding flood never sits in front of LLM requests, nor the
 * reverse) until a request of its class finishes or a rebalance grows the quota.
 *
 * Tenants (`tenants.ts`): an embedding request's input tokens are charged to its tenant's
 * Virtual Token Counter when it is placed, the same counter its completions are charged to (so a
 * tenant that floods embeddings has used its share when its completions wait), and, with
 * `tenants.enabled`, the embedding DEFER queue is released by that counter as the LLM one is:
 * the waiting request of the tenant with the least service first.
 *
 * The proxy is plain: the validated OpenAI body is forwarded as the client sent it to the next
 * healthy embedding endpoint (round robin; another one is tried once when the connection fails
 * before a response), and the answer is passed through. The endpoints are health-checked as the
 * LLM endpoints are ({@link EmbeddingEndpoints}: probed every health interval, taken out on a
 * refused probe or a failed connection, probed back in).
 *
 * @see OpenAI API reference, "Create embeddings" (`POST /v1/embeddings`: model, input as a string,
 *   an array of strings, an array of token ids or an array of token-id arrays, encoding_format,
 *   dimensions, user).
 */
import { type OpenAiErrorResponse, TOKENIZER_NAMES, type Tokenizer, type TokenizerName, getTokenizer, openAiError, parseOpenAiRequest } from '@kvmgr/adapter-vllm';
import { KvmgrError } from '@kvmgr/core';
import { QuotaAllocator, type QuotaRound } from '@kvmgr/kv-pool';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Agent, request as undiciRequest } from 'undici';
import { z } from 'zod';
import { sectionError, urlString } from './config-error.js';
import { AdmissionAbandoned, AdmissionQueue, AdmissionRejected, leaveOnAbort } from './admission.js';
import { type EmbeddingEndpoint, EmbeddingEndpoints } from './embedding-endpoints.js';
import type { TenantFairness } from './tenants.js';
import { isEndpointFailure } from './upstream.js';

/** The `embeddings` section of the gateway configuration, resolved. */
export interface EmbeddingsConfig {
  /** Base URLs that answer `/v1/embeddings`. @default the URLs of the gateway's endpoints */
  readonly endpoints: readonly string[];
  /** Memory shared by LLM and embedding requests in flight, tokens. @default the LLM endpoints' KV capacity at startup */
  readonly totalTokens: number | null;
  /** Quota granularity, tokens per block of the allocator. @default 16 */
  readonly blockTokens: number;
  /** Least share of the budget kept for LLM requests, 0..1. @default 0.25 */
  readonly llmMinFraction: number;
  /** Least share kept for embedding requests, 0..1. @default 0.1 */
  readonly embeddingMinFraction: number;
  /** Share weight of LLM demand. @default 1 */
  readonly llmWeight: number;
  /** Share weight of embedding demand. @default 1 */
  readonly embeddingWeight: number;
  /** Rebalancing period, ms. @default 250 */
  readonly rebalanceMs: number;
  /** Most a quota moves per round, as a fraction of the budget. @default 0.1 */
  readonly maxStepFraction: number;
  /** Embedding requests held waiting; beyond it, 429. @default 256 */
  readonly maxQueue: number;
  /** Longest wait of an embedding request, ms (then 429). @default 30000 */
  readonly maxWaitMs: number;
  /**
   * Tokenizer that counts an input's tokens against the quota (a text input; token-id inputs count
   * their ids). Embedding models often tokenise differently from the LLM (BERT WordPiece, …), so
   * this is an estimate unless it names the embedding model's own. @default null (the gateway's `tokenizer`)
   */
  readonly tokenizer: TokenizerName | null;
}

const fraction = z.number().min(0).max(1);
const embeddingsSchema = z.strictObject({
  endpoints: z.array(urlString).min(1).optional(),
  quota: z
    .strictObject({
      totalTokens: z.number().int().min(1).optional(),
      blockTokens: z.number().int().min(1).optional(),
      llmMinFraction: fraction.optional(),
      embeddingMinFraction: fraction.optional(),
      llmWeight: z.number().positive().optional(),
      embeddingWeight: z.number().positive().optional(),
      rebalanceMs: z.number().int().min(10).optional(),
      maxStepFraction: z.number().gt(0).max(1).optional(),
    })
    .optional(),
  maxQueue: z.number().int().min(0).optional(),
  maxWaitMs: z.number().int().min(1).optional(),
  tokenizer: z.enum(TOKENIZER_NAMES, { error: (iss) => `unknown tokenizer ${JSON.stringify(iss.input)}: expected one of ${TOKENIZER_NAMES.join(', ')}` }).optional(),
});

/**
 * Validates the `embeddings` section.
 *
 * @param input - the section's value (`{}` enables embeddings with every default).
 * @param key - the section's key, for messages. @default 'embeddings'
 * @throws KvmgrError `KVMGR_BAD_CONFIG` whose one-line message starts with the bad key
 *   (`embeddings.quota.llmMinFraction: …`), also when the two minimum fractions add up past 1.
 */
export function resolveEmbeddingsConfig(input: unknown, key = 'embeddings'): EmbeddingsConfig {
  const r = embeddingsSchema.safeParse(input ?? {});
  if (!r.success) {
    throw sectionError(key, r.error);
  }
  const v = r.data;
  const q = v.quota ?? {};
  const llmMin = q.llmMinFraction ?? 0.25;
  const embMin = q.embeddingMinFraction ?? 0.1;
  if (llmMin + embMin > 1) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `${key}.quota.embeddingMinFraction: llmMinFraction + embeddingMinFraction must be at most 1, got ${llmMin} + ${embMin}`, {
      details: { key: `${key}.quota.embeddingMinFraction` },
    });
  }
  return {
    endpoints: (v.endpoints ?? []).map((u) => u.replace(/\/+$/, '')),
    totalTokens: q.totalTokens ?? null,
    blockTokens: q.blockTokens ?? 16,
    llmMinFraction: llmMin,
    embeddingMinFraction: embMin,
    llmWeight: q.llmWeight ?? 1,
    embeddingWeight: q.embeddingWeight ?? 1,
    rebalanceMs: q.rebalanceMs ?? 250,
    maxStepFraction: q.maxStepFraction ?? 0.1,
    maxQueue: v.maxQueue ?? 256,
    maxWaitMs: v.maxWaitMs ?? 30_000,
    tokenizer: v.tokenizer ?? null,
  };
}

const tokenIds = z.array(z.number().int().min(0)).min(1);
/** An OpenAI embeddings request body (unknown fields kept and forwarded). */
export const EmbeddingRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(2048), tokenIds, z.array(tokenIds).min(1).max(2048)]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().min(1).optional(),
  user: z.string().optional(),
});

/** The two consumers of the memory budget. */
export type QuotaConsumer = 'llm' | 'embedding';

/** The memory quotas as `GET /admin/state` shows them (tokens). */
export interface MemoryQuotaState {
  readonly totalTokens: number;
  readonly blockTokens: number;
  /** Per consumer: quota, tokens in flight, tokens queued, least and most quota. */
  readonly consumers: Readonly<Record<QuotaConsumer, { quotaTokens: number; inFlightTokens: number; queuedTokens: number; minTokens: number }>>;
  /** Rebalancing rounds so far. */
  readonly rounds: number;
  /** Quota changes of the last round that moved anything, tokens (null before one). */
  readonly lastChange: Readonly<Record<QuotaConsumer, number>> | null;
}

/** What the embeddings service reads of the gateway. */
export interface EmbeddingsHost {
  /** KV footprint of the LLM requests in flight, tokens. */
  llmInFlightTokens(): number;
  /** KV footprint of the LLM requests waiting, tokens. */
  llmQueuedTokens(): number;
  /** The LLM DEFER queue re-checks its head (a quota grew). */
  releaseLlm(): void;
  /** The gateway's tokenizer: counts embedding inputs unless `embeddings.tokenizer` names another. */
  readonly tokenizer: Tokenizer;
}

/**
 * Tokens of an embedding request's `input`, as the quota counts them: a string or each string of
 * an array is encoded with `tokenizer` (no BOS: embedding servers add their own special tokens, which
 * this estimate leaves out), a token-id array counts its ids.
 *
 * @param input - the request's `input` (one of the four OpenAI forms).
 * @param tokenizer - the counting tokenizer.
 * @returns the total over every input.
 */
export function embeddingInputTokens(input: string | readonly string[] | readonly number[] | readonly (readonly number[])[], tokenizer: Tokenizer): number {
  if (typeof input === 'string') return tokenizer.encode(input).length;
  let tokens = 0;
  for (const x of input) {
    if (typeof x === 'string') tokens += tokenizer.encode(x).length;
    else if (typeof x === 'number') tokens += 1;
    else tokens += x.length;
  }
  return tokens;
}

/** A placed embedding request: its upstream, or undefined when none was healthy at placement. */
interface EmbeddingPlacement {
  readonly endpoint: EmbeddingEndpoint | undefined;
}

/** Health settings of the embedding endpoints (the gateway's `health` section). */
export interface EmbeddingsHealth {
  /** Probe period, ms. @default 1000 */
  readonly intervalMs: number;
  /** Failed probes in a row that take an endpoint out. @default 2 */
  readonly unhealthyThreshold: number;
}

/** What `handle` answers, and what the request's log line says of it. */
export interface EmbeddingResult {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer | OpenAiErrorResponse['body'];
  /** The upstream that answered (absent when none did). */
  readonly endpoint?: string;
  /** The upstreams tried, in order, when more than one was. */
  readonly attempts?: readonly string[];
}

/**
 * Embedding proxying and the LLM/embedding memory quotas of one gateway.
 */
export class EmbeddingsService {
  readonly config: EmbeddingsConfig;
  readonly quotas: QuotaAllocator;
  readonly totalTokens: number;
  /** The embedding upstreams and their health. */
  readonly upstreams: EmbeddingEndpoints;
  private readonly host: EmbeddingsHost;
  private readonly agent: Agent;
  private readonly log: Logger;
  private readonly queue: AdmissionQueue<EmbeddingPlacement>;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastChange: Record<QuotaConsumer, number> | null = null;
  private rounds = 0;
  private readonly requests: Counter<'outcome'>;
  private readonly tenants: TenantFairness | undefined;
  private readonly tokenizer: Tokenizer;

  /**
   * @param config - the resolved `embeddings` section.
   * @param totalTokens - the budget, tokens (`config.totalTokens` when set, else the fleet's KV capacity).
   * @param endpoints - upstream base URLs (`config.endpoints` when given, else the gateway's endpoints).
   * @param host - the gateway's LLM side.
   * @param agent - the gateway's undici agent.
   * @param log - the gateway's logger.
   * @param registry - where the quota gauges and request counter are registered.
   * @param tenants - the gateway's tenants: input tokens charged at placement, and (when
   *   `tenants.enabled`) the queue released by their counters. @default none (arrival order, nothing charged)
   * @param health - how the endpoints are probed. @default `{ intervalMs: 1000, unhealthyThreshold: 2 }`
   * @throws KvmgrError `KVMGR_BAD_CONFIG` when there is no endpoint, or the budget is smaller than one block.
   */
  constructor(
    config: EmbeddingsConfig,
    totalTokens: number,
    endpoints: readonly string[],
    host: EmbeddingsHost,
    agent: Agent,
    log: Logger,
    registry: Registry,
    tenants?: TenantFairness,
    health: EmbeddingsHealth = { intervalMs: 1000, unhealthyThreshold: 2 },
  ) {
    if (endpoints.length === 0) throw new KvmgrError('KVMGR_BAD_CONFIG', 'embeddings.endpoints: no endpoint answers /v1/embeddings; list them here or under endpoints', { details: { key: 'embeddings.endpoints' } });
    const blocks = Math.floor(totalTokens / config.blockTokens);
    if (blocks < 2) {
      throw new KvmgrError('KVMGR_BAD_CONFIG', `embeddings.quota.totalTokens: a budget of ${totalTokens} tokens is less than two blocks of ${config.blockTokens}`, { details: { key: 'embeddings.quota.totalTokens' } });
    }
    this.config = config;
    this.totalTokens = blocks * config.blockTokens;
    this.upstreams = new EmbeddingEndpoints(endpoints, {
      intervalMs: health.intervalMs,
      unhealthyThreshold: health.unhealthyThreshold,
      agent,
      registry,
      onHealthChange: (e, healthy, why) =>
        log.warn({ event: 'embedding-endpoint-health', url: e.url, healthy, why }, healthy ? 'embedding endpoint back in service' : 'embedding endpoint taken out of service'),
    });
    this.host = host;
    this.agent = agent;
    this.log = log;
    this.quotas = new QuotaAllocator({
      totalBlocks: blocks,
      maxStepFraction: config.maxStepFraction,
      consumers: [
        { name: 'llm', minBlocks: Math.floor(blocks * config.llmMinFraction), weight: config.llmWeight },
        { name: 'embedding', minBlocks: Math.floor(blocks * config.embeddingMinFraction), weight: config.embeddingWeight },
      ],
    });
    this.tenants = tenants;
    this.tokenizer = config.tokenizer === null ? host.tokenizer : getTokenizer(config.tokenizer);
    this.queue = new AdmissionQueue<EmbeddingPlacement>(config.maxQueue, config.maxWaitMs, tenants?.config.enabled === true ? { fairness: tenants } : {});
    this.requests = new Counter({ name: 'kvmgr_gateway_embedding_requests_total', help: 'Embedding requests by outcome (ok, error, rejected, abandoned: the client went away while deferred).', labelNames: ['outcome'], registers: [registry] });
    const self = this;
    new Gauge({
      name: 'kvmgr_gateway_memory_quota_tokens',
      help: 'Memory quota (rebalanced by demand) and use of LLM and embedding requests, tokens: kind = quota | in_flight | queued.',
      labelNames: ['consumer', 'kind'],
      registers: [registry],
      collect() {
        const s = self.state();
        for (const c of ['llm', 'embedding'] as const) {
          this.set({ consumer: c, kind: 'quota' }, s.consumers[c].quotaTokens);
          this.set({ consumer: c, kind: 'in_flight' }, s.consumers[c].inFlightTokens);
          this.set({ consumer: c, kind: 'queued' }, s.consumers[c].queuedTokens);
        }
      },
    });
  }

  /** Probes the endpoints once (awaited: the gateway starts with their health known), then starts the probes and the rebalancing timer. */
  async start(): Promise<void> {
    await this.upstreams.start();
    this.timer = setInterval(() => this.rebalance(), this.config.rebalanceMs);
    this.timer.unref();
  }

  /** Quota of a consumer, tokens. */
  quotaTokens(c: QuotaConsumer): number {
    return this.quotas.quota(c) * this.config.blockTokens;
  }

  /** Whether `tokens` more LLM tokens fit in the LLM quota now (`inFlightTokens` already placed). */
  llmFits(inFlightTokens: number, tokens: number): boolean {
    return inFlightTokens + tokens <= this.quotaTokens('llm');
  }

  /**
   * One rebalancing round: demands (in flight + queued, in blocks, at most the budget) reported
   * to the allocator, quotas moved; when they moved, both queues re-check their heads.
   */
  rebalance(nowUs = Math.round(performance.now() * 1000)): QuotaRound {
    const bt = this.config.blockTokens;
    const blocks = this.quotas.totalBlocks;
    const demand = (tokens: number) => Math.min(blocks, Math.ceil(tokens / bt));
    this.quotas.report('llm', { demandBlocks: demand(this.host.llmInFlightTokens() + this.host.llmQueuedTokens()) });
    this.quotas.report('embedding', { demandBlocks: demand(this.inFlight + this.queue.queuedTokens) });
    const round = this.quotas.rebalance(nowUs);
    this.rounds++;
    const dl = (round.changes['llm'] ?? 0) * bt;
    const de = (round.changes['embedding'] ?? 0) * bt;
    if (dl !== 0 || de !== 0) {
      this.lastChange = { llm: dl, embedding: de };
      this.log.debug({ event: 'memory-quotas', quotas: { llm: this.quotaTokens('llm'), embedding: this.quotaTokens('embedding') }, change: this.lastChange }, 'memory quotas rebalanced');
      if (dl > 0) this.host.releaseLlm();
      if (de > 0) this.queue.release();
    }
    return round;
  }

  /** What `/admin/state` shows under `memoryQuotas`. */
  state(): MemoryQuotaState {
    const bt = this.config.blockTokens;
    const minOf = (c: QuotaConsumer) => Math.floor(this.quotas.totalBlocks * (c === 'llm' ? this.config.llmMinFraction : this.config.embeddingMinFraction)) * bt;
    return {
      totalTokens: this.totalTokens,
      blockTokens: bt,
      consumers: {
        llm: { quotaTokens: this.quotaTokens('llm'), inFlightTokens: this.host.llmInFlightTokens(), queuedTokens: this.host.llmQueuedTokens(), minTokens: minOf('llm') },
        embedding: { quotaTokens: this.quotaTokens('embedding'), inFlightTokens: this.inFlight, queuedTokens: this.queue.queuedTokens, minTokens: minOf('embedding') },
      },
      rounds: this.rounds,
      lastChange: this.lastChange,
    };
  }

  /**
   * Handles `POST /v1/embeddings`: validates the body (400 with an OpenAI error naming the field),
   * admits it under the embedding quota (deferred while it does not fit; 429 with `Retry-After`
   * when the queue is full or the wait exceeds `maxWaitMs`; 400 when it is larger than the
   * quota can ever grow; 503 when no embedding endpoint is healthy), forwards it to the next
   * healthy endpoint and passes the answer through.
   *
   * @param body - the parsed JSON body.
   * @param raw - the body's bytes as sent (forwarded as they are), when known.
   * @param requestId - the request id (forwarded as `x-request-id`).
   * @param authorization - the client's `Authorization` header, forwarded.
   * @param signal - aborted when the client goes away (a deferred request then leaves the queue at once).
   * @param tenant - the request's tenant (charged its input tokens at placement; its place in the queue). @default ''
   * @returns status, headers and body bytes for the client, and the upstreams tried.
   */
  async handle(
    body: unknown,
    raw: Buffer | undefined,
    requestId: string,
    authorization: string | undefined,
    signal: AbortSignal,
    tenant = '',
  ): Promise<EmbeddingResult> {
    const parsed = parseOpenAiRequest(EmbeddingRequestSchema, body);
    if (!parsed.ok) return this.error(parsed.error, 'error');
    const input = parsed.value.input as string | string[] | number[] | number[][];
    const tokens = embeddingInputTokens(input, this.tokenizer);
    const most = this.totalTokens - this.state().consumers.llm.minTokens;
    if (tokens > most) {
      return this.error(openAiError(400, `input has ${tokens} tokens; the embedding quota holds at most ${most}`, { param: 'input', code: 'context_length_exceeded' }), 'error');
    }
    if (!this.upstreams.anyHealthy()) return this.error(openAiError(503, 'no healthy embedding endpoint', { code: 'no_endpoint' }), 'error');
    let placement: EmbeddingPlacement;
    try {
      const res = await this.queue.admit({ sloClass: 'standard', priority: 0, deadlineMs: Number.POSITIVE_INFINITY, footprintTokens: tokens, tenant }, () => {
        if (this.inFlight + tokens > this.quotaTokens('embedding')) return undefined;
        const endpoint = this.upstreams.pick();
        // every endpoint went out while it waited: answered 503 below, nothing reserved or charged
        if (endpoint === undefined) return { endpoint };
        this.inFlight += tokens;
        // charged as it is placed, so the next release of the same loop sees it (VTC)
        this.tenants?.charge(tenant, tokens, 0);
        return { endpoint };
      }, leaveOnAbort(signal));
      placement = res.value;
    } catch (e) {
      if (e instanceof AdmissionAbandoned) {
        // the client went away while it waited: out of the queue, never sent (the answer goes nowhere)
        return this.error(openAiError(499, e.message, { code: 'client_closed' }), 'abandoned');
      }
      if (e instanceof AdmissionRejected) {
        this.tenants?.rejected(tenant);
        const r = this.error(openAiError(429, `embedding quota: ${e.message}`, { code: e.reason }), 'rejected');
        r.headers['retry-after'] = String(Math.max(1, Math.ceil((e.retryAfterMs ?? 1000) / 1000)));
        return r;
      }
      throw e;
    }
    let ep = placement.endpoint;
    if (ep === undefined) return this.error(openAiError(503, 'no healthy embedding endpoint', { code: 'no_endpoint' }), 'error');
    try {
      const payload = raw ?? Buffer.from(JSON.stringify(parsed.value));
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': requestId };
      if (authorization !== undefined) headers['authorization'] = authorization;
      const tried: string[] = [];
      let why = '';
      while (ep !== undefined) {
        const url: string = ep.url;
        tried.push(url);
        try {
          const res = await undiciRequest(`${url}/v1/embeddings`, { method: 'POST', headers, body: payload, dispatcher: this.agent, signal });
          const buf = Buffer.from(await res.body.arrayBuffer());
          this.requests.inc({ outcome: res.statusCode === 200 ? 'ok' : 'error' });
          return {
            status: res.statusCode,
            headers: { 'content-type': String(res.headers['content-type'] ?? 'application/json'), 'x-kvmgr-endpoint': url },
            body: buf,
            endpoint: url,
            ...(tried.length > 1 ? { attempts: tried } : {}),
          };
        } catch (e) {
          why = `embedding upstream ${url} failed: ${(e as Error).message}`;
          if (signal.aborted) break;
          // nothing listens there, or it broke: out of the rotation until a probe brings it back
          if (isEndpointFailure(e)) ep.health.markFailed(why);
          // one other healthy endpoint is tried
          ep = tried.length > 1 ? undefined : this.upstreams.pick(new Set(tried));
        }
      }
      return { ...this.error(openAiError(502, why, { code: 'upstream_error' }), 'error'), ...(tried.length > 1 ? { attempts: tried } : {}) };
    } finally {
      this.inFlight -= tokens;
      this.queue.release();
    }
  }

  private error(e: OpenAiErrorResponse, outcome: 'error' | 'rejected' | 'abandoned'): EmbeddingResult & { headers: Record<string, string> } {
    this.requests.inc({ outcome });
    return { status: e.status, headers: { 'content-type': 'application/json' }, body: e.body };
  }

  /** The embedding endpoints and whether each takes traffic (`GET /admin/state`). */
  endpointsState(): { url: string; healthy: boolean }[] {
    return this.upstreams.all.map((e) => ({ url: e.url, healthy: e.healthy }));
  }

  /** Stops rebalancing and probing, and refuses what waits. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.queue.close();
    await this.upstreams.close();
  }
}
