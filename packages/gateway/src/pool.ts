/**
 * The endpoint pool that `kvmgr serve` (the gateway) and `kvmgr epp` (the endpoint picker) share:
 * the {@link Endpoint}s (each with its metrics scraper, KV-event subscriber, health and requests
 * in flight), one {@link KvBlockIndex} fed by their KV events, the {@link Router} over it (its
 * block size adopted from the endpoints unless configured), routing history for endpoints
 * without KV events, and the decision itself ({@link placeRequest} over the pool). What the two
 * servers add on top (HTTP proxying and retries; ext_proc streams, subset hints and pod files;
 * admission queues and metrics) stays in them.
 */
import type { KvEvent } from '@kvmgr/core';
import { type BlockIndex, type BlockIndexListener, KvBlockIndex, type LocalKeys, type ResolvedRouterConfig, type RouteRequest, Router } from '@kvmgr/router';
import type { Logger } from 'pino';
import type { EndpointConfig, ResolvedGatewayConfig } from './config.js';
import { type NO_ENDPOINT, type Placement, placeRequest } from './decide.js';
import { Endpoint } from './endpoint.js';
import { placePdRequest } from './pd.js';

/** What the pool tells its server. */
export interface EndpointPoolHooks {
  /** KV may have freed (a scrape arrived, an endpoint came back into service): admission re-checks its queue. */
  onMaybeFreed(): void;
  /** A KV-event batch was applied to the index, `lagS` seconds after the engine stamped it. */
  onEventLag(lagS: number): void;
}

/**
 * A view of the index shared with other replicas (the gateway's Redis `ReplicaState` has this
 * shape): it listens to the local index, answers the router's lookups, and follows the endpoints.
 */
export interface SharedIndexView {
  /** Given to the local `KvBlockIndex` as its `listener`. */
  readonly listener: BlockIndexListener;
  /** The index the router reads (local merged with the shared view). */
  readonly index: BlockIndex;
  /** Called once with the local index and the pool's endpoints. */
  attach(local: KvBlockIndex, endpoints: () => Iterable<Endpoint>): void;
  addEndpoint(name: string): void;
  removeEndpoint(name: string): Promise<void>;
}

/** KV-event counters summed over endpoints (cumulative). */
export interface PoolEventCounters {
  gaps: number;
  replays: number;
  replayFailures: number;
  restarts: number;
  lost: number;
  malformed: number;
  delivered: number;
}

/**
 * The `ip:port` of an endpoint as a proxy addresses it: the URL's host, with its scheme's default
 * port when the URL names none (`http://10.0.0.5` → `10.0.0.5:80`).
 *
 * @param config - the endpoint's `url`.
 * @throws TypeError when `url` is not a URL (resolved configurations always hold one).
 */
export function endpointAddress(config: Pick<EndpointConfig, 'url'>): string {
  const u = new URL(config.url);
  const port = u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80';
  return `${u.hostname}:${port}`;
}

/**
 * The endpoints, block index and router of one gateway or endpoint picker.
 *
 * Endpoints are kept by name (`endpoints`, in the order they were added: the router's candidate
 * order) and by `ip:port` (`byAddress`). The index namespace is the configured `model`; index
 * weights per tier come from `routing.tierWeights`.
 */
export class EndpointPool {
  /** Endpoints by name, in the order added. */
  readonly endpoints = new Map<string, Endpoint>();
  /** Endpoints by `ip:port` ({@link endpointAddress}). */
  readonly byAddress = new Map<string, Endpoint>();
  /** The local block index, fed by the endpoints' KV events (and routing history). */
  readonly index: KvBlockIndex;
  /** Without a configured `routing.blockSize`, the router follows the block size the endpoints report. */
  blockSizeFixed: boolean;
  /** Endpoints of role `prefill` in the pool (P/D decisions while > 0). */
  prefillEndpoints = 0;
  private routerNow: Router;
  private readonly addresses = new Map<string, string>();
  private readonly cfg: ResolvedGatewayConfig;
  private readonly log: Logger;
  private readonly hooks: EndpointPoolHooks;
  private readonly shared: SharedIndexView | undefined;
  /** Block sizes last warned about (a mismatch is logged once per change, not per scrape). */
  private warnedSizes = '';
  private closing = false;

  /**
   * @param cfg - the resolved gateway configuration (model, routing, scrape and health settings).
   * @param log - where health changes, restarts and block-size mismatches are logged (warn).
   * @param hooks - see {@link EndpointPoolHooks}.
   * @param shared - a shared index (other replicas), when there is one. @default none
   */
  constructor(cfg: ResolvedGatewayConfig, log: Logger, hooks: EndpointPoolHooks, shared?: SharedIndexView) {
    this.cfg = cfg;
    this.log = log;
    this.hooks = hooks;
    this.shared = shared;
    this.blockSizeFixed = cfg.blockSizeFixed;
    this.index = new KvBlockIndex({
      ...(cfg.model === undefined ? {} : { namespace: { model: cfg.model } }),
      tierWeights: cfg.routing.tierWeights,
      ...(shared === undefined ? {} : { listener: shared.listener }),
    });
    shared?.attach(this.index, () => this.endpoints.values());
    this.routerNow = new Router(cfg.routing, { index: this.routingIndex });
  }

  /** What the router reads: the local index, or the local index merged with the shared view. */
  get routingIndex(): BlockIndex {
    return this.shared?.index ?? this.index;
  }

  /** The current router. */
  get router(): Router {
    return this.routerNow;
  }

  /**
   * A router for `config` over this pool's index (to validate a new configuration before
   * {@link useRouter}).
   *
   * @throws KvmgrError from `Router` for an invalid configuration.
   */
  routerFor(config: ResolvedRouterConfig): Router {
    return new Router(config, { index: this.routingIndex });
  }

  /** Replaces the router (atomically for the next decision); then adopts the endpoints' block size unless `blockSizeFixed`. */
  useRouter(router: Router, blockSizeFixed: boolean): void {
    this.routerNow = router;
    this.blockSizeFixed = blockSizeFixed;
    this.adoptBlockSize();
  }

  /**
   * Opens an endpoint (its first scrape awaited, KV-event sockets opened) and adds it.
   *
   * @returns the endpoint (healthy once a scrape succeeded).
   * @throws Error when an endpoint of that name or `ip:port` exists already, or the pool is
   *   closing; KvmgrError from the KV-event subscriber (`KVMGR_INVALID_ARGUMENT`, `KVMGR_UNAVAILABLE`).
   *   An `add` that throws leaves the pool, the index and the shared view as they were.
   */
  async add(config: EndpointConfig): Promise<Endpoint> {
    const address = endpointAddress(config);
    if (this.endpoints.has(config.name) || this.byAddress.has(address)) throw new Error(`endpoint ${config.name} (${address}) exists already`);
    this.index.addInstance(config.name);
    this.shared?.addEndpoint(config.name);
    let ep: Endpoint;
    try {
      ep = await this.open(config);
    } catch (e) {
      await this.forget(config.name);
      throw e;
    }
    if (this.closing) {
      await ep.close();
      await this.forget(config.name);
      throw new Error('endpoint pool closed');
    }
    this.endpoints.set(config.name, ep);
    this.byAddress.set(address, ep);
    this.addresses.set(config.name, address);
    if (config.role === 'prefill') this.prefillEndpoints++;
    this.adoptBlockSize();
    return ep;
  }

  /** Undoes the index and shared registration of an endpoint that did not join (an `add` that threw changes nothing). */
  private async forget(name: string): Promise<void> {
    this.index.removeInstance(name);
    await this.shared?.removeEndpoint(name);
  }

  private open(config: EndpointConfig): Promise<Endpoint> {
    return Endpoint.start(config, {
      scrapeIntervalMs: this.cfg.scrapeIntervalMs,
      healthIntervalMs: this.cfg.healthIntervalMs,
      unhealthyThreshold: this.cfg.unhealthyThreshold,
      sink: { onEvents: (e, events, lag) => this.onEvents(e, events, lag) },
      onHealthChange: (e, healthy, why) => {
        this.log.warn({ event: 'endpoint-health', endpoint: e.name, healthy, why }, healthy ? 'endpoint back in service' : 'endpoint taken out of service');
        if (healthy) this.hooks.onMaybeFreed();
      },
      onRestart: (e, why) => this.log.warn({ event: 'endpoint-restart', endpoint: e.name, why }, 'engine restarted: its blocks are cleared in the index and its KV events replayed from the start'),
      onScrape: () => {
        this.adoptBlockSize();
        this.hooks.onMaybeFreed();
      },
    });
  }

  /** Removes an endpoint by name (its blocks leave the index; its sockets close). @returns false when there is none. */
  async remove(name: string): Promise<boolean> {
    const ep = this.endpoints.get(name);
    if (ep === undefined) return false;
    this.endpoints.delete(name);
    if (ep.config.role === 'prefill') this.prefillEndpoints--;
    const address = this.addresses.get(name);
    if (address !== undefined && this.byAddress.get(address) === ep) this.byAddress.delete(address);
    this.addresses.delete(name);
    this.index.removeInstance(name);
    await this.shared?.removeEndpoint(name);
    await ep.close();
    return true;
  }

  /** The `ip:port` of an endpoint of the pool. */
  addressOf(ep: Endpoint): string {
    return this.addresses.get(ep.name) ?? endpointAddress(ep.config);
  }

  private onEvents(ep: Endpoint, events: readonly KvEvent[], lagS: number): void {
    if (this.endpoints.get(ep.name) !== ep) return; // removed (or replaced) meanwhile
    this.index.applyEvents(ep.name, events);
    this.hooks.onEventLag(lagS);
  }

  /** Without an explicit `routing.blockSize`, key requests by the block size the endpoints report (when they agree). */
  adoptBlockSize(): void {
    if (this.blockSizeFixed) return;
    const sizes = new Set<number>();
    for (const e of this.endpoints.values()) {
      const bs = e.blockSize();
      if (bs !== undefined) sizes.add(bs);
    }
    if (sizes.size > 1) {
      const key = [...sizes].sort().join(',');
      if (key === this.warnedSizes) return;
      this.warnedSizes = key;
      this.log.warn({ event: 'block-size-mismatch', sizes: [...sizes] }, `endpoints report different block sizes; keys use ${this.routerNow.config.blockSize}`);
      return;
    }
    const bs = sizes.values().next().value;
    if (bs !== undefined && bs !== this.routerNow.config.blockSize) this.routerNow = this.routerFor({ ...this.routerNow.config, blockSize: bs });
  }

  /**
   * The endpoints that take traffic: healthy, not prefill-only, and accepted by `filter`.
   *
   * @param filter - called with each such endpoint and its `ip:port`. @default all
   */
  eligible(filter?: (ep: Endpoint, address: string) => boolean): Endpoint[] {
    const out: Endpoint[] = [];
    for (const e of this.endpoints.values()) {
      if (!e.healthy || e.config.role === 'prefill') continue;
      if (filter !== undefined && !filter(e, this.addressOf(e))) continue;
      out.push(e);
    }
    return out;
  }

  /**
   * One routing decision over the pool ({@link placeRequest}): among the eligible endpoints not
   * in `excluded` (and, with `checkKv`, with `footprintTokens` free), the router's pick, with
   * the footprint reserved on it (`inFlight`; the caller deletes it when the request ends).
   * While the pool has endpoints of role `prefill` and `routing.pd.nonCachedTokens` > 0, the
   * decision is a P/D one ({@link placePdRequest}: the placement's `pd` names the prefill endpoint).
   *
   * @param req - the request (its prompt token ids give the block keys).
   * @param footprintTokens - KV tokens to reserve (prompt + max output).
   * @param excluded - endpoint names not to use.
   * @param checkKv - keep only endpoints with room for the footprint.
   * @param nowUs - decision time, µs.
   * @param router - the router deciding (an A/B arm's, over the same index). @default the pool's router
   * @returns the placement; undefined when no eligible endpoint has room; {@link NO_ENDPOINT} when none is eligible.
   */
  place(
    req: RouteRequest,
    footprintTokens: number,
    excluded: ReadonlySet<string>,
    checkKv: boolean,
    nowUs: number,
    router: Router = this.routerNow,
  ): Placement<Endpoint> | typeof NO_ENDPOINT | undefined {
    if (this.prefillEndpoints > 0 && router.config.pd.nonCachedTokens > 0) {
      return placePdRequest(router, this.endpoints.values(), req, footprintTokens, excluded, checkKv, nowUs);
    }
    return placeRequest(router, this.endpoints.values(), req, footprintTokens, excluded, checkKv, nowUs);
  }

  /**
   * Routing history for an endpoint without KV events: the prompt's blocks are recorded as held
   * there (an approximate index). No-op for endpoints with KV events, or no longer in the pool.
   */
  recordHistory(ep: Endpoint, req: RouteRequest): void {
    if (ep.config.kvEvents !== null || this.endpoints.get(ep.name) !== ep) return;
    this.recordKeys(ep, this.routerNow.keysFor(req));
  }

  /**
   * {@link recordHistory} from the prompt's block keys as an earlier decision computed them, so
   * that a request in flight need not hold its token ids until it ends. The keys stand for the
   * prompt only while the current router keys prompts as `keyedBy` did (same block size and
   * model namespace); when that changed meanwhile, nothing is recorded.
   *
   * @param keys - local block keys (`[hi, lo]` u32 pairs, 2 per block), from `keyedBy.keysFor`.
   * @param keyedBy - the router that made them.
   */
  recordHistoryKeys(ep: Endpoint, keys: LocalKeys, keyedBy: Router): void {
    if (ep.config.kvEvents !== null || this.endpoints.get(ep.name) !== ep) return;
    const now = this.routerNow;
    if (keyedBy !== now && (keyedBy.config.blockSize !== now.config.blockSize || keyedBy.config.model !== now.config.model)) return;
    this.recordKeys(ep, keys);
  }

  private recordKeys(ep: Endpoint, keys: LocalKeys): void {
    const blocks = keys.length >>> 1;
    if (blocks === 0) return;
    const before = this.index.prefixLength(ep.name, keys, Number.POSITIVE_INFINITY);
    this.index.recordBlocks(ep.name, keys, 'gpu', 0, blocks);
    ep.cachedBlocks += Math.max(0, blocks - before);
  }

  /** Per endpoint, what the pool gauges of the metrics read (last scrape; zeros before one). */
  endpointGauges(): { name: string; healthy: boolean; kvUtilization: number; waiting: number; eventLagS: number }[] {
    return [...this.endpoints.values()].map((e) => {
      const s = e.latest()?.snapshot;
      return { name: e.name, healthy: e.healthy, kvUtilization: s?.kvUtilization ?? 0, waiting: s?.waiting ?? 0, eventLagS: e.lastEventLagS };
    });
  }

  /** KV-event subscriber counters summed over the endpoints that have KV events. */
  eventCounters(): PoolEventCounters {
    const c: PoolEventCounters = { gaps: 0, replays: 0, replayFailures: 0, restarts: 0, lost: 0, malformed: 0, delivered: 0 };
    for (const e of this.endpoints.values()) {
      const s = e.eventStats();
      if (s === undefined) continue;
      c.gaps += s.gaps;
      c.replays += s.replays;
      c.replayFailures += s.replayFailures;
      c.restarts += s.restarts;
      c.lost += s.lost;
      c.malformed += s.malformed;
      c.delivered += s.delivered;
    }
    return c;
  }

  /** Stops adding, closes every endpoint and empties the pool. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.endpoints.values()].map((e) => e.close()));
    this.endpoints.clear();
    this.byAddress.clear();
    this.addresses.clear();
    this.prefillEndpoints = 0;
  }
}
