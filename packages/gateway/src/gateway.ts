/**
 * The gateway server: fastify routes over the pool, the router and admission.
 *
 * A request flows: validate (adapter-vllm schemas, 400/413 as OpenAI errors, nothing routed) →
 * tokenise → admission (ADMIT / DEFER / REJECT on predicted KV footprint vs free KV) → route
 * (`@kvmgr/router` over routing snapshots: scraped metrics + requests in flight; speculative
 * index entries for the blocks just routed) → proxy with undici (retry on another endpoint only
 * before the first byte to the client; SSE passed chunk by chunk with backpressure; client
 * disconnect aborts upstream) → one pino JSON line with the decision and its scores.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import { KvmgrError, isKvmgrError } from '@kvmgr/core';
import { type OpenAiErrorResponse, TOKENIZER_NAMES, type Tokenizer, getTokenizer, openAiError } from '@kvmgr/adapter-vllm';
import { type LocalKeys, type ResolvedRouterConfig, type RouteRequest, type Router, redisKeyPrefix } from '@kvmgr/router';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino, { type Logger } from 'pino';
import { Agent } from 'undici';
import { type AbArm, AbExperiment, type AbMetrics, type AbOutcome, createAbMetrics, resolveAbConfig } from './ab.js';
import { AdmissionAbandoned, AdmissionQueue, AdmissionRejected, type LeaveWatch } from './admission.js';
import { type EmbeddingsConfig, EmbeddingsService, type MemoryQuotaState } from './embeddings.js';
import { TenantFairness, type TenantStats, resolveTenantsConfig } from './tenants.js';
import { type EndpointConfig, type GatewayConfigInput, type ResolvedGatewayConfig, parseRoutingInput, resolveEndpoint, resolveGatewayConfig } from './config.js';
import { NO_ENDPOINT, type Placement } from './decide.js';
import type { Endpoint } from './endpoint.js';
import { AbStatsSync } from './shared/ab-stats.js';
import { ReplicaState } from './shared/replica-state.js';
import { type GatewayMetrics, createGatewayMetrics } from './metrics.js';
import { PdLegs, pdLogOf, releasePrefill, reservePrefill } from './pd.js';
import { EndpointPool } from './pool.js';
import { type OpenAiRoute, type RequestInfo, readRequest, routeRequestOf } from './request-info.js';
import { SseUsageScanner, type UsageSeen, drained, isEndpointFailure, usageOf } from './upstream.js';
import { UpstreamCall } from './upstream-call.js';

/** Options of {@link createGateway} besides the configuration. */
export interface GatewayOptions {
  /** Where the JSON log lines go. @default stdout */
  readonly logStream?: Pick<Writable, 'write'>;
}

/** Per-endpoint state as `GET /admin/state` returns it. */
export interface EndpointState {
  readonly name: string;
  readonly url: string;
  readonly engine: string;
  readonly role: string;
  readonly healthy: boolean;
  /** KV utilization 0..1 of the last scrape (null before one). */
  readonly kvUtilization: number | null;
  readonly waiting: number | null;
  readonly running: number | null;
  /** GPU blocks held per KV events (per routing history without events). */
  readonly cachedBlocks: number;
  readonly kvEvents: boolean;
  readonly inFlight: number;
  readonly blockSize: number | null;
  readonly capacityTokens: number | null;
  /** Free KV tokens as admission sees them (null when the capacity is unknown). */
  readonly freeTokens: number | null;
  readonly scrapeAgeMs: number | null;
  readonly eventLagS: number;
}

/** A running gateway. */
/** What `GET /admin/state` returns (see {@link Gateway.state}). */
export interface GatewayState {
  endpoints: EndpointState[];
  indexBlocks: number;
  queueDepth: number;
  routing: ResolvedRouterConfig;
  tenants: TenantStats[];
  memoryQuotas?: MemoryQuotaState;
  embeddingEndpoints?: { url: string; healthy: boolean }[];
}

export interface Gateway {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The current router (replaced atomically by `PUT /admin/routing`). */
  router(): Router;
  /**
   * What `GET /admin/state` returns (`tenants`: the top `tenants.metricsTopN` by service, the rest
   * as `other`; with `embeddings`, the memory quotas and whether each embedding endpoint takes traffic).
   */
  state(): GatewayState;
  /** Stops listening, closes upstream connections, scrapers and KV-event sockets. Idempotent. */
  close(): Promise<void>;
}

function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

/**
 * The admission queue's {@link LeaveWatch} for a client connection: the request leaves the queue
 * when its response closes before it was written (the client went away), or at once when that
 * has happened already.
 */
function leaveWhenGone(reply: FastifyReply): LeaveWatch {
  return (leave) => {
    const raw = reply.raw;
    if (raw.destroyed) {
      leave();
      return () => undefined;
    }
    const onClose = () => {
      if (!raw.writableFinished) leave();
    };
    raw.on('close', onClose);
    return () => raw.off('close', onClose);
  };
}

function sendError(reply: FastifyReply, e: OpenAiErrorResponse): FastifyReply {
  return reply.code(e.status).type('application/json').send(e.body);
}

/**
 * Each JSON request body as the client sent it: the bytes, which the proxied request forwards
 * instead of serialising the parsed body again (the schemas keep unknown fields and add nothing, so
 * the engine gets the same JSON, byte for byte, for one parse less per request), and their text
 * (decoded once, for the parser and for `readRequest`, which reads the tools' float literals there).
 */
const rawBodies = new WeakMap<FastifyRequest, { readonly bytes: Buffer; readonly text: string }>();

/**
 * A request and its block keys (`localKeys`), hashed by the router that was current: the shared
 * index, the decision (and a retry's) and the routing history read the same keys instead of
 * hashing the prompt again each time (a 2,000-token prompt is 125 blocks to hash). Hashed again
 * only when the router was replaced meanwhile (its block size may differ).
 */
interface KeyedRequest {
  readonly base: RouteRequest;
  router: Router | undefined;
  req: RouteRequest;
}

/** Headers forwarded to the engine. */
const FORWARD_HEADERS = ['authorization', 'x-slo-ttft-ms', 'x-slo-tpot-ms', 'x-slo-class', 'x-request-priority', 'traceparent', 'tracestate'];

class GatewayServer {
  readonly cfg: ResolvedGatewayConfig;
  /** The model's tokenizer (`tokenizer` of the config), loaded before the server listens. */
  readonly tokenizer: Tokenizer;
  /** Endpoints, block index, router and decision (shared with `kvmgr epp`). */
  readonly pool: EndpointPool;
  /** Shared state with other replicas (Redis), when `redis` is configured. */
  readonly shared: ReplicaState | undefined;
  readonly admission: AdmissionQueue<Placement<Endpoint> | typeof NO_ENDPOINT>;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly agent: Agent;
  readonly app: FastifyInstance;
  /** The P/D legs (prefill leg or prefiller header) of disaggregated requests. */
  readonly pd: PdLegs;
  /** The live A/B experiment (`ab` section), replaced or cleared by `PUT /admin/routing`. */
  ab: AbExperiment | undefined;
  readonly abMetrics: AbMetrics;
  /** The A/B statistics shared with the other replicas, when `redis` is configured. */
  readonly abStats: AbStatsSync | undefined;
  /** Tenants, their VTC counters and tallies. */
  readonly tenants: TenantFairness;
  /** `/v1/embeddings` and the memory quotas, when `embeddings` is configured (made once the endpoints are open). */
  embeddings: EmbeddingsService | undefined;

  constructor(cfg: ResolvedGatewayConfig, options: GatewayOptions) {
    this.cfg = cfg;
    this.tokenizer = getTokenizer(cfg.tokenizer);
    this.tokenizer.preload();
    this.shared = cfg.redis === undefined ? undefined : new ReplicaState(cfg.redis);
    this.tenants = new TenantFairness(cfg.tenants ?? resolveTenantsConfig(undefined));
    this.admission = new AdmissionQueue(cfg.admission.maxQueue, cfg.admission.maxWaitMs, {
      inFlightTokens: () => this.inFlightTokens(),
      ...(this.tenants.config.enabled ? { fairness: this.tenants } : {}),
    });
    this.log = pino({ level: cfg.logLevel, base: { service: 'kvmgr-gateway' } }, (options.logStream ?? process.stdout) as pino.DestinationStream);
    this.pool = new EndpointPool(
      cfg,
      this.log,
      {
        onMaybeFreed: () => this.admission.release(),
        onEventLag: (lagS) => this.metrics.eventLag.observe(lagS),
      },
      this.shared,
    );
    this.agent = new Agent({ connections: 256, keepAliveTimeout: 10_000, headersTimeout: cfg.upstreamHeadersTimeoutMs, bodyTimeout: cfg.upstreamBodyTimeoutMs });
    this.metrics = createGatewayMetrics({
      poolName: 'kvmgr',
      endpoints: () => this.pool.endpointGauges(),
      indexBlocks: () => this.pool.index.size,
      queueDepth: () => this.admission.depth,
      eventCounters: () => this.pool.eventCounters(),
    });
    this.app = Fastify({ logger: false, bodyLimit: cfg.maxBodyBytes, forceCloseConnections: true });
    this.shared?.registerMetrics(this.metrics.registry);
    this.pd = new PdLegs({
      pool: this.pool,
      settings: cfg.pd,
      agent: this.agent,
      headersTimeoutMs: cfg.upstreamHeadersTimeoutMs,
      bodyTimeoutMs: cfg.upstreamBodyTimeoutMs,
      retries: cfg.retries,
      registry: this.metrics.registry,
      log: this.log,
    });
    this.abMetrics = createAbMetrics(this.metrics.registry);
    this.tenants.registerMetrics(this.metrics.registry);
    this.ab = cfg.ab === undefined ? undefined : new AbExperiment(cfg.ab, (c) => this.pool.routerFor(c));
    this.abStats =
      this.shared === undefined || cfg.redis === undefined
        ? undefined
        : new AbStatsSync({ link: this.shared.link, prefix: redisKeyPrefix(cfg.redis.namespace), replicaId: cfg.redis.replicaId, commandTimeoutMs: cfg.redis.commandTimeoutMs, current: () => this.ab });
    this.routes();
  }

  /** The current router (the pool's). */
  get routerNow(): Router {
    return this.pool.router;
  }

  // ---- routing and admission ---------------------------------------------------------------

  /** KV tokens reserved by the requests in flight, all endpoints. */
  private inFlightTokens(): number {
    let s = 0;
    for (const e of this.pool.endpoints.values()) s += e.inFlight.reservedTokens;
    return s;
  }

  /** The request with `localKeys` from `router` (default: the current one), hashed once per request and router. */
  private keyed(k: KeyedRequest, router: Router = this.pool.router): RouteRequest {
    if (k.router !== router) {
      k.req = { ...k.base, localKeys: router.keysFor(k.base) };
      k.router = router;
    }
    return k.req;
  }

  /** Routes among the endpoints with room for the footprint and reserves it; undefined when none has room. */
  private place(req: KeyedRequest, info: RequestInfo, excluded: ReadonlySet<string>, checkKv: boolean, router?: Router): Placement<Endpoint> | typeof NO_ENDPOINT | undefined {
    const t0 = performance.now();
    const p = this.pool.place(this.keyed(req, router), info.footprintTokens, excluded, checkKv && this.cfg.admission.enabled, nowUs(), router);
    if (typeof p === 'object') this.metrics.decisionSeconds.observe((performance.now() - t0) / 1000);
    if (typeof p === 'object') this.shared?.routed(p.endpoint.name, req.base.requestId, info.footprintTokens);
    return p;
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private routes(): void {
    const app = this.app;
    app.addContentTypeParser(['text/plain', 'application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body));
    // fastify's own JSON parser (secure-json-parse, __proto__/constructor keys rejected), keeping the bytes
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      const text = (body as Buffer).toString('utf8');
      rawBodies.set(req, { bytes: body as Buffer, text });
      parseJson(req, text, done);
    });
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
      const status = err.statusCode ?? 500;
      const e =
        status === 413
          ? openAiError(413, `request body is larger than ${this.cfg.maxBodyBytes} bytes`, { code: 'request_too_large' })
          : status >= 400 && status < 500
            ? openAiError(status, `request body: ${err.message}`, { code: err.code ?? 'invalid_value' })
            : openAiError(500, `internal error: ${err.message}`, { code: 'internal_error' });
      this.log.info({ reqId: req.headers['x-request-id'] ?? null, method: req.method, path: req.url, status: e.status, error: e.body.error.message }, 'request rejected');
      if (status >= 500) this.log.error({ err }, 'unhandled error');
      void sendError(reply, e);
    });
    app.setNotFoundHandler((req, reply) => {
      void sendError(reply, openAiError(404, `no route ${req.method} ${req.url}`, { code: 'not_found' }));
    });
    app.get('/health', async () => ({ status: 'ok', endpoints: this.pool.endpoints.size, healthy: this.pool.eligible().length, ...(this.shared === undefined ? {} : { redis: this.shared.health() }) }));
    app.get('/metrics', async (_req, reply) => reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics()));
    app.get('/admin/state', async () => this.state());
    app.get('/admin/routing', async () => this.routerNow.config);
    app.get<{ Querystring: { scope?: string } }>('/admin/ab', async (req, reply) => {
      const ab = this.ab;
      if (ab === undefined) return { active: false };
      const sync = this.abStats;
      // without Redis: this replica's statistics, as before (no scope fields)
      if (sync === undefined) return ab.report();
      const scope = req.query.scope ?? 'fleet';
      if (scope !== 'fleet' && scope !== 'local') return sendError(reply, openAiError(400, `scope: expected "fleet" or "local", got ${JSON.stringify(scope)}`, { param: 'scope', code: 'invalid_value' }));
      // (the experiment may be replaced while Redis answers: the report is of the one read)
      return ab.report(0.95, scope === 'local' ? sync.localView(ab, null) : await sync.view(ab));
    });
    app.put('/admin/routing', async (req, reply) => {
      // `{ ab: {...} | null, ...routing }` sets or clears the A/B section (with the routing, when other keys are given)
      const body = req.body;
      if (body !== null && typeof body === 'object' && !Array.isArray(body) && Object.hasOwn(body, 'ab')) {
        const { ab, ...rest } = body as Record<string, unknown>;
        let nextAb: AbExperiment | undefined;
        let routing: { config: ResolvedRouterConfig; blockSizeFixed: boolean } | undefined;
        try {
          routing = Object.keys(rest).length === 0 ? undefined : parseRoutingInput(rest, this.cfg.model, this.cfg.pd);
          if (routing !== undefined && this.cfg.model !== undefined && routing.config.model !== this.cfg.model) throw new Error(`routing.model: must stay ${JSON.stringify(this.cfg.model)} (the block index namespace)`);
          nextAb = ab === null ? undefined : new AbExperiment(resolveAbConfig(ab, this.cfg.model, 'ab', this.cfg.pd), (c) => this.pool.routerFor(c));
          if (routing !== undefined) this.pool.routerFor(routing.config);
        } catch (e) {
          return sendError(reply, openAiError(400, (e as Error).message, { code: isKvmgrError(e) ? e.code : 'invalid_value' }));
        }
        if (routing !== undefined) this.pool.useRouter(this.pool.routerFor(routing.config), routing.blockSizeFixed);
        const previousAb = this.ab;
        const previous = previousAb?.report();
        this.ab = nextAb;
        // the old experiment's last snapshot, so the fleet view of it is complete (its hash expires later)
        if (previousAb !== undefined && previousAb !== nextAb) void this.abStats?.write(previousAb);
        this.log.info({ event: 'ab-updated', ab: nextAb === undefined ? null : { id: nextAb.id, ...nextAb.config }, previous: previous ?? null, ...(routing === undefined ? {} : { routing: this.routerNow.config }) }, nextAb === undefined ? 'A/B experiment cleared' : 'A/B experiment started');
        return { routing: this.routerNow.config, ab: nextAb === undefined ? null : { id: nextAb.id, ...nextAb.config } };
      }
      let next: Router;
      let fixed: boolean;
      try {
        const { config, blockSizeFixed } = parseRoutingInput(req.body, this.cfg.model, this.cfg.pd);
        if (this.cfg.model !== undefined && config.model !== this.cfg.model) {
          return sendError(reply, openAiError(400, `routing.model: must stay ${JSON.stringify(this.cfg.model)} (the block index namespace)`, { param: 'model', code: 'invalid_value' }));
        }
        next = this.pool.routerFor(config);
        fixed = blockSizeFixed;
      } catch (e) {
        return sendError(reply, openAiError(400, (e as Error).message, { code: isKvmgrError(e) ? e.code : 'invalid_value' }));
      }
      this.pool.useRouter(next, fixed);
      this.log.info({ event: 'routing-updated', routing: this.routerNow.config }, 'routing configuration replaced');
      return this.routerNow.config;
    });
    app.get('/admin/endpoints', async () => [...this.pool.endpoints.values()].map((e) => e.config));
    app.post('/admin/endpoints', async (req, reply) => {
      let c: EndpointConfig;
      try {
        c = resolveEndpoint(req.body);
      } catch (e) {
        return sendError(reply, openAiError(400, (e as Error).message, { code: 'invalid_value' }));
      }
      for (const e of this.pool.endpoints.values()) {
        if (e.name === c.name || e.config.url === c.url) return sendError(reply, openAiError(409, `endpoint ${JSON.stringify(c.name)} (${c.url}) exists already`, { code: 'conflict' }));
      }
      try {
        const ep = await this.pool.add(c);
        return reply.code(201).send({ ...ep.config, healthy: ep.healthy });
      } catch (e) {
        return sendError(reply, openAiError(400, `endpoint ${JSON.stringify(c.name)}: ${(e as Error).message}`, { code: 'invalid_value' }));
      }
    });
    app.delete<{ Params: { name: string } }>('/admin/endpoints/:name', async (req, reply) => {
      const ok = await this.pool.remove(req.params.name);
      if (!ok) return sendError(reply, openAiError(404, `no endpoint ${JSON.stringify(req.params.name)}`, { code: 'not_found' }));
      return reply.code(204).send();
    });
    app.post('/v1/completions', (req, reply) => this.handle('completions', req, reply));
    app.post('/v1/chat/completions', (req, reply) => this.handle('chat', req, reply));
    app.post('/v1/embeddings', async (req, reply) => {
      const emb = this.embeddings;
      if (emb === undefined) return sendError(reply, openAiError(404, 'no route POST /v1/embeddings: the gateway has no embeddings section', { code: 'not_found' }));
      const hdr = req.headers['x-request-id'];
      const requestId = (Array.isArray(hdr) ? hdr[0] : hdr) || randomUUID();
      const tenant = this.tenants.tenantOf(req.headers);
      if (typeof tenant !== 'string') {
        this.log.info({ reqId: requestId, route: 'embeddings', status: tenant.status, error: tenant.body.error.message }, 'request rejected');
        return sendError(reply, tenant);
      }
      this.tenants.arrived(tenant);
      const ac = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
      };
      reply.raw.on('close', onClose);
      try {
        const r = await emb.handle(req.body, rawBodies.get(req)?.bytes, requestId, req.headers.authorization, ac.signal, tenant);
        this.log.info({ reqId: requestId, route: 'embeddings', status: r.status, tenant, ...(r.endpoint === undefined ? {} : { endpoint: r.endpoint }), ...(r.attempts === undefined ? {} : { attempts: r.attempts }) }, 'request');
        return reply.code(r.status).headers({ ...r.headers, 'x-request-id': requestId }).send(r.body);
      } finally {
        reply.raw.off('close', onClose);
      }
    });
  }

  state(): GatewayState {
    const now = Date.now();
    return {
      endpoints: [...this.pool.endpoints.values()].map((e) => {
        const l = e.latest();
        const cap = e.capacityTokens();
        return {
          name: e.name,
          url: e.config.url,
          engine: e.config.engine,
          role: e.config.role,
          healthy: e.healthy,
          kvUtilization: l?.snapshot.kvUtilization ?? null,
          waiting: l?.snapshot.waiting ?? null,
          running: l?.snapshot.running ?? null,
          cachedBlocks: e.cachedBlocks,
          kvEvents: e.config.kvEvents !== null,
          inFlight: e.inFlight.size,
          blockSize: e.blockSize() ?? null,
          capacityTokens: cap ?? null,
          freeTokens: cap === undefined ? null : e.freeTokens(),
          scrapeAgeMs: l === undefined ? null : now - l.scrapedAtMs,
          eventLagS: e.lastEventLagS,
        };
      }),
      indexBlocks: this.pool.index.size,
      queueDepth: this.admission.depth,
      routing: this.routerNow.config,
      tenants: this.tenants.summary(this.tenants.config.metricsTopN),
      ...(this.embeddings === undefined ? {} : { memoryQuotas: this.embeddings.state(), embeddingEndpoints: this.embeddings.endpointsState() }),
    };
  }

  private async handle(route: OpenAiRoute, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const started = performance.now();
    const hdr = req.headers['x-request-id'];
    const requestId = (Array.isArray(hdr) ? hdr[0] : hdr) || randomUUID();
    reply.header('x-request-id', requestId);
    const logBase = { reqId: requestId, route, path: req.url };
    const r = readRequest(route, req.body, req.headers, this.cfg.admission.defaultMaxTokens, this.tokenizer, rawBodies.get(req)?.text);
    if (!r.ok) {
      this.log.info({ ...logBase, status: r.error.status, error: r.error.body.error.message }, 'request rejected');
      return sendError(reply, r.error);
    }
    const info = r.info;
    const tenant = this.tenants.tenantOf(req.headers);
    if (typeof tenant !== 'string') {
      this.log.info({ ...logBase, status: tenant.status, error: tenant.body.error.message }, 'request rejected');
      return sendError(reply, tenant);
    }
    this.tenants.arrived(tenant);
    const model = info.model ?? this.cfg.model ?? '';
    this.metrics.requests.inc({ model_name: model, target_model_name: model });
    const fail = (e: OpenAiErrorResponse, extra: Record<string, unknown> = {}) => {
      this.metrics.requestErrors.inc({ model_name: model, target_model_name: model, error_code: String(e.status) });
      if (arm !== undefined) this.recordAb(ab, arm, { ok: false, stream: info.stream, slo: info.slo });
      this.log.info({ ...logBase, status: e.status, error: e.body.error.message, promptTokens: info.promptTokens, durationMs: performance.now() - started, ...extra }, 'request failed');
      return sendError(reply, e);
    };
    const base = routeRequestOf(requestId, info);
    const routeReq: KeyedRequest = { base, router: undefined, req: base };
    const ab = this.ab;
    const arm = ab?.assign(req.headers, info.body, requestId);
    const armRouter = arm === undefined ? undefined : ab?.routerOf(arm, this.routerNow.config.blockSize);
    if (this.shared !== undefined) await this.shared.prepare(this.keyed(routeReq).localKeys as LocalKeys);
    const healthy = this.pool.eligible();
    if (healthy.length === 0) return fail(openAiError(503, 'no healthy endpoint', { code: 'no_endpoint' }));
    if (this.cfg.admission.enabled) {
      const caps = healthy.map((e) => e.capacityTokens());
      if (caps.every((c) => c !== undefined && c < info.footprintTokens)) {
        return fail(
          openAiError(400, `request needs ${info.footprintTokens} KV tokens (prompt + max_tokens); the largest endpoint holds ${Math.max(...(caps as number[]))}`, {
            code: 'context_length_exceeded',
          }),
        );
      }
    }
    // admission: ADMIT / DEFER / REJECT
    let placement: Placement<Endpoint>;
    let deferred = false;
    try {
      const ticket = { sloClass: info.sloClass, priority: info.priority, deadlineMs: Date.now() + (info.slo.ttftMs ?? Number.POSITIVE_INFINITY), footprintTokens: info.footprintTokens, tenant };
      const res = await this.admission.admit(ticket, () => {
        if (this.embeddings !== undefined && !this.embeddings.llmFits(this.inFlightTokens(), info.footprintTokens)) return undefined;
        const p = this.place(routeReq, info, new Set(), true, armRouter);
        // charged as it is placed, so the next release of the same loop sees it (VTC)
        if (typeof p === 'object') {
          this.tenants.charge(tenant, info.promptTokens, 0);
          // P/D: the prefill leg (the gateway's or the sidecar's) holds the prompt on the prefill endpoint from now
          reservePrefill(p, requestId, info.promptTokens);
        }
        return p;
      }, leaveWhenGone(reply));
      if (res.value === NO_ENDPOINT) return fail(openAiError(503, 'no healthy endpoint', { code: 'no_endpoint' }));
      placement = res.value;
      deferred = res.deferred;
      this.metrics.admission.inc({ decision: deferred ? 'defer' : 'admit' });
    } catch (e) {
      if (e instanceof AdmissionAbandoned) {
        // the client went away while deferred: out of the queue, never placed, nothing sent upstream
        this.metrics.admission.inc({ decision: 'abandoned' });
        this.log.info(
          { ...logBase, status: 0, outcome: 'left-while-deferred', admission: 'defer', tenant, waitedMs: Math.round(e.waitedMs), promptTokens: info.promptTokens, durationMs: Math.round((performance.now() - started) * 100) / 100 },
          'request',
        );
        return reply;
      }
      if (e instanceof AdmissionRejected) {
        this.metrics.admission.inc({ decision: 'reject' });
        this.metrics.rejections.inc({ reason: e.reason });
        this.tenants.rejected(tenant);
        reply.header('retry-after', String(Math.max(this.cfg.admission.retryAfterS, Math.ceil((e.retryAfterMs ?? 0) / 1000))));
        return fail(openAiError(429, e.message, { code: e.reason }), { admission: 'reject' });
      }
      throw e;
    }
    return this.proxy(route, req, reply, info, routeReq, placement, deferred, started, model, ab === undefined || arm === undefined ? undefined : { ab, arm, router: armRouter }, tenant);
  }

  /** Records an A/B outcome, unless the experiment was replaced while the request ran. */
  private recordAb(ab: AbExperiment | undefined, arm: AbArm, o: AbOutcome): void {
    if (ab === undefined || ab !== this.ab) return;
    ab.record(arm, o);
    this.abMetrics.requests.inc({ arm: arm.name, outcome: o.ok ? 'ok' : 'error' });
  }

  private decisionLog(p: Placement<Endpoint>, deferred: boolean): Record<string, unknown> {
    const d = p.decision;
    const scores: Record<string, number> = {};
    if (d.scores !== undefined) for (let i = 0; i < p.names.length; i++) scores[p.names[i] as string] = Math.round((d.scores[i] as number) * 1e4) / 1e4;
    const pd = pdLogOf(p, this.cfg.pd.mode);
    return { endpoint: p.endpoint.name, reason: d.reason, scores, predictedCachedTokens: d.cachedTokens, admission: deferred ? 'defer' : 'admit', ...(pd === undefined ? {} : { pd }) };
  }

  private async proxy(
    route: OpenAiRoute,
    req: FastifyRequest,
    reply: FastifyReply,
    info: RequestInfo,
    routeReq: KeyedRequest,
    first: Placement<Endpoint>,
    deferred: boolean,
    started: number,
    model: string,
    abArm: { ab: AbExperiment; arm: AbArm; router: Router | undefined } | undefined,
    tenant: string,
  ): Promise<unknown> {
    const requestId = routeReq.base.requestId;
    // the request's log line (and the decision records in it) are built only when it is written
    const logging = this.log.isLevelEnabled('info');
    // the client going away aborts the upstream request in flight (and stops retries)
    let clientGone = false;
    let call: UpstreamCall | undefined;
    const onClientClose = () => {
      if (reply.raw.writableFinished) return;
      clientGone = true;
      call?.abort(new Error('client disconnected'));
    };
    reply.raw.on('close', onClientClose);
    const headers: string[] = ['content-type', 'application/json', 'x-request-id', requestId];
    for (const h of FORWARD_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers.push(h, v);
    }
    let bodyText = rawBodies.get(req)?.bytes ?? JSON.stringify(info.body);
    const path = route === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const excluded = new Set<string>();
    const decisions: Record<string, unknown>[] = [];
    let placement: Placement<Endpoint> | undefined = first;
    let attempt = 0;
    let status = 0;
    let usage: UsageSeen | undefined;
    let ttftMs: number | undefined;
    let outcome = 'ok';
    let errorMsg: string | undefined;
    let pdLeg: Record<string, unknown> | undefined;
    /** A buffered 200 answer, its usage read after it was sent. */
    let usageBody: Buffer | undefined;
    // P/D: the prompt's reservation on the prefill endpoint ends with the prefill leg (two-legs), when the decode answer starts (prefiller-header), or with the request
    const endPrefillHold = () => {
      if (releasePrefill(first, requestId)) this.admission.release();
    };
    const finish = (ep: Endpoint, ok: boolean) => {
      const f = ep.finishInFlight(requestId);
      if (f !== undefined && ok) this.admission.model.observeService(Date.now() - f.routedAtMs);
      this.shared?.finished(requestId);
      if (ok && ep.config.kvEvents === null) this.pool.recordHistory(ep, this.keyed(routeReq));
      this.admission.release();
    };
    try {
      if (first.pd !== undefined) {
        // P/D: the prefill leg (two-legs) or the prefiller header, before the decode leg below
        // the legs take the headers as a record and stop on the client's disconnect
        const pdHeaders: Record<string, string> = {};
        for (let i = 0; i < headers.length; i += 2) pdHeaders[headers[i] as string] = headers[i + 1] as string;
        const pdAbort = new AbortController();
        const onGone = () => pdAbort.abort(new Error('client disconnected'));
        if (clientGone) onGone();
        else reply.raw.once('close', onGone);
        const leg = await this.pd.prepare(first, route, info, pdHeaders, pdAbort.signal).finally(() => reply.raw.off('close', onGone));
        headers.length = 0;
        for (const [k, v] of Object.entries(pdHeaders)) headers.push(k, v);
        pdLeg = leg.log;
        if (leg.body !== undefined) bodyText = leg.body;
        if (leg.aborted === true || leg.error !== undefined) {
          finish(first.endpoint, false);
          outcome = leg.aborted === true ? 'client-aborted' : 'prefill-failed';
          if (leg.error === undefined) return reply;
          status = leg.error.status;
          errorMsg = leg.error.body.error.message;
          return this.sendFailure(reply, leg.error, model);
        }
      }
      while (placement !== undefined) {
        const p: Placement<Endpoint> = placement;
        placement = undefined;
        const ep = p.endpoint;
        if (logging) decisions.push(this.decisionLog(p, deferred));
        this.metrics.decisions.inc({ endpoint: ep.name, reason: p.decision.reason });
        if (abArm !== undefined) this.abMetrics.decisions.inc({ arm: abArm.arm.name, endpoint: ep.name, reason: p.decision.reason });
        if (p.decision.scores !== undefined) this.metrics.decisionScore.observe({ endpoint: ep.name }, p.decision.scores[p.decision.position] as number);
        const retry = (why: string, failed: boolean, e?: unknown) => {
          if (failed) {
            ep.markFailed(why);
            this.metrics.upstreamFailures.inc({ endpoint: ep.name, phase: 'connect' });
          }
          finish(ep, false);
          excluded.add(ep.name);
          errorMsg = why;
          if (clientGone || attempt >= this.cfg.retries) return false;
          const next = this.place(routeReq, info, excluded, false, abArm?.router);
          if (next === undefined || next === NO_ENDPOINT) return false;
          attempt++;
          this.metrics.retries.inc();
          this.log.debug({ reqId: requestId, from: ep.name, to: next.endpoint.name, why, err: (e as Error | undefined)?.message }, 'retrying on another endpoint');
          placement = next;
          return true;
        };
        const res = UpstreamCall.start(this.agent, {
          url: ep.config.url,
          path,
          headers,
          body: bodyText,
          headersTimeoutMs: this.cfg.upstreamHeadersTimeoutMs,
          bodyTimeoutMs: this.cfg.upstreamBodyTimeoutMs,
        });
        call = res;
        // undici calls it from its handler: the release loop runs after, not inside it
        if (first.pd !== undefined) res.onHead = () => queueMicrotask(endPrefillHold);
        try {
          await res.response();
        } catch (e) {
          if (clientGone) {
            finish(ep, false);
            outcome = 'client-aborted';
            return reply;
          }
          // a 502/503/504 whose body broke is retried as the status says, without blaming the endpoint for the break
          const gatewayStatus = res.headReceived && (res.statusCode === 502 || res.statusCode === 503 || res.statusCode === 504);
          const why = !res.headReceived
            ? `upstream ${ep.name} failed before responding: ${(e as Error).message}`
            : gatewayStatus
              ? `upstream ${ep.name} answered ${res.statusCode}`
              : `upstream ${ep.name} broke before the response was complete: ${(e as Error).message}`;
          if (retry(why, gatewayStatus ? false : res.headReceived || isEndpointFailure(e), e)) continue;
          status = 502;
          outcome = 'upstream-error';
          return this.sendFailure(reply, openAiError(502, errorMsg ?? 'upstream failed', { code: 'upstream_error' }), model);
        }
        const ctype = res.contentType;
        if (!res.streaming) {
          if (res.statusCode === 502 || res.statusCode === 503 || res.statusCode === 504) {
            if (retry(`upstream ${ep.name} answered ${res.statusCode}`, false)) continue;
          }
          const buf = res.whole();
          status = res.statusCode;
          if (status !== 200) outcome = 'upstream-status';
          ttftMs = performance.now() - started;
          // the answer first: the end of the request in flight (the admission release loop, the
          // routing history) and the usage read (JSON.parse of the body) are not on its path
          reply.code(status).header('content-type', ctype || 'application/json').header('x-kvmgr-endpoint', ep.name);
          try {
            reply.send(buf);
          } finally {
            finish(ep, status === 200);
          }
          if (status === 200) usageBody = buf;
          return reply;
        }
        // SSE: hold the client's headers until the first upstream chunk, so a failure before it can still be retried
        let head: Buffer | null;
        try {
          head = await res.next();
        } catch (e) {
          if (clientGone) {
            finish(ep, false);
            outcome = 'client-aborted';
            return reply;
          }
          if (retry(`upstream ${ep.name} broke before its first chunk: ${(e as Error).message}`, true, e)) continue;
          status = 502;
          outcome = 'upstream-error';
          return this.sendFailure(reply, openAiError(502, errorMsg ?? 'upstream failed', { code: 'upstream_error' }), model);
        }
        ttftMs = performance.now() - started;
        const placedAt = ep.inFlight.get(requestId)?.routedAtMs;
        if (placedAt !== undefined) this.admission.model.observeTtft(Date.now() - placedAt);
        status = 200;
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': requestId, 'x-kvmgr-endpoint': ep.name });
        const scanner = new SseUsageScanner();
        let ok = false;
        try {
          let chunk = head;
          while (chunk !== null) {
            scanner.push(chunk);
            if (!raw.write(chunk)) await drained(raw);
            if (clientGone) break;
            chunk = await res.next();
          }
          ok = !clientGone;
        } catch (e) {
          if (!clientGone) {
            outcome = 'upstream-broke-mid-stream';
            errorMsg = `upstream ${ep.name} failed mid-stream: ${(e as Error).message}`;
            ep.markFailed(errorMsg);
            this.metrics.upstreamFailures.inc({ endpoint: ep.name, phase: 'stream' });
            this.metrics.requestErrors.inc({ model_name: model, target_model_name: model, error_code: 'stream' });
            raw.write(`data: ${JSON.stringify(openAiError(502, errorMsg, { code: 'upstream_error' }).body)}\n\n`);
          }
        }
        if (clientGone) {
          outcome = 'client-aborted';
          res.abort(new Error('client disconnected'));
          raw.destroy();
        } else raw.end();
        usage = scanner.usage;
        finish(ep, ok);
        return reply;
      }
      return reply;
    } finally {
      endPrefillHold();
      reply.raw.off('close', onClientClose);
      // after the answer was written (same turn, so the line is there when the client has it): the
      // usage of a buffered answer (a JSON.parse of its body), A/B, tenant and token counts, the log line
      if (usageBody !== undefined) {
        try {
          usage = usageOf(JSON.parse(usageBody.toString('utf8')));
        } catch {
          // not JSON: passed through as it is
        }
      }
      if (abArm !== undefined && outcome !== 'client-aborted') {
        const ok = status === 200 && outcome === 'ok';
        this.recordAb(abArm.ab, abArm.arm, {
          ok,
          stream: info.stream,
          slo: info.slo,
          ...(ok ? { ttftMs, e2eMs: performance.now() - started } : {}),
          ...(usage === undefined ? {} : { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, cachedTokens: usage.cachedTokens }),
        });
      }
      if (usage !== undefined) {
        this.tenants.charge(tenant, 0, usage.completionTokens);
        this.metrics.promptTokens.inc(usage.promptTokens);
        if (usage.cachedTokens !== null) this.metrics.cachedTokens.inc(usage.cachedTokens);
      }
      if (logging) {
        // one object, keys added in the order of the line (no spread copies per request)
        const line: Record<string, unknown> = { reqId: requestId, route, status, outcome, stream: info.stream, decision: decisions[decisions.length - 1] };
        if (abArm !== undefined) line['ab'] = abArm.arm.name;
        line['tenant'] = tenant;
        if (decisions.length > 1) line['attempts'] = decisions;
        if (pdLeg !== undefined) line['pdLeg'] = pdLeg;
        line['promptTokens'] = info.promptTokens;
        line['maxTokens'] = info.maxTokens;
        line['slo'] = info.slo;
        if (usage !== undefined) line['usage'] = usage;
        if (errorMsg !== undefined && outcome !== 'ok') line['error'] = errorMsg;
        line['ttftMs'] = ttftMs === undefined ? null : Math.round(ttftMs * 100) / 100;
        line['durationMs'] = Math.round((performance.now() - started) * 100) / 100;
        this.log.info(line, 'request');
      }
    }
  }

  private sendFailure(reply: FastifyReply, e: OpenAiErrorResponse, model: string): FastifyReply {
    this.metrics.requestErrors.inc({ model_name: model, target_model_name: model, error_code: String(e.status) });
    return sendError(reply, e);
  }

  /**
   * Makes the embeddings service: its budget is `embeddings.quota.totalTokens`, else the KV
   * capacity the endpoints reported at their first scrape.
   *
   * @throws KvmgrError `KVMGR_BAD_CONFIG` when neither gives a budget, or there is no embedding endpoint.
   */
  async startEmbeddings(ec: EmbeddingsConfig): Promise<void> {
    let total = ec.totalTokens;
    if (total === null) {
      const caps = [...this.pool.endpoints.values()].map((e) => e.capacityTokens());
      if (caps.length === 0 || caps.some((c) => c === undefined)) {
        throw new KvmgrError('KVMGR_BAD_CONFIG', 'embeddings.quota.totalTokens: required when the endpoints do not report their KV capacity', { details: { key: 'embeddings.quota.totalTokens' } });
      }
      total = (caps as number[]).reduce((a, b) => a + b, 0);
    }
    const urls = ec.endpoints.length > 0 ? ec.endpoints : [...this.pool.endpoints.values()].map((e) => e.config.url);
    this.embeddings = new EmbeddingsService(
      ec,
      total,
      urls,
      { llmInFlightTokens: () => this.inFlightTokens(), llmQueuedTokens: () => this.admission.queuedTokens, releaseLlm: () => this.admission.release(), tokenizer: this.tokenizer },
      this.agent,
      this.log,
      this.metrics.registry,
      this.tenants,
      { intervalMs: this.cfg.healthIntervalMs, unhealthyThreshold: this.cfg.unhealthyThreshold },
    );
    await this.embeddings.start();
  }

  closing = false;

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.admission.close();
    await this.embeddings?.close();
    await this.abStats?.close();
    await this.shared?.close();
    await this.app.close();
    await this.pool.close();
    await this.agent.close().catch(() => undefined);
    this.log.flush?.();
  }
}

/**
 * Starts a gateway: opens every endpoint (first metrics scrape awaited, KV-event subscriptions
 * opened), then listens. Resolves when it is ready to route.
 *
 * @param config - a resolved configuration, or the object form (validated here).
 * @param options - log destination.
 * @returns `{ url, close(), router(), state() }`.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for an invalid configuration (before anything opens);
 *   `KVMGR_UNAVAILABLE` when a KV-event endpoint cannot be opened or the port is taken.
 * @example
 * ```ts
 * const gw = await createGateway({ server: { port: 0 }, endpoints: [{ url: 'http://127.0.0.1:8000' }] });
 * const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x' });
 * await gw.close();
 * ```
 */
/**
 * Warns that no tokenizer was configured and the model's name implies none (or there is no
 * model), so `DEFAULT_TOKENIZER` (Llama 3.1's) is used: for another model family the gateway's
 * prompt keys then match none of the engines' blocks.
 */
export function warnTokenizerFallback(log: Logger, cfg: ResolvedGatewayConfig): void {
  log.warn({ event: 'tokenizer-fallback', model: cfg.model ?? null, tokenizer: cfg.tokenizer }, `tokenizer: model ${JSON.stringify(cfg.model ?? null)} implies no known tokenizer; using ${cfg.tokenizer} (set tokenizer: to one of ${TOKENIZER_NAMES.join(', ')} if the engines run another family)`);
}

export async function createGateway(config: ResolvedGatewayConfig | GatewayConfigInput, options: GatewayOptions = {}): Promise<Gateway> {
  const cfg = isResolved(config) ? config : resolveGatewayConfig(config);
  const server = new GatewayServer(cfg, options);
  try {
    for (const e of cfg.endpoints) await server.pool.add(e);
    if (cfg.embeddings !== undefined) await server.startEmbeddings(cfg.embeddings);
    await server.app.listen({ host: cfg.host, port: cfg.port });
    server.shared?.start();
    server.abStats?.start();
  } catch (e) {
    await server.close();
    throw e;
  }
  const addr = server.app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : cfg.port;
  const host = cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  server.log.info({ event: 'listening', url: `http://${host}:${port}`, endpoints: cfg.endpoints.map((e) => e.name), tokenizer: cfg.tokenizer, routing: server.routerNow.config }, 'gateway ready');
  if (cfg.tokenizerFrom === 'fallback') warnTokenizerFallback(server.log, cfg);
  return {
    url: `http://${host}:${port}`,
    router: () => server.routerNow,
    state: () => server.state(),
    close: () => server.close(),
  };
}

/** A resolved configuration carries `blockSizeFixed`, which the object form has no key for. */
function isResolved(c: ResolvedGatewayConfig | GatewayConfigInput): c is ResolvedGatewayConfig {
  return typeof (c as { blockSizeFixed?: unknown }).blockSizeFixed === 'boolean';
}
