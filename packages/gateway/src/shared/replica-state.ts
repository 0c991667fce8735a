/**
 * What gateway replicas share through Redis, and how each keeps serving without it.
 *
 * - **Block index.** Every replica keeps its own `KvBlockIndex`, fed by its own KV-event
 *   subscriptions (as a lone gateway does). The replica holding an engine's lease
 *   (`EngineLeases`) also writes that engine's changes into the shared `RedisBlockIndexStore`
 *   (through the index's listener), so Redis sees each engine's stream once and in order. Before
 *   a decision, one Redis round trip reads the prompt's matches (lookup script) together with
 *   the other replicas' in-flight requests; the router's prefix scores are the better of the
 *   local and the shared match per endpoint, so speculative entries written by another replica
 *   count here too.
 * - **In-flight load.** Each replica keeps `P load:<replica>` (request id → endpoint, tokens,
 *   routed-at), refreshed with a TTL and listed in `P replicas` (replica → expiry); a dead
 *   replica's hash expires and is pruned. Other replicas' requests are shown to the decision as
 *   entries of the endpoints' `inFlight` maps, exactly like local ones.
 * - **Without Redis** (down, slow, failing): the link degrades at the first failure, decisions
 *   use the local index and load only, nothing waits longer than one command timeout, and the
 *   degraded mode shows in `/health` and `/metrics`. When the link recovers, the replica
 *   rewrites the engines it leases and its own in-flight requests.
 */
import { performance } from 'node:perf_hooks';
import type { Tier } from '@kvmgr/core';
import {
  type BlockIndex,
  type BlockIndexListener,
  EngineLeases,
  type KvBlockIndex,
  type LocalKeys,
  type PrefixLookup,
  type PrefixMatch,
  RedisBlockIndexStore,
  RedisLink,
  redisKeyPrefix,
} from '@kvmgr/router';
import { Gauge, type Registry } from 'prom-client';
import type { InFlight } from '../endpoint.js';

/** The `redis` section of the gateway configuration, resolved. */
export interface RedisConfig {
  /** `redis://host:port[/db]`. */
  readonly url: string;
  /** Key namespace shared by the replicas of one pool. @default the model, else 'default' */
  readonly namespace: string;
  /** This replica's id. @default `<hostname>-<pid>-<random>` */
  readonly replicaId: string;
  /** Longest wait for one Redis command before degrading, ms. @default 50 */
  readonly commandTimeoutMs: number;
  /** Engine lease time to live, ms. @default 3000 */
  readonly leaseTtlMs: number;
  /** Lease renew interval, ms. @default 1000 */
  readonly leaseRenewMs: number;
  /** Time to live of a replica's in-flight hash without heartbeat, ms. @default 5000 */
  readonly loadTtlMs: number;
  /** Most block keys per endpoint in Redis. @default 1048576 */
  readonly maxKeysPerEndpoint: number;
}

/** What the replica state reads of an endpoint. */
export interface SharedEndpoint {
  readonly name: string;
  readonly inFlight: Map<string, InFlight>;
}

/** Remote in-flight entries are keyed `\0<replica>\0<request id>`: no clash with local ids. */
const REMOTE = '\u0000';

const LOAD_VIEW_LUA = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, r in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if r ~= ARGV[2] then
    local h = redis.call('HGETALL', ARGV[3] .. 'load:' .. r)
    for j = 1, #h, 2 do
      out[#out + 1] = r
      out[#out + 1] = h[j]
      out[#out + 1] = h[j + 1]
    end
  end
end
return out
`;

type LoadRedis = { kvmgrLoadView(key: string, now: number, self: string, prefix: string): Promise<string[]> };

interface View {
  keys: LocalKeys;
  blocks: number;
  matches: PrefixLookup;
}

/**
 * Prepared views kept at most (oldest dropped first): enough for the decisions of one replica
 * that can be between their `prepare` and their placement at once (concurrent requests, and
 * requests deferred by admission, which are placed later).
 */
const MAX_VIEWS = 1024;

/** A view's map key: block count and the last block's key (keys are chained: it names the whole prefix). */
function viewKey(keys: LocalKeys, blocks: number): string {
  return `${blocks}:${keys[2 * blocks - 2]}:${keys[2 * blocks - 1]}`;
}

/** Shared state of one gateway replica. Create, `attach` the local index, then `start`. */
export class ReplicaState {
  readonly config: RedisConfig;
  readonly link: RedisLink;
  readonly store: RedisBlockIndexStore;
  readonly leases: EngineLeases;
  /** Give this to the local `KvBlockIndex` (`listener` option). */
  readonly listener: BlockIndexListener;
  /** The index the router uses: local, merged with the shared view of the current decision. */
  readonly index: BlockIndex;
  readonly counters = { sharedLookups: 0, localLookups: 0, resyncs: 0 };
  private local: KvBlockIndex | undefined;
  private endpoints: () => Iterable<SharedEndpoint> = () => [];
  private readonly prefix: string;
  /**
   * Shared views prepared for decisions, by {@link viewKey}. One slot is not enough: requests
   * interleave `prepare` and placement (a request deferred by admission is placed after later
   * requests prepared; replies read in one socket chunk resume several decisions in one turn),
   * and a decision that found another prompt's view used its local index only, losing the other
   * replicas' matches.
   */
  private readonly views = new Map<string, View>();
  /** This replica's own in-flight requests (rewritten to Redis on recovery). */
  private readonly own = new Map<string, { endpoint: string; tokens: number; routedAtMs: number }>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(config: RedisConfig) {
    this.config = config;
    this.prefix = redisKeyPrefix(config.namespace);
    this.link = new RedisLink({ url: config.url, commandTimeoutMs: config.commandTimeoutMs, probeIntervalMs: 250 });
    this.store = new RedisBlockIndexStore(this.link.redis, { namespace: config.namespace, maxKeysPerEndpoint: config.maxKeysPerEndpoint });
    this.link.redis.defineCommand('kvmgrLoadView', { numberOfKeys: 1, lua: LOAD_VIEW_LUA });
    this.leases = new EngineLeases(this.link.redis, {
      holder: config.replicaId,
      prefix: this.prefix,
      ttlMs: config.leaseTtlMs,
      renewMs: config.leaseRenewMs,
      onAcquire: (e) => void this.resyncEndpoint(e),
    });
    this.link.onChange((degraded) => {
      if (degraded) this.dropRemoteLoad();
      else void this.resyncAll();
    });
    const writes = (endpoint: string, op: () => Promise<unknown>) => {
      if (!this.link.degraded && this.leases.holds(endpoint)) void this.link.run(op);
    };
    this.listener = {
      stored: (ep, keys, blocks, tier) => {
        const k = keys.slice(0, 2 * blocks);
        writes(ep, () => this.store.store(ep, k, tier));
      },
      removed: (ep, keys, blocks, tier) => {
        const k = keys.slice(0, 2 * blocks);
        writes(ep, () => this.store.remove(ep, k, tier));
      },
      cleared: (ep, tier) => writes(ep, () => this.store.clear(ep, tier)),
    };
    this.index = this.sharedIndex();
  }

  /** The local index (fed by events) and the endpoints (their `inFlight` maps get remote entries). */
  attach(local: KvBlockIndex, endpoints: () => Iterable<SharedEndpoint>): void {
    this.local = local;
    this.endpoints = endpoints;
  }

  /** Starts leases and the load heartbeat. Does not wait for Redis. */
  start(): void {
    this.leases.start();
    const beat = () => void this.link.run((r) => r.multi().zadd(`${this.prefix}replicas`, Date.now() + this.config.loadTtlMs, this.config.replicaId).pexpire(this.loadKey(), this.config.loadTtlMs).exec());
    this.heartbeat = setInterval(beat, Math.max(100, Math.floor(this.config.loadTtlMs / 3)));
    this.heartbeat.unref();
    beat();
  }

  /** True while decisions use local state only. */
  get degraded(): boolean {
    return this.link.degraded;
  }

  /** What `/health` shows. */
  health(): { mode: 'shared' | 'degraded'; replica: string; leases: string[]; lastError: string | null } {
    return { mode: this.link.degraded ? 'degraded' : 'shared', replica: this.config.replicaId, leases: this.leases.held(), lastError: this.link.degraded ? (this.link.lastError ?? null) : null };
  }

  addEndpoint(name: string): void {
    this.leases.add(name);
  }

  async removeEndpoint(name: string): Promise<void> {
    const held = this.leases.holds(name);
    await this.leases.remove(name);
    if (held) await this.link.run(() => this.store.clear(name));
  }

  private loadKey(replica = this.config.replicaId): string {
    return `${this.prefix}load:${replica}`;
  }

  /**
   * One round trip before a decision: the prompt's shared matches and the other replicas'
   * in-flight requests. The matches are kept for the decision on these keys (by content, so the
   * router's recomputed key array finds them) until {@link MAX_VIEWS} newer prompts are
   * prepared, the same prompt's next `prepare` answers (a concurrent request for the same prompt
   * keeps the older view meanwhile), or the link degrades (all views dropped). Never throws; on
   * any Redis trouble the decision is local.
   *
   * @param keys - the prompt's block keys (two 32-bit words per block).
   */
  async prepare(keys: LocalKeys): Promise<void> {
    const blocks = keys.length >>> 1;
    if (this.link.degraded || this.local === undefined) {
      this.counters.localLookups++;
      return;
    }
    const w = this.local.tierWeights;
    const res = await this.link.run(async (r) => {
      const [matches, load] = await Promise.all([
        this.store.lookup(keys, blocks, Date.now(), w),
        (r as unknown as LoadRedis).kvmgrLoadView(`${this.prefix}replicas`, Date.now(), this.config.replicaId, this.prefix),
      ]);
      return { matches, load };
    });
    if (res === undefined) {
      this.counters.localLookups++;
      return;
    }
    this.counters.sharedLookups++;
    if (blocks > 0 && !this.link.degraded) {
      const k = viewKey(keys, blocks);
      this.views.delete(k);
      this.views.set(k, { keys, blocks, matches: res.matches });
      if (this.views.size > MAX_VIEWS) this.views.delete(this.views.keys().next().value as string);
    }
    this.applyRemoteLoad(res.load);
  }

  /** A request was routed (by this replica). */
  routed(endpoint: string, requestId: string, tokens: number): void {
    const routedAtMs = Date.now();
    this.own.set(requestId, { endpoint, tokens, routedAtMs });
    void this.link.run((r) => r.multi().hset(this.loadKey(), requestId, `${endpoint}\t${tokens}\t${routedAtMs}`).pexpire(this.loadKey(), this.config.loadTtlMs).exec());
  }

  /** A request of this replica ended (any outcome). */
  finished(requestId: string): void {
    if (!this.own.delete(requestId)) return;
    void this.link.run((r) => r.hdel(this.loadKey(), requestId));
  }

  private applyRemoteLoad(flat: readonly string[]): void {
    const byEp = new Map<string, [string, InFlight][]>();
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const [ep, tokens, at] = String(flat[i + 2]).split('\t');
      if (ep === undefined) continue;
      const list = byEp.get(ep) ?? [];
      list.push([`${REMOTE}${flat[i]}${REMOTE}${flat[i + 1]}`, { tokens: Number(tokens), routedAtMs: Number(at) }]);
      byEp.set(ep, list);
    }
    for (const e of this.endpoints()) {
      for (const k of e.inFlight.keys()) if (k.startsWith(REMOTE)) e.inFlight.delete(k);
      for (const [k, v] of byEp.get(e.name) ?? []) e.inFlight.set(k, v);
    }
  }

  private dropRemoteLoad(): void {
    this.views.clear();
    for (const e of this.endpoints()) for (const k of e.inFlight.keys()) if (k.startsWith(REMOTE)) e.inFlight.delete(k);
  }

  /** Rewrites one leased engine's confirmed blocks from the local index (clear first, same connection). */
  private async resyncEndpoint(endpoint: string): Promise<void> {
    const local = this.local;
    if (local === undefined) return;
    await this.link.run(async () => {
      const byTier: Record<Tier, number[]> = { gpu: [], cpu: [], disk: [] };
      local.forEachHeld(endpoint, (hi, lo, tier) => byTier[tier].push(hi, lo));
      const ops: Promise<unknown>[] = [this.store.clear(endpoint)];
      for (const tier of ['gpu', 'cpu', 'disk'] as const) {
        const flat = Uint32Array.from(byTier[tier]);
        const n = flat.length >>> 1;
        for (let b = 0; b < n; b += 512) ops.push(this.store.store(endpoint, flat, tier, b, Math.min(n, b + 512)));
      }
      await Promise.all(ops);
    });
    this.counters.resyncs++;
  }

  private async resyncAll(): Promise<void> {
    const p = this.link.redis.multi();
    for (const [id, f] of this.own) p.hset(this.loadKey(), id, `${f.endpoint}\t${f.tokens}\t${f.routedAtMs}`);
    p.zadd(`${this.prefix}replicas`, Date.now() + this.config.loadTtlMs, this.config.replicaId).pexpire(this.loadKey(), this.config.loadTtlMs);
    await this.link.run(() => p.exec());
    await this.leases.tick().catch(() => undefined);
    await Promise.all(this.leases.held().map((e) => this.resyncEndpoint(e)));
  }

  private sharedIndex(): BlockIndex {
    const self = this;
    const local = () => self.local as KvBlockIndex;
    return {
      get maxInstances() {
        return local().maxInstances;
      },
      instanceIndex: (id) => local().instanceIndex(id),
      addInstance: (id) => local().addInstance(id),
      recordBlocks: (id, keys, tier, from, to) => local().recordBlocks(id, keys, tier, from, to),
      addSpeculative(id, keys, from, to, expiresAtUs) {
        local().addSpeculative(id, keys, from, to, expiresAtUs);
        const k = keys.slice(2 * from, 2 * to);
        // the gateway's µs are performance.now(); Redis wants a clock all replicas share
        const expiresAtMs = Math.round(performance.timeOrigin + expiresAtUs / 1000);
        if (to > from && !self.link.degraded) void self.link.run(() => self.store.storeSpeculative(id, k, 0, to - from, expiresAtMs));
      },
      matchPrefix(keys, blocks, nowUs, out: PrefixMatch) {
        local().matchPrefix(keys, blocks, nowUs, out);
        if (blocks <= 0) return;
        const v = self.views.get(viewKey(keys, blocks));
        if (v === undefined || !sameKeys(v.keys, keys, blocks)) return;
        for (const [ep, m] of v.matches) {
          const i = local().instanceIndex(ep);
          if (i < 0) continue;
          const b = Math.min(m.blocks, blocks);
          if (b > (out.matchedBlocks[i] as number)) {
            out.matchedBlocks[i] = b;
            out.weightedBlocks[i] = (m.weightedBlocks * b) / m.blocks;
          }
        }
      },
    };
  }

  /** Registers `kvmgr_gateway_redis_degraded`, `kvmgr_gateway_redis_leases_held` and lookup counters. */
  registerMetrics(registry: Registry): void {
    const registers = [registry];
    const self = this;
    new Gauge({
      name: 'kvmgr_gateway_redis_degraded',
      help: '1 while Redis is unavailable or slow and this replica routes from its local index and load only.',
      registers,
      collect() {
        this.set(self.link.degraded ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kvmgr_gateway_redis_leases_held',
      help: 'Engines whose KV events this replica writes to the shared index.',
      registers,
      collect() {
        this.set(self.leases.held().length);
      },
    });
    new Gauge({
      name: 'kvmgr_gateway_redis_lookups',
      help: 'Decisions so far by index source: shared (Redis answered) or local (degraded or failed).',
      labelNames: ['source'],
      registers,
      collect() {
        this.set({ source: 'shared' }, self.counters.sharedLookups);
        this.set({ source: 'local' }, self.counters.localLookups);
      },
    });
  }

  /** Stops timers, releases leases and this replica's load, closes the connection. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.leases.stop().catch(() => undefined);
    await this.link.run((r) => r.multi().del(this.loadKey()).zrem(`${this.prefix}replicas`, this.config.replicaId).exec());
    await this.link.close();
  }
}

function sameKeys(a: LocalKeys, b: LocalKeys, blocks: number): boolean {
  if (a.length < 2 * blocks || b.length < 2 * blocks) return false;
  if (a === b) return true;
  for (let i = 0; i < 2 * blocks; i++) if (a[i] !== b[i]) return false;
  return true;
}
