/**
 * `createEngineServer`: a vLLM-compatible inference server whose "GPU" is the kvmgr engine core
 * run on the wall clock. HTTP (fastify) speaks vLLM's OpenAI API, `/metrics` exports vLLM's
 * families, and KV events leave over ZMQ in vLLM's wire format, so gateways, routers and load
 * generators written for vLLM run against it unchanged.
 */
import type { Socket } from 'node:net';
import { KvEventPublisher, openAiError, resolveTokenizer } from '@kvmgr/adapter-vllm';
import { type EngineProfile, KvmgrError, invalidArgument } from '@kvmgr/core';
import { EngineCore, type RequestFinishedStats } from '@kvmgr/engine';
import { type LatencyModel, getEngineProfile, getGpuSpec, getModelSpec, gpuKvBlocks, kvBytesPerBlockPerRank, selectLatencyModel } from '@kvmgr/sim';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type Logger, pino } from 'pino';
import { jsonBodyText, keepJsonBodyText } from './body-text.js';
import { EngineMetricsExporter } from './engine-metrics.js';
import { type GenerationContext, type RequestTiming, serveGeneration } from './generation.js';
import { type KvEventsConfig, parseKvEventsConfig } from './kv-events-config.js';
import { type GenerationRequest, parseGenerationRequest } from './openai-requests.js';
import { type PdOptions, PdRole } from './pd.js';
import { type DriverStep, RealtimeDriver, type RealtimeDriverStats } from './realtime-driver.js';
import { registerUtilityRoutes } from './utility-routes.js';

/** Options of {@link createEngineServer}. */
export interface EngineServerOptions {
  /** Model whose latency and KV geometry are modelled (a `@kvmgr/sim` model name or HF id). @default 'Llama-3.1-8B-Instruct' */
  readonly model?: string;
  /** Name the API answers to and reports (`/v1/models`, `model_name` label). @default the model's HF id, e.g. 'meta-llama/Llama-3.1-8B-Instruct' */
  readonly servedModelName?: string;
  /**
   * Tokenizer of prompts, chat, `/tokenize`, `/detokenize` and output text (`llama3`, `qwen2`,
   * `qwen2.5`, `qwen3`). @default the one the model implies (`Qwen2.5-7B-Instruct` → `qwen2.5`), else `llama3.1`
   */
  readonly tokenizer?: string;
  /** GPU of the modelled instance (`@kvmgr/sim` GPU name). @default 'H100' */
  readonly gpu?: string;
  /** Tensor-parallel size. @default 1 */
  readonly tp?: number;
  /** Engine profile: block size, token budget, max sequences, eviction, scheduler pipeline, victim selector. @default 'vllm-default' */
  readonly profile?: string | EngineProfile;
  /** Latency backend (`auto` picks by evidence, see `selectLatencyModel`) or a model. @default 'auto' */
  readonly latency?: 'auto' | 'blis' | 'roofline' | LatencyModel;
  /** GPU KV blocks. @default from the memory model: `gpuKvBlocks(model, gpu, tp, blockSize, profile.gpuMemoryUtilization)` */
  readonly numGpuBlocks?: number;
  /** Context length, tokens; capped by the KV pool (`numGpuBlocks × blockSize`) so every accepted request can run. @default 131072 */
  readonly maxModelLen?: number;
  /** Model time per wall time (10 = steps take a tenth of the modelled GPU's time). @default 1 */
  readonly timeScale?: number;
  /** Address to listen on. @default '127.0.0.1' */
  readonly host?: string;
  /** Port; 0 picks a free one (read `url`). @default 8000 */
  readonly port?: number;
  /** vLLM's `--kv-events-config` (JSON text or object). @default events off */
  readonly kvEventsConfig?: string | Partial<KvEventsConfig>;
  /** Output tokens repeat the prompt instead of the seeded generator's tokens. @default false */
  readonly echo?: boolean;
  /** Seed of the output tokens and of `failRate`. @default 0 */
  readonly seed?: number;
  /** Requests allowed in the waiting queue (not yet running); beyond it a request gets 429 (`rate_limit_error`). vLLM has no such bound. @default Infinity */
  readonly maxWaiting?: number;
  /** Largest request body, bytes; larger ones get 413. @default 33554432 (32 MiB) */
  readonly bodyLimit?: number;
  /** Fault injection: this fraction of generation requests gets 500 before reaching the engine. @default 0 */
  readonly failRate?: number;
  /** Fault injection: wall ms added to every engine step. @default 0 */
  readonly stallMs?: number;
  /**
   * Fault injection: the `dieAfter`-th generation request kills the server at its first token —
   * every socket is destroyed mid-stream, the listener, the step loop and the KV-event sockets
   * close, then `onDie` runs (the CLI exits the process there). @default never
   */
  readonly dieAfter?: number;
  /** Called once after a `dieAfter` death. */
  readonly onDie?: () => void;
  /**
   * FOR FAULT TESTS ONLY: KV-event batches whose seq it returns true for are kept for replay but
   * not sent on the PUB socket (a message lost in flight; adapter-vllm `KvEventPublisher`'s `dropIf`). @default undefined
   */
  readonly kvEventsDropIf?: (seq: number) => boolean;
  /** Wall ms the step loop may fall behind the model's timeline before it restarts it (see `RealtimeDriver`). @default 200 */
  readonly maxLagMs?: number;
  /** P/D role and KV link. @default role 'both' */
  readonly pd?: PdOptions;
  /** pino logger: one JSON line per request (fastify's request log). @default no logging */
  readonly logger?: Logger;
  /** Without `logger`: log JSON lines to stdout at this pino level (`info`, `warn`, …). @default no logging */
  readonly logLevel?: string;
  /**
   * Instrumentation: called once per finished generation request with its wall-clock stages
   * (arrival, submit, per-token due / emitted / written times). Used by `bench/fidelity.ts` to
   * decompose what a client sees beyond the engine's timeline. @default off
   */
  readonly experimental_onRequestTiming?: (timing: RequestTiming) => void;
  /** Instrumentation: called after every engine step with its model times and wall lags. @default off */
  readonly experimental_onStep?: (step: DriverStep) => void;
}

/** A running engine server. */
export interface EngineServer {
  /** `http://host:port`. */
  readonly url: string;
  /** Bound KV-event PUB endpoint (ephemeral port resolved), when events are on. */
  readonly kvEventsEndpoint?: string;
  /** Bound replay ROUTER endpoint, when configured. */
  readonly replayEndpoint?: string;
  /** The engine core (read-only use: counters, `kv` for its cached block set). */
  readonly core: EngineCore;
  /** Blocks, block size and context length in use. */
  readonly config: { readonly numGpuBlocks: number; readonly blockSize: number; readonly maxModelLen: number; readonly servedModelName: string; readonly tokenizer: string; readonly latency: string; readonly timeScale: number };
  /** The step loop's counters (steps, resyncs, recent step-end lag samples in wall ms). */
  stats(): RealtimeDriverStats;
  /** Stops accepting, aborts in-flight requests, closes every socket. Idempotent. */
  close(): Promise<void>;
}

/** Where a request's arrival stamp (model µs) is kept on node:http's request object. */
const ARRIVAL_US = Symbol('kvmgr.arrivalUs');
type ArrivalStamped = { [ARRIVAL_US]?: number };

/** 32-bit seeded PRNG in [0, 1) (mulberry32). */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Token `index` of a request's seeded output (`requestIdHash`: `hashString` of its id): text tokens only (below the special tokens: 128000 for Llama 3, 151643 for Qwen). */
function seededToken(seed: number, requestIdHash: number, index: number, textVocabSize: number): number {
  let h = (requestIdHash ^ Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) % textVocabSize;
}

/**
 * Starts an engine server and resolves once it listens (and its KV-event sockets are bound).
 *
 * @param options - see {@link EngineServerOptions}.
 * @returns `{ url, kvEventsEndpoint?, replayEndpoint?, core, config, stats(), close() }`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown model, GPU or profile, weights that
 *   do not fit, or a bad number; `KVMGR_BAD_CONFIG` for a bad `kvEventsConfig`;
 *   `KVMGR_UNAVAILABLE` when the port or a ZMQ endpoint cannot be bound.
 *
 * @example
 * ```ts
 * const server = await createEngineServer({ model: 'Llama-3.1-8B-Instruct', gpu: 'H100', port: 0, timeScale: 10 });
 * const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
 *   body: JSON.stringify({ prompt: 'Hello', max_tokens: 8 }) });
 * await server.close();
 * ```
 */
export async function createEngineServer(options: EngineServerOptions = {}): Promise<EngineServer> {
  const modelSpec = getModelSpec(options.model ?? 'Llama-3.1-8B-Instruct');
  const gpu = getGpuSpec(options.gpu ?? 'H100');
  const tp = options.tp ?? 1;
  if (!Number.isInteger(tp) || tp < 1) throw invalidArgument('tp', tp, 'a positive integer');
  const profile = typeof options.profile === 'object' ? options.profile : getEngineProfile(options.profile ?? 'vllm-default');
  const latency = typeof options.latency === 'object' ? options.latency : selectLatencyModel(options.latency ?? 'auto', modelSpec, gpu, tp).latency;
  const blockSize = profile.blockSize;
  const numGpuBlocks = options.numGpuBlocks ?? gpuKvBlocks(modelSpec, gpu, tp, blockSize, profile.gpuMemoryUtilization);
  if (!Number.isInteger(numGpuBlocks) || numGpuBlocks < 1) throw invalidArgument('numGpuBlocks', numGpuBlocks, 'a positive integer');
  const maxModelLen = Math.min(options.maxModelLen ?? 131_072, numGpuBlocks * blockSize);
  const servedModelName = options.servedModelName ?? modelSpec.name;
  const modelNames = [...new Set([servedModelName, modelSpec.name, options.model ?? servedModelName])];
  const tokenizer = resolveTokenizer({ tokenizer: options.tokenizer, model: modelSpec.name });
  tokenizer.preload();
  const textVocab = tokenizer.textVocabSize;
  const seed = options.seed ?? 0;
  const failRate = options.failRate ?? 0;
  if (!(failRate >= 0 && failRate <= 1)) throw invalidArgument('failRate', failRate, 'a fraction in [0, 1]');
  const maxWaiting = options.maxWaiting ?? Number.POSITIVE_INFINITY;
  if (!(maxWaiting >= 0)) throw invalidArgument('maxWaiting', maxWaiting, 'a number of requests ≥ 0');
  const dieAfter = options.dieAfter;
  if (dieAfter !== undefined && !(Number.isInteger(dieAfter) && dieAfter >= 1)) throw invalidArgument('dieAfter', dieAfter, 'a positive integer');
  const kvCfg = options.kvEventsConfig === undefined ? undefined : parseKvEventsConfig(options.kvEventsConfig);
  const bytesPerBlock = kvBytesPerBlockPerRank(modelSpec, blockSize, tp) * tp;

  // Per-request generation settings the token generator needs (echo, min_tokens vs stop tokens).
  // The id's hash is kept with the request (not recomputed over the id for every token).
  const live = new Map<string, { readonly req: GenerationRequest; readonly idHash: number }>();
  const tokenGenerator = (requestId: string, index: number): number => {
    const entry = live.get(requestId);
    if (entry === undefined) return seededToken(seed, hashString(requestId), index, textVocab);
    const { req, idHash } = entry;
    let tok = options.echo ? (req.promptTokenIds[index % req.promptTokenIds.length] as number) : seededToken(seed, idHash, index, textVocab);
    // min_tokens: a stop token may not end the request early; draw another.
    for (let k = 1; index < req.minTokens && req.stopTokenIds.includes(tok) && k < 16; k++) tok = seededToken(seed + k, idHash, index, textVocab);
    return tok;
  };

  let publisher: KvEventPublisher | null = null;
  // Without a publisher nobody reads the engine's KV events: the core then builds none (no event
  // object, bigint hash or token-id copy per cached or evicted block on the step loop).
  const publishKvEvents = kvCfg?.enable_kv_cache_events === true && kvCfg.publisher === 'zmq';
  const log = options.logger ?? (options.logLevel === undefined ? undefined : pino({ level: options.logLevel, base: { component: 'kvmgr-engine' } }));
  const core = new EngineCore({
    kv: { numBlocks: numGpuBlocks, blockSize, evictionPolicy: profile.cacheEviction },
    stepTimeUs: (s) => latency.stepTimeUs(s),
    scheduler: profile.scheduler,
    tokenBudget: profile.tokenBudget,
    maxSeqs: profile.maxSeqs,
    victimSelector: profile.victimSelector,
    tokenGenerator,
    seed,
    vocabSize: tokenizer.vocabSize,
    kvEvents: publishKvEvents,
    hooks: {
      onKvEvents: (events) => {
        publisher?.publish(events).catch((e: unknown) => log?.warn({ err: e }, 'KV event publish failed'));
      },
    },
  });
  const exporter = new EngineMetricsExporter({ core, modelName: servedModelName, blockSize, numGpuBlocks, gpuMemoryUtilization: profile.gpuMemoryUtilization });
  const driver = new RealtimeDriver({
    core,
    timeScale: options.timeScale ?? 1,
    stallMs: options.stallMs ?? 0,
    maxLagMs: options.maxLagMs ?? 200,
    onStep: (step) => {
      exporter.onStep(step.start.shape);
      options.experimental_onStep?.(step);
    },
  });

  if (kvCfg !== undefined && publishKvEvents) {
    publisher = await KvEventPublisher.create({
      endpoint: kvCfg.endpoint,
      replayEndpoint: kvCfg.replay_endpoint ?? null,
      topic: kvCfg.topic,
      bufferSteps: kvCfg.buffer_steps,
      hwm: kvCfg.hwm,
      // Connecting to port 0 means nothing: port 0 always binds an ephemeral port (tests: tcp://127.0.0.1:0).
      ...(/:0$/.test(kvCfg.endpoint) ? { bind: true } : {}),
      ...(options.kvEventsDropIf === undefined ? {} : { dropIf: options.kvEventsDropIf }),
    });
  }

  const host = options.host ?? '127.0.0.1';
  const pd = new PdRole(options.pd ?? {}, { bytesPerBlock, blockSize, host });
  const base = { bodyLimit: options.bodyLimit ?? 32 * 1024 * 1024, forceCloseConnections: true } as const;
  // pino's Logger is a FastifyBaseLogger; the cast only drops pino's own extra fields from the instance type.
  const app = (log === undefined ? Fastify({ ...base, logger: false }) : Fastify({ ...base, loggerInstance: log })) as unknown as FastifyInstance;
  const sockets = new Set<Socket>();
  app.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const sendError = (reply: FastifyReply, status: number, message: string, code: string | null = null): FastifyReply => {
    const e = openAiError(status, message, { code });
    return reply.code(e.status).send(e.body);
  };
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) log?.error({ err }, 'request failed');
    return sendError(reply, status, err.message, err.code ?? null);
  });
  // Arrival is when the request reached the server (node:http's 'request' event, ahead of fastify's
  // own listener: before routing, hooks, body parse and checks): the latency model's queueing term
  // (BLIS α) already stands for that API-server work.
  // The stamp rides on the request object itself (a WeakMap entry per request costs more, in the
  // map and in the GC's ephemeron pass).
  app.server.prependListener('request', (raw: ArrivalStamped) => {
    raw[ARRIVAL_US] = driver.nowUs();
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${req.url}`, 'not_found'));
  keepJsonBodyText(app);

  let accepted = 0;
  let fatalRequest: string | null = null;
  let dead = false;
  let closing: Promise<void> | null = null;
  const random = seededRandom(seed ^ 0x5f3759df);

  const shutdown = async (): Promise<void> => {
    await driver.stop();
    for (const id of [...live.keys()]) driver.abort(id);
    await app.close();
    await publisher?.close();
  };
  const die = (): void => {
    if (dead) return;
    dead = true;
    log?.error({ dieAfter }, 'dieAfter reached: closing every socket');
    for (const s of sockets) s.destroy();
    app.server.close();
    closing = shutdown().finally(() => options.onDie?.());
  };

  const genCtx: GenerationContext = {
    tokenizer,
    driver,
    exporter,
    queueingUs: (n) => latency.queueingUs(n),
    extraDelayUs: (req) => pd.transferDelayUs(req),
    remoteKv: (req) => pd.remoteKv(req),
    register: (id, req) => {
      live.set(id, { req, idHash: hashString(id) });
      accepted++;
      if (dieAfter !== undefined && accepted === dieAfter) fatalRequest = id;
    },
    onFirstToken: (id) => {
      pd.onFirstToken(id, live.get(id)?.req, core);
      if (id === fatalRequest) die();
    },
    responseExtras: (req, id, stats: RequestFinishedStats) => pd.responseParams(req, id, stats),
    ...(options.experimental_onRequestTiming === undefined ? {} : { onTiming: options.experimental_onRequestTiming }),
  };

  const requestCtx = { modelNames, maxModelLen, tokenizer };
  const generate = (kind: 'completion' | 'chat') => async (request: FastifyRequest, reply: FastifyReply) => {
    const parsed = parseGenerationRequest(kind, request.body, requestCtx, jsonBodyText(request));
    if (!parsed.ok) return reply.code(parsed.error.status).send(parsed.error.body);
    let req = parsed.value;
    const pdCheck = pd.check(req);
    if (pdCheck !== null) return reply.code(pdCheck.status).send(pdCheck.body);
    req = pd.adjust(req);
    if (driver.waiting >= maxWaiting) return sendError(reply, 429, `the engine queue is full (${driver.waiting} waiting, maxWaiting ${maxWaiting})`, 'queue_full');
    if (failRate > 0 && random() < failRate) return sendError(reply, 500, 'injected failure (failRate)', 'injected_failure');
    await serveGeneration(genCtx, req, reply, (request.raw as ArrivalStamped)[ARRIVAL_US] ?? driver.nowUs());
    return reply;
  };
  app.post('/v1/completions', generate('completion'));
  app.post('/v1/chat/completions', generate('chat'));

  registerUtilityRoutes(app, {
    modelNames,
    servedModelName,
    maxModelLen,
    exporter,
    resetPrefixCache: () => core.resetPrefixCache(),
    tokenizer,
  });

  // Requests leave the table when the engine is done with them.
  const hooks = core.hooks;
  core.hooks = {
    ...hooks,
    onFinished: (r, s) => {
      hooks.onFinished?.(r, s);
      live.delete(r.requestId);
    },
  };

  driver.start();
  let address: string;
  try {
    address = await app.listen({ host, port: options.port ?? 8000 });
  } catch (e) {
    await driver.stop();
    await publisher?.close();
    throw new KvmgrError('KVMGR_UNAVAILABLE', `cannot listen on ${host}:${options.port ?? 8000}: ${(e as Error).message}`, { cause: e });
  }
  const port = (app.server.address() as { port: number }).port;
  pd.setPort(port);
  const url = address.startsWith('http') ? `http://${host.includes(':') ? `[${host}]` : host}:${port}` : address;

  const server: EngineServer = {
    url,
    ...(publisher === null ? {} : { kvEventsEndpoint: publisher.endpoint }),
    ...(publisher?.replayEndpoint == null ? {} : { replayEndpoint: publisher.replayEndpoint }),
    core,
    config: { numGpuBlocks, blockSize, maxModelLen, servedModelName, tokenizer: tokenizer.name, latency: latency.name, timeScale: driver.timeScale },
    stats: () => driver.stats,
    close: () => {
      if (closing === null) closing = shutdown();
      return closing;
    },
  };
  return server;
}
