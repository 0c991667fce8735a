/**
 * A {@link BlockIndexStore} in Redis (or Valkey), shared by router/gateway replicas.
 *
 * Key layout (`P` = `kvmgr:{<namespace>}:`; the `{…}` hash tag puts every key of a namespace in
 * one Redis Cluster slot, so the scripts may touch keys they derive themselves):
 *
 * | key | type | content |
 * |---|---|---|
 * | `P b:<key>` | hash | one per block key (`<key>` = 16 hex digits, `hi` then `lo`); field `<t>\|<endpoint>` with `t` ∈ `g` `c` `d` `s` (gpu, cpu, disk, speculative) → `0`, or the expiry (ms since the epoch) of a speculative entry |
 * | `P e:<endpoint>` | sorted set | block keys the endpoint holds in any tier → last-touch tick; for `clear` and for evicting the coldest keys beyond `maxKeysPerEndpoint` |
 * | `P clock` | string | the tick counter (`INCRBY`), a logical clock shared by replicas (no wall-clock skew in LRU order) |
 * | `P clearing` | hash | endpoint → clock cut of a whole-endpoint clear in progress: the endpoint's keys with a tick ≤ the cut are gone for every script, and are deleted a chunk at a time |
 *
 * Every mutation is one Lua script, so a concurrent replica never sees (or leaves) half of it:
 * store (HSET + ZADD + evict beyond capacity), remove (HDEL + ZREM when the endpoint holds
 * nothing more of the key), clear of one tier (walk the endpoint's set). A clear of a whole
 * endpoint is atomic at its first script, which sets the endpoint's cut in `P clearing`; the
 * keys behind the cut are then deleted `clearChunkKeys` per script (Redis stays responsive
 * during a clear of 1M keys), and until they are, every script treats them as absent (a store
 * or remove of such a key first drops the endpoint's old fields). Redis deletes a hash when its last
 * field goes, so no empty block hash is left. A lookup is one read-only script per prompt: it
 * walks the prompt's block hashes in order, keeps the endpoints still matching, and stops at the
 * first block no endpoint extends — one round trip, not one per block.
 *
 * Semantics mirror {@link KvBlockIndex} exactly (the contract test checks it): a confirmed copy
 * replaces the endpoint's speculative entry; a speculative entry is not written where the
 * endpoint holds a confirmed copy; expired speculative entries do not match; the weighted sum
 * takes the best tier weight per block.
 *
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock/redis.go (hash per key, Lua removal)
 */
import type { Tier } from '@kvmgr/core';
import { invalidArgument, requirePositiveInt } from '@kvmgr/core';
import type { Redis } from 'ioredis';
import type { LocalKeys } from './hash64.js';
import { type BlockIndexStore, type EndpointPrefix, type PrefixLookup, requireStoreRange } from './index-store.js';
import type { TierWeights } from './kv-block-index.js';

/** Options of a {@link RedisBlockIndexStore}. */
export interface RedisBlockIndexStoreOptions {
  /** Key namespace (model, pool): stores with the same one share an index. @default 'default' */
  readonly namespace?: string;
  /** Most block keys per endpoint; the least recently stored ones are evicted beyond it. @default 1048576 */
  readonly maxKeysPerEndpoint?: number;
  /**
   * Keys deleted per script by {@link RedisBlockIndexStore.clear} of a whole endpoint (Redis runs
   * one script at a time: this bounds how long a clear holds it, about 1 µs per key). @default 1024
   */
  readonly clearChunkKeys?: number;
}

const TIER_CHAR: Readonly<Record<Tier, string>> = { gpu: 'g', cpu: 'c', disk: 'd' };

/**
 * A key `member` of endpoint set `KEYS[1]` stored at or before the endpoint's clear cut `cut`
 * (a clear in progress) is logically gone: drop the endpoint's fields of it now. Lua prelude.
 */
const PURGE_IF_CLEARED = `
local function cleared(eset, member, cut)
  if cut < 0 then return false end
  local sc = redis.call('ZSCORE', eset, member)
  return sc ~= false and tonumber(sc) <= cut
end
`;

/**
 * KEYS: [endpoint set, clock, clearing hash, block hash…]; ARGV: [endpoint, tier char,
 * speculative expiry ms, capacity, prefix]. Returns keys evicted.
 */
const STORE_LUA = `${PURGE_IF_CLEARED}
local ep = ARGV[1]
local t = ARGV[2]
local n = #KEYS - 3
if n <= 0 then return 0 end
local cut = tonumber(redis.call('HGET', KEYS[3], ep) or '-1')
local tick = redis.call('INCRBY', KEYS[2], n) - n
for i = 4, #KEYS do
  local k = KEYS[i]
  local member = string.sub(k, #ARGV[5] + 3)
  if cleared(KEYS[1], member, cut) then redis.call('HDEL', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep) end
  tick = tick + 1
  if t == 's' then
    local held = redis.call('HMGET', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep)
    if not (held[1] or held[2] or held[3]) then
      redis.call('HSET', k, 's|' .. ep, ARGV[3])
    end
  else
    redis.call('HDEL', k, 's|' .. ep)
    redis.call('HSET', k, t .. '|' .. ep, '0')
  end
  redis.call('ZADD', KEYS[1], tick, member)
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over <= 0 then return 0 end
local victims = redis.call('ZPOPMIN', KEYS[1], over)
for j = 1, #victims, 2 do
  redis.call('HDEL', ARGV[5] .. 'b:' .. victims[j], 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
end
return over
`;

/** KEYS: [endpoint set, clearing hash, block hash…]; ARGV: [endpoint, tier char, prefix]. Returns holders removed. */
const REMOVE_LUA = `${PURGE_IF_CLEARED}
local ep = ARGV[1]
local f = ARGV[2] .. '|' .. ep
local removed = 0
local cut = tonumber(redis.call('HGET', KEYS[2], ep) or '-1')
for i = 3, #KEYS do
  local k = KEYS[i]
  if cleared(KEYS[1], string.sub(k, #ARGV[3] + 3), cut) then
    redis.call('HDEL', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
    redis.call('ZREM', KEYS[1], string.sub(k, #ARGV[3] + 3))
  elseif redis.call('HDEL', k, f) == 1 then
    removed = removed + 1
    local left = redis.call('HMGET', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
    if not (left[1] or left[2] or left[3] or left[4]) then
      redis.call('ZREM', KEYS[1], string.sub(k, #ARGV[3] + 3))
    end
  end
end
return removed
`;

/**
 * One tier of an endpoint, in one script (walks the whole set: tier clears are rare).
 * KEYS: [endpoint set, clearing hash]; ARGV: [endpoint, tier char, prefix]. Returns keys walked.
 */
const CLEAR_TIER_LUA = `${PURGE_IF_CLEARED}
local ep = ARGV[1]
local cut = tonumber(redis.call('HGET', KEYS[2], ep) or '-1')
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(members) do
  local k = ARGV[3] .. 'b:' .. m
  if cleared(KEYS[1], m, cut) then
    redis.call('HDEL', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
    redis.call('ZREM', KEYS[1], m)
  else
    redis.call('HDEL', k, ARGV[2] .. '|' .. ep)
    local left = redis.call('HMGET', k, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
    if not (left[1] or left[2] or left[3] or left[4]) then
      redis.call('ZREM', KEYS[1], m)
    end
  end
end
return #members
`;

/**
 * A whole endpoint, incrementally. The first call (ARGV[2] = '1') sets the endpoint's clear cut
 * to the clock (`HSET clearing <endpoint> <tick>`): from then on every key the endpoint stored at
 * or before the cut is gone for lookups, stores and removes (they check the cut), so the clear
 * is atomic at that first call. Each call then deletes up to ARGV[3] such keys; the call that
 * finds fewer removes the cut.
 * KEYS: [endpoint set, clock, clearing hash]; ARGV: [endpoint, '1' first call | '0', chunk, prefix].
 * Returns 1 while keys at or before the cut remain, else 0.
 */
const CLEAR_STEP_LUA = `
local ep = ARGV[1]
local cut
if ARGV[2] == '1' then
  cut = tonumber(redis.call('GET', KEYS[2]) or '0')
  redis.call('HSET', KEYS[3], ep, cut)
else
  cut = tonumber(redis.call('HGET', KEYS[3], ep) or '-1')
  if cut < 0 then return 0 end
end
local chunk = tonumber(ARGV[3])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cut, 'LIMIT', 0, chunk)
for _, m in ipairs(members) do
  redis.call('HDEL', ARGV[4] .. 'b:' .. m, 'g|' .. ep, 'c|' .. ep, 'd|' .. ep, 's|' .. ep)
  redis.call('ZREM', KEYS[1], m)
end
if #members < chunk then
  redis.call('HDEL', KEYS[3], ep)
  return 0
end
return 1
`;

/**
 * KEYS: block hashes of the prompt, in order; ARGV: [now ms, w gpu, w cpu, w disk, w spec, prefix].
 * Returns [endpoint, blocks, weighted (string), …] for endpoints with ≥ 1 block. Keys of an
 * endpoint being cleared that it stored at or before its cut do not match.
 */
const LOOKUP_LUA = `
local now = tonumber(ARGV[1])
local w = { g = tonumber(ARGV[2]), c = tonumber(ARGV[3]), d = tonumber(ARGV[4]), s = tonumber(ARGV[5]) }
local cl = redis.call('HGETALL', ARGV[6] .. 'clearing')
local cuts = {}
for j = 1, #cl, 2 do cuts[cl[j]] = tonumber(cl[j + 1]) end
local function live(ep, b)
  local cut = cuts[ep]
  local sc = redis.call('ZSCORE', ARGV[6] .. 'e:' .. ep, string.sub(KEYS[b], #ARGV[6] + 3))
  return sc == false or tonumber(sc) > cut
end
local matched = {}
local weighted = {}
local order = {}
for b = 1, #KEYS do
  local fields = redis.call('HGETALL', KEYS[b])
  local best = {}
  for j = 1, #fields, 2 do
    local f = fields[j]
    local t = string.sub(f, 1, 1)
    local ep = string.sub(f, 3)
    if (t ~= 's' or tonumber(fields[j + 1]) > now) and (b == 1 or matched[ep] == b - 1) and (cuts[ep] == nil or live(ep, b)) then
      local x = w[t]
      if best[ep] == nil or x > best[ep] then best[ep] = x end
    end
  end
  local advanced = false
  for ep, x in pairs(best) do
    if b == 1 then order[#order + 1] = ep end
    matched[ep] = b
    weighted[ep] = (weighted[ep] or 0) + x
    advanced = true
  end
  if not advanced then break end
end
local out = {}
for _, ep in ipairs(order) do
  out[#out + 1] = ep
  out[#out + 1] = matched[ep]
  out[#out + 1] = string.format('%.17g', weighted[ep])
end
return out
`;

type ScriptRedis = Redis & {
  kvmgrStore(...args: (string | number)[]): Promise<number>;
  kvmgrRemove(...args: (string | number)[]): Promise<number>;
  kvmgrClearTier(...args: (string | number)[]): Promise<number>;
  kvmgrClearStep(...args: (string | number)[]): Promise<number>;
  kvmgrLookup(...args: (string | number)[]): Promise<(string | number)[]>;
};

/** Defines the store's scripts on a client (idempotent); ioredis sends EVALSHA, EVAL on NOSCRIPT. */
function withScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.kvmgrClearStep !== 'function') {
    redis.defineCommand('kvmgrStore', { lua: STORE_LUA });
    redis.defineCommand('kvmgrRemove', { lua: REMOVE_LUA });
    redis.defineCommand('kvmgrClearTier', { lua: CLEAR_TIER_LUA });
    redis.defineCommand('kvmgrClearStep', { lua: CLEAR_STEP_LUA });
    redis.defineCommand('kvmgrLookup', { lua: LOOKUP_LUA });
  }
  return r;
}

/** 16 lowercase hex digits of a `[hi, lo]` key. */
export function blockKeyHex(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** The key prefix of a namespace: `kvmgr:{<namespace>}:`. */
export function redisKeyPrefix(namespace: string): string {
  return `kvmgr:{${namespace}}:`;
}

/**
 * The shared block index in Redis. Methods throw what ioredis throws (connection refused, command
 * timed out); wrap calls in a `RedisLink.run` (or {@link FallbackBlockIndexStore}) on a request
 * path.
 *
 * @example
 * ```ts
 * const store = new RedisBlockIndexStore(new Redis('redis://127.0.0.1:6379'), { namespace: 'llama-8b' });
 * await store.store('pod-a', keys, 'gpu');
 * const m = await store.lookup(keys, keys.length / 2, Date.now(), DEFAULT_TIER_WEIGHTS); // Map { 'pod-a' => { blocks, weightedBlocks } }
 * ```
 */
export class RedisBlockIndexStore implements BlockIndexStore {
  /** Key prefix, `kvmgr:{<namespace>}:`. */
  readonly prefix: string;
  readonly maxKeysPerEndpoint: number;
  readonly clearChunkKeys: number;
  private readonly redis: ScriptRedis;

  /**
   * @param redis - an ioredis client (this store does not close it; {@link close} is a no-op).
   * @param options - namespace and per-endpoint capacity.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a non-positive capacity or chunk, or a namespace with `{`/`}`.
   */
  constructor(redis: Redis, options: RedisBlockIndexStoreOptions = {}) {
    const ns = options.namespace ?? 'default';
    if (typeof ns !== 'string' || ns === '' || /[{}]/.test(ns)) throw invalidArgument('namespace', ns, 'a non-empty string without { or }');
    this.prefix = redisKeyPrefix(ns);
    this.maxKeysPerEndpoint = requirePositiveInt('maxKeysPerEndpoint', options.maxKeysPerEndpoint ?? 1 << 20);
    this.clearChunkKeys = requirePositiveInt('clearChunkKeys', options.clearChunkKeys ?? 1024);
    this.redis = withScripts(redis);
  }

  /** Redis key of an endpoint's key set. */
  endpointKey(endpoint: string): string {
    return `${this.prefix}e:${endpoint}`;
  }

  private blockKeys(keys: LocalKeys, fromBlock: number, blocks: number): string[] {
    const out: string[] = new Array(blocks - fromBlock);
    for (let b = fromBlock; b < blocks; b++) out[b - fromBlock] = `${this.prefix}b:${blockKeyHex(keys[2 * b] as number, keys[2 * b + 1] as number)}`;
    return out;
  }

  async store(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<void> {
    const t = tierChar(tier);
    requireStoreRange(keys, fromBlock, blocks);
    if (blocks === fromBlock) return;
    const bk = this.blockKeys(keys, fromBlock, blocks);
    await this.redis.kvmgrStore(bk.length + 3, this.endpointKey(endpoint), `${this.prefix}clock`, this.clearingKey, ...bk, endpoint, t, 0, this.maxKeysPerEndpoint, this.prefix);
  }

  async storeSpeculative(endpoint: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtMs: number): Promise<void> {
    requireStoreRange(keys, fromBlock, blocks);
    if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) throw invalidArgument('expiresAtMs', expiresAtMs, 'a finite time in ms');
    if (blocks === fromBlock) return;
    const bk = this.blockKeys(keys, fromBlock, blocks);
    await this.redis.kvmgrStore(bk.length + 3, this.endpointKey(endpoint), `${this.prefix}clock`, this.clearingKey, ...bk, endpoint, 's', String(expiresAtMs), this.maxKeysPerEndpoint, this.prefix);
  }

  async remove(endpoint: string, keys: LocalKeys, tier: Tier, fromBlock = 0, blocks = keys?.length >>> 1): Promise<number> {
    const t = tierChar(tier);
    requireStoreRange(keys, fromBlock, blocks);
    if (blocks === fromBlock) return 0;
    const bk = this.blockKeys(keys, fromBlock, blocks);
    return Number(await this.redis.kvmgrRemove(bk.length + 2, this.endpointKey(endpoint), this.clearingKey, ...bk, endpoint, t, this.prefix));
  }

  /**
   * A whole endpoint: atomic at its first script (from then on no lookup sees the endpoint's
   * earlier keys, and a store after it survives), then deleted `clearChunkKeys` keys per script,
   * so a clear of 1M keys never holds Redis for more than about a millisecond at a time. One
   * tier only: one script over the endpoint's keys (rare: engines clear whole caches).
   */
  async clear(endpoint: string, tier?: Tier): Promise<void> {
    if (tier !== undefined) {
      await this.redis.kvmgrClearTier(2, this.endpointKey(endpoint), this.clearingKey, endpoint, tierChar(tier), this.prefix);
      return;
    }
    const keys = [this.endpointKey(endpoint), `${this.prefix}clock`, this.clearingKey] as const;
    let more = await this.redis.kvmgrClearStep(3, ...keys, endpoint, '1', this.clearChunkKeys, this.prefix);
    while (Number(more) === 1) more = await this.redis.kvmgrClearStep(3, ...keys, endpoint, '0', this.clearChunkKeys, this.prefix);
  }

  /** Redis key of the clears in progress (endpoint → clock cut). */
  get clearingKey(): string {
    return `${this.prefix}clearing`;
  }

  async lookup(keys: LocalKeys, blocks: number, nowMs: number, tierWeights: TierWeights): Promise<PrefixLookup> {
    requireStoreRange(keys, 0, blocks);
    if (typeof nowMs !== 'number' || Number.isNaN(nowMs)) throw invalidArgument('nowMs', nowMs, 'a time in ms');
    const res = new Map<string, EndpointPrefix>();
    if (blocks === 0) return res;
    const bk = this.blockKeys(keys, 0, blocks);
    const w = tierWeights;
    const flat = await this.redis.kvmgrLookup(bk.length, ...bk, String(nowMs), w.gpu, w.cpu, w.disk, w.speculative, this.prefix);
    for (let i = 0; i + 2 < flat.length; i += 3) res.set(String(flat[i]), { blocks: Number(flat[i + 1]), weightedBlocks: Number(flat[i + 2]) });
    return res;
  }

  /** Keys held by an endpoint (any tier). One command. */
  async endpointSize(endpoint: string): Promise<number> {
    return this.redis.zcard(this.endpointKey(endpoint));
  }

  /** The client is the caller's: nothing to release. */
  async close(): Promise<void> {}
}

function tierChar(tier: Tier): string {
  const c = typeof tier === 'string' && Object.hasOwn(TIER_CHAR, tier) ? TIER_CHAR[tier] : undefined;
  if (c === undefined) throw invalidArgument('tier', tier, 'one of "gpu", "cpu", "disk"');
  return c;
}
