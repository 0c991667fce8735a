/**
 * One routing decision of the gateway, apart from sockets: keep the endpoints that take
 * traffic and have room for the request's KV footprint, build their routing snapshots
 * (scraped metrics + requests in flight), ask the router, and reserve the footprint on the
 * chosen endpoint. `GatewayServer` calls it per request; the decision benchmark calls it on
 * endpoints without sockets.
 */
import type { EngineSnapshot } from '@kvmgr/core';
import type { PdDecision, PdReason, RouteDecision, RouteRequest, Router } from '@kvmgr/router';
import type { InFlight } from './endpoint.js';

/** What a decision reads of an endpoint (`Endpoint` implements it). */
export interface RoutableEndpoint {
  readonly name: string;
  readonly healthy: boolean;
  readonly config: { readonly role: string };
  readonly inFlight: Map<string, InFlight>;
  /** Free KV tokens (Infinity when unknown). */
  freeTokens(): number;
  /** The snapshot the router sees at `nowUs`. */
  routingSnapshot(nowUs: number): EngineSnapshot;
}

/** The decision behind a placement: the router's, or for a P/D placement the decode side with the P/D reason. */
export type PlacedDecision = Omit<RouteDecision, 'reason'> & { readonly reason: RouteDecision['reason'] | PdReason };

/** The P/D side of a placement (`pd.ts`): the router's P/D decision and the prefill endpoint. */
export interface PdPlacement<E extends RoutableEndpoint = RoutableEndpoint> {
  readonly decision: PdDecision;
  /** The prefill endpoint (the decode endpoint itself when not disaggregated). */
  readonly prefill: E;
}

/** A placed request. */
export interface Placement<E extends RoutableEndpoint = RoutableEndpoint> {
  /** The endpoint that serves the response (the decode endpoint under P/D). */
  readonly endpoint: E;
  readonly decision: PlacedDecision;
  /** Names of the candidates, index-aligned with `decision.scores`. */
  readonly names: readonly string[];
  /** Present when the pool has prefill endpoints and P/D decided (see `pd.ts`). */
  readonly pd?: PdPlacement<E>;
}

/** No endpoint takes traffic (all out, or all excluded). */
export const NO_ENDPOINT: unique symbol = Symbol('no-endpoint');

/**
 * Routes one request among `endpoints` and reserves its footprint on the chosen one.
 *
 * @param router - the router (its index holds the cluster's blocks).
 * @param endpoints - every endpoint of the pool.
 * @param req - the request; `localKeys` or `promptTokenIds` give its block keys.
 * @param footprintTokens - KV tokens to reserve (prompt + max output).
 * @param excluded - endpoint names not to use (already failed for this request).
 * @param checkKv - keep only endpoints with `freeTokens() ≥ footprintTokens`.
 * @param nowUs - decision time, µs (speculative index entries expire against it).
 * @returns the placement; `undefined` when no endpoint has room; {@link NO_ENDPOINT} when none takes traffic.
 */
export function placeRequest<E extends RoutableEndpoint>(
  router: Router,
  endpoints: Iterable<E>,
  req: RouteRequest,
  footprintTokens: number,
  excluded: ReadonlySet<string>,
  checkKv: boolean,
  nowUs: number,
): Placement<E> | typeof NO_ENDPOINT | undefined {
  const fits: E[] = [];
  let any = false;
  for (const e of endpoints) {
    if (!e.healthy || e.config.role === 'prefill' || excluded.has(e.name)) continue;
    any = true;
    if (!checkKv || e.freeTokens() >= footprintTokens) fits.push(e);
  }
  if (!any) return NO_ENDPOINT;
  if (fits.length === 0) return undefined;
  const snaps: EngineSnapshot[] = new Array(fits.length);
  for (let i = 0; i < fits.length; i++) snaps[i] = (fits[i] as E).routingSnapshot(nowUs);
  const decision = router.route(req, snaps, nowUs);
  const endpoint = fits[decision.position] as E;
  endpoint.inFlight.set(req.requestId, { tokens: footprintTokens, routedAtMs: Date.now() });
  return { endpoint, decision, names: fits.map((e) => e.name) };
}
