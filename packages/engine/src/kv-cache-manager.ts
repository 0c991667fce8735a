/**
 * The KV cache manager of one engine, shaped like vLLM v1's `KVCacheManager` + `BlockPool`, composed
 * from the kvmgr modules: block ids, ref counts and the free queue from `@kvmgr/kv-pool`'s
 * {@link BlockPool}; the block key → block map from a core {@link PrefixCache}
 * (`@kvmgr/prefix-cache`'s `BlockHashIndex` by default, `RadixPrefixCache` as an option); the
 * order in which cached blocks no request uses are evicted from a core {@link EvictionPolicy}
 * (`@kvmgr/eviction`'s registry, LRU by default) inside that prefix cache.
 *
 * Accounting (the invariant `verify()` checks): the pool holds one reference per request using a
 * block plus one for the prefix cache when the block is cached. So the pool's free queue holds
 * only blocks without content; a cached block no request uses ("cached-free") stays allocated to
 * the cache, is unlocked in the prefix cache (hence evictable, in the policy's order), and counts
 * as free for `numFreeBlocks` and `usage`, as vLLM counts it. Each request locks the deepest
 * prefix-cache entry of its cached blocks, which protects the whole chain.
 *
 * CPU tier (optional, `cpuTier`): `@kvmgr/kv-pool`'s {@link TieredPool} in block-key mode below
 * the GPU pool. Cached blocks the GPU evicts are written back to it (offload on eviction, the
 * LMCache / vLLM CPU-offloading style; it drops its own least recently used key when full); a
 * request's GPU hit is extended by the longest continuation held on CPU, which
 * {@link KvCacheManager.allocateSlots} reloads into fresh GPU blocks (the CPU copy stays). Each
 * offload or reload batch is queued on the host link (base latency + bytes / bandwidth); the wait
 * for reloads is handed to the engine step by {@link KvCacheManager.takeReloadUs}.
 *
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_manager.py
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py
 */
import {
  type BlockId,
  type BlockKeyNamespace,
  type EvictionPolicy,
  HashTable64,
  type KVCacheSpec,
  type KvEvent,
  KvmgrError,
  type PrefixCache,
  type PrefixNodeHandle,
  blockKeyToU64,
  createKVCacheSpec,
  invalidArgument,
  requireNonNegativeInt,
  requireNonNegativeNumber,
  requirePositiveInt,
  requirePositiveNumber,
} from '@kvmgr/core';
import { createEvictionPolicy } from '@kvmgr/eviction';
import { BlockPool, TieredPool } from '@kvmgr/kv-pool';
import { BlockHashIndex, RadixPrefixCache } from '@kvmgr/prefix-cache';
import { BlockKeyChain } from './block-key-chain.js';
import { BLOCK_KEYS_CLEARED, BLOCK_KEY_REMOVED, BLOCK_KEY_STORED, type BlockKeyEventKind } from './block-key-log.js';

/** Keys per block fed to the prefix cache: one 64-bit block key as two u32 words. */
const KEY_WORDS = 2;

/** What the manager reads of a request (vLLM's `Request`). */
export interface KvCacheRequest {
  /** Unique id; the manager keeps the request's blocks under it until {@link KvCacheManager.free}. */
  readonly requestId: string;
  /** Token ids known so far: prompt, then output tokens as they are sampled. */
  readonly tokenIds: ArrayLike<number>;
  /** Tokens whose KV is computed (prompt progress + output tokens fed back). */
  readonly numComputedTokens: number;
  /** Cache namespace: blocks are shared only between requests with the same model, LoRA and cache salt. @default {} */
  readonly namespace?: BlockKeyNamespace;
  /**
   * Tokens known (prompt + output fed back); lets a keyed request (below) leave `tokenIds` empty.
   * @default tokenIds.length
   */
  readonly numTokens?: number;
  /**
   * One key per leading full block (integers in [0, 2^53)) when the content is known only by key,
   * as in a trace that gives block hashes instead of tokens. Block `b < blockKeys.length` is keyed
   * by chaining its parent's key with `blockKeys[b]` (no per-token work; equal keys at the same
   * position ⇔ equal blocks); only these blocks are matched and cached (the rest of such a
   * request is filler that no other request can share), and `tokenIds` is never read for them.
   * The `tokenIds` of their `BlockStored` events are derived from the key ({@link traceBlockToken}).
   * @default none (blocks are keyed by their tokens)
   */
  readonly blockKeys?: ArrayLike<number> | undefined;
}

function mix32(a: number, b: number): number {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Token `j` of a block known only by its trace key (the `tokenIds` of its `BlockStored` event):
 * a 31-bit hash of (key, j), so equal keys give equal token runs.
 * @param key - the block's trace key (an integer in [0, 2^53)).
 * @param j - position in the block, 0-based.
 */
export function traceBlockToken(key: number, j: number): number {
  return mix32((key >>> 0) ^ Math.imul(Math.floor(key / 4294967296), 0x27d4eb2f), j) >>> 1;
}

/** Result of {@link KvCacheManager.getComputedBlocks} (vLLM's `(KVCacheBlocks, num_computed_tokens)`). */
export interface ComputedBlocks {
  /** Cached blocks of the longest cached prefix of full blocks, in token order. */
  readonly blocks: readonly BlockId[];
  /** Tokens they hold: `blocks.length × blockSize`. */
  readonly numComputedTokens: number;
  /** Prefix-cache entry of the last block (what {@link KvCacheManager.allocateSlots} locks); -1 when none. */
  readonly node: PrefixNodeHandle;
  /**
   * Blocks after `blocks` held only on the CPU tier (0 without one); counted in
   * `numComputedTokens`, reloaded into new GPU blocks by {@link KvCacheManager.allocateSlots}.
   */
  readonly numCpuBlocks: number;
}

/** The CPU tier of a {@link KvCacheManager} ({@link KvCacheManagerOptions.cpuTier}). */
export interface KvCpuTierOptions {
  /** CPU blocks (of the manager's `spec` geometry); a positive integer. */
  readonly capacityBlocks: number;
  /** Host link (PCIe) bandwidth, bytes/s. @default 25e9 (`TieredPool`'s CPU link) */
  readonly bandwidthBytesPerSec?: number;
  /** Fixed cost of one transfer batch on the link, µs. @default 10 */
  readonly baseLatencyUs?: number;
  /**
   * Window of {@link KvCacheManager.kvThrashingRate}, µs (`TieredPool`'s `thrashingWindowUs`).
   * @default 10_000_000 (10 s)
   */
  readonly thrashingWindowUs?: number;
  /**
   * Emit the tier's `medium: 'CPU'` events through `onEvent` (a driver whose index reads only GPU
   * events, as the simulator's router, turns them off and saves building them). @default true
   */
  readonly events?: boolean;
  /**
   * Hot-spot prefetch: {@link KvCacheManager.prefetch} reloads the CPU-held continuation of a
   * waiting request's prefix into GPU blocks before its step (the engine calls it for its queue).
   * Off = `prefetch` does nothing. @default false
   */
  readonly prefetch?: boolean;
  /**
   * A prefetch is not issued while the CPU link's queued transfers end more than this far in the
   * future, µs (prefetch never delays demand reloads by more). @default 20_000
   */
  readonly prefetchMaxLinkBacklogUs?: number;
}

/**
 * Outcomes of prefetched blocks ({@link KvCacheManager.prefetch}), counted per block. A prefetched
 * block is resolved once: `hit` when a request takes it as a cache hit after its transfer landed,
 * `late` when a request takes it before (its step waits for the rest of the transfer), `evicted`
 * when the GPU evicts it (or the cache is reset) before any request took it. Blocks neither taken
 * nor evicted yet are `pending`.
 */
export interface KvPrefetchStats {
  /** Blocks reloaded from the CPU tier ahead of the step that needs them. */
  readonly prefetchedBlocks: number;
  readonly hitBlocks: number;
  readonly lateBlocks: number;
  readonly evictedBlocks: number;
  readonly pendingBlocks: number;
}

/** Which prefix cache holds the block key → block map. */
export type PrefixCacheKind = 'block-hash' | 'radix';

/** Options of {@link KvCacheManager}. */
export interface KvCacheManagerOptions {
  /** GPU KV blocks in the pool (vLLM `num_gpu_blocks`; vLLM's reserved null block is not counted). */
  readonly numBlocks: number;
  /** Tokens per block. @default spec.blockSize, else 16 */
  readonly blockSize?: number;
  /** Block geometry for the pool. @default a 1-layer fp16 spec with `blockSize` (bookkeeping only) */
  readonly spec?: KVCacheSpec;
  /**
   * Eviction order of cached blocks no request uses: a `@kvmgr/eviction` registry name (`lru`,
   * `lfu`, `arc`, `s3fifo`, `sieve`, `gdsf`, …; capacity = `numBlocks`) or a policy instance
   * (owned by the manager from then on). @default 'lru'
   */
  readonly evictionPolicy?: string | EvictionPolicy;
  /** The prefix cache structure. @default 'block-hash' */
  readonly prefixCache?: PrefixCacheKind;
  /** Prefix caching on (vLLM `enable_prefix_caching`); off = nothing is ever matched or cached. @default true */
  readonly enableCaching?: boolean;
  /** Receives KV events as the cache changes (see {@link KvCacheManager.onEvent}). */
  readonly onEvent?: (event: KvEvent) => void;
  /** Receives the GPU KV events in compact form (see {@link KvCacheManager.onBlockKey}). */
  readonly onBlockKey?: (kind: BlockKeyEventKind, hi: number, lo: number, position: number) => void;
  /**
   * A CPU tier below the GPU pool (offload on eviction, reload on a hit held only on CPU). Give a
   * real `spec` with it: transfer times come from `spec.bytesPerBlock`. @default none
   */
  readonly cpuTier?: KvCpuTierOptions;
}

/** Prefix cache counters, in tokens (vLLM `PrefixCacheStats`). */
export interface KvCacheStats {
  /** `getComputedBlocks` calls that recorded stats (vLLM `requests`). */
  readonly requests: number;
  /** Tokens looked up: Σ request tokens (`vllm:prefix_cache_queries_total`). */
  readonly queries: number;
  /** Tokens found cached (`vllm:prefix_cache_hits_total`). */
  readonly hits: number;
  /** Blocks made matchable by {@link KvCacheManager.cacheFullBlocks}. */
  readonly storedBlocks: number;
  /** Cached blocks evicted to make room. */
  readonly evictedBlocks: number;
  /** Blocks a request computed twice concurrently and handed back for the cached copy. */
  readonly dedupedBlocks: number;
  /** Tokens found on the CPU tier after the GPU hit (vLLM `external_prefix_cache_hits`); 0 without one. */
  readonly cpuHits: number;
  /** Evicted GPU blocks written to the CPU tier (new keys there). */
  readonly offloadedBlocks: number;
  /** Blocks reloaded from the CPU tier into the GPU. */
  readonly reloadedBlocks: number;
}

/** Per-request bookkeeping. */
interface ReqState {
  readonly blocks: BlockId[];
  readonly keys: BlockKeyChain;
  readonly namespace: BlockKeyNamespace | undefined;
  /** Leading blocks cached (and locked through `lockNode`). */
  numCachedBlocks: number;
  lockNode: PrefixNodeHandle;
  /** {@link KvCacheManager.prefixHitTokens}'s memo: the hit's tokens (-1: none), its blocks, and what it was computed for. */
  memoTokens: number;
  memoBlocks: number;
  memoMaxBlocks: number;
  memoEvicted: number;
  memoResets: number;
}

const EMPTY: ComputedBlocks = Object.freeze({ blocks: Object.freeze([]) as readonly BlockId[], numComputedTokens: 0, node: -1, numCpuBlocks: 0 });

/**
 * vLLM v1's KV cache manager over kvmgr's block pool, prefix cache and eviction policy.
 *
 * Call order per request, as vLLM's scheduler does: {@link getComputedBlocks} (waiting request)
 * → {@link allocateSlots} (every step it computes tokens) → {@link cacheFullBlocks} (after the step
 * computed them) → {@link free} (finished, aborted or preempted).
 *
 * @example
 * ```ts
 * const kv = new KvCacheManager({ numBlocks: 1024 });
 * const req = { requestId: 'a', tokenIds: prompt, numComputedTokens: 0 };
 * const hit = kv.getComputedBlocks(req);
 * kv.allocateSlots(req, prompt.length - hit.numComputedTokens, hit.numComputedTokens, hit);
 * kv.cacheFullBlocks(req, prompt.length); // after the step
 * kv.free(req);
 * ```
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_manager.py
 */
export class KvCacheManager {
  /** GPU blocks in the pool. */
  readonly numBlocks: number;
  /** Tokens per block. */
  readonly blockSize: number;
  /** Whether prefix caching is on. */
  readonly enableCaching: boolean;
  /**
   * Receives KV events with vLLM's semantics: one `BlockStored` per {@link cacheFullBlocks} call
   * that stores new blocks, one `BlockRemoved` per evicted block, `AllBlocksCleared` on
   * {@link resetPrefixCache}; hashes are the blocks' 64-bit keys (`blockKeyToU64`), `medium` 'GPU'.
   * With a CPU tier also `medium` 'CPU' events, as vLLM's offloading connector sends them: one
   * `BlockStored` per offload batch for the keys new on CPU (`parentBlockHash` null, no token ids),
   * one `BlockRemoved` per key the CPU tier drops, `AllBlocksCleared` on reset.
   * May be replaced at any time; undefined = none.
   */
  onEvent: ((event: KvEvent) => void) | undefined;
  /**
   * Receives the GPU events of {@link onEvent}'s stream in compact form, at the same points and in
   * the same order: `(BLOCK_KEY_STORED, hi, lo, position)` for each block of a `BlockStored`,
   * `(BLOCK_KEY_REMOVED, hi, lo, position)` for each `BlockRemoved`, `(BLOCK_KEYS_CLEARED, 0, 0, -1)`
   * for `AllBlocksCleared`; `hi` / `lo` are the u32 words of the block key (`blockKeyToU64(hi, lo)`
   * is the event's hash) and `position` the block's index in its sequence (0 = the first block; a
   * chained key always sits at the same position). No bigint, no token ids: for an index fed in the
   * same process. Independent of `onEvent` (either, both or neither). May be replaced at any time;
   * undefined = none.
   */
  onBlockKey: ((kind: BlockKeyEventKind, hi: number, lo: number, position: number) => void) | undefined;

  /** The block pool (read it; do not allocate or free through it). */
  readonly pool: BlockPool;
  /** The prefix cache, keyed by block keys (2 u32 words per block, `pageSize` 2). Read only. */
  readonly prefixCache: PrefixCache;
  /** The CPU tier (block-key mode `TieredPool`), or null. Read it; the manager stores and reloads. */
  readonly cpuTier: TieredPool | null;
  /**
   * Time of the current step, µs, set by the driver (`EngineCore.startStep`); CPU-tier transfers
   * are queued on the link at this time. @default 0
   */
  nowUs = 0;
  private reloadReadyAtUs = 0;
  private nCpuHits = 0;
  private readonly prefetchOn: boolean;
  private readonly prefetchMaxBacklogUs: number;
  /** Per GPU block: 1 while a prefetched block waits for its first taker; when its transfer lands, µs. Null without prefetch. */
  private readonly prefetchPending: Uint8Array | null;
  private readonly prefetchReadyUs: Float64Array | null;
  private readonly pf = { prefetched: 0, hit: 0, late: 0, evicted: 0, pending: 0 };
  /** When the last prefetch issued lands, µs (0 when none). */
  private lastPrefetchReadyUs = 0;
  /** Keys newly stored on CPU, not yet reported in a `BlockStored` event. */
  private cpuStored: bigint[] = [];
  private readonly reqs = new Map<string, ReqState>();
  private readonly cachedHi: Uint32Array;
  private readonly cachedLo: Uint32Array;
  /** Index of each cached block in its sequence (0 = first block), for `onBlockKey`. */
  private readonly cachedPos: Int32Array;
  private readonly cached: Uint8Array;
  private numCached = 0;
  /** Blocks with at least one request reference. */
  private held = 0;
  private nRequests = 0;
  private nQueries = 0;
  private nHits = 0;
  private nStored = 0;
  private nEvicted = 0;
  private nDeduped = 0;
  /** `resetPrefixCache` calls that cleared the cache. */
  private nResets = 0;
  /**
   * Cached GPU blocks by block key (hi, lo) → block id: exactly the blocks with `cached[b] = 1`
   * (one per key: a second copy is deduplicated). Lets {@link prefixHitTokens} ask in O(1)
   * whether a waiting request's hit can have grown.
   */
  private readonly keyIndex: HashTable64;
  /** {@link prefixHitTokens} memoizes (the block-hash index: its match has no side effect). */
  private readonly memoHits: boolean;

  /**
   * @param options - see {@link KvCacheManagerOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `numBlocks` / `blockSize`, a `blockSize`
   *   that differs from `spec.blockSize`, an unknown policy name or prefix cache kind, or a bad
   *   `cpuTier` (capacity, bandwidth, latency, thrashing window).
   */
  constructor(options: KvCacheManagerOptions) {
    const numBlocks = requirePositiveInt('numBlocks', options.numBlocks);
    const blockSize = requirePositiveInt('blockSize', options.blockSize ?? options.spec?.blockSize ?? 16);
    if (options.spec !== undefined && options.spec.blockSize !== blockSize) {
      throw invalidArgument('blockSize', blockSize, `equal to spec.blockSize (${options.spec.blockSize})`);
    }
    const spec = options.spec ?? createKVCacheSpec({ blockSize, numLayers: 1, numKvHeads: 1, headDim: 1 });
    const policy =
      typeof options.evictionPolicy === 'object' && options.evictionPolicy !== null
        ? options.evictionPolicy
        : createEvictionPolicy(options.evictionPolicy ?? 'lru', { capacity: numBlocks });
    const kind = options.prefixCache ?? 'block-hash';
    if (kind === 'block-hash') this.prefixCache = new BlockHashIndex({ pageSize: KEY_WORDS, policy, initialBlocks: Math.min(numBlocks, 1 << 16) });
    else if (kind === 'radix') this.prefixCache = new RadixPrefixCache({ pageSize: KEY_WORDS, policy });
    else throw invalidArgument('prefixCache', kind, "'block-hash' or 'radix'");
    this.memoHits = kind === 'block-hash';
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.enableCaching = options.enableCaching ?? true;
    this.onEvent = options.onEvent;
    this.onBlockKey = options.onBlockKey;
    this.pool = new BlockPool({ spec, numBlocks });
    this.cachedHi = new Uint32Array(numBlocks);
    this.cachedLo = new Uint32Array(numBlocks);
    this.cachedPos = new Int32Array(numBlocks);
    this.cached = new Uint8Array(numBlocks);
    this.keyIndex = new HashTable64(Math.min(numBlocks, 1 << 16));
    const ct = options.cpuTier;
    if (ct === undefined) this.cpuTier = null;
    else {
      if (typeof ct !== 'object' || ct === null) throw invalidArgument('cpuTier', ct, 'an object { capacityBlocks, bandwidthBytesPerSec?, baseLatencyUs? }');
      const cpu = {
        capacityBlocks: requirePositiveInt('cpuTier.capacityBlocks', ct.capacityBlocks),
        ...(ct.bandwidthBytesPerSec === undefined ? {} : { bandwidthBytesPerSec: ct.bandwidthBytesPerSec }),
        ...(ct.baseLatencyUs === undefined ? {} : { baseLatencyUs: ct.baseLatencyUs }),
      };
      const thrashingWindowUs = ct.thrashingWindowUs === undefined ? undefined : requirePositiveNumber('cpuTier.thrashingWindowUs', ct.thrashingWindowUs);
      const events = ct.events ?? true;
      if (typeof events !== 'boolean') throw invalidArgument('cpuTier.events', events, 'a boolean');
      this.cpuTier = new TieredPool({
        spec,
        tiers: { cpu },
        ...(thrashingWindowUs === undefined ? {} : { thrashingWindowUs }),
        onBlockKeyStored: (hi, lo) => {
          if (events && this.onEvent) this.cpuStored.push(blockKeyToU64(hi, lo));
        },
        onBlockKeyEvicted: (hi, lo) => {
          if (!events || !this.onEvent) return;
          this.flushCpuStored();
          this.onEvent({ type: 'BlockRemoved', blockHashes: [blockKeyToU64(hi, lo)], medium: 'CPU' });
        },
      });
    }
    const pf = ct?.prefetch ?? false;
    if (typeof pf !== 'boolean') throw invalidArgument('cpuTier.prefetch', pf, 'a boolean');
    this.prefetchOn = pf && this.cpuTier !== null;
    this.prefetchMaxBacklogUs = requireNonNegativeNumber('cpuTier.prefetchMaxLinkBacklogUs', ct?.prefetchMaxLinkBacklogUs ?? 20_000);
    this.prefetchPending = this.prefetchOn ? new Uint8Array(numBlocks) : null;
    this.prefetchReadyUs = this.prefetchOn ? new Float64Array(numBlocks) : null;
  }

  private flushCpuStored(): void {
    if (this.cpuStored.length === 0) return;
    const blockHashes = this.cpuStored;
    this.cpuStored = [];
    this.onEvent?.({ type: 'BlockStored', blockHashes, parentBlockHash: null, tokenIds: [], blockSize: this.blockSize, medium: 'CPU' });
  }

  /** Blocks held on the CPU tier (0 without one). */
  get numCpuBlocks(): number {
    return this.cpuTier?.numKeys ?? 0;
  }

  /**
   * The wait for the CPU reloads issued since the last call, µs: from {@link nowUs} until the last
   * of them lands on the link (0 when none); resets. The engine adds it to the step's duration.
   */
  takeReloadUs(): number {
    const us = Math.max(0, this.reloadReadyAtUs - this.nowUs);
    this.reloadReadyAtUs = 0;
    return us;
  }

  /**
   * Hot-spot prefetch (with `cpuTier.prefetch`): for a waiting request holding no blocks, reloads
   * the continuation of its GPU prefix hit that is held on the CPU tier into GPU blocks now, so
   * that its step finds them as ordinary cached blocks (matchable by any request, evictable in
   * the policy's order) instead of waiting for a demand reload. Bounded by the GPU blocks that
   * can be allocated (free plus evictable cached blocks, less the blocks earlier prefetches hold
   * for their takers; cached blocks are evicted to make room, written back to CPU as any eviction),
   * by `maxBlocks`, and by the CPU link: nothing is issued while its queued transfers end more than
   * `cpuTier.prefetchMaxLinkBacklogUs` after `nowUs`. The transfer is queued on the CPU link at
   * `nowUs` and is NOT charged to a step; a request that takes a block before it lands waits for
   * the rest in its step (counted `late` in {@link prefetchStats}).
   *
   * @param request - a waiting request holding no blocks (its keys are those of
   *   {@link getComputedBlocks}; the lookup records no stats).
   * @param nowUs - time the transfer is issued, µs.
   * @param maxBlocks - at most this many blocks. @default no limit
   * @returns blocks prefetched (0 without prefetch, without CPU continuation, or when bounded).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `nowUs` / `maxBlocks`.
   * @see LMCache (`lmcache/v1/cache_engine.py`, `prefetch`); vLLM's CPU offloading connector loads at admission instead.
   */
  prefetch(request: KvCacheRequest, nowUs: number, maxBlocks = Number.POSITIVE_INFINITY): number {
    requireNonNegativeNumber('nowUs', nowUs);
    if (!(maxBlocks >= 0)) throw invalidArgument('maxBlocks', maxBlocks, 'a number >= 0');
    const tier = this.cpuTier;
    if (!this.prefetchOn || tier === null || tier.numKeys === 0 || !this.enableCaching) return 0;
    if (tier.pendingTransferLatency(nowUs) > this.prefetchMaxBacklogUs) return 0;
    const existing = this.reqs.get(request.requestId);
    if (existing !== undefined && existing.blocks.length > 0) return 0;
    const numTokens = request.numTokens ?? request.tokenIds.length;
    const bk = request.blockKeys;
    const maxB = Math.min(numTokens > 0 ? Math.floor((numTokens - 1) / this.blockSize) : 0, bk === undefined ? Number.POSITIVE_INFINITY : bk.length);
    if (maxB === 0) return 0;
    const st = this.stateOf(request);
    st.keys.extend(request.tokenIds, maxB, bk);
    const m = this.prefixCache.match(st.keys.keys.subarray(0, KEY_WORDS * maxB), { touch: false });
    const from = m.matchedLength / KEY_WORDS;
    let c = from;
    while (c < maxB && tier.lookupBlockKey(st.keys.hi(c), st.keys.lo(c)) !== undefined) c++;
    const budget = this.numFreeBlocks - this.pf.pending - (m.node === -1 ? 0 : this.evictableOnPath(m.blocks));
    const n = Math.floor(Math.min(c - from, budget, maxBlocks));
    if (n <= 0) {
      if (existing === undefined) this.reqs.delete(request.requestId);
      return 0;
    }
    const t0 = this.nowUs;
    this.nowUs = nowUs;
    // the matched path is protected while cached blocks are evicted below
    if (m.node !== -1) this.prefixCache.lock(m.node);
    // reload first: the evictions below write GPU blocks back to CPU and may push these keys out
    const ready = tier.reloadBlockKeys(st.keys.keys.subarray(KEY_WORDS * from, KEY_WORDS * (from + n)), nowUs);
    const short = n - this.pool.numFreeBlocks;
    if (short > 0) this.evict(short);
    const fresh = this.pool.allocate(n);
    const path: number[] = m.blocks.slice(0, from);
    for (const b of fresh) path.push(b);
    const res = this.prefixCache.insert(st.keys.keys.subarray(0, KEY_WORDS * (from + n)), path);
    // the path was matched just now and locked: every new block is adopted
    this.pool.share(res.adoptedBlocks);
    for (let i = from; i < from + n; i++) {
      const b = path[i] as number;
      this.cached[b] = 1;
      this.cachedHi[b] = st.keys.hi(i);
      this.cachedLo[b] = st.keys.lo(i);
      this.cachedPos[b] = i;
      this.keyIndex.set(st.keys.hi(i), st.keys.lo(i), b);
      (this.prefetchPending as Uint8Array)[b] = 1;
      (this.prefetchReadyUs as Float64Array)[b] = ready;
    }
    this.pool.free(fresh); // the cache's reference stays: cached, no request uses them
    this.numCached += n;
    this.nStored += n;
    this.pf.prefetched += n;
    this.pf.pending += n;
    if (ready > this.lastPrefetchReadyUs) this.lastPrefetchReadyUs = ready;
    this.emitStored(st, from, from + n, request);
    if (m.node !== -1) this.prefixCache.unlock(m.node);
    this.nowUs = t0;
    if (existing === undefined) this.reqs.delete(request.requestId);
    return n;
  }

  /** Cached blocks of `blocks` that no request uses (they stop being evictable while a path is locked). */
  private evictableOnPath(blocks: readonly BlockId[]): number {
    let k = 0;
    for (const b of blocks) if (this.userRefs(b) === 0) k++;
    return k;
  }

  /** Resolves the prefetched blocks among `blocks` that a request takes now: `hit` if landed, else `late` (the step waits). */
  private takePrefetched(blocks: readonly BlockId[]): void {
    const pending = this.prefetchPending as Uint8Array;
    const ready = this.prefetchReadyUs as Float64Array;
    for (const b of blocks) {
      if (pending[b] !== 1) continue;
      pending[b] = 0;
      this.pf.pending--;
      const at = ready[b] as number;
      if (at > this.nowUs) {
        this.pf.late++;
        if (at > this.reloadReadyAtUs) this.reloadReadyAtUs = at;
      } else this.pf.hit++;
    }
  }

  /** True when {@link prefetch} can do anything (a CPU tier with `prefetch: true`). */
  get prefetchEnabled(): boolean {
    return this.prefetchOn;
  }

  /**
   * When the prefetched blocks among a match's GPU blocks have all landed, µs: 0 when none of
   * them is a prefetched block still waiting for its first taker. A scheduler keeps such a request
   * waiting until then (vLLM's `WAITING_FOR_REMOTE_KVS` for asynchronous KV loads).
   * @param hit - a result of {@link getComputedBlocks}.
   */
  prefetchLandsAtUs(hit: ComputedBlocks): number {
    if (this.pf.pending === 0) return 0;
    const pending = this.prefetchPending as Uint8Array;
    const ready = this.prefetchReadyUs as Float64Array;
    let t = 0;
    for (const b of hit.blocks) if (pending[b] === 1 && (ready[b] as number) > t) t = ready[b] as number;
    return t;
  }

  /** When every prefetch issued so far has landed, µs (0 when none was issued). */
  get prefetchLandedByUs(): number {
    return this.lastPrefetchReadyUs;
  }

  /** Outcomes of {@link prefetch}, in blocks (all 0 without prefetch). */
  get prefetchStats(): KvPrefetchStats {
    const p = this.pf;
    return { prefetchedBlocks: p.prefetched, hitBlocks: p.hit, lateBlocks: p.late, evictedBlocks: p.evicted, pendingBlocks: p.pending };
  }

  /**
   * Leading full blocks of the request's prompt that this GPU cache holds now (no stats, no
   * access, no state kept): e.g. how much of a finished P/D prefill leg's KV is still there when
   * its transfer ends.
   * @param request - any request (its `blockKeys` or `tokenIds`).
   * @param maxBlocks - look at most this many leading blocks. @default all full blocks of `numTokens`
   */
  cachedPrefixBlocks(request: KvCacheRequest, maxBlocks = Number.POSITIVE_INFINITY): number {
    if (!this.enableCaching) return 0;
    const numTokens = request.numTokens ?? request.tokenIds.length;
    const bk = request.blockKeys;
    const n = Math.min(Math.floor(numTokens / this.blockSize), bk === undefined ? Number.POSITIVE_INFINITY : bk.length, maxBlocks);
    if (!(n > 0)) return 0;
    const chain = new BlockKeyChain(this.blockSize, request.namespace);
    chain.extend(request.tokenIds, n, bk);
    return this.prefixCache.match(chain.keys.subarray(0, KEY_WORDS * n), { touch: false }).matchedLength / KEY_WORDS;
  }

  /**
   * KV-pressure signal for a router (`EngineSnapshot.pendingTransferLatency`): the CPU-tier
   * transfers (offloads of evicted blocks, reloads of CPU hits) still queued on the host link at
   * `nowUs`, µs (`TieredPool.pendingTransferLatency`: how long until the link is idle). 0 without
   * a CPU tier.
   * @param nowUs - time of the reading, µs. @default {@link nowUs}
   */
  pendingTransferLatencyUs(nowUs: number = this.nowUs): number {
    return this.cpuTier === null ? 0 : this.cpuTier.pendingTransferLatency(nowUs);
  }

  /**
   * KV-pressure signal for a router (`EngineSnapshot.kvThrashingRate`): blocks reloaded from the
   * CPU tier per second over the window `(nowUs − cpuTier.thrashingWindowUs, nowUs]`, each one a
   * block the GPU evicted and then needed again (an offload → reload cycle,
   * `TieredPool.kvThrashingRate`). 0 without a CPU tier. Readings must not go back in time.
   * @param nowUs - time of the reading, µs. @default {@link nowUs}
   */
  kvThrashingRate(nowUs: number = this.nowUs): number {
    return this.cpuTier === null ? 0 : this.cpuTier.kvThrashingRate(nowUs);
  }

  /** Blocks that can be allocated now: free in the pool plus cached blocks no request uses (vLLM `get_num_free_blocks`). */
  get numFreeBlocks(): number {
    return this.pool.numFreeBlocks + this.prefixCache.evictablePages;
  }

  /** Blocks held by at least one request. */
  get numHeldBlocks(): number {
    return this.held;
  }

  /** Blocks holding a cached (matchable) prefix, used or not. */
  get numCachedBlocks(): number {
    return this.numCached;
  }

  /** Cached blocks no request uses (evictable). */
  get numCachedFreeBlocks(): number {
    return this.prefixCache.evictablePages;
  }

  /** Requests the manager tracks (holding blocks, or matched and not yet freed). */
  get numRequests(): number {
    return this.reqs.size;
  }

  /**
   * KV cache usage 0..1: blocks held by requests / total (`vllm:kv_cache_usage_perc`; cached
   * blocks no request uses count as free).
   */
  get usage(): number {
    return this.held / this.numBlocks;
  }

  /** Prefix cache counters, tokens. */
  get stats(): KvCacheStats {
    return {
      requests: this.nRequests,
      queries: this.nQueries,
      hits: this.nHits,
      storedBlocks: this.nStored,
      evictedBlocks: this.nEvicted,
      dedupedBlocks: this.nDeduped,
      cpuHits: this.nCpuHits,
      offloadedBlocks: this.cpuTier?.stats.offloadedBlocks ?? 0,
      reloadedBlocks: this.cpuTier?.stats.reloadedBlocks ?? 0,
    };
  }

  private stateOf(request: KvCacheRequest): ReqState {
    let st = this.reqs.get(request.requestId);
    if (st === undefined) {
      if (typeof request.requestId !== 'string') throw invalidArgument('request.requestId', request.requestId, 'a string');
      st = {
        blocks: [],
        keys: new BlockKeyChain(this.blockSize, request.namespace),
        namespace: request.namespace,
        numCachedBlocks: 0,
        lockNode: -1,
        memoTokens: -1,
        memoBlocks: 0,
        memoMaxBlocks: 0,
        memoEvicted: 0,
        memoResets: 0,
      };
      this.reqs.set(request.requestId, st);
    }
    return st;
  }

  /** Request references of `b` (the pool's count minus the cache's own). */
  private userRefs(b: BlockId): number {
    return this.pool.refCount(b) - (this.cached[b] as number);
  }

  /**
   * The longest cached prefix of the request's full blocks: the GPU hit, then (with a CPU tier)
   * the longest continuation held on CPU. The last token is never served from cache (its logits
   * are needed), so a fully cached prompt recomputes its last block, as vLLM.
   * Matching does not count as an access for eviction order; {@link allocateSlots} does.
   *
   * @param request - a request holding no blocks yet (waiting, or preempted by recompute).
   * @param options - `recordStats`: count the lookup in {@link stats} (a scheduler's look-ahead
   *   passes false). @default true
   * @returns the cached blocks, the tokens they hold and the prefix-cache entry to lock.
   * @throws KvmgrError `KVMGR_INVALID_STATE` when the request already holds blocks;
   *   `KVMGR_INVALID_ARGUMENT` for a bad request.
   * @see vllm-project/vllm:vllm/v1/core/kv_cache_manager.py (`get_computed_blocks`)
   */
  getComputedBlocks(request: KvCacheRequest, options?: { readonly recordStats?: boolean }): ComputedBlocks {
    if (!this.enableCaching) return EMPTY;
    const numTokens = request.numTokens ?? request.tokenIds.length;
    const st = this.stateOf(request);
    if (st.blocks.length > 0) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `request ${JSON.stringify(request.requestId)} already holds ${st.blocks.length} blocks; getComputedBlocks is for requests without blocks`, {
        details: { requestId: request.requestId },
      });
    }
    const bk = request.blockKeys;
    const maxBlocks = Math.min(numTokens > 0 ? Math.floor((numTokens - 1) / this.blockSize) : 0, bk === undefined ? Number.POSITIVE_INFINITY : bk.length);
    st.keys.extend(request.tokenIds, maxBlocks, bk);
    const m = this.prefixCache.match(st.keys.keys.subarray(0, KEY_WORDS * maxBlocks), { touch: false });
    const n = m.matchedLength / KEY_WORDS;
    let c = n;
    const tier = this.cpuTier;
    if (tier !== null && tier.numKeys > 0) while (c < maxBlocks && tier.lookupBlockKey(st.keys.hi(c), st.keys.lo(c)) !== undefined) c++;
    if (options?.recordStats ?? true) {
      this.nRequests++;
      this.nQueries += numTokens;
      this.nHits += n * this.blockSize;
      this.nCpuHits += (c - n) * this.blockSize;
    }
    return c === 0 ? EMPTY : { blocks: m.blocks, numComputedTokens: c * this.blockSize, node: m.node, numCpuBlocks: c - n };
  }

  /**
   * The tokens of the request's prefix hit: `getComputedBlocks(request, { recordStats: false })
   * .numComputedTokens`, always the same number, for a scheduler that re-reads the hits of its
   * waiting queue every step. Memoized per request and revalidated in O(1): the hit cannot have
   * shrunk (its last block's key is still cached; the block-hash index evicts children first) nor
   * grown (the key of the block after it is not cached); the key index holds every cached block's
   * key. Recomputed otherwise, after a reset, when the request's length changed, and always with a
   * non-empty CPU tier (whose continuation changes on every offload) or a radix prefix cache (whose
   * match splits edges: skipping one could change later eviction choices, so it is not skipped).
   *
   * @param request - a request holding no blocks yet (as {@link getComputedBlocks}).
   * @returns tokens, a multiple of `blockSize`.
   * @throws KvmgrError as {@link getComputedBlocks}.
   */
  prefixHitTokens(request: KvCacheRequest): number {
    if (!this.enableCaching) return 0;
    const tier = this.cpuTier;
    if (!this.memoHits || (tier !== null && tier.numKeys > 0)) return this.getComputedBlocks(request, { recordStats: false }).numComputedTokens;
    const st = this.reqs.get(request.requestId);
    if (st !== undefined && st.memoTokens >= 0 && st.blocks.length === 0 && st.memoResets === this.nResets && st.memoMaxBlocks === this.maxHitBlocks(request) && this.memoHolds(st)) {
      return st.memoTokens;
    }
    const hit = this.getComputedBlocks(request, { recordStats: false });
    const s = this.reqs.get(request.requestId) as ReqState;
    s.memoTokens = hit.numComputedTokens;
    s.memoBlocks = hit.blocks.length;
    s.memoMaxBlocks = this.maxHitBlocks(request);
    s.memoEvicted = this.nEvicted;
    s.memoResets = this.nResets;
    return hit.numComputedTokens;
  }

  /** Full blocks a hit may cover: all but the last token's block, at most the request's block keys. */
  private maxHitBlocks(request: KvCacheRequest): number {
    const numTokens = request.numTokens ?? request.tokenIds.length;
    const bk = request.blockKeys;
    return Math.min(numTokens > 0 ? Math.floor((numTokens - 1) / this.blockSize) : 0, bk === undefined ? Number.POSITIVE_INFINITY : bk.length);
  }

  /**
   * Whether a memoized hit (no CPU blocks, block-hash index) is still what `getComputedBlocks`
   * finds: its last block's key is still cached (the index evicts children before their parent,
   * so the keys before it are too), and the next block's key is not (the match walks the chain
   * from the first block: it can only go further through that key).
   */
  private memoHolds(st: ReqState): boolean {
    const n = st.memoBlocks;
    if (n > 0 && this.nEvicted !== st.memoEvicted) {
      if (this.keyIndex.get(st.keys.hi(n - 1), st.keys.lo(n - 1)) < 0) return false;
      st.memoEvicted = this.nEvicted;
    }
    return n >= st.memoMaxBlocks || this.keyIndex.get(st.keys.hi(n), st.keys.lo(n)) < 0;
  }

  /**
   * Makes room for `numNewTokens` more tokens of the request: takes the cached blocks found by
   * {@link getComputedBlocks} (a cache hit: they leave the evictable set), reloads its CPU blocks
   * into new GPU blocks (cached there at once, a `BlockStored` 'GPU'; their transfer is queued and
   * reported by {@link takeReloadUs}) and allocates the rest, evicting cached blocks no request
   * uses in the eviction policy's order when the pool is short (written back to the CPU tier when
   * there is one). All or nothing: on `null` nothing changed.
   *
   * @param request - the request; its `numComputedTokens` excludes `numNewComputedTokens`.
   * @param numNewTokens - tokens to compute this step (non-negative integer).
   * @param numNewComputedTokens - tokens served by `newComputedBlocks` (must equal its
   *   `numComputedTokens`). @default 0
   * @param newComputedBlocks - the result of {@link getComputedBlocks}, for a request holding no blocks.
   * @returns the newly allocated blocks, reloaded ones first (possibly empty), or null when the
   *   pool cannot satisfy it.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad counts; `KVMGR_INVALID_STATE` when
   *   computed blocks are given to a request that holds blocks, or they were evicted (from the
   *   GPU or the CPU tier) since the match. Nothing changes on a throw.
   * @see vllm-project/vllm:vllm/v1/core/kv_cache_manager.py (`allocate_slots`)
   */
  allocateSlots(request: KvCacheRequest, numNewTokens: number, numNewComputedTokens = 0, newComputedBlocks?: ComputedBlocks): BlockId[] | null {
    requireNonNegativeInt('numNewTokens', numNewTokens);
    requireNonNegativeInt('numNewComputedTokens', numNewComputedTokens);
    const computed = newComputedBlocks?.blocks ?? EMPTY.blocks;
    const numCpu = newComputedBlocks?.numCpuBlocks ?? 0;
    if (numNewComputedTokens !== (computed.length + numCpu) * this.blockSize) {
      throw invalidArgument('numNewComputedTokens', numNewComputedTokens, `${(computed.length + numCpu) * this.blockSize} (the tokens of newComputedBlocks)`);
    }
    const st = this.stateOf(request);
    if (computed.length + numCpu > 0) this.checkComputed(request, st, computed, numCpu);
    const need = request.numComputedTokens + numNewComputedTokens + numNewTokens;
    const toAllocate = Math.max(0, Math.ceil(need / this.blockSize) - st.blocks.length - computed.length - numCpu);
    // computed blocks nobody uses stop being evictable once taken: they do not count as free
    let evictableComputed = 0;
    for (const b of computed) if (this.userRefs(b) === 0) evictableComputed++;
    if (toAllocate + numCpu > this.numFreeBlocks - evictableComputed) return null;
    if (computed.length > 0) {
      const node = (newComputedBlocks as ComputedBlocks).node;
      this.prefixCache.lock(node); // throws KVMGR_UNKNOWN_HANDLE for a stale handle: nothing changed yet
      if (this.pf.pending > 0) this.takePrefetched(computed);
      this.pool.share(computed);
      this.held += evictableComputed;
      for (const b of computed) st.blocks.push(b);
      st.numCachedBlocks = computed.length;
      st.lockNode = node;
    }
    const reloaded = numCpu > 0 ? this.reload(request, st, computed.length, numCpu) : [];
    if (toAllocate === 0) return reloaded;
    const short = toAllocate - this.pool.numFreeBlocks;
    if (short > 0) this.evict(short);
    const fresh = this.pool.allocate(toAllocate);
    this.held += toAllocate;
    for (const b of fresh) st.blocks.push(b);
    return numCpu > 0 ? reloaded.concat(fresh) : fresh;
  }

  /** Reloads blocks `[from, from + n)` of the request from the CPU tier into new GPU blocks and caches them there. */
  private reload(request: KvCacheRequest, st: ReqState, from: number, n: number): BlockId[] {
    // reload first: the evictions below write GPU blocks back to CPU and may push these keys out
    const ready = (this.cpuTier as TieredPool).reloadBlockKeys(st.keys.keys.subarray(KEY_WORDS * from, KEY_WORDS * (from + n)), this.nowUs);
    if (ready > this.reloadReadyAtUs) this.reloadReadyAtUs = ready;
    const short = n - this.pool.numFreeBlocks;
    if (short > 0) this.evict(short);
    const blocks = this.pool.allocate(n);
    this.held += n;
    for (const b of blocks) st.blocks.push(b);
    this.cacheFullBlocks(request, (from + n) * this.blockSize);
    return blocks;
  }

  private checkComputed(request: KvCacheRequest, st: ReqState, computed: readonly BlockId[], numCpu: number): void {
    if (st.blocks.length > 0) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `request ${JSON.stringify(request.requestId)} already holds blocks; computed blocks are only taken by a request without blocks`, {
        details: { requestId: request.requestId },
      });
    }
    st.keys.extend(request.tokenIds, computed.length + numCpu, request.blockKeys);
    for (let i = 0; i < computed.length; i++) {
      const b = computed[i] as number;
      if (!(b >= 0 && b < this.numBlocks) || this.cached[b] !== 1 || this.cachedHi[b] !== st.keys.hi(i) || this.cachedLo[b] !== st.keys.lo(i)) {
        throw new KvmgrError('KVMGR_INVALID_STATE', `computed block ${b} (#${i}) of request ${JSON.stringify(request.requestId)} no longer holds its prefix (evicted since getComputedBlocks?)`, {
          details: { requestId: request.requestId, block: b, index: i },
        });
      }
    }
    for (let i = computed.length; i < computed.length + numCpu; i++) {
      if (this.cpuTier?.lookupBlockKey(st.keys.hi(i), st.keys.lo(i)) === undefined) {
        throw new KvmgrError('KVMGR_INVALID_STATE', `CPU block #${i} of request ${JSON.stringify(request.requestId)} is no longer on the CPU tier (evicted since getComputedBlocks?)`, {
          details: { requestId: request.requestId, index: i },
        });
      }
    }
  }

  /**
   * Evicts `n` cached blocks no request uses (the caller checked there are enough) and frees
   * them; with a CPU tier they are written back there first (one transfer batch).
   */
  private evict(n: number): void {
    const { blocks } = this.prefixCache.evict(n);
    const words = this.cpuTier === null ? null : new Uint32Array(KEY_WORDS * blocks.length);
    const pending = this.pf.pending > 0 ? this.prefetchPending : null;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      if (pending !== null && pending[b] === 1) {
        pending[b] = 0;
        this.pf.pending--;
        this.pf.evicted++;
      }
      this.cached[b] = 0;
      this.numCached--;
      const hi = this.cachedHi[b] as number;
      const lo = this.cachedLo[b] as number;
      this.keyIndex.delete(hi, lo);
      this.onEvent?.({ type: 'BlockRemoved', blockHashes: [blockKeyToU64(hi, lo)], medium: 'GPU' });
      this.onBlockKey?.(BLOCK_KEY_REMOVED, hi, lo, this.cachedPos[b] as number);
      if (words !== null) {
        words[KEY_WORDS * i] = hi;
        words[KEY_WORDS * i + 1] = lo;
      }
    }
    this.nEvicted += blocks.length;
    this.pool.free(blocks);
    if (words !== null && blocks.length > 0) {
      (this.cpuTier as TieredPool).storeBlockKeys(words, this.nowUs);
      this.flushCpuStored();
    }
  }

  /**
   * Makes the request's full blocks up to `numTokens` matchable (call it once the step computed
   * their tokens). Emits one `BlockStored` for the blocks stored by this call. A block another
   * request cached first under the same key is deduplicated: the request switches to the cached
   * block and its own copy returns to the pool (vLLM keeps both copies; one copy keeps the event
   * stream and the cache in one-to-one correspondence).
   *
   * @param request - a request holding blocks.
   * @param numTokens - tokens with computed KV. @default request.numComputedTokens
   * @returns the number of blocks newly stored.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `request.tokenIds` is shorter than the
   *   full blocks to cache.
   * @see vllm-project/vllm:vllm/v1/core/block_pool.py (`cache_full_blocks`)
   */
  cacheFullBlocks(request: KvCacheRequest, numTokens: number = request.numComputedTokens): number {
    requireNonNegativeInt('numTokens', numTokens);
    if (!this.enableCaching) return 0;
    const st = this.reqs.get(request.requestId);
    if (st === undefined) return 0;
    const bk = request.blockKeys;
    const n = Math.min(Math.floor(numTokens / this.blockSize), st.blocks.length, bk === undefined ? Number.POSITIVE_INFINITY : bk.length);
    const from = st.numCachedBlocks;
    if (n <= from) return 0;
    st.keys.extend(request.tokenIds, n, bk);
    // continue below the request's locked node (its `from` cached blocks): a decode step that
    // fills one block inserts that block, not the whole prefix again
    const res = this.prefixCache.insert(
      st.keys.keys.subarray(0, KEY_WORDS * n),
      st.blocks,
      st.lockNode === -1 ? undefined : { resumeFrom: st.lockNode, resumeLength: KEY_WORDS * from },
    );
    const existing = res.existingLength / KEY_WORDS;
    if (existing > from) this.dedup(st, from, existing);
    const stored = res.adoptedBlocks.length;
    if (stored > 0) {
      for (let i = existing; i < n; i++) {
        const b = st.blocks[i] as number;
        this.cached[b] = 1;
        this.cachedHi[b] = st.keys.hi(i);
        this.cachedLo[b] = st.keys.lo(i);
        this.cachedPos[b] = i;
        this.keyIndex.set(st.keys.hi(i), st.keys.lo(i), b);
      }
      this.pool.share(res.adoptedBlocks);
      this.numCached += stored;
      this.nStored += stored;
      this.emitStored(st, existing, n, request);
    }
    this.prefixCache.lock(res.node);
    if (st.lockNode !== -1) this.prefixCache.unlock(st.lockNode);
    st.lockNode = res.node;
    st.numCachedBlocks = n;
    return stored;
  }

  /** One GPU `BlockStored` (and the compact events) for the request's blocks `[existing, n)`, just cached. */
  private emitStored(st: ReqState, existing: number, n: number, request: KvCacheRequest): void {
    const bk = request.blockKeys;
    if (this.onEvent) {
      const hashes: bigint[] = [];
      for (let i = existing; i < n; i++) hashes.push(blockKeyToU64(st.keys.hi(i), st.keys.lo(i)));
      const tokenIds: number[] = [];
      if (bk === undefined) for (let t = existing * this.blockSize; t < n * this.blockSize; t++) tokenIds.push(request.tokenIds[t] as number);
      else for (let b = existing; b < n; b++) for (let j = 0; j < this.blockSize; j++) tokenIds.push(traceBlockToken(bk[b] as number, j));
      const parent = existing === 0 ? null : blockKeyToU64(st.keys.hi(existing - 1), st.keys.lo(existing - 1));
      const ev: KvEvent = { type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds, blockSize: this.blockSize, medium: 'GPU' };
      this.onEvent(st.namespace?.lora === undefined ? ev : { ...ev, loraName: st.namespace.lora });
    }
    const onKey = this.onBlockKey;
    if (onKey !== undefined) for (let i = existing; i < n; i++) onKey(BLOCK_KEY_STORED, st.keys.hi(i), st.keys.lo(i), i);
  }

  /** Blocks `[from, to)` of the request were cached by another request first: take the cached copies. */
  private dedup(st: ReqState, from: number, to: number): void {
    const m = this.prefixCache.match(st.keys.keys.subarray(0, KEY_WORDS * to), { touch: false });
    const own: BlockId[] = [];
    if (this.pf.pending > 0) this.takePrefetched(m.blocks.slice(from, to));
    for (let i = from; i < to; i++) {
      const c = m.blocks[i] as number;
      if (this.userRefs(c) === 0) this.held++;
      this.pool.share([c]);
      own.push(st.blocks[i] as number);
      st.blocks[i] = c;
    }
    this.pool.free(own);
    this.held -= own.length;
    this.nDeduped += own.length;
  }

  /**
   * Releases the request's blocks, last block first (so its tail is evicted first, as vLLM).
   * Cached blocks stay matchable until evicted; others return to the pool. Forgets the request.
   * No-op for an unknown request.
   *
   * @param request - the request (or its id).
   * @see vllm-project/vllm:vllm/v1/core/kv_cache_manager.py (`free`)
   */
  free(request: KvCacheRequest | string): void {
    const id = typeof request === 'string' ? request : request.requestId;
    const st = this.reqs.get(id);
    if (st === undefined) return;
    const rev = st.blocks.slice().reverse();
    this.pool.free(rev);
    for (const b of rev) if (this.userRefs(b) === 0) this.held--;
    if (st.lockNode !== -1) this.prefixCache.unlock(st.lockNode);
    this.reqs.delete(id);
  }

  /**
   * Drops every cached block and emits `AllBlocksCleared` (and clears the CPU tier, with a second
   * `AllBlocksCleared` of `medium` 'CPU'); refused while any request holds blocks (vLLM returns
   * False then, e.g. during RLHF weight updates with requests in flight).
   *
   * @returns true when the cache was reset.
   * @see vllm-project/vllm:vllm/v1/core/block_pool.py (`reset_prefix_cache`)
   */
  resetPrefixCache(): boolean {
    if (this.held > 0) return false;
    const blocks: BlockId[] = [];
    for (let b = 0; b < this.numBlocks; b++) if (this.cached[b] === 1) blocks.push(b);
    this.prefixCache.clear();
    this.cached.fill(0);
    this.keyIndex.clear();
    this.numCached = 0;
    this.nResets++;
    if (this.prefetchPending !== null) {
      this.prefetchPending.fill(0);
      this.pf.evicted += this.pf.pending;
      this.pf.pending = 0;
    }
    this.pool.free(blocks);
    this.onEvent?.({ type: 'AllBlocksCleared', medium: 'GPU' });
    this.onBlockKey?.(BLOCK_KEYS_CLEARED, 0, 0, -1);
    if (this.cpuTier !== null) {
      this.cpuTier.clearBlockKeys();
      this.onEvent?.({ type: 'AllBlocksCleared', medium: 'CPU' });
    }
    return true;
  }

  /** The request's blocks in token order (a copy); empty for an unknown request. */
  getBlocks(requestId: string): BlockId[] {
    return this.reqs.get(requestId)?.blocks.slice() ?? [];
  }

  /** Number of blocks the request holds (O(1)); 0 for an unknown request. */
  getNumBlocks(requestId: string): number {
    return this.reqs.get(requestId)?.blocks.length ?? 0;
  }

  /** Leading blocks of the request that are cached. 0 for an unknown request. */
  getNumCachedBlocks(requestId: string): number {
    return this.reqs.get(requestId)?.numCachedBlocks ?? 0;
  }

  /**
   * Requests holding `block` (vLLM's `ref_cnt`; the prefix cache's own reference is not counted).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range.
   */
  refCount(block: BlockId): number {
    return this.userRefs(block);
  }

  /** True when `block` holds a matchable prefix. */
  isCached(block: BlockId): boolean {
    return this.cached[block] === 1;
  }

  /** Calls `fn(block, hashHi, hashLo)` for every cached block, by block id (tests, debugging). */
  forEachCachedBlock(fn: (block: BlockId, hashHi: number, hashLo: number) => void): void {
    for (let b = 0; b < this.numBlocks; b++) if (this.cached[b] === 1) fn(b, this.cachedHi[b] as number, this.cachedLo[b] as number);
  }

  /**
   * Checks the accounting (tests, debugging): pool references = requests holding the block + 1 if
   * cached; a block is free iff unreferenced; held / cached / evictable counts match; prefetched
   * blocks waiting for a taker are cached and unheld, and their count matches; the CPU
   * tier's books (`TieredPool.verify`) hold and it is within capacity.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` naming the first broken invariant.
   */
  verify(): void {
    const fail = (m: string): never => {
      throw new KvmgrError('KVMGR_VERIFY_FAILED', `KvCacheManager: ${m}`);
    };
    this.pool.verify();
    const users = new Int32Array(this.numBlocks);
    for (const [id, st] of this.reqs) {
      const seen = new Set<number>();
      for (const b of st.blocks) {
        if (seen.has(b)) fail(`request ${id} holds block ${b} twice`);
        seen.add(b);
        users[b] = (users[b] as number) + 1;
      }
      for (let i = 0; i < st.numCachedBlocks; i++) {
        const b = st.blocks[i] as number;
        if (this.cached[b] !== 1 || this.cachedHi[b] !== st.keys.hi(i) || this.cachedLo[b] !== st.keys.lo(i)) fail(`request ${id} block #${i} (${b}) is not cached under its key`);
      }
    }
    let held = 0;
    let cached = 0;
    let cachedFree = 0;
    let pendingPrefetched = 0;
    for (let b = 0; b < this.numBlocks; b++) {
      const c = this.cached[b] as number;
      const u = users[b] as number;
      if (this.pool.refCount(b) !== u + c) fail(`block ${b} has ${this.pool.refCount(b)} pool references, expected ${u} requests + ${c} cache`);
      if (u > 0) held++;
      cached += c;
      if (this.prefetchPending?.[b] === 1) {
        pendingPrefetched++;
        if (c !== 1 || u !== 0) fail(`prefetched block ${b} waits for its first taker but is ${c === 1 ? 'held by a request' : 'not cached'}`);
      }
      if (c === 1 && u === 0) cachedFree++;
    }
    if (held !== this.held) fail(`${held} blocks are held, counter says ${this.held}`);
    if (cached !== this.numCached) fail(`${cached} blocks are cached, counter says ${this.numCached}`);
    if (this.keyIndex.size !== cached) fail(`the key index holds ${this.keyIndex.size} keys, ${cached} blocks are cached`);
    for (let b = 0; b < this.numBlocks; b++) {
      if (this.cached[b] === 1 && this.keyIndex.get(this.cachedHi[b] as number, this.cachedLo[b] as number) !== b) fail(`cached block ${b} is not in the key index under its key`);
    }
    if (pendingPrefetched !== this.pf.pending) fail(`${pendingPrefetched} prefetched blocks wait for a taker, counter says ${this.pf.pending}`);
    if (cachedFree !== this.prefixCache.evictablePages) fail(`${cachedFree} cached blocks are unused, prefix cache says ${this.prefixCache.evictablePages} evictable`);
    if (this.cpuTier !== null) {
      try {
        this.cpuTier.verify();
      } catch (e) {
        fail(`CPU tier: ${(e as Error).message}`);
      }
      const cap = (this.cpuTier.cpu as BlockPool).numBlocks;
      if (this.cpuTier.numKeys > cap) fail(`CPU tier holds ${this.cpuTier.numKeys} keys, capacity ${cap}`);
      if (this.cpuStored.length > 0) fail(`${this.cpuStored.length} CPU stores not reported in an event`);
    }
  }
}
