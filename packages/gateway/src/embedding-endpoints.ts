/**
 * The upstreams of `POST /v1/embeddings`, health-checked as the LLM endpoints are
 * ({@link HealthState}): each is probed with `GET /health` every health interval. A refused or
 * reset connection takes it out at once, and so does a proxied embedding request that fails to
 * connect; `unhealthyThreshold` probes in a row that time out or answer 5xx take it out too. A
 * probe answered below 500 (a server without `/health` answers 404: it is up) that started after
 * the last failure brings it back. Requests go round robin over the healthy ones.
 */
import { Gauge, type Registry } from 'prom-client';
import { type Dispatcher, request as undiciRequest } from 'undici';
import { HealthState } from './health.js';
import { errorCode } from './upstream.js';

/** One embedding upstream. */
export class EmbeddingEndpoint {
  readonly url: string;
  readonly health: HealthState;
  constructor(url: string, unhealthyThreshold: number, onChange: (e: EmbeddingEndpoint, healthy: boolean, why: string) => void) {
    this.url = url;
    this.health = new HealthState(unhealthyThreshold, (h, why) => onChange(this, h, why));
  }

  get healthy(): boolean {
    return this.health.healthy;
  }
}

/** Options of {@link EmbeddingEndpoints}. */
export interface EmbeddingEndpointsOptions {
  /** Probe period, ms (the gateway's `health.intervalMs`). */
  readonly intervalMs: number;
  /** Failed probes in a row that take an upstream out (the gateway's `health.unhealthyThreshold`). */
  readonly unhealthyThreshold: number;
  /** Where the probes go (the gateway's undici agent). */
  readonly agent: Dispatcher;
  /** Called on every health change (logged by the gateway). */
  readonly onHealthChange?: (e: EmbeddingEndpoint, healthy: boolean, why: string) => void;
  /** Where `kvmgr_gateway_embedding_endpoint_healthy{url}` is registered. @default none */
  readonly registry?: Registry;
}

/** The embedding upstreams, their probes and the round robin over the healthy ones. */
export class EmbeddingEndpoints {
  readonly all: readonly EmbeddingEndpoint[];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private probing: Promise<void> | undefined;
  private readonly timeoutMs: number;

  constructor(
    urls: readonly string[],
    private readonly o: EmbeddingEndpointsOptions,
  ) {
    this.all = urls.map((u) => new EmbeddingEndpoint(u, o.unhealthyThreshold, (e, h, why) => o.onHealthChange?.(e, h, why)));
    // as the LLM endpoints' scrape timeout
    this.timeoutMs = Math.min(2000, Math.max(200, o.intervalMs));
    if (o.registry !== undefined) {
      const all = this.all;
      new Gauge({
        name: 'kvmgr_gateway_embedding_endpoint_healthy',
        help: 'Whether an embedding upstream takes traffic (1) or was taken out by a failed probe or request (0).',
        labelNames: ['url'],
        registers: [o.registry],
        collect() {
          for (const e of all) this.set({ url: e.url }, e.healthy ? 1 : 0);
        },
      });
    }
  }

  /** Probes every upstream once (awaited, so the gateway starts with their health known), then every `intervalMs`. */
  async start(): Promise<void> {
    await this.probeAll();
    this.schedule();
  }

  /** Whether some upstream takes traffic. */
  anyHealthy(): boolean {
    return this.all.some((e) => e.healthy);
  }

  /**
   * The next healthy upstream in turn, not in `except`; undefined when there is none.
   *
   * @param except - URLs already tried for this request.
   */
  pick(except?: ReadonlySet<string>): EmbeddingEndpoint | undefined {
    const n = this.all.length;
    for (let i = 0; i < n; i++) {
      const e = this.all[this.next++ % n] as EmbeddingEndpoint;
      if (e.healthy && (except === undefined || !except.has(e.url))) return e;
    }
    return undefined;
  }

  private probeAll(): Promise<void> {
    // probe() never throws
    this.probing ??= Promise.all(this.all.map((e) => this.probe(e))).then(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async probe(e: EmbeddingEndpoint): Promise<void> {
    const startedAt = Date.now();
    try {
      const res = await undiciRequest(`${e.url}/health`, { method: 'GET', dispatcher: this.o.agent, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs, signal: AbortSignal.timeout(this.timeoutMs) });
      await res.body.dump();
      if (res.statusCode < 500) e.health.probeOk(startedAt);
      else e.health.probeFailed(startedAt, false, `probe GET /health answered ${res.statusCode}`);
    } catch (err) {
      // nothing listens there any more: out at once (a timeout counts toward the threshold)
      const code = errorCode(err);
      const refused = code === 'ECONNREFUSED' || code === 'ECONNRESET';
      e.health.probeFailed(startedAt, refused, `probe GET /health failed: ${(err as Error).message}`);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.probeAll().then(() => this.schedule());
    }, this.o.intervalMs);
    this.timer.unref();
  }

  /** Stops probing. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.probing;
  }
}
