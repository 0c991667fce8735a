/**
 * Leases in Redis: which replica writes an engine's KV events into the shared index. One key per
 * engine, `P lease:<engine>` → holder id, taken when absent (`SET … PX`) and renewed when ours
 * (`PEXPIRE`) — one Lua script, so check and write are atomic (`SET NX PX` and a compare-and-renew in
 * one step) — every `renewMs`, and released (compare-and-`DEL`) on close. A holder that dies
 * stops renewing; its key expires after `ttlMs` and the next replica to try takes it over — so an
 * engine is without a writer for at most `ttlMs + renewMs`.
 *
 * A holder counts itself as holding only until `ttlMs − renewMs` after its last successful
 * acquire or renew (its own clock), so a holder cut off from Redis stops writing before anyone
 * else can take over: never two writers, at worst a short gap (which the new holder closes by
 * rewriting the engine's blocks from its local index).
 */
import { requirePositiveInt } from '@kvmgr/core';
import type { Redis } from 'ioredis';

/** Options of {@link EngineLeases}. */
export interface EngineLeasesOptions {
  /** This replica's id (unique among replicas). */
  readonly holder: string;
  /** Key prefix (`redisKeyPrefix(namespace)`). */
  readonly prefix: string;
  /** Lease time to live, ms. @default 3000 */
  readonly ttlMs?: number;
  /** Renew / acquire interval, ms (< ttlMs). @default 1000 */
  readonly renewMs?: number;
  /** Told when this replica takes an engine's lease (rewrite its blocks then). */
  readonly onAcquire?: (engine: string) => void;
  /** Told when this replica loses or gives up an engine's lease. */
  readonly onLose?: (engine: string) => void;
  /** Reads the clock, ms. @default Date.now */
  readonly now?: () => number;
}

/** Take the lease when free, renew it when ours (also after our hold lapsed locally), else 0. */
const RENEW_LUA = `local v = redis.call('GET', KEYS[1])
if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

type LeaseRedis = Redis & {
  kvmgrLeaseRenew(key: string, holder: string, ttl: number): Promise<number>;
  kvmgrLeaseRelease(key: string, holder: string): Promise<number>;
};

/**
 * The leases this replica competes for, one per engine. Call {@link tick} periodically (or
 * {@link start} for a timer); it tries every engine once, in one pipeline.
 */
export class EngineLeases {
  readonly holder: string;
  readonly ttlMs: number;
  readonly renewMs: number;
  private readonly redis: LeaseRedis;
  private readonly prefix: string;
  private readonly engines = new Set<string>();
  /** Engine → when our hold lapses on our own clock, ms. */
  private readonly heldUntil = new Map<string, number>();
  private readonly o: EngineLeasesOptions;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  /**
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `renewMs ≥ ttlMs` or either is not a positive integer.
   */
  constructor(redis: Redis, options: EngineLeasesOptions) {
    this.o = options;
    this.holder = options.holder;
    this.prefix = options.prefix;
    this.ttlMs = requirePositiveInt('ttlMs', options.ttlMs ?? 3000);
    this.renewMs = requirePositiveInt('renewMs', options.renewMs ?? 1000);
    if (this.renewMs >= this.ttlMs) requirePositiveInt('ttlMs - renewMs', this.ttlMs - this.renewMs);
    this.now = options.now ?? Date.now;
    const r = redis as LeaseRedis;
    if (typeof r.kvmgrLeaseRenew !== 'function') {
      redis.defineCommand('kvmgrLeaseRenew', { numberOfKeys: 1, lua: RENEW_LUA });
      redis.defineCommand('kvmgrLeaseRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    }
    this.redis = r;
  }

  /** Redis key of an engine's lease. */
  key(engine: string): string {
    return `${this.prefix}lease:${engine}`;
  }

  /** Competes for an engine's lease from the next tick on. */
  add(engine: string): void {
    this.engines.add(engine);
  }

  /** Stops competing for an engine (releases it when held). */
  async remove(engine: string): Promise<void> {
    this.engines.delete(engine);
    if (this.heldUntil.delete(engine)) {
      this.o.onLose?.(engine);
      await this.redis.kvmgrLeaseRelease(this.key(engine), this.holder).catch(() => 0);
    }
  }

  /** True while this replica holds the engine's lease (and its hold has not lapsed locally). */
  holds(engine: string): boolean {
    const u = this.heldUntil.get(engine);
    if (u === undefined) return false;
    if (this.now() < u) return true;
    this.heldUntil.delete(engine);
    this.o.onLose?.(engine);
    return false;
  }

  /** Engines whose lease this replica holds now. */
  held(): string[] {
    return [...this.engines].filter((e) => this.holds(e));
  }

  /**
   * Renews held leases and tries to take the others, in one pipeline. A Redis failure loses
   * nothing at once: held leases lapse locally after `ttlMs − renewMs`.
   * @throws what ioredis throws (the pipeline failed as a whole).
   */
  async tick(): Promise<void> {
    if (this.ticking !== undefined) return this.ticking;
    this.ticking = this.tickOnce().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async tickOnce(): Promise<void> {
    const engines = [...this.engines];
    if (engines.length === 0) return;
    const started = this.now();
    const p = this.redis.pipeline();
    for (const e of engines) {
      this.holds(e); // a lapsed hold is reported lost before it is re-taken
      (p as unknown as LeaseRedis).kvmgrLeaseRenew(this.key(e), this.holder, this.ttlMs);
    }
    const res = (await p.exec()) ?? [];
    const until = started + this.ttlMs - this.renewMs;
    engines.forEach((e, i) => {
      const [err, v] = res[i] ?? [new Error('no reply'), null];
      if (!this.engines.has(e)) return;
      const was = this.heldUntil.has(e);
      const ok = err === null && v === 1;
      if (ok) {
        this.heldUntil.set(e, until);
        if (!was) this.o.onAcquire?.(e);
      } else if (was && err === null) {
        // renewal refused: someone else holds it now
        this.heldUntil.delete(e);
        this.o.onLose?.(e);
      }
    });
  }

  /** Ticks every `renewMs` (errors are swallowed: held leases lapse on their own). */
  start(): void {
    if (this.timer !== undefined) return;
    const loop = () => {
      void this.tick()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(loop, this.renewMs).unref();
        });
    };
    this.timer = setTimeout(loop, 0).unref();
  }

  /** Stops ticking and releases held leases (best effort). */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking?.catch(() => undefined);
    const held = this.held();
    this.heldUntil.clear();
    await Promise.all(held.map((e) => this.redis.kvmgrLeaseRelease(this.key(e), this.holder).catch(() => 0)));
  }

  /** Forgets every hold without telling Redis (the replica "dies" for tests, or Redis is gone). */
  abandon(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.heldUntil.clear();
  }
}
