/**
 * The endpoint picker's pool: the gateway's {@link Endpoint} objects (scraper, KV-event
 * subscriber, health, in-flight counts), one {@link KvBlockIndex} fed by their KV events, and the
 * router over it; endpoints are also found by `ip:port`, the address the proxy speaks.
 *
 * This mirrors the pool half of the gateway server (`addEndpoint`, `removeEndpoint`, KV events
 * into the index, block size adopted from the endpoints, routing history for endpoints without
 * KV events). It lives here because `gateway.ts` keeps that code inside its server class; both
 * should share one pool module.
 */
import type { KvEvent } from '@kvmgr/core';
import { KvBlockIndex, type RouteRequest, Router } from '@kvmgr/router';
import type { Logger } from 'pino';
import type { EndpointConfig, ResolvedGatewayConfig } from '../config.js';
import { Endpoint } from '../endpoint.js';
import { endpointAddress } from './pods.js';

/** Hooks of an {@link EppPool}. */
export interface EppPoolHooks {
  /** KV may have freed (a scrape arrived, an endpoint came back): admission re-checks its queue. */
  onMaybeFreed(): void;
  /** A KV-event batch was applied, `lagS` after it was stamped. */
  onEventLag(lagS: number): void;
}

/** The endpoints, block index and router of one picker. */
export class EppPool {
  readonly endpoints = new Map<string, Endpoint>();
  readonly byAddress = new Map<string, Endpoint>();
  readonly index: KvBlockIndex;
  router: Router;
  private readonly cfg: ResolvedGatewayConfig;
  private readonly log: Logger;
  private readonly hooks: EppPoolHooks;
  private warnedSizes = '';
  private closing = false;

  constructor(cfg: ResolvedGatewayConfig, log: Logger, hooks: EppPoolHooks) {
    this.cfg = cfg;
    this.log = log;
    this.hooks = hooks;
    this.index = new KvBlockIndex({ ...(cfg.model === undefined ? {} : { namespace: { model: cfg.model } }), tierWeights: cfg.routing.tierWeights });
    this.router = new Router(cfg.routing, { index: this.index });
  }

  /** Opens an endpoint (first scrape awaited) and adds it. */
  async add(config: EndpointConfig): Promise<Endpoint> {
    const address = endpointAddress(config);
    if (this.endpoints.has(config.name) || this.byAddress.has(address)) throw new Error(`endpoint ${config.name} (${address}) exists already`);
    this.index.addInstance(config.name);
    const ep = await Endpoint.start(config, {
      scrapeIntervalMs: this.cfg.scrapeIntervalMs,
      unhealthyThreshold: this.cfg.unhealthyThreshold,
      sink: { onEvents: (e, events, lag) => this.onEvents(e, events, lag) },
      onHealthChange: (e, healthy, why) => {
        this.log.warn({ event: 'endpoint-health', endpoint: e.name, healthy, why }, healthy ? 'endpoint back in service' : 'endpoint taken out of service');
        if (healthy) this.hooks.onMaybeFreed();
      },
      onScrape: () => {
        this.adoptBlockSize();
        this.hooks.onMaybeFreed();
      },
    });
    if (this.closing) {
      await ep.close();
      throw new Error('endpoint picker closed');
    }
    this.endpoints.set(config.name, ep);
    this.byAddress.set(address, ep);
    this.adoptBlockSize();
    return ep;
  }

  /** Removes an endpoint by name; false when there is none. */
  async remove(name: string): Promise<boolean> {
    const ep = this.endpoints.get(name);
    if (ep === undefined) return false;
    this.endpoints.delete(name);
    this.byAddress.delete(endpointAddress(ep.config));
    this.index.removeInstance(name);
    await ep.close();
    return true;
  }

  private onEvents(ep: Endpoint, events: readonly KvEvent[], lagS: number): void {
    if (this.endpoints.get(ep.name) !== ep) return;
    this.index.applyEvents(ep.name, events);
    this.hooks.onEventLag(lagS);
  }

  /** Without an explicit `routing.blockSize`, key requests by the block size the endpoints report (when they agree). */
  adoptBlockSize(): void {
    if (this.cfg.blockSizeFixed) return;
    const sizes = new Set<number>();
    for (const e of this.endpoints.values()) {
      const bs = e.blockSize();
      if (bs !== undefined) sizes.add(bs);
    }
    if (sizes.size > 1) {
      const key = [...sizes].sort().join(',');
      if (key === this.warnedSizes) return;
      this.warnedSizes = key;
      this.log.warn({ event: 'block-size-mismatch', sizes: [...sizes] }, `endpoints report different block sizes; keys use ${this.router.config.blockSize}`);
      return;
    }
    const bs = sizes.values().next().value;
    if (bs !== undefined && bs !== this.router.config.blockSize) this.router = new Router({ ...this.router.config, blockSize: bs }, { index: this.index });
  }

  /** Endpoints without KV events: remember the prompt's blocks as held there (approximate index). */
  recordHistory(ep: Endpoint, req: RouteRequest): void {
    if (ep.config.kvEvents !== null || this.endpoints.get(ep.name) !== ep) return;
    const keys = this.router.keysFor(req);
    const blocks = keys.length >>> 1;
    if (blocks === 0) return;
    const before = this.index.prefixLength(ep.name, keys, Number.POSITIVE_INFINITY);
    this.index.recordBlocks(ep.name, keys, 'gpu', 0, blocks);
    ep.cachedBlocks += Math.max(0, blocks - before);
  }

  /** Closes every endpoint. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.endpoints.values()].map((e) => e.close()));
    this.endpoints.clear();
    this.byAddress.clear();
  }
}
