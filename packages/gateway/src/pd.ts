/**
 * Prefill/decode disaggregation in the gateway. The decision is the router's `routePd`: the
 * decode endpoint by the scorers (or the (prefill, decode) pair by the SLO pair optimizer for a
 * request with `x-slo-ttft-ms` / `x-slo-tpot-ms`), then the decider on the prompt tokens not
 * cached there: at or above `pd.threshold` prefill runs on a prefill endpoint, below it the
 * decode endpoint prefills alone. The decider also gates the SLO pair, so a short prompt is
 * never split. A disaggregated request then runs in one of two modes:
 *
 * - `two-legs` (vLLM's disaggregated proxy): the prefill leg goes to the prefill endpoint with
 *   `kv_transfer_params: {do_remote_decode: true, …}`, `max_tokens: 1`, `stream: false`; the
 *   `kv_transfer_params` of its answer go with the client's request, as sent, to the decode
 *   endpoint, whose response (streamed or not, its `usage`) passes through unchanged. A prefill
 *   leg that fails (connection, 5xx, a body without JSON) is retried on another prefill endpoint
 *   (`server.retries` times) before any byte goes to the client; otherwise the client gets an
 *   OpenAI error (502).
 * - `prefiller-header` (llm-d's routing sidecar): the request goes to the decode endpoint alone
 *   with `x-prefiller-host-port: host:port` of the prefill endpoint; the sidecar runs the legs.
 *
 * In both modes the gateway reserves the prompt's tokens on the prefill endpoint at placement
 * ({@link PdLegs.reservePrefill}), so the next placement (the next request released by the same
 * admission loop included) sees that load: in `two-legs` mode until the prefill leg answers or
 * fails (a retried leg holds them on the endpoint it runs on), in `prefiller-header` mode until
 * the decode endpoint's answer starts. The request's end or abort releases them in any case.
 *
 * @see vllm-project/vllm:tests/v1/kv_connector/nixl_integration/toy_proxy_server.py (the two legs)
 * @see llm-d/llm-d-inference-scheduler: pkg/common (PrefillPodHeader `x-prefiller-host-port`), the pd profile handler and prefill-header pre-request
 */
import { performance } from 'node:perf_hooks';
import { type OpenAiErrorResponse, openAiError } from '@kvmgr/adapter-vllm';
import type { EngineSnapshot } from '@kvmgr/core';
import type { PdDecision, RouteRequest, Router } from '@kvmgr/router';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { type Dispatcher, request as undiciRequest } from 'undici';
import type { PdSettings } from './config.js';
import { NO_ENDPOINT, type Placement, type RoutableEndpoint } from './decide.js';
import type { Endpoint } from './endpoint.js';
import type { EndpointPool } from './pool.js';
import type { OpenAiRoute, RequestInfo } from './request-info.js';
import { isEndpointFailure } from './upstream.js';

/** The request header that names the prefill endpoint for llm-d's routing sidecar (`host:port`). */
export const PREFILLER_HEADER = 'x-prefiller-host-port';

/**
 * One P/D routing decision among `endpoints`, with the request's footprint reserved on the
 * decode endpoint (as {@link placeRequest} does for a plain one).
 *
 * Candidates: healthy endpoints not in `excluded`; decode-capable ones (`decode`, `both`) need
 * `footprintTokens` free with `checkKv`, prefill ones the prompt's tokens.
 *
 * @param router - the router (`routePd`; its `pd.nonCachedTokens` is the decider's threshold, tokens).
 * @param endpoints - every endpoint of the pool.
 * @param req - the request (its prompt token ids give the block keys).
 * @param footprintTokens - KV tokens reserved on the decode endpoint (prompt + max output).
 * @param excluded - endpoint names not to use.
 * @param checkKv - keep only endpoints with room.
 * @param nowUs - decision time, µs.
 * @returns the placement (`endpoint` = decode; `pd` = the P/D decision and the prefill endpoint;
 *   `decision.reason` = the P/D reason: `disaggregated`, `below-threshold`, `no-prefill-instance`,
 *   `slo-pair`, …); undefined when no decode-capable endpoint has room; {@link NO_ENDPOINT} when none takes traffic.
 */
export function placePdRequest<E extends RoutableEndpoint>(
  router: Router,
  endpoints: Iterable<E>,
  req: RouteRequest,
  footprintTokens: number,
  excluded: ReadonlySet<string>,
  checkKv: boolean,
  nowUs: number,
): Placement<E> | typeof NO_ENDPOINT | undefined {
  const fits: E[] = [];
  let anyDecode = false;
  let decodeFits = 0;
  for (const e of endpoints) {
    if (!e.healthy || excluded.has(e.name)) continue;
    if (e.config.role === 'prefill') {
      if (!checkKv || e.freeTokens() >= req.promptTokens) fits.push(e);
      continue;
    }
    anyDecode = true;
    if (!checkKv || e.freeTokens() >= footprintTokens) {
      fits.push(e);
      decodeFits++;
    }
  }
  if (!anyDecode) return NO_ENDPOINT;
  if (decodeFits === 0) return undefined;
  const snaps: EngineSnapshot[] = new Array(fits.length);
  for (let i = 0; i < fits.length; i++) snaps[i] = (fits[i] as E).routingSnapshot(nowUs);
  let d: PdDecision = router.routePd(req, snaps, nowUs);
  const threshold = router.config.pd.nonCachedTokens;
  if (d.disaggregated && (threshold === 0 || d.uncachedTokensAtDecode < threshold)) {
    // the SLO pair optimizer does not apply the decider: a short prompt stays on the decode side
    d = { ...d, prefill: d.decode, disaggregated: false, reason: threshold === 0 ? 'pd-disabled' : 'below-threshold' };
  }
  const position = fits.findIndex((e) => e.name === d.decode);
  const endpoint = fits[position] as E;
  const prefill = fits.find((e) => e.name === d.prefill) ?? endpoint;
  endpoint.inFlight.set(req.requestId, { tokens: footprintTokens, routedAtMs: Date.now() });
  return {
    endpoint,
    decision: { instanceId: d.decode, position, reason: d.reason, cachedTokens: req.promptTokens - d.uncachedTokensAtDecode },
    names: fits.map((e) => e.name),
    pd: { decision: d, prefill },
  };
}

/**
 * The prefill endpoint a placement disaggregates to, when it is another than the decode
 * endpoint; else undefined. In `prefiller-header` mode (and in `kvmgr epp`) the prompt's tokens
 * are reserved there from the placement until the decode answer starts.
 */
export function prefillOf<E extends RoutableEndpoint>(p: Placement<E>): E | undefined {
  const pd = p.pd;
  if (pd === undefined || !pd.decision.disaggregated || pd.prefill === p.endpoint) return undefined;
  return pd.prefill;
}

/**
 * Reserves the prompt's tokens on the prefill endpoint of a disaggregated placement (its
 * prefill leg, the gateway's in `two-legs` mode or the sidecar's in `prefiller-header` mode and
 * under `kvmgr epp`, computes the prompt there, and the router would otherwise see that endpoint
 * idle until the leg starts). Called where the placement is made (inside the admission release
 * loop), so the next placement of the same loop already sees it. `two-legs` ends it when the
 * prefill leg answers or fails ({@link PdLegs.prepare}); {@link releasePrefill} ends it in any case.
 *
 * @param p - the placement.
 * @param requestId - the request's id (the key of its entry in the prefill endpoint's `inFlight`).
 * @param promptTokens - tokens reserved.
 * @returns the prefill endpoint holding the reservation, or undefined when none was made.
 */
export function reservePrefill(p: Placement<Endpoint>, requestId: string, promptTokens: number): Endpoint | undefined {
  const prefill = prefillOf(p);
  prefill?.inFlight.set(requestId, { tokens: promptTokens, routedAtMs: Date.now() });
  return prefill;
}

/**
 * Ends the reservation of {@link reservePrefill}: when the decode endpoint's answer starts (the
 * sidecar's prefill leg is done by then; the gateway's own leg has ended it already) or the
 * request ends or fails. Idempotent.
 *
 * @returns whether a reservation was released (KV may have freed).
 */
export function releasePrefill(p: Placement<Endpoint>, requestId: string): boolean {
  return prefillOf(p)?.finishInFlight(requestId) !== undefined;
}

/** What the per-request log line says of a P/D placement. */
export function pdLogOf(p: Placement<RoutableEndpoint>, mode: PdSettings['mode']): Record<string, unknown> | undefined {
  const pd = p.pd;
  if (pd === undefined) return undefined;
  const d = pd.decision;
  const pair = d.pair;
  return {
    mode,
    disaggregated: d.disaggregated,
    prefill: pd.prefill.name,
    decode: p.endpoint.name,
    reason: d.reason,
    uncachedTokens: d.uncachedTokensAtDecode,
    ...(pair === undefined
      ? {}
      : { pair: { ttftMs: round(pair.ttftMs), tpotMs: round(pair.tpotMs), transferMs: round(pair.transferMs), ttftHeadroomMs: round(pair.ttftHeadroomMs), tpotHeadroomMs: round(pair.tpotHeadroomMs) } }),
  };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/**
 * The body of a prefill leg, as vLLM's toy proxy builds it: the client's request with
 * `kv_transfer_params: {do_remote_decode: true, do_remote_prefill: false, remote_*: null}`,
 * `stream: false`, `max_tokens: 1` (and `max_completion_tokens: 1` when set), without
 * `stream_options`, `min_tokens`, `min_completion_tokens`.
 */
export function prefillLegBody(body: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  out['kv_transfer_params'] = { do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null };
  out['stream'] = false;
  out['max_tokens'] = 1;
  if ('max_completion_tokens' in out) out['max_completion_tokens'] = 1;
  delete out['stream_options'];
  delete out['min_tokens'];
  delete out['min_completion_tokens'];
  return out;
}

/** What {@link PdLegs.prepare} tells the proxy. */
export interface PdPrepared {
  /** The decode leg's body (the client's with the prefill leg's `kv_transfer_params`); absent = the client's bytes. */
  readonly body?: string;
  /** The request failed before any byte went to the client: send this (nothing when `aborted`). */
  readonly error?: OpenAiErrorResponse;
  /** The client went away during the prefill leg. */
  readonly aborted?: boolean;
  /** For the per-request log line (`pd`). */
  readonly log?: Record<string, unknown>;
}

/** Options of {@link PdLegs}. */
export interface PdLegsOptions {
  readonly pool: EndpointPool;
  readonly settings: PdSettings;
  readonly agent: Dispatcher;
  /** Connect + headers timeout of a prefill leg, ms. */
  readonly headersTimeoutMs: number;
  /** Longest silence in a prefill leg's body, ms. */
  readonly bodyTimeoutMs: number;
  /** Other prefill endpoints tried after a failed prefill leg. */
  readonly retries: number;
  /** Where the P/D counters are registered. */
  readonly registry: Registry;
  readonly log: Logger;
}

/**
 * Runs the P/D part of a proxied request: the prefill leg (`two-legs`) or the prefiller header
 * (`prefiller-header`). Counts prefill legs in `kvmgr_gateway_pd_prefill_legs_total{endpoint,outcome}`.
 */
export class PdLegs {
  private readonly legs: Counter<'endpoint' | 'outcome'>;

  constructor(private readonly o: PdLegsOptions) {
    this.legs = new Counter({
      name: 'kvmgr_gateway_pd_prefill_legs_total',
      help: 'P/D prefill legs sent by the gateway (two-legs mode), by prefill endpoint and outcome (ok, retried, failed, aborted).',
      labelNames: ['endpoint', 'outcome'],
      registers: [o.registry],
    });
  }



  /**
   * Prepares the decode leg of a placement. Nothing to do unless `p.pd` disaggregates.
   *
   * @param p - the placement (`p.endpoint` is the decode endpoint).
   * @param route - the OpenAI route (the prefill leg goes to the same path).
   * @param info - the request (`info.body` is what the client sent, unknown fields kept).
   * @param headers - headers forwarded upstream; `prefiller-header` mode adds {@link PREFILLER_HEADER} here.
   * @param signal - aborted when the client goes away.
   * @returns the decode body, or the error to answer; never throws.
   */
  async prepare(p: Placement<Endpoint>, route: OpenAiRoute, info: RequestInfo, headers: Record<string, string>, signal: AbortSignal): Promise<PdPrepared> {
    const pd = p.pd;
    if (pd === undefined || !pd.decision.disaggregated) return {};
    if (this.o.settings.mode === 'prefiller-header') {
      const address = this.o.pool.addressOf(pd.prefill);
      headers[PREFILLER_HEADER] = address;
      return { log: { prefillerHostPort: address } };
    }
    return this.twoLegs(pd.prefill, route, info, headers, signal);
  }

  private async twoLegs(first: Endpoint, route: OpenAiRoute, info: RequestInfo, headers: Record<string, string>, signal: AbortSignal): Promise<PdPrepared> {
    const path = route === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const body = JSON.stringify(prefillLegBody(info.body));
    const requestId = headers['x-request-id'] ?? '';
    const tried = new Set<string>();
    const attempts: { endpoint: string; error?: string }[] = [];
    const started = performance.now();
    let ep: Endpoint | undefined = first;
    let lastError = '';
    while (ep !== undefined) {
      tried.add(ep.name);
      // the first endpoint holds the prompt since placement (reservePrefill); a retry's from now
      if (!ep.inFlight.has(requestId)) ep.inFlight.set(requestId, { tokens: info.promptTokens, routedAtMs: Date.now() });
      const r = await this.leg(ep, path, body, headers, signal);
      ep.finishInFlight(requestId);
      if (r.ok) {
        this.legs.inc({ endpoint: ep.name, outcome: 'ok' });
        attempts.push({ endpoint: ep.name });
        const params = r.params;
        const log = { prefillLeg: { endpoint: ep.name, ms: round(performance.now() - started), kvTransferParams: params !== undefined, ...(attempts.length > 1 ? { attempts } : {}) } };
        // as the toy proxy: without kv_transfer_params in the answer the decode leg gets the request as it came
        return params === undefined ? { log } : { body: JSON.stringify({ ...info.body, kv_transfer_params: params }), log };
      }
      attempts.push({ endpoint: ep.name, error: r.why });
      if (signal.aborted) {
        this.legs.inc({ endpoint: ep.name, outcome: 'aborted' });
        return { aborted: true, log: { prefillLeg: { attempts } } };
      }
      if (r.endpointFault) ep.markFailed(r.why);
      if (r.final !== undefined) {
        this.legs.inc({ endpoint: ep.name, outcome: 'failed' });
        return { error: r.final, log: { prefillLeg: { attempts } } };
      }
      lastError = r.why;
      const next: Endpoint | undefined = tried.size > this.o.retries ? undefined : this.another(tried, requestId, info);
      this.legs.inc({ endpoint: ep.name, outcome: next === undefined ? 'failed' : 'retried' });
      if (next !== undefined) this.o.log.debug({ reqId: requestId, from: ep.name, to: next.name, why: r.why }, 'prefill leg retried on another prefill endpoint');
      ep = next;
    }
    return {
      error: openAiError(502, `prefill leg failed on ${[...tried].join(', ')}: ${lastError}`, { code: 'upstream_error' }),
      log: { prefillLeg: { attempts } },
    };
  }

  /** The router's pick among the healthy prefill endpoints not tried yet. */
  private another(tried: ReadonlySet<string>, requestId: string, info: RequestInfo): Endpoint | undefined {
    const cands: Endpoint[] = [];
    for (const e of this.o.pool.endpoints.values()) if (e.healthy && e.config.role === 'prefill' && !tried.has(e.name)) cands.push(e);
    if (cands.length === 0) return undefined;
    const now = Math.round(performance.now() * 1000);
    const req: RouteRequest = {
      requestId: `${requestId}#prefill`,
      arrivalUs: now,
      promptTokenIds: info.tokenIds,
      promptTokens: info.tokenIds.length,
      maxTokens: 1,
      ...(info.model === undefined ? {} : { model: info.model }),
    };
    return cands[this.o.pool.router.route(req, cands.map((e) => e.routingSnapshot(now)), now).position];
  }

  /** One prefill leg: its `kv_transfer_params`, or why it failed (`final`: an answer not to retry, a 4xx). */
  private async leg(
    ep: Endpoint,
    path: string,
    body: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ ok: true; params: Record<string, unknown> | undefined } | { ok: false; why: string; endpointFault: boolean; final?: OpenAiErrorResponse }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await undiciRequest(`${ep.config.url}${path}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body,
        dispatcher: this.o.agent,
        signal,
        headersTimeout: this.o.headersTimeoutMs,
        bodyTimeout: this.o.bodyTimeoutMs,
      });
    } catch (e) {
      return { ok: false, why: `prefill endpoint ${ep.name} failed before responding: ${(e as Error).message}`, endpointFault: isEndpointFailure(e) };
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      return { ok: false, why: `prefill endpoint ${ep.name} broke before its answer was complete: ${(e as Error).message}`, endpointFault: true };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 400 && res.statusCode < 500) {
      const msg = (json as { error?: { message?: unknown } } | undefined)?.error?.message;
      const why = `prefill endpoint ${ep.name} answered ${res.statusCode}: ${typeof msg === 'string' ? msg : text.slice(0, 200)}`;
      return { ok: false, why, endpointFault: false, final: openAiError(res.statusCode, why, { code: 'upstream_error' }) };
    }
    if (res.statusCode !== 200) return { ok: false, why: `prefill endpoint ${ep.name} answered ${res.statusCode}`, endpointFault: false };
    if (json === null || typeof json !== 'object') return { ok: false, why: `prefill endpoint ${ep.name} answered 200 without a JSON object`, endpointFault: false };
    const params = (json as { kv_transfer_params?: unknown }).kv_transfer_params;
    return { ok: true, params: params !== null && typeof params === 'object' && !Array.isArray(params) ? (params as Record<string, unknown>) : undefined };
  }
}
