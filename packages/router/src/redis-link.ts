/**
 * One ioredis connection that never makes its caller wait on a Redis that is gone or slow, and
 * says so: commands fail fast (`enableOfflineQueue: false`, no per-request retries, a short
 * `commandTimeout`), the first failure marks the link *degraded*, and a probe (PING every
 * `probeIntervalMs`, and at once when ioredis reconnects) marks it healthy again and tells the
 * listeners, who resynchronise what they wrote while Redis was away.
 */
import { Redis } from 'ioredis';

/** Options of a {@link RedisLink}. */
export interface RedisLinkOptions {
  /** `redis://[user:pass@]host:port[/db]`. */
  readonly url: string;
  /** Longest wait for one command (or pipeline) before it fails and the link degrades, ms. @default 100 */
  readonly commandTimeoutMs?: number;
  /** TCP connect timeout, ms. @default 1000 */
  readonly connectTimeoutMs?: number;
  /** Interval of the health probe while degraded, ms. @default 500 */
  readonly probeIntervalMs?: number;
  /** Longest pause between reconnect attempts, ms. @default 1000 */
  readonly maxReconnectDelayMs?: number;
}

/** Counters of a {@link RedisLink}. */
export interface RedisLinkStats {
  /** Operations that failed or timed out (each one answered from local state instead). */
  failures: number;
  /** Operations skipped because the link was degraded. */
  skipped: number;
  /** Transitions healthy → degraded. */
  degradations: number;
  /** Transitions degraded → healthy. */
  recoveries: number;
}

/** Fast-failing Redis connection with a degraded flag. Create, then `await link.ready()` if you want to wait for the first connection. */
export class RedisLink {
  /** The client (for scripts and pipelines; prefer {@link run}). */
  readonly redis: Redis;
  /** Message of the last failure, or undefined. */
  lastError: string | undefined;
  readonly stats: RedisLinkStats = { failures: 0, skipped: 0, degradations: 0, recoveries: 0 };
  private isDegraded = true;
  private probing: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly listeners = new Set<(degraded: boolean) => void>();
  private readonly probeIntervalMs: number;

  constructor(options: RedisLinkOptions) {
    this.probeIntervalMs = options.probeIntervalMs ?? 500;
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    const ro = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 100,
      connectTimeout: options.connectTimeoutMs ?? 1000,
      retryStrategy: (times: number) => Math.min(50 * times, maxDelay),
      lazyConnect: false,
    } as const;
    this.redis = new Redis(options.url, ro);
    // ioredis emits 'error' on every failed reconnect; the link reports through its flag instead
    this.redis.on('error', (e: Error) => {
      this.lastError = e.message;
    });
    this.redis.on('ready', () => void this.probe());
    this.redis.on('close', () => this.degrade('connection closed'));
  }

  /** True while Redis is unreachable, slow or failing; callers use local state then. */
  get degraded(): boolean {
    return this.isDegraded;
  }

  /** Called with `false` when the link recovers (resync then) and `true` when it degrades. */
  onChange(fn: (degraded: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves once the link is healthy, or rejects after `timeoutMs`. */
  async ready(timeoutMs = 5000): Promise<void> {
    if (!this.isDegraded) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new Error(`redis not ready after ${timeoutMs} ms: ${this.lastError ?? 'no answer'}`));
      }, timeoutMs);
      const off = this.onChange((d) => {
        if (d) return;
        clearTimeout(t);
        off();
        resolve();
      });
      void this.probe();
    });
  }

  /**
   * Runs `op` unless the link is degraded; a failure (error or timeout) degrades the link.
   * Never throws.
   * @returns the result, or undefined when skipped or failed.
   */
  async run<T>(op: (redis: Redis) => Promise<T>): Promise<T | undefined> {
    if (this.isDegraded || this.redis.status !== 'ready') {
      this.stats.skipped++;
      if (!this.isDegraded) this.degrade(`status ${this.redis.status}`);
      return undefined;
    }
    try {
      return await op(this.redis);
    } catch (e) {
      this.stats.failures++;
      this.degrade((e as Error).message);
      return undefined;
    }
  }

  /** Marks the link degraded (a caller saw Redis misbehave) and starts probing. */
  degrade(why: string): void {
    this.lastError = why;
    if (this.closed) return;
    if (!this.isDegraded) {
      this.isDegraded = true;
      this.stats.degradations++;
      for (const f of this.listeners) f(true);
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.probing !== undefined || this.closed) return;
    this.probing = setTimeout(() => {
      this.probing = undefined;
      void this.probe();
    }, this.probeIntervalMs);
    this.probing.unref();
  }

  private async probe(): Promise<void> {
    if (this.closed || !this.isDegraded) return;
    let ok = false;
    if (this.redis.status === 'ready') {
      try {
        ok = (await this.redis.ping()) === 'PONG';
      } catch (e) {
        this.lastError = (e as Error).message;
      }
    }
    if (this.closed) return;
    if (!ok) {
      this.scheduleProbe();
      return;
    }
    if (!this.isDegraded) return;
    this.isDegraded = false;
    this.stats.recoveries++;
    for (const f of this.listeners) f(false);
  }

  /** Closes the connection and stops probing. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.probing);
    this.listeners.clear();
    this.redis.disconnect();
  }
}
