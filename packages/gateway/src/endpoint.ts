/**
 * One upstream engine as the gateway sees it: its metrics scraper (core `createMetricsScraper`
 * with the engine's adapter mapper), its KV-event subscriber (adapter-vllm `KvEventSubscriber`,
 * feeding the shared block index), its health, and the requests in flight to it.
 *
 * Health is passive and active ({@link HealthState}, the scrape is the probe): a connection
 * failure on a proxied request takes the endpoint out at once, and so does a refused scrape;
 * `unhealthyThreshold` failed scrapes in a row take it out too; a scrape that *started after*
 * the last failure and succeeded brings it back (so a scrape already in flight when the engine
 * died cannot revive it).
 */
import type { EngineMetricsMapper, EngineSnapshot, KvEvent, MetricsScraper } from '@kvmgr/core';
import { createMetricsScraper } from '@kvmgr/core';
import { mapLmdeployMetrics } from '@kvmgr/adapter-lmdeploy';
import { mapSglangMetrics } from '@kvmgr/adapter-sglang';
import { createTgiMetricsMapper } from '@kvmgr/adapter-tgi';
import { type KvEventDelivery, KvEventSubscriber, type KvEventSubscriberStats, mapVllmMetrics } from '@kvmgr/adapter-vllm';
import type { EndpointConfig } from './config.js';
import { HealthState } from './health.js';

/** A request in flight to an endpoint, counted at decision time. */
export interface InFlight {
  /** KV tokens reserved for it (prompt + max output), tokens. */
  readonly tokens: number;
  /** When it was routed, ms since the epoch. */
  readonly routedAtMs: number;
}

/**
 * The requests in flight to an endpoint, by request id, with running sums: all reserved tokens,
 * and the count and tokens of those routed at or after a time (the last scrape's). Every
 * decision reads these ({@link Endpoint.freeTokens}, {@link Endpoint.routingSnapshot}); kept
 * up to date on `set`/`delete` they cost O(1) per decision instead of a walk over every request
 * in flight — which, when a burst has hundreds in flight, made each decision O(n). The sums
 * since a time are recomputed by one walk when that time changes (once per scrape).
 */
export class InFlightMap extends Map<string, InFlight> {
  private tokens = 0;
  private sinceMs = Number.NaN;
  private recentCount = 0;
  private recentTokens = 0;

  // biome-ignore lint/complexity/noUselessConstructor: it takes no entries, on purpose: Map's constructor would `set` them before the sums exist
  constructor() {
    super();
  }

  override set(requestId: string, f: InFlight): this {
    const old = super.get(requestId);
    if (old !== undefined) this.remove(old);
    super.set(requestId, f);
    this.tokens += f.tokens;
    if (f.routedAtMs >= this.sinceMs) {
      this.recentCount++;
      this.recentTokens += f.tokens;
    }
    return this;
  }

  override delete(requestId: string): boolean {
    const old = super.get(requestId);
    if (old === undefined) return false;
    super.delete(requestId);
    this.remove(old);
    return true;
  }

  override clear(): void {
    super.clear();
    this.tokens = 0;
    this.recentCount = 0;
    this.recentTokens = 0;
  }

  private remove(f: InFlight): void {
    this.tokens -= f.tokens;
    if (f.routedAtMs >= this.sinceMs) {
      this.recentCount--;
      this.recentTokens -= f.tokens;
    }
  }

  /** KV tokens reserved by all requests in flight. */
  get reservedTokens(): number {
    return this.tokens;
  }

  /** Requests routed at or after `sinceMs` (ms since the epoch): their count and reserved tokens. */
  routedSince(sinceMs: number): { readonly count: number; readonly tokens: number } {
    if (sinceMs !== this.sinceMs) {
      this.sinceMs = sinceMs;
      this.recentCount = 0;
      this.recentTokens = 0;
      for (const f of super.values()) {
        if (f.routedAtMs >= sinceMs) {
          this.recentCount++;
          this.recentTokens += f.tokens;
        }
      }
    }
    return { count: this.recentCount, tokens: this.recentTokens };
  }
}

/** What an endpoint reports to the gateway about KV events. */
export interface EndpointEventSink {
  onEvents(endpoint: Endpoint, events: readonly KvEvent[], lagS: number): void;
}

function mapperFor(config: EndpointConfig): EngineMetricsMapper {
  switch (config.engine) {
    case 'sglang':
      return mapSglangMetrics;
    case 'lmdeploy':
      return mapLmdeployMetrics;
    case 'tgi':
      return createTgiMetricsMapper(config.kvCapacityTokens === null ? {} : { tokenCapacity: config.kvCapacityTokens });
    default:
      return mapVllmMetrics;
  }
}

/** Options of an {@link Endpoint}. */
export interface EndpointOptions {
  readonly scrapeIntervalMs: number;
  /** Health probe period, ms: the scrape doubles as the probe, so the loop runs at the smaller of the two. @default scrapeIntervalMs */
  readonly healthIntervalMs?: number;
  readonly unhealthyThreshold: number;
  readonly sink: EndpointEventSink;
  /** Called when the endpoint goes in or out of service. */
  readonly onHealthChange?: (endpoint: Endpoint, healthy: boolean, why: string) => void;
  /** Called when the engine is seen to have restarted (its blocks are cleared in the index). */
  readonly onRestart?: (endpoint: Endpoint, why: string) => void;
  /** Called after each successful scrape (admission re-checks the queue). */
  readonly onScrape?: (endpoint: Endpoint) => void;
}

/**
 * One upstream engine. Create with {@link Endpoint.start}; stop with {@link Endpoint.close}.
 */
export class Endpoint {
  readonly config: EndpointConfig;
  /** Requests in flight, by request id (with running sums of their tokens). */
  readonly inFlight = new InFlightMap();
  /** GPU blocks this endpoint holds per its KV events (or per routing history without events). */
  cachedBlocks = 0;
  /** Most recent KV-event lag (receive time − batch ts), seconds. */
  lastEventLagS = 0;
  /**
   * KV tokens of requests routed before the last scrape was sent that finished after its answer
   * landed: that scrape still counts them as used, so {@link freeTokens} gives them back until
   * the next one. Keyed on the scrape's send time, as {@link latest} gives it.
   */
  private freedSinceScrape = { scrapedAtMs: Number.NaN, tokens: 0 };
  private readonly health: HealthState;
  private readonly scraper: MetricsScraper;
  private subscriber: KvEventSubscriber | null;
  /** `prefix_cache_queries_total` of the last scrape: a counter that goes back means the engine restarted. */
  private lastQueries: number | undefined;
  private resubscribing: Promise<void> | undefined;
  /** Counters of the subscribers replaced after restarts (kept so the totals stay monotonic). */
  private carried = { delivered: 0, duplicates: 0, dropped: 0, gaps: 0, replays: 0, replayFailures: 0, lost: 0, restarts: 0, malformed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private scraping: Promise<void> | undefined;
  private readonly o: EndpointOptions;

  private constructor(config: EndpointConfig, o: EndpointOptions) {
    this.config = config;
    this.o = o;
    this.health = new HealthState(o.unhealthyThreshold, (h, why) => o.onHealthChange?.(this, h, why));
    this.scraper = createMetricsScraper({
      url: config.metricsUrl,
      mapper: mapperFor(config),
      instanceId: config.name,
      role: config.role,
      intervalMs: o.scrapeIntervalMs,
      timeoutMs: Math.min(2000, Math.max(200, Math.min(o.scrapeIntervalMs, o.healthIntervalMs ?? o.scrapeIntervalMs))),
    });
    this.subscriber = this.subscribe();
  }

  private subscribe(): KvEventSubscriber | null {
    if (this.config.kvEvents === null) return null;
    const sub: KvEventSubscriber = new KvEventSubscriber({
      endpoints: this.config.kvEvents,
      replayEndpoints: this.config.replay,
      onBatch: (d) => {
        if (this.subscriber === sub) this.onBatch(d);
      },
      logger: { warn: () => undefined },
    });
    return sub;
  }

  /**
   * The engine restarted (its counters went back): its cache is empty. Clear its blocks in the
   * index and subscribe afresh, so the new publisher's stream is replayed from seq 0 (late join)
   * even when its first batches went out before our SUB socket reconnected — the sequence numbers
   * alone cannot tell a restarted publisher whose seq has passed ours from the old one.
   */
  private restarted(why: string): void {
    if (this.resubscribing !== undefined || this.closed) return;
    this.o.onRestart?.(this, why);
    const old = this.subscriber;
    this.resubscribing = (async () => {
      this.subscriber = null;
      if (old !== null) {
        const st = old.stats();
        for (const k of Object.keys(this.carried) as (keyof typeof this.carried)[]) this.carried[k] += st[k];
      }
      this.carried.restarts++;
      await old?.close();
      this.cachedBlocks = 0;
      this.o.sink.onEvents(this, [{ type: 'AllBlocksCleared' }], 0);
      if (!this.closed) this.subscriber = this.subscribe();
    })().finally(() => {
      this.resubscribing = undefined;
    });
  }

  /**
   * Opens the endpoint's sockets, scrapes once (so a ready gateway has a snapshot), and starts
   * the scrape/health loop.
   *
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` / `KVMGR_UNAVAILABLE` from the KV-event subscriber.
   */
  static async start(config: EndpointConfig, o: EndpointOptions): Promise<Endpoint> {
    const e = new Endpoint(config, o);
    await e.scrapeOnce();
    e.schedule();
    return e;
  }

  /** True while the endpoint takes traffic. */
  get healthy(): boolean {
    return this.health.healthy;
  }

  /** The name (instance id in the index, logs and metrics). */
  get name(): string {
    return this.config.name;
  }

  /** KV-event subscriber counters, or undefined without KV events. */
  eventStats(): KvEventSubscriberStats | undefined {
    if (this.config.kvEvents === null) return undefined;
    const st = this.subscriber?.stats();
    const c = this.carried;
    if (st === undefined) return { ...c, endpoints: [], sources: [] };
    const out = { ...st };
    for (const k of Object.keys(c) as (keyof typeof c)[]) out[k] = st[k] + c[k];
    return out;
  }

  /** Scrape counters (core scraper). */
  scrapeCounts(): ReturnType<MetricsScraper['counts']> {
    return this.scraper.counts();
  }

  /**
   * The last scraped snapshot with its time, or undefined before one. `scrapedAtMs` is when that
   * scrape's request was SENT (ms since the epoch), not when its answer arrived: the engine's
   * numbers are at least that new, so a request routed while the scrape was in flight counts as
   * routed since it ({@link routingSnapshot}, {@link freeTokens}) instead of being in neither the
   * snapshot nor the requests routed since.
   */
  latest(): { snapshot: EngineSnapshot; scrapedAtMs: number } | undefined {
    const r = this.scraper.latest();
    return r === undefined ? undefined : { snapshot: r.snapshot, scrapedAtMs: r.sentAtMs };
  }

  /** Tokens per block: configured, else reported (`vllm:cache_config_info`), else undefined. */
  blockSize(): number | undefined {
    return this.config.blockSize ?? this.scraper.latest()?.snapshot.blockSize;
  }

  /** KV capacity in tokens: configured, else reported blocks × block size, else undefined. */
  capacityTokens(): number | undefined {
    if (this.config.kvCapacityTokens !== null) return this.config.kvCapacityTokens;
    return this.capacityOf(this.scraper.latest()?.snapshot);
  }

  /**
   * {@link capacityTokens} from a snapshot the caller has already read (every decision reads
   * the last scrape several times per endpoint; each `scraper.latest()` builds a result object).
   */
  private capacityOf(s: EngineSnapshot | undefined): number | undefined {
    if (this.config.kvCapacityTokens !== null) return this.config.kvCapacityTokens;
    const bs = this.config.blockSize ?? s?.blockSize;
    return s?.totalBlocks === undefined || bs === undefined ? undefined : s.totalBlocks * bs;
  }

  /**
   * The snapshot the router sees: the scraped one, plus the requests this gateway routed since
   * that scrape was sent (counted as waiting, their tokens added to KV utilization). A request
   * routed while the scrape was in flight may be in the engine's numbers too: counted twice until
   * the next scrape, on the safe side, rather than in neither.
   *
   * @param nowUs - time of the decision, µs (written into the snapshot).
   */
  routingSnapshot(nowUs: number): EngineSnapshot {
    const l = this.latest();
    const base: EngineSnapshot = l?.snapshot ?? {
      instanceId: this.name,
      role: this.config.role,
      timeUs: nowUs,
      kvUtilization: 0,
      waiting: 0,
      running: 0,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
    };
    const { count: extra, tokens: extraTokens } = this.inFlight.routedSince(l?.scrapedAtMs ?? 0);
    if (extra === 0) return base;
    const cap = this.capacityOf(l?.snapshot);
    return {
      ...base,
      waiting: base.waiting + extra,
      kvUtilization: cap === undefined ? base.kvUtilization : Math.min(1, base.kvUtilization + extraTokens / cap),
    };
  }

  /**
   * Free KV tokens now: capacity minus the larger of (scraped use + tokens routed since) and
   * all tokens reserved in flight. Infinity when the capacity is unknown.
   */
  freeTokens(): number {
    const l = this.latest();
    const cap = this.capacityOf(l?.snapshot);
    if (cap === undefined) return Number.POSITIVE_INFINITY;
    const since = l?.scrapedAtMs ?? 0;
    const reserved = this.inFlight.reservedTokens;
    const recent = this.inFlight.routedSince(since).tokens;
    // without the tokens freed since the scrape, a finished request's KV would stay "used" for up to a scrape interval
    const freed = this.freedSinceScrape.scrapedAtMs === since ? this.freedSinceScrape.tokens : 0;
    const used = Math.max((l?.snapshot.kvUtilization ?? 0) * cap - freed + recent, reserved);
    return Math.max(0, cap - used);
  }

  /**
   * Ends a request in flight (removes it from `inFlight`); its reserved tokens count as freed
   * against the last scrape when it was routed before it.
   *
   * @param requestId - the id it was placed under.
   * @returns the entry, or undefined when no such request is in flight here.
   */
  finishInFlight(requestId: string): InFlight | undefined {
    const f = this.inFlight.get(requestId);
    if (f === undefined) return undefined;
    this.inFlight.delete(requestId);
    const at = this.latest()?.scrapedAtMs;
    if (at !== undefined && f.routedAtMs < at) {
      if (this.freedSinceScrape.scrapedAtMs !== at) this.freedSinceScrape = { scrapedAtMs: at, tokens: 0 };
      this.freedSinceScrape.tokens += f.tokens;
    }
    return f;
  }

  /** Takes the endpoint out of service now (a proxied request failed to connect or broke). */
  markFailed(why: string): void {
    this.health.markFailed(why);
  }

  private onBatch(d: KvEventDelivery): void {
    for (const e of d.batch.events) {
      if (e.type === 'BlockStored' && (e.medium == null || e.medium.toUpperCase() === 'GPU')) this.cachedBlocks += e.blockHashes.length;
      else if (e.type === 'BlockRemoved' && (e.medium == null || e.medium.toUpperCase() === 'GPU')) this.cachedBlocks = Math.max(0, this.cachedBlocks - e.blockHashes.length);
      else if (e.type === 'AllBlocksCleared') this.cachedBlocks = 0;
    }
    const lag = Math.max(0, Date.now() / 1000 - d.batch.ts);
    this.lastEventLagS = lag;
    this.o.sink.onEvents(this, d.batch.events, lag);
  }

  private scrapeOnce(): Promise<void> {
    if (this.scraping) return this.scraping;
    const startedAt = Date.now();
    this.scraping = this.scraper
      .scrape()
      .then(
        () => {
          const q = this.scraper.latest()?.snapshot.prefixCacheQueries;
          if (q !== undefined && this.lastQueries !== undefined && q < this.lastQueries) this.restarted(`prefix_cache_queries_total went back from ${this.lastQueries} to ${q}`);
          if (q !== undefined) this.lastQueries = q;
          this.health.probeOk(startedAt, 'scrape ok');
          this.o.onScrape?.(this);
        },
        (e: Error) => {
          // a refused connection means nothing listens there any more: out at once (a timeout or an HTTP error counts toward the threshold)
          const refused = /cannot connect \((ECONNREFUSED|ECONNRESET)/.test(e.message);
          this.health.probeFailed(startedAt, refused, `scrape failed: ${e.message}`);
        },
      )
      .finally(() => {
        this.scraping = undefined;
      });
    return this.scraping;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.scrapeOnce().then(() => this.schedule());
    }, Math.min(this.o.scrapeIntervalMs, this.o.healthIntervalMs ?? this.o.scrapeIntervalMs));
    this.timer.unref();
  }

  /** Stops scraping and closes the KV-event sockets. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.scraping;
    await this.resubscribing;
    await this.subscriber?.close();
  }
}
