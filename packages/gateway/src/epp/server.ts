/**
 * `kvmgr epp`: the gateway's routing decision as a Gateway API Inference Extension endpoint
 * picker (GIE proposal 004, the Endpoint Picker Protocol) behind Envoy's `ext_proc` filter.
 *
 * One `envoy.service.ext_proc.v3.ExternalProcessor.Process` stream per HTTP request. The body
 * mode is the filter's `processing_mode.request_body_mode`, which Envoy sends in
 * `protocol_config` on a stream's first message (since envoyproxy/envoy#38451, March 2025); it is
 * kept for the stream, and a filter that sends none gets the BUFFERED handling. The messages and
 * answers (Envoy's `external_processor.proto` and `processing_mode.proto`, vendored in
 * `protos/envoy-api/`):
 *
 * 1. `request_headers` → in BUFFERED (and any mode but FULL_DUPLEX_STREAMED) answered at once
 *    with CONTINUE and a `mode_override` asking for the request body BUFFERED (honoured when the
 *    filter sets `allow_mode_override`), response headers SEND (to read the served endpoint), no
 *    response body. In FULL_DUPLEX_STREAMED not answered yet (see 2), and no `mode_override` ever
 *    (Envoy does not let a full-duplex stream change modes). A request without a body
 *    (`end_of_stream` on its headers) is placed at once in every mode, without a prompt, and
 *    answered in the headers response; on an OpenAI route (`/v1/completions`,
 *    `/v1/chat/completions`) it is answered 400 instead.
 * 2. `request_body` chunks are gathered until `end_of_stream`; then the request is validated and
 *    tokenised (`readRequest`), admitted (the gateway's {@link AdmissionQueue}: ADMIT, DEFER, or
 *    REJECT → immediate 429) and placed with the gateway's {@link placeRequest} over the
 *    gateway's {@link Endpoint} state, among the pods of the subset hint
 *    (`metadata_context.filter_metadata["envoy.lb.subset_hint"]["x-gateway-destination-endpoint-subset"]`)
 *    when there is one (empty, or nothing eligible in it → immediate 503). P/D (the pool has
 *    `role: prefill` endpoints): the destination is the decode endpoint and, when the decision
 *    disaggregates, `x-prefiller-host-port` names the prefill endpoint (llm-d's routing sidecar
 *    runs the prefill leg there); the prompt's tokens are reserved on that endpoint from the
 *    placement until the response headers (the picker is always in the gateway's
 *    `prefiller-header` mode; an explicit `pd.mode: two-legs` is refused at start).
 *    The answer's `CommonResponse` sets the header `x-gateway-destination-endpoint: ip:port`
 *    (overwriting a client's) and `clear_route_cache: true`; the same value goes in
 *    `dynamic_metadata["envoy.lb"]["x-gateway-destination-endpoint"]`. BUFFERED: the answer is
 *    the `BodyResponse`, the body passes through as it came (no body mutation, so no
 *    `content-length` change). FULL_DUPLEX_STREAMED (the body chunks, then `end_of_stream` on the
 *    last, or the request trailers, which end a full-duplex body too): the processor owns the body,
 *    so the answer is the held `HeadersResponse` carrying that mutation and metadata, then
 *    `BodyResponse`s whose `body_mutation.streamed_response { body, end_of_stream }` hand the
 *    gathered bytes back unchanged, in chunks of at most 64 KiB (Envoy's recommended size),
 *    `end_of_stream` on the last when the body's own last chunk had it (then the trailers' answer,
 *    when trailers ended it).
 * 3. `response_headers` → CONTINUE; `:status` and the served endpoint
 *    (`metadata_context.filter_metadata["envoy.lb"]["x-gateway-destination-endpoint-served"]`,
 *    counted in `kvmgr_epp_served_total{endpoint,matched}`) are noted; a served endpoint other
 *    than the picked one takes over the request's KV reservation; the prefill endpoint's
 *    reservation (P/D) ends here. `response_body` chunks (only
 *    when the filter sends them) → CONTINUE, or in `response_body_mode` FULL_DUPLEX_STREAMED each
 *    chunk handed back as it came (`streamed_response` with the chunk's own `end_of_stream`),
 *    without which the client would never get the response body.
 * 4. The stream's end (Envoy closes it with the HTTP stream; or a cancel, or an error) ends the
 *    request: its reservations (with a prefill one that no response headers ended) are released,
 *    admission re-checks its queue, and endpoints without KV events record the prompt's blocks
 *    (routing history).
 *
 * The messages of one stream are handled strictly in order, so responses go out in the order
 * Envoy expects them. Anything that cannot be placed gets an immediate response (an OpenAI error
 * body: 400 for a missing, empty, non-JSON or invalid body and for out-of-protocol messages, 404
 * for a model other than the configured one, 413, 429, 503), after which the picker ends the
 * stream itself: no stream is left waiting.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { type OpenAiErrorResponse, type Tokenizer, getTokenizer, openAiError } from '@kvmgr/adapter-vllm';
import { KvmgrError } from '@kvmgr/core';
import type { LocalKeys, RouteRequest, Router } from '@kvmgr/router';
import Fastify, { type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { AdmissionQueue, AdmissionRejected } from '../admission.js';
import { type EndpointInput, type GatewayConfigInput, type ResolvedGatewayConfig, resolveEndpoint, resolveGatewayConfig } from '../config.js';
import { NO_ENDPOINT, type Placement } from '../decide.js';
import type { Endpoint } from '../endpoint.js';
import { type GatewayOptions, warnTokenizerFallback } from '../gateway.js';
import { type GatewayMetrics, createGatewayMetrics } from '../metrics.js';
import { PREFILLER_HEADER, pdLogOf, reservePrefill } from '../pd.js';
import { EndpointPool } from '../pool.js';
import { type OpenAiRoute, type RequestInfo, readRequest, routeRequestOf } from '../request-info.js';
import { HealthState } from './health.js';
import { parsePodsFile } from './pods.js';
import {
  type PbBodySendMode,
  type PbHeaderValue,
  type PbHeaderValueOption,
  type PbStruct,
  type PbValue,
  type ProcessingRequest,
  type ProcessingResponse,
  loadEppProtos,
} from './protos.js';

/** Header and metadata key of the picked endpoint (GIE proposal 004). */
export const DESTINATION_ENDPOINT_KEY = 'x-gateway-destination-endpoint';
/** Metadata key of the subset hint. */
export const DESTINATION_SUBSET_KEY = 'x-gateway-destination-endpoint-subset';
/** Metadata key of the endpoint that served the request. */
export const DESTINATION_SERVED_KEY = 'x-gateway-destination-endpoint-served';

/** Configuration of {@link createEpp}. */
export interface EppConfig {
  /**
   * The gateway configuration: model, endpoints, routing, admission, health, scrape (resolved, or
   * the object form validated here). `server.host` is the default bind address; `server.port`
   * is not used. @default {} (no static endpoints)
   */
  readonly gateway?: ResolvedGatewayConfig | GatewayConfigInput;
  /** More endpoints (e.g. from {@link parsePodsFile}). */
  readonly pods?: readonly EndpointInput[];
  /** A pods file (YAML/JSON list of `{ address: ip:port, engine, role, … }`), read at start and re-read when it changes. */
  readonly podsFile?: string;
  /** How often the pods file is checked for changes, ms. @default 2000 */
  readonly podsReloadMs?: number;
  /** Address of the gRPC server. @default the gateway's `server.host` ('127.0.0.1') */
  readonly grpcHost?: string;
  /** Port of the gRPC server (ext_proc and health). @default 9002; 0 = any free port */
  readonly grpcPort?: number;
  /** A second gRPC port serving only `grpc.health.v1.Health` (GIE serves health on 9003). @default none */
  readonly healthPort?: number;
  /** Port of the HTTP `/metrics` server (GIE: 9090). @default 9090; 0 = any free port; null = none */
  readonly metricsPort?: number | null;
  /** Outer key of the dynamic metadata answered and of the served-endpoint metadata read. @default 'envoy.lb' */
  readonly metadataNamespace?: string;
  /** Filter-metadata namespace of the subset hint. @default 'envoy.lb.subset_hint' */
  readonly subsetNamespace?: string;
  /** How long `close()` lets open ext_proc streams finish before cutting them, ms. @default 5000 */
  readonly shutdownGraceMs?: number;
}

/** Per-endpoint state of the picker. */
export interface EppEndpointState {
  readonly name: string;
  /** `ip:port` as answered in `x-gateway-destination-endpoint`. */
  readonly address: string;
  readonly healthy: boolean;
  readonly inFlight: number;
  /** KV tokens reserved by the requests in flight (decode footprints, and prompts held on a prefill endpoint under P/D), as the decisions count them. */
  readonly reservedTokens: number;
  readonly cachedBlocks: number;
}

/** A running endpoint picker. */
export interface Epp {
  /** `host:port` of the gRPC server (ext_proc and health). */
  readonly address: string;
  /** `host:port` of the health-only gRPC server, when `healthPort` was given. */
  readonly healthAddress: string | null;
  /** `http://host:port/metrics`, or null without a metrics server. */
  readonly metricsUrl: string | null;
  /** Endpoints, index size and admission queue depth. */
  state(): { endpoints: EppEndpointState[]; indexBlocks: number; queueDepth: number };
  /** Prometheus text of the picker's metrics. */
  metrics(): Promise<string>;
  /** Re-reads the pods file now (also done when it changes). */
  reloadPods(): Promise<void>;
  /** Readiness NOT_SERVING, lets open streams finish (`shutdownGraceMs`), then stops everything. Idempotent. */
  close(): Promise<void>;
}

/**
 * Largest body chunk handed back in one `StreamedBodyResponse` (full-duplex mode): Envoy's
 * `processing_mode.proto` recommends at most 64K bytes per response chunk.
 */
export const STREAMED_CHUNK_BYTES = 64 * 1024;

/** Block keys of a request without a prompt (shared, never written). */
const NO_KEYS: LocalKeys = new Uint32Array(0);

/** Subset of a request without a subset hint: nothing excluded (shared, never written). */
const NOTHING_EXCLUDED: ReadonlySet<string> = new Set<string>();

function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

function headerOption(key: string, value: string): PbHeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, 'utf8') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

function headerText(h: PbHeaderValue): string {
  if (h.raw_value !== undefined && h.raw_value.length > 0) return Buffer.from(h.raw_value).toString('utf8');
  return h.value ?? '';
}

/** Strings of a metadata value: a list of strings, or one string (comma-separated). */
function stringsOf(v: PbValue): string[] {
  if (v.listValue !== undefined) return (v.listValue.values ?? []).flatMap((x) => (typeof x.stringValue === 'string' ? [x.stringValue.trim()] : []));
  if (typeof v.stringValue === 'string') {
    return v.stringValue
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
  return [];
}

function routeOf(path: string): OpenAiRoute | null {
  const p = path.split('?')[0] ?? '';
  if (p === '/v1/chat/completions') return 'chat';
  if (p === '/v1/completions') return 'completions';
  return null;
}

/**
 * prom-client children (`metric.labels(...)`) of series updated per request, cached by their
 * (one or two) label values: an update then builds no label object (prom-client still hashes
 * the values on each update). The values are endpoint names, routing reasons, model names and
 * admission outcomes; past 4096 children the cache starts over, as pods come and go.
 */
class LabelledChildren<C> {
  private readonly byFirst = new Map<string, Map<string, C>>();
  private count = 0;

  /** @param make - the child for label values `(a, b)` (`b` is '' for a one-label series). */
  constructor(private readonly make: (a: string, b: string) => C) {}

  get(a: string, b = ''): C {
    let inner = this.byFirst.get(a);
    if (inner === undefined) {
      if (this.count >= 4096) {
        this.byFirst.clear();
        this.count = 0;
      }
      inner = new Map();
      this.byFirst.set(a, inner);
    }
    let c = inner.get(b);
    if (c === undefined) {
      c = this.make(a, b);
      inner.set(b, c);
      this.count++;
    }
    return c;
  }
}

/** The picker's metrics: the gateway's families plus the picker's own, in one registry. */
interface EppMetrics extends GatewayMetrics {
  readonly served: Counter<'endpoint' | 'matched'>;
  readonly running: Gauge<'model_name'>;
  /** Requests picked and not finished, by model: counted here per request, read by `running` when scraped. */
  readonly runningByModel: Map<string, number>;
  readonly immediate: Counter<'status' | 'reason'>;
  /** `requests` by model (both labels the model's name). */
  readonly requestsBy: LabelledChildren<{ inc(): void }>;
  /** `decisions` by endpoint and reason. */
  readonly decisionsBy: LabelledChildren<{ inc(): void }>;
  /** `decisionScore` by endpoint. */
  readonly decisionScoreBy: LabelledChildren<{ observe(v: number): void }>;
  /** `admission` by outcome. */
  readonly admissionBy: LabelledChildren<{ inc(): void }>;
}

class EppServer {
  readonly cfg: ResolvedGatewayConfig;
  /** The model's tokenizer (`tokenizer` of the config), loaded before the server listens. */
  readonly tokenizer: Tokenizer;
  readonly pool: EndpointPool;
  readonly admission: AdmissionQueue<Placement<Endpoint> | typeof NO_ENDPOINT>;
  readonly metrics: EppMetrics;
  readonly log: Logger;
  readonly health = new HealthState();
  readonly grpcServer: grpc.Server;
  healthServer: grpc.Server | undefined;
  metricsApp: FastifyInstance | undefined;
  readonly ns: string;
  readonly subsetNs: string;
  readonly streams = new Set<EppStream>();
  closing = false;
  private podsNames = new Set<string>();
  private podsListener: ((cur: { mtimeMs: number }) => void) | undefined;
  private podsChain: Promise<void> = Promise.resolve();

  /**
   * Answers that are the same every time (the CONTINUEs, and the body answer for each picked
   * address), protobuf-encoded once: grpc-js would convert and encode each of them per request.
   */
  private readonly encoded = new WeakMap<object, Buffer>();
  private readonly encodeOnce: (r: ProcessingResponse) => ProcessingResponse;
  readonly continueHeaders: ProcessingResponse;
  /** CONTINUE to the request headers without `mode_override` (a full-duplex response body mode is configured). */
  readonly continueHeadersPlain: ProcessingResponse;
  readonly continueResponseHeaders: ProcessingResponse;
  private readonly pickAnswers = new Map<string, ProcessingResponse>();

  /** The answer that routes to `address` (header mutation + dynamic metadata; the body's, or the headers' in full-duplex mode), encoded once per key. */
  pickAnswer(address: string, make: () => ProcessingResponse): ProcessingResponse {
    let r = this.pickAnswers.get(address);
    if (r === undefined) {
      if (this.pickAnswers.size >= 4096) this.pickAnswers.clear(); // pods come and go; addresses seen long ago are dropped
      r = this.encodeOnce(make());
      this.pickAnswers.set(address, r);
    }
    return r;
  }

  constructor(
    cfg: ResolvedGatewayConfig,
    readonly conf: EppConfig,
    options: GatewayOptions,
  ) {
    this.cfg = cfg;
    this.tokenizer = getTokenizer(cfg.tokenizer);
    this.tokenizer.preload();
    this.ns = conf.metadataNamespace ?? 'envoy.lb';
    this.subsetNs = conf.subsetNamespace ?? 'envoy.lb.subset_hint';
    this.log = pino({ level: cfg.logLevel, base: { service: 'kvmgr-epp' } }, (options.logStream ?? process.stdout) as pino.DestinationStream);
    this.admission = new AdmissionQueue(cfg.admission.maxQueue, cfg.admission.maxWaitMs);
    this.pool = new EndpointPool(cfg, this.log, {
      onMaybeFreed: () => this.admission.release(),
      onEventLag: (lag) => this.metrics.eventLag.observe(lag),
    });
    const base = createGatewayMetrics({
      poolName: 'kvmgr',
      endpoints: () => this.pool.endpointGauges(),
      indexBlocks: () => this.pool.index.size,
      queueDepth: () => this.admission.depth,
      eventCounters: () => this.pool.eventCounters(),
    });
    const registers = [base.registry];
    const pool = this.pool;
    const runningByModel = new Map<string, number>();
    new Gauge({
      name: 'inference_pool_per_pod_queue_size',
      help: 'Requests waiting in each model server of the pool (last scrape).',
      labelNames: ['model_server_pod', 'name'],
      registers,
      collect() {
        this.reset();
        for (const e of pool.endpoints.values()) this.set({ model_server_pod: e.name, name: 'kvmgr' }, e.latest()?.snapshot.waiting ?? 0);
      },
    });
    this.metrics = {
      ...base,
      served: new Counter({
        name: 'kvmgr_epp_served_total',
        help: 'Served endpoints reported by the proxy (envoy.lb x-gateway-destination-endpoint-served), by endpoint and whether it is the one picked.',
        labelNames: ['endpoint', 'matched'],
        registers,
      }),
      // set when scraped from a plain count: prom-client's inc/dec hash the labels on every call, twice per request
      running: new Gauge({
        name: 'inference_objective_running_requests',
        help: 'Requests picked and not yet finished, by model.',
        labelNames: ['model_name'],
        registers,
        collect() {
          for (const [model, n] of runningByModel) this.set({ model_name: model }, n);
        },
      }),
      runningByModel,
      requestsBy: new LabelledChildren((model) => base.requests.labels({ model_name: model, target_model_name: model })),
      decisionsBy: new LabelledChildren((endpoint, reason) => base.decisions.labels({ endpoint, reason })),
      decisionScoreBy: new LabelledChildren((endpoint) => base.decisionScore.labels({ endpoint })),
      admissionBy: new LabelledChildren((decision) => base.admission.labels({ decision })),
      immediate: new Counter({
        name: 'kvmgr_epp_immediate_responses_total',
        help: 'Requests answered by the picker itself (ext_proc ImmediateResponse), by HTTP status and reason.',
        labelNames: ['status', 'reason'],
        registers,
      }),
    };
    // channelz (grpc-js's per-call and per-message counters and timestamps) is off: nothing reads it here
    this.grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': cfg.maxBodyBytes + 1024 * 1024, 'grpc.enable_channelz': 0 });
    const protos = loadEppProtos();
    const method = protos.extProc.service['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;
    const serialize = method.responseSerialize;
    this.encodeOnce = (r) => {
      this.encoded.set(r, serialize(r));
      return Object.freeze(r);
    };
    this.continueHeaders = this.encodeOnce({
      request_headers: { response: { status: 'CONTINUE' } },
      mode_override: { request_body_mode: 'BUFFERED', response_header_mode: 'SEND', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' },
    });
    this.continueHeadersPlain = this.encodeOnce({ request_headers: { response: { status: 'CONTINUE' } } });
    this.continueResponseHeaders = this.encodeOnce({ response_headers: { response: { status: 'CONTINUE' } } });
    const service: grpc.ServiceDefinition = { ...protos.extProc.service, Process: { ...method, responseSerialize: (r: ProcessingResponse) => this.encoded.get(r) ?? serialize(r) } };
    this.grpcServer.addService(service, {
      Process: (call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => this.process(call),
    });
    this.grpcServer.addService(protos.health.service, this.health.handlers());
  }

  // ---- pods file ---------------------------------------------------------------------------

  /** Reads the pods file and adds/removes endpoints to match it (serialised). */
  reloadPods(): Promise<void> {
    const file = this.conf.podsFile;
    if (file === undefined) return Promise.resolve();
    const run = async () => {
      if (this.closing) return;
      let inputs: EndpointInput[];
      try {
        inputs = parsePodsFile(readFileSync(file, 'utf8'), file);
      } catch (e) {
        this.log.error({ event: 'pods-file', file, err: (e as Error).message }, 'pods file not applied (the pods stay as they were)');
        return;
      }
      const wanted = new Map(inputs.map((p, i) => [resolveEndpoint(p, `${file}[${i}]`), i] as const));
      const names = new Set([...wanted.keys()].map((c) => c.name));
      for (const name of [...this.podsNames]) {
        if (!names.has(name)) {
          await this.pool.remove(name);
          this.podsNames.delete(name);
          this.log.info({ event: 'pod-removed', endpoint: name }, 'pod removed');
        }
      }
      for (const c of wanted.keys()) {
        const have = this.pool.endpoints.get(c.name);
        if (have !== undefined && JSON.stringify(have.config) === JSON.stringify(c)) continue;
        if (have !== undefined) await this.pool.remove(c.name);
        try {
          await this.pool.add(c);
          this.podsNames.add(c.name);
          this.log.info({ event: 'pod-added', endpoint: c.name, url: c.url }, 'pod added');
        } catch (e) {
          this.log.error({ event: 'pod-add-failed', endpoint: c.name, err: (e as Error).message }, 'pod not added');
        }
      }
      this.admission.release();
    };
    this.podsChain = this.podsChain.then(run, run);
    return this.podsChain;
  }

  watchPods(): void {
    const file = this.conf.podsFile;
    if (file === undefined) return;
    let last = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    this.podsListener = (cur) => {
      if (cur.mtimeMs === last) return;
      last = cur.mtimeMs;
      void this.reloadPods().catch(() => undefined);
    };
    watchFile(file, { interval: this.conf.podsReloadMs ?? 2000, persistent: false }, this.podsListener);
  }

  // ---- ext_proc ------------------------------------------------------------------------------

  private process(call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>): void {
    const s = new EppStream(this, call);
    this.streams.add(s);
    let chain = Promise.resolve();
    call.on('data', (req: ProcessingRequest) => {
      chain = chain.then(() => s.onMessage(req)).catch((e: unknown) => s.fail(e));
    });
    const end = (how: string) => {
      void chain.then(() => {
        s.finish(how);
        this.streams.delete(s);
      });
    };
    call.on('end', () => {
      end('end');
      void chain.then(() => {
        if (!call.writableEnded && !call.destroyed) call.end();
      });
    });
    call.on('cancelled', () => end('cancelled'));
    call.on('error', () => end('error'));
    call.on('close', () => end('close'));
  }

  /** The candidates of a request: healthy, not prefill-only, and in the subset when there is one. */
  candidates(subset: ReadonlySet<string> | null): Endpoint[] {
    return subset === null ? this.pool.eligible() : this.pool.eligible((_e, address) => subset.has(address));
  }

  /** Names outside the subset (excluded from the decision); one shared empty set without a subset hint. */
  excludedBy(subset: ReadonlySet<string> | null): ReadonlySet<string> {
    if (subset === null) return NOTHING_EXCLUDED;
    const out = new Set<string>();
    for (const [address, e] of this.pool.byAddress) if (!subset.has(address)) out.add(e.name);
    return out;
  }

  place(req: RouteRequest, footprint: number, excluded: ReadonlySet<string>, checkKv: boolean): Placement<Endpoint> | typeof NO_ENDPOINT | undefined {
    const t0 = performance.now();
    const p = this.pool.place(req, footprint, excluded, checkKv && this.cfg.admission.enabled, nowUs());
    if (typeof p === 'object') this.metrics.decisionSeconds.observe((performance.now() - t0) / 1000);
    return p;
  }

  state(): { endpoints: EppEndpointState[]; indexBlocks: number; queueDepth: number } {
    return {
      endpoints: [...this.pool.byAddress].map(([address, e]) => ({ name: e.name, address, healthy: e.healthy, inFlight: e.inFlight.size, reservedTokens: e.inFlight.reservedTokens, cachedBlocks: e.cachedBlocks })),
      indexBlocks: this.pool.index.size,
      queueDepth: this.admission.depth,
    };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.health.setReady(false);
    if (this.conf.podsFile !== undefined && this.podsListener !== undefined) unwatchFile(this.conf.podsFile, this.podsListener);
    this.admission.close();
    const grace = this.conf.shutdownGraceMs ?? 5000;
    const shut = (srv: grpc.Server) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          srv.forceShutdown();
          resolve();
        }, grace);
        t.unref();
        srv.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    await shut(this.grpcServer);
    this.health.shutdown();
    if (this.healthServer !== undefined) await shut(this.healthServer);
    for (const s of this.streams) s.finish('shutdown');
    this.streams.clear();
    await this.podsChain.catch(() => undefined);
    await this.pool.close();
    await this.metricsApp?.close();
    this.log.flush?.();
  }
}

/**
 * What a placed request holds from its decision until its stream ends — for an LLM response,
 * seconds to minutes, so every byte of it is copied by the young-generation GC and then
 * promoted. Kept to what the end of the request needs: not the prompt's token ids (~8 bytes per
 * token in a `number[]`, ~20 KB for a 2,500-token prompt) nor the request object, only the
 * prompt's block keys as the decision computed them (for the routing history, ~8 bytes per
 * block, off the JS heap).
 */
interface Picked {
  /** The endpoint holding the request's KV reservation (the served one when the proxy fell back). */
  readonly endpoint: Endpoint;
  /** Its `ip:port`. */
  readonly address: string;
  /** The prompt's local block keys (`[hi, lo]` u32 pairs, 2 per block) as the decision used them; empty without a prompt. */
  readonly keys: LocalKeys;
  /** The router whose keying (block size, model namespace) made `keys`; undefined without a prompt. */
  readonly keyedBy: Router | undefined;
  /** KV tokens reserved on the endpoint (prompt + max output). */
  readonly tokens: number;
  /** Model name of the request (`inference_objective_running_requests`). */
  readonly model: string;
}

/** One ext_proc stream: one HTTP request through the proxy. */
class EppStream {
  private headers: Record<string, string> = {};
  private sawHeaders = false;
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  /** Addresses of the subset hint; null when the proxy sent none. */
  private subset: Set<string> | null = null;
  private requestId = '';
  private started = performance.now();
  /** The placement, held until the stream ends (see {@link Picked}). */
  private picked: Picked | undefined;
  private served: string | undefined;
  /** P/D: the prefill endpoint holding the prompt's tokens until the response headers (see {@link reservePrefill}). */
  private prefillHeld: Endpoint | undefined;
  private status: number | undefined;
  /** The filter's body modes from `protocol_config` (first message); undefined without one. */
  private requestBodyMode: PbBodySendMode | undefined;
  private responseBodyMode: PbBodySendMode | undefined;
  private sawProtocol = false;
  /** FULL_DUPLEX_STREAMED request body: the headers' answer waits for the body, and the body is handed back. */
  private fullDuplex = false;
  /** The request body is complete (its `end_of_stream`, or trailers in full-duplex mode). */
  private bodyEnded = false;
  /** Full-duplex: the gathered body, handed back after the decision. */
  private heldBody: Buffer | undefined;
  /** Full-duplex: whether the body's last chunk carried `end_of_stream` (false when trailers ended it). */
  private heldEndOfStream = true;
  private done = false;
  private finished = false;

  constructor(
    private readonly srv: EppServer,
    private readonly call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>,
  ) {}

  private send(r: ProcessingResponse): void {
    if (this.call.writableEnded || this.call.destroyed || this.call.cancelled) return;
    this.call.write(r);
  }

  private readMetadata(req: ProcessingRequest): void {
    const fm = req.metadata_context?.filter_metadata;
    if (fm === undefined) return;
    const hint = fm[this.srv.subsetNs]?.fields?.[DESTINATION_SUBSET_KEY];
    if (hint !== undefined && this.subset === null) this.subset = new Set(stringsOf(hint));
    const served = fm[this.srv.ns]?.fields?.[DESTINATION_SERVED_KEY];
    if (served !== undefined && this.served === undefined) {
      const v = stringsOf(served)[0];
      if (v !== undefined) this.onServed(v);
    }
  }

  async onMessage(req: ProcessingRequest): Promise<void> {
    if (this.done) return;
    if (!this.sawProtocol) {
      // protocol_config comes with the first message only
      this.sawProtocol = true;
      const pc = req.protocol_config;
      this.requestBodyMode = pc?.request_body_mode;
      this.responseBodyMode = pc?.response_body_mode;
      this.fullDuplex = this.requestBodyMode === 'FULL_DUPLEX_STREAMED';
    }
    this.readMetadata(req);
    switch (req.request) {
      case 'request_headers': {
        if (this.sawHeaders) {
          this.immediate(openAiError(400, 'ext_proc: a second request_headers message on one stream; expected request_body, trailers or response messages', { code: 'invalid_value' }), 'protocol');
          return;
        }
        this.sawHeaders = true;
        for (const h of req.request_headers?.headers?.headers ?? []) this.headers[h.key.toLowerCase()] = headerText(h);
        this.requestId = this.headers['x-request-id'] || randomUUID();
        if (req.request_headers?.end_of_stream === true) {
          const path = this.headers[':path'] ?? '';
          if (routeOf(path) !== null) {
            this.immediate(openAiError(400, `request body: missing; ${this.headers[':method'] ?? 'POST'} ${path.split('?')[0]} takes a JSON request body`, { code: 'invalid_value' }), 'bad_request');
            return;
          }
          // no body (a GET, say): placed at once, without a prompt
          const r = this.placePromptless();
          if (r === undefined) return;
          this.send({ request_headers: { response: this.destination(r) }, dynamic_metadata: this.metadata(r) });
          return;
        }
        // full-duplex: the headers are answered with the decision, once the body is in
        if (this.fullDuplex) return;
        // Envoy lets no full-duplex stream change modes: no mode_override when the response body is full-duplex
        this.send(this.responseBodyMode === 'FULL_DUPLEX_STREAMED' ? this.srv.continueHeadersPlain : this.srv.continueHeaders);
        return;
      }
      case 'request_body': {
        if (!this.sawHeaders) {
          this.immediate(openAiError(400, 'ext_proc: request_body before request_headers; expected the request headers first (processing_mode.request_header_mode SEND)', { code: 'invalid_value' }), 'protocol');
          return;
        }
        if (this.bodyEnded) {
          this.immediate(openAiError(400, 'ext_proc: request_body after the end of the request body; expected response messages', { code: 'invalid_value' }), 'protocol');
          return;
        }
        const b = req.request_body;
        const last = b?.end_of_stream === true;
        if (b?.body !== undefined && b.body.length > 0) {
          // a chunk kept past this message is copied (the decoder's buffer is not ours to hold); the last one of a
          // BUFFERED body is read now, a full-duplex body is held until it is handed back (after admission)
          this.chunks.push(last && !this.fullDuplex ? b.body : Buffer.from(b.body));
          this.bytes += b.body.length;
        }
        if (this.bytes > this.srv.cfg.maxBodyBytes) {
          this.immediate(openAiError(413, `request body is larger than ${this.srv.cfg.maxBodyBytes} bytes`, { code: 'request_too_large' }), 'too_large');
          return;
        }
        if (!last) return; // buffered until the end of the body
        await this.endBody(true);
        return;
      }
      case 'request_trailers':
        // full-duplex: trailers tell that the body is complete (its last chunk had no end_of_stream)
        if (this.fullDuplex && this.sawHeaders && !this.bodyEnded) {
          await this.endBody(false);
          if (this.done) return;
        }
        this.send({ request_trailers: {} });
        return;
      case 'response_headers': {
        // the decode endpoint answers: the sidecar's prefill leg is over
        this.releasePrefill();
        for (const h of req.response_headers?.headers?.headers ?? []) {
          if (h.key === ':status') this.status = Number(headerText(h));
        }
        this.send(this.srv.continueResponseHeaders);
        return;
      }
      case 'response_body': {
        if (this.responseBodyMode === 'FULL_DUPLEX_STREAMED') {
          // the processor owns the response body in this mode: each chunk goes back as it came
          const rb = req.response_body;
          this.send({ response_body: { response: { body_mutation: { streamed_response: { body: rb?.body ?? Buffer.alloc(0), end_of_stream: rb?.end_of_stream === true } } } } });
          return;
        }
        this.send({ response_body: { response: { status: 'CONTINUE' } } });
        return;
      }
      case 'response_trailers':
        this.send({ response_trailers: {} });
        return;
      default:
        // nothing Envoy sends: answer at once rather than leave the stream waiting
        this.immediate(
          openAiError(400, `ext_proc: message with ${req.request === undefined ? 'no request set' : `unknown request ${JSON.stringify(req.request)}`}; expected one of request_headers, request_body, request_trailers, response_headers, response_body, response_trailers`, { code: 'invalid_value' }),
          'protocol',
        );
        return;
    }
  }

  /**
   * The header mutation that names the endpoint (the body is left as it is). Under P/D
   * (`prefiller` given) it also sets `x-prefiller-host-port` to the prefill endpoint, or removes a
   * client's one when the request is not disaggregated (`prefiller` empty).
   */
  private destination(
    address: string,
    prefiller?: string,
  ): { status: 'CONTINUE'; header_mutation: { set_headers: PbHeaderValueOption[]; remove_headers?: string[] }; clear_route_cache: boolean } {
    const set = [headerOption(DESTINATION_ENDPOINT_KEY, address)];
    if (prefiller === undefined) return { status: 'CONTINUE', header_mutation: { set_headers: set }, clear_route_cache: true };
    if (prefiller === '') return { status: 'CONTINUE', header_mutation: { set_headers: set, remove_headers: [PREFILLER_HEADER] }, clear_route_cache: true };
    set.push(headerOption(PREFILLER_HEADER, prefiller));
    return { status: 'CONTINUE', header_mutation: { set_headers: set }, clear_route_cache: true };
  }

  private metadata(address: string): PbStruct {
    return { fields: { [this.srv.ns]: { structValue: { fields: { [DESTINATION_ENDPOINT_KEY]: { stringValue: address } } } } } };
  }

  private placePromptless(): string | undefined {
    if (this.subset !== null && this.subset.size === 0) {
      this.immediate(openAiError(503, 'the subset hint names no endpoint', { code: 'no_endpoint' }), 'empty_subset');
      return undefined;
    }
    const req: RouteRequest = { requestId: this.requestId, arrivalUs: nowUs(), promptTokenIds: [], promptTokens: 0, maxTokens: 0 };
    const p = this.srv.place(req, 0, this.srv.excludedBy(this.subset), false);
    if (p === undefined || p === NO_ENDPOINT) {
      this.immediate(openAiError(503, this.subset === null ? 'no healthy endpoint' : 'no eligible endpoint in the subset hint', { code: 'no_endpoint' }), 'no_endpoint');
      return undefined;
    }
    return this.accept(p, req, undefined, 0, '', false);
  }

  /** The request body is complete: join its chunks (one is used where it lies) and decide. */
  private async endBody(endOfStream: boolean): Promise<void> {
    this.bodyEnded = true;
    const one = this.chunks.length === 1 ? (this.chunks[0] as Uint8Array) : undefined;
    const body = one !== undefined ? Buffer.from(one.buffer, one.byteOffset, one.byteLength) : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    if (this.fullDuplex) {
      this.heldBody = body;
      this.heldEndOfStream = endOfStream;
    }
    await this.onBody(body);
    this.heldBody = undefined;
  }

  /**
   * Sends the routing answer for `address`. BUFFERED: the body response carries the header
   * mutation (encoded once per key). Full-duplex: the held headers response carries it (encoded
   * once per key), then the body goes back unchanged as `streamed_response` chunks.
   */
  private answerPick(address: string, prefiller?: string): void {
    const key = prefiller === undefined ? address : `${address} ${prefiller}`;
    if (!this.fullDuplex) {
      this.send(this.srv.pickAnswer(key, () => ({ request_body: { response: this.destination(address, prefiller) }, dynamic_metadata: this.metadata(address) })));
      return;
    }
    this.send(this.srv.pickAnswer(`headers ${key}`, () => ({ request_headers: { response: this.destination(address, prefiller) }, dynamic_metadata: this.metadata(address) })));
    const body = this.heldBody ?? Buffer.alloc(0);
    const eos = this.heldEndOfStream;
    if (body.length === 0) {
      // nothing to hand back; an empty last chunk still tells the filter the body is over
      if (eos) this.send({ request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: true } } } } });
      return;
    }
    for (let at = 0; at < body.length; at += STREAMED_CHUNK_BYTES) {
      const end = Math.min(at + STREAMED_CHUNK_BYTES, body.length);
      this.send({ request_body: { response: { body_mutation: { streamed_response: { body: body.subarray(at, end), end_of_stream: eos && end === body.length } } } } });
    }
  }

  private async onBody(body: Buffer): Promise<void> {
    const route = routeOf(this.headers[':path'] ?? '');
    if (route === null) {
      const address = this.placePromptless();
      if (address !== undefined) this.answerPick(address);
      return;
    }
    if (body.length === 0) {
      this.immediate(openAiError(400, `request body: empty; ${this.headers[':method'] ?? 'POST'} ${(this.headers[':path'] ?? '').split('?')[0]} takes a JSON request body`, { code: 'invalid_value' }), 'bad_request');
      return;
    }
    let json: unknown;
    const text = body.toString('utf8');
    try {
      json = JSON.parse(text);
    } catch (e) {
      this.immediate(openAiError(400, `request body: not JSON (${(e as Error).message})`, { code: 'invalid_value' }), 'bad_request');
      return;
    }
    const r = readRequest(route, json, this.headers, this.srv.cfg.admission.defaultMaxTokens, this.srv.tokenizer, text);
    if (!r.ok) {
      this.immediate(r.error, 'bad_request');
      return;
    }
    const info = r.info;
    const model = info.model ?? this.srv.cfg.model ?? '';
    this.srv.metrics.requestsBy.get(model).inc();
    if (this.srv.cfg.model !== undefined && info.model !== undefined && info.model !== this.srv.cfg.model) {
      // the pool serves one model (the index namespace): another name would be scored against the wrong blocks
      const msg = `The model \`${info.model}\` does not exist. This endpoint picker's pool serves ${JSON.stringify(this.srv.cfg.model)} (the gateway config's model).`;
      this.immediate(openAiError(404, msg, { param: 'model', code: 'model_not_found' }), 'model_not_found', model);
      return;
    }
    if (this.subset !== null && this.subset.size === 0) {
      this.immediate(openAiError(503, 'the subset hint names no endpoint', { code: 'no_endpoint' }), 'empty_subset', model);
      return;
    }
    const healthy = this.srv.candidates(this.subset);
    if (healthy.length === 0) {
      this.immediate(openAiError(503, this.subset === null ? 'no healthy endpoint' : 'no eligible endpoint in the subset hint', { code: 'no_endpoint' }), 'no_endpoint', model);
      return;
    }
    if (this.srv.cfg.admission.enabled) {
      const caps = healthy.map((e) => e.capacityTokens());
      if (caps.every((c) => c !== undefined && c < info.footprintTokens)) {
        const msg = `request needs ${info.footprintTokens} KV tokens (prompt + max_tokens); the largest endpoint holds ${Math.max(...(caps as number[]))}`;
        this.immediate(openAiError(400, msg, { code: 'context_length_exceeded' }), 'context_length_exceeded', model);
        return;
      }
    }
    const base = routeRequestOf(this.requestId, info);
    // the prompt is hashed into block keys once, by the router that decides (again only if the router changed while it
    // waited in admission); the decision and the routing history at the end use those keys, not the token ids
    let req: RouteRequest = base;
    let keyedBy: Router | undefined;
    const excluded = this.srv.excludedBy(this.subset);
    let placement: Placement<Endpoint>;
    let deferred: boolean;
    try {
      const res = await this.srv.admission.admit({ sloClass: info.sloClass, priority: info.priority, deadlineMs: Date.now() + (info.slo.ttftMs ?? Number.POSITIVE_INFINITY) }, () => {
        const router = this.srv.pool.router;
        if (keyedBy !== router) {
          req = { ...base, localKeys: router.keysFor(base) };
          keyedBy = router;
        }
        const p = this.srv.place(req, info.footprintTokens, excluded, true);
        // reserved as it is placed, so the next placement of the same release loop already sees it
        // P/D: the prompt is held on the prefill endpoint (llm-d's sidecar runs that leg) until the response headers or the stream's end
        if (typeof p === 'object') this.prefillHeld = reservePrefill(p, this.requestId, info.promptTokens);
        return p;
      });
      if (res.value === NO_ENDPOINT) {
        this.immediate(openAiError(503, 'no healthy endpoint', { code: 'no_endpoint' }), 'no_endpoint', model);
        return;
      }
      placement = res.value;
      deferred = res.deferred;
      this.srv.metrics.admissionBy.get(deferred ? 'defer' : 'admit').inc();
    } catch (e) {
      if (e instanceof AdmissionRejected) {
        this.srv.metrics.admission.inc({ decision: 'reject' });
        this.srv.metrics.rejections.inc({ reason: e.reason });
        const status = e.reason === 'closed' ? 503 : 429;
        this.immediate(openAiError(status, e.message, { code: e.reason }), e.reason, model, status === 429 ? this.srv.cfg.admission.retryAfterS : undefined);
        return;
      }
      throw e;
    }
    const address = this.accept(placement, req, keyedBy, info.footprintTokens, model, deferred, info);
    // P/D (as llm-d's prefill-header pre-request): the decode endpoint is the destination, the prefill one goes in x-prefiller-host-port
    const pd = placement.pd;
    const prefiller = pd === undefined ? undefined : pd.decision.disaggregated ? this.srv.pool.addressOf(pd.prefill) : '';
    // a stream that ended while the request waited in admission is finished right after this (send is then a no-op)
    this.answerPick(address, prefiller);
  }

  /**
   * Records a placement (in flight on its endpoint, see {@link Picked}) and logs the decision;
   * returns its address.
   *
   * @param req - the request as routed (`localKeys` set by `keyedBy` when it has a prompt).
   * @param keyedBy - the router that made `req.localKeys`; undefined without a prompt.
   * @param tokens - KV tokens reserved (prompt + max output).
   */
  private accept(p: Placement<Endpoint>, req: RouteRequest, keyedBy: Router | undefined, tokens: number, model: string, deferred: boolean, info?: RequestInfo): string {
    const ep = p.endpoint;
    const address = this.srv.pool.addressOf(ep);
    this.picked = { endpoint: ep, address, keys: keyedBy === undefined ? NO_KEYS : (req.localKeys ?? NO_KEYS), keyedBy, tokens, model };
    const m = this.srv.metrics;
    m.decisionsBy.get(ep.name, p.decision.reason).inc();
    if (p.decision.scores !== undefined) m.decisionScoreBy.get(ep.name).observe(p.decision.scores[p.decision.position] as number);
    m.runningByModel.set(model, (m.runningByModel.get(model) ?? 0) + 1);
    if (this.srv.log.isLevelEnabled('info')) this.logPicked(p, address, deferred, info);
    return address;
  }

  /**
   * The info line of a placed request (built only when info is logged): its fields in this order,
   * the optional ones only when they apply: reqId, path, status, outcome, decision { endpoint,
   * address, reason, scores (by endpoint, 4 decimals), predictedCachedTokens, admission, pd? },
   * subset?, bodyMode?, promptTokens?, maxTokens?, slo?, durationMs.
   */
  private logPicked(p: Placement<Endpoint>, address: string, deferred: boolean, info: RequestInfo | undefined): void {
    const scores: Record<string, number> = {};
    if (p.decision.scores !== undefined) for (let i = 0; i < p.names.length; i++) scores[p.names[i] as string] = Math.round((p.decision.scores[i] as number) * 1e4) / 1e4;
    const decision: Record<string, unknown> = {
      endpoint: p.endpoint.name,
      address,
      reason: p.decision.reason,
      scores,
      predictedCachedTokens: p.decision.cachedTokens,
      admission: deferred ? 'defer' : 'admit',
    };
    if (p.pd !== undefined) decision['pd'] = pdLogOf(p, 'prefiller-header');
    const line: Record<string, unknown> = { reqId: this.requestId, path: this.headers[':path'] ?? null, status: 200, outcome: 'picked', decision };
    if (this.subset !== null) line['subset'] = [...this.subset];
    if (this.fullDuplex) line['bodyMode'] = 'FULL_DUPLEX_STREAMED';
    if (info !== undefined) {
      line['promptTokens'] = info.promptTokens;
      line['maxTokens'] = info.maxTokens;
      line['slo'] = info.slo;
    }
    line['durationMs'] = Math.round((performance.now() - this.started) * 100) / 100;
    this.srv.log.info(line, 'request');
  }

  private onServed(address: string): void {
    this.served = address;
    const p = this.picked;
    const ep = this.srv.pool.byAddress.get(address);
    const matched = p !== undefined && p.address === address;
    this.srv.metrics.served.inc({ endpoint: ep?.name ?? address, matched: String(matched) });
    if (p !== undefined && !matched && ep !== undefined) {
      // the proxy fell back to another endpoint: the reservation moves there (the prefill one ends first when it is that endpoint: one entry per request id)
      if (ep === this.prefillHeld) this.releasePrefill();
      p.endpoint.inFlight.delete(this.requestId);
      ep.inFlight.set(this.requestId, { tokens: p.tokens, routedAtMs: Date.now() });
      this.picked = { ...p, endpoint: ep, address };
      this.srv.admission.release();
    }
  }

  private immediate(e: OpenAiErrorResponse, reason: string, model?: string, retryAfterS?: number): void {
    const status = e.status;
    const m = this.srv.metrics;
    if (model !== undefined) m.requestErrors.inc({ model_name: model, target_model_name: model, error_code: String(status) });
    m.immediate.inc({ status: String(status), reason });
    const set = [headerOption('content-type', 'application/json'), ...(this.requestId === '' ? [] : [headerOption('x-request-id', this.requestId)])];
    if (retryAfterS !== undefined) set.push(headerOption('retry-after', String(retryAfterS)));
    this.send({ immediate_response: { status: { code: status }, headers: { set_headers: set }, body: Buffer.from(JSON.stringify(e.body)), details: `kvmgr_epp_${reason}` } });
    // the request is answered: end the stream (status OK) so that no side waits on it
    if (!this.call.writableEnded && !this.call.destroyed && !this.call.cancelled) this.call.end();
    this.srv.log.info({ reqId: this.requestId, path: this.headers[':path'] ?? null, status, outcome: reason, error: e.body.error.message, durationMs: Math.round((performance.now() - this.started) * 100) / 100 }, 'request');
    this.done = true;
  }

  fail(e: unknown): void {
    this.srv.log.error({ reqId: this.requestId, err: (e as Error).message }, 'ext_proc stream failed');
    if (!this.done) this.immediate(openAiError(500, `endpoint picker: ${(e as Error).message}`, { code: 'internal_error' }), 'internal_error');
  }

  /** Ends the prefill reservation of a disaggregated pick ({@link reservePrefill}; KV may have freed: admission re-checks its queue). Idempotent. */
  private releasePrefill(): void {
    const e = this.prefillHeld;
    if (e === undefined) return;
    this.prefillHeld = undefined;
    if (e.finishInFlight(this.requestId) !== undefined) this.srv.admission.release();
  }

  /** The HTTP request is over: release its reservations. Idempotent. */
  finish(how: string): void {
    this.done = true;
    this.releasePrefill();
    if (this.finished) return;
    const p = this.picked;
    if (p === undefined) return;
    this.finished = true;
    p.endpoint.inFlight.delete(this.requestId);
    const running = this.srv.metrics.runningByModel;
    running.set(p.model, (running.get(p.model) ?? 1) - 1);
    const ok = how !== 'shutdown' && (this.status === undefined ? how === 'end' : this.status >= 200 && this.status < 300);
    if (ok && p.keyedBy !== undefined && p.keys.length > 0) this.srv.pool.recordHistoryKeys(p.endpoint, p.keys, p.keyedBy);
    this.srv.admission.release();
    if (this.srv.log.isLevelEnabled('debug')) this.srv.log.debug({ reqId: this.requestId, event: 'request-end', how, status: this.status ?? null, served: this.served ?? null }, 'request ended');
  }
}

/** A resolved configuration carries `blockSizeFixed`, which the object form has no key for. */
function isResolved(c: ResolvedGatewayConfig | GatewayConfigInput): c is ResolvedGatewayConfig {
  return typeof (c as { blockSizeFixed?: unknown }).blockSizeFixed === 'boolean';
}

function bindGrpc(server: grpc.Server, host: string, port: number): Promise<string> {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return new Promise((resolve, reject) => {
    server.bindAsync(`${h}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(`${h}:${bound}`)));
  });
}

/**
 * Starts an endpoint picker: opens the endpoints (static ones from the gateway configuration,
 * `pods`, the pods file; first scrape awaited), binds the gRPC server (ext_proc + health) and the
 * metrics server, then reports ready.
 *
 * @param config - see {@link EppConfig}.
 * @param options - log destination.
 * @returns `{ address, healthAddress, metricsUrl, state(), metrics(), reloadPods(), close() }`.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for an invalid configuration or pods file, or for
 *   `pd.mode: two-legs` set explicitly (before anything opens); an error when a port is taken.
 * @example
 * ```ts
 * const epp = await createEpp({ gateway: { model: 'meta-llama/Llama-3.1-8B-Instruct', endpoints: [{ url: 'http://10.0.0.5:8000' }] }, grpcPort: 9002 });
 * // Envoy's ext_proc filter → grpc://<epp.address>
 * await epp.close();
 * ```
 */
export async function createEpp(config: EppConfig, options: GatewayOptions = {}): Promise<Epp> {
  const g = config.gateway ?? {};
  const cfg = isResolved(g) ? g : resolveGatewayConfig(g);
  if (cfg.pd.mode === 'two-legs' && cfg.pd.modeGiven === true) {
    // Envoy sends the request once, to the endpoint picked: the picker cannot run a prefill leg of its own
    throw new KvmgrError(
      'KVMGR_BAD_CONFIG',
      "pd.mode: two-legs is not possible in kvmgr epp (the proxy sends one request, to the decode endpoint); the picker always uses prefiller-header (x-prefiller-host-port for llm-d's routing sidecar): set pd.mode: prefiller-header or leave it out",
      { details: { key: 'pd.mode' } },
    );
  }
  const extra = (config.pods ?? []).map((p, i) => resolveEndpoint(p, `pods[${i}]`));
  if (config.podsFile !== undefined) parsePodsFile(readFileSync(config.podsFile, 'utf8'), config.podsFile); // fail early on a bad file
  const srv = new EppServer(cfg, config, options);
  let address: string;
  let healthAddress: string | null = null;
  let metricsUrl: string | null = null;
  try {
    for (const e of [...cfg.endpoints, ...extra]) await srv.pool.add(e);
    await srv.reloadPods();
    srv.watchPods();
    const host = config.grpcHost ?? cfg.host;
    address = await bindGrpc(srv.grpcServer, host, config.grpcPort ?? 9002);
    if (config.healthPort !== undefined) {
      const hs = new grpc.Server();
      hs.addService(loadEppProtos().health.service, srv.health.handlers());
      srv.healthServer = hs;
      healthAddress = await bindGrpc(hs, host, config.healthPort);
    }
    const metricsPort = config.metricsPort === undefined ? 9090 : config.metricsPort;
    if (metricsPort !== null) {
      const app = Fastify({ logger: false, forceCloseConnections: true });
      app.get('/metrics', async (_req, reply) => reply.type(srv.metrics.registry.contentType).send(await srv.metrics.registry.metrics()));
      app.get('/health', async () => ({ status: srv.closing ? 'closing' : 'ok', endpoints: srv.pool.endpoints.size, healthy: srv.candidates(null).length }));
      srv.metricsApp = app;
      await app.listen({ host, port: metricsPort });
      const a = app.server.address();
      const h = host.includes(':') ? `[${host}]` : host;
      metricsUrl = `http://${h}:${typeof a === 'object' && a !== null ? a.port : metricsPort}/metrics`;
    }
  } catch (e) {
    await srv.close();
    throw e;
  }
  srv.health.setReady(true);
  srv.log.info({ event: 'listening', address, healthAddress, metricsUrl, endpoints: [...srv.pool.byAddress.keys()], routing: srv.pool.router.config, pdMode: 'prefiller-header', tokenizer: cfg.tokenizer }, 'endpoint picker ready');
  if (cfg.tokenizerFrom === 'fallback') warnTokenizerFallback(srv.log, cfg);
  return {
    address,
    healthAddress,
    metricsUrl,
    state: () => srv.state(),
    metrics: () => srv.metrics.registry.metrics(),
    reloadPods: () => srv.reloadPods(),
    close: () => srv.close(),
  };
}
