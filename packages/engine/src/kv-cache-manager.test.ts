/**
 * Ports of vLLM's prefix-caching unit tests (`tests/v1/core/test_prefix_caching.py`) to
 * {@link KvCacheManager}. Differences from upstream, applied throughout:
 * - block ids are upstream's minus 1 (vLLM reserves block 0 as the null block; kvmgr does not),
 *   and `numBlocks` is upstream's `num_blocks - 1`;
 * - vLLM caches full blocks inside `allocate_slots`; here the caller calls `cacheFullBlocks` once
 *   the tokens are computed, so each port calls it right after the allocation it mirrors;
 * - "free blocks" are read as `numFreeBlocks` (pool free + cached blocks no request uses), and the
 *   free-queue order is observed as the order in which blocks are handed out again.
 */
import { type KvEvent, blockKeyRoot, blockKeyToU64, blockKeysFromTokens, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { KvCacheManager, type KvCacheManagerOptions, type KvCacheRequest, traceBlockToken } from './kv-cache-manager.js';

interface MutableRequest extends KvCacheRequest {
  tokenIds: number[];
  numComputedTokens: number;
}

function makeRequest(id: string, tokenIds: number[], namespace?: KvCacheRequest['namespace']): MutableRequest {
  return namespace === undefined ? { requestId: id, tokenIds, numComputedTokens: 0 } : { requestId: id, tokenIds, numComputedTokens: 0, namespace };
}

function manager(numBlocks: number, extra: Partial<KvCacheManagerOptions> = {}): { kv: KvCacheManager; events: KvEvent[] } {
  const events: KvEvent[] = [];
  const kv = new KvCacheManager({ numBlocks, blockSize: 16, onEvent: (e) => events.push(e), ...extra });
  return { kv, events };
}

/** Prefill as vLLM's scheduler does it in one step: match, allocate, (compute), cache. */
function prefill(kv: KvCacheManager, r: MutableRequest, numTokens = r.tokenIds.length): number[] | null {
  const hit = kv.getComputedBlocks(r);
  const fresh = kv.allocateSlots(r, numTokens - hit.numComputedTokens, hit.numComputedTokens, hit);
  if (fresh === null) return null;
  r.numComputedTokens = numTokens;
  kv.cacheFullBlocks(r, numTokens);
  return fresh;
}

const range = (a: number, b?: number): number[] => (b === undefined ? Array.from({ length: a }, (_, i) => i) : Array.from({ length: b - a }, (_, i) => a + i));
const common = [0, 1, 2].flatMap((i) => Array<number>(16).fill(i));

describe.each(['block-hash', 'radix'] as const)('KvCacheManager (%s prefix cache): vLLM test_prefix_caching.py ports', (prefixCache) => {
  it('test_prefill: shared prefix with a partial last block hits while in use and after free; free order = eviction order', () => {
    const { kv, events } = manager(10, { prefixCache });
    const all0 = [...common, ...Array<number>(7).fill(3)];
    const req0 = makeRequest('0', all0);
    const miss = kv.getComputedBlocks(req0);
    expect(miss.blocks).toEqual([]);
    expect(miss.numComputedTokens).toBe(0);
    expect(kv.allocateSlots(req0, 55, 0, miss)).toEqual([0, 1, 2, 3]);
    req0.numComputedTokens = 55;
    kv.cacheFullBlocks(req0);
    // full blocks carry the chained keys; the partial block is not cached
    const keys = blockKeysFromTokens(all0, 16, blockKeyRoot({}));
    const hashes = [0, 1, 2].map((b) => blockKeyToU64(keys[2 * b] as number, keys[2 * b + 1] as number));
    expect(events).toEqual([{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: common, blockSize: 16, medium: 'GPU' }]);
    for (const b of [0, 1, 2]) {
      expect(kv.isCached(b)).toBe(true);
      expect(kv.refCount(b)).toBe(1);
    }
    expect(kv.isCached(3)).toBe(false);

    // cache hit in the common prefix while the original blocks are in use
    const req1 = makeRequest('1', [...common, ...Array<number>(5).fill(3)]);
    const hit1 = kv.getComputedBlocks(req1);
    expect(hit1.blocks).toEqual([0, 1, 2]);
    expect(hit1.numComputedTokens).toBe(48);
    expect(kv.allocateSlots(req1, 53 - 48, 48, hit1)).toEqual([4]);
    for (const b of [0, 1, 2]) expect(kv.refCount(b)).toBe(2);
    expect(kv.numFreeBlocks).toBe(5);

    kv.free(req0);
    kv.free(req1);
    expect(kv.numFreeBlocks).toBe(10);

    // cache hit when the original blocks are free already
    const req2 = makeRequest('2', [...common, ...Array<number>(6).fill(3)]);
    const hit2 = kv.getComputedBlocks(req2);
    expect(hit2.blocks).toEqual([0, 1, 2]);
    // upstream's free queue: [unallocated 6..10][req0 tail 4][req1 tail 5][common 3, 2, 1] → next is 6 (ours 5)
    expect(kv.allocateSlots(req2, 53 - 48, 48, hit2)).toEqual([5]);
    expect(kv.numFreeBlocks).toBe(6);
    kv.free(req2);

    // cache miss and eviction: the allocation order is the eviction order (upstream [7..10, 4, 5, 6, 3, 2, 1])
    events.length = 0;
    const req3 = makeRequest('3', Array<number>(160).fill(99));
    expect(prefill(kv, req3, 160)).toEqual([6, 7, 8, 9, 3, 4, 5, 2, 1, 0]);
    expect(kv.numFreeBlocks).toBe(0);
    const removed = events.filter((e) => e.type === 'BlockRemoved');
    expect(removed.map((e) => (e.type === 'BlockRemoved' ? e.blockHashes : []))).toEqual([[hashes[2]], [hashes[1]], [hashes[0]]]);
    kv.verify();
  });

  it('test_prefill_plp (last token never from cache): a fully cached prompt recomputes its last block', () => {
    const { kv } = manager(10, { prefixCache });
    const r0 = makeRequest('0', range(48));
    prefill(kv, r0);
    kv.free(r0);
    const r1 = makeRequest('1', range(48));
    const hit = kv.getComputedBlocks(r1);
    expect(hit.numComputedTokens).toBe(32); // not 48: the 48th token must be computed for its logits
    expect(hit.blocks).toEqual([0, 1]);
    const r2 = makeRequest('2', range(49));
    expect(kv.getComputedBlocks(r2).numComputedTokens).toBe(48);
    expect(kv.stats).toMatchObject({ requests: 3, queries: 48 + 48 + 49, hits: 32 + 48 });
  });

  it('test_decode: decode filling a block makes it cached, the partial tail is not', () => {
    const { kv, events } = manager(10, { prefixCache });
    const req0 = makeRequest('0', [...common, ...Array<number>(7).fill(3)]);
    expect(prefill(kv, req0)).toEqual([0, 1, 2, 3]);
    // append slots without a new block
    for (let i = 0; i < 4; i++) req0.tokenIds.push(8);
    expect(kv.allocateSlots(req0, 4)).toEqual([]);
    req0.numComputedTokens = 59;
    expect(kv.cacheFullBlocks(req0)).toBe(0);
    expect(kv.isCached(3)).toBe(false);
    // 9 tokens fill the previous block, 10 more go into a new one
    for (let i = 0; i < 19; i++) req0.tokenIds.push(7);
    const fresh = kv.allocateSlots(req0, 19);
    expect(fresh).toHaveLength(1);
    req0.numComputedTokens = 78;
    events.length = 0;
    expect(kv.cacheFullBlocks(req0)).toBe(1);
    const blocks = kv.getBlocks('0');
    expect(kv.isCached(blocks[3] as number)).toBe(true);
    expect(kv.isCached(blocks[4] as number)).toBe(false);
    const keys = blockKeysFromTokens(req0.tokenIds, 16);
    const ev = events[0];
    expect(ev?.type === 'BlockStored' && ev.parentBlockHash).toBe(blockKeyToU64(keys[4] as number, keys[5] as number));
    expect(ev?.type === 'BlockStored' && ev.tokenIds).toEqual(req0.tokenIds.slice(48, 64));
  });

  it('test_evict: free order is tail first per request, requests in free order (LRU); touched blocks leave the queue', () => {
    const { kv } = manager(10, { prefixCache });
    const last = 5 * 16 + 7;
    const req0 = makeRequest('0', range(last));
    expect(prefill(kv, req0)).toHaveLength(6);
    const req1 = makeRequest('1', range(last, last + 48));
    expect(prefill(kv, req1)).toHaveLength(3);
    expect(kv.numFreeBlocks).toBe(1);
    kv.free(req0);
    kv.free(req1);
    expect(kv.numFreeBlocks).toBe(10);
    // upstream order [10, 6, 5, 4, 3, 2, 1, 9, 8, 7]; touch the first 2 blocks, the next block out is 10 (ours 9)
    const req2 = makeRequest('2', range(2 * 16 + 3));
    const hit = kv.getComputedBlocks(req2);
    expect(hit.blocks).toEqual([0, 1]);
    expect(kv.allocateSlots(req2, 3, 32, hit)).toEqual([9]);
    expect(kv.numFreeBlocks).toBe(7);
    // and the rest of the queue, in order: ours [5, 4, 3, 2, 8, 7, 6]
    const req3 = makeRequest('3', Array<number>(7 * 16).fill(42));
    expect(prefill(kv, req3)).toEqual([5, 4, 3, 2, 8, 7, 6]);
    kv.verify();
  });

  it('test_computed_blocks_not_evicted: cached blocks being reused are not evicted for the same request', () => {
    const { kv } = manager(2, { prefixCache });
    const req0 = makeRequest('0', range(16));
    expect(prefill(kv, req0)).toEqual([0]);
    const req1 = makeRequest('1', range(16, 32));
    expect(prefill(kv, req1)).toEqual([1]);
    kv.free(req0);
    kv.free(req1);
    const req2 = makeRequest('2', range(32));
    const hit = kv.getComputedBlocks(req2);
    expect(hit.blocks).toEqual([0]);
    expect(kv.allocateSlots(req2, 16, 16, hit)).toEqual([1]);
  });

  it('test_hash_block_correct_reuse: an evicted block handed out again carries no stale key', () => {
    const { kv } = manager(1, { prefixCache });
    const r0 = makeRequest('0', range(16));
    prefill(kv, r0);
    kv.free(r0);
    expect(kv.isCached(0)).toBe(true);
    const r1 = makeRequest('1', range(15));
    expect(prefill(kv, r1)).toEqual([0]);
    expect(kv.isCached(0)).toBe(false);
    expect(kv.numCachedBlocks).toBe(0);
  });

  it('test_prefill_not_enough_free_blocks_with_computed_blocks: a failed allocation touches nothing', () => {
    const { kv, events } = manager(10, { prefixCache });
    const req0 = makeRequest('0', common);
    prefill(kv, req0);
    const part0 = kv.getBlocks('0');
    const req1 = makeRequest('1', [...common, ...common]);
    const hit1 = kv.getComputedBlocks(req1);
    expect(hit1.blocks).toEqual(part0);
    expect(hit1.numComputedTokens).toBe(48);
    prefill(kv, req1);
    const part1 = kv.getBlocks('1');
    kv.free(req1);
    expect(part1.slice(0, 3).map((b) => kv.refCount(b))).toEqual([1, 1, 1]);
    expect(part1.slice(3).map((b) => kv.refCount(b))).toEqual([0, 0, 0]);
    const req2 = makeRequest('2', Array<number>(32).fill(7));
    prefill(kv, req2);
    expect(kv.numFreeBlocks).toBe(5);
    const req3 = makeRequest('3', [...common, ...common, ...common]);
    const hit3 = kv.getComputedBlocks(req3);
    expect(hit3.blocks).toEqual(part1);
    expect(hit3.numComputedTokens).toBe(96);
    const before = { pool: kv.pool.state(), free: kv.numFreeBlocks, held: kv.numHeldBlocks, events: events.length };
    expect(kv.allocateSlots(req3, 48, 96, hit3)).toBeNull();
    expect({ pool: kv.pool.state(), free: kv.numFreeBlocks, held: kv.numHeldBlocks, events: events.length }).toEqual(before);
    expect(part1.slice(0, 3).map((b) => kv.refCount(b))).toEqual([1, 1, 1]);
    expect(part1.slice(3).map((b) => kv.refCount(b))).toEqual([0, 0, 0]);
    kv.verify();
  });

  it('test_reset_prefix_cache: refused while blocks are in use, then clears everything', () => {
    const { kv, events } = manager(10, { prefixCache });
    const req0 = makeRequest('0', [...common, ...Array<number>(7).fill(3)]);
    expect(prefill(kv, req0)).toEqual([0, 1, 2, 3]);
    const req1 = makeRequest('1', [...common, ...Array<number>(7).fill(4)]);
    const hit = kv.getComputedBlocks(req1);
    expect(hit.blocks).toHaveLength(3);
    expect(kv.allocateSlots(req1, 7, 48, hit)).toEqual([4]);
    expect(kv.resetPrefixCache()).toBe(false);
    expect(kv.numCachedBlocks).toBe(3);
    kv.free(req0);
    kv.free(req1);
    expect(kv.resetPrefixCache()).toBe(true);
    expect(kv.numCachedBlocks).toBe(0);
    expect(range(10).some((b) => kv.isCached(b))).toBe(false);
    expect(events.at(-1)).toEqual({ type: 'AllBlocksCleared', medium: 'GPU' });
    expect(kv.numFreeBlocks).toBe(10);
    expect(kv.getComputedBlocks(makeRequest('x', [...common, 5])).numComputedTokens).toBe(0);
    kv.verify();
  });

  it('test_cache_key_salting + test_generate_block_hash_extra_keys_lora (test_kv_cache_utils.py): salt and LoRA separate key spaces', () => {
    const { kv, events } = manager(20, { prefixCache });
    const tokens = [...common, ...Array<number>(11).fill(3)];
    const req0 = makeRequest('0', tokens, { cacheSalt: 'salt1' });
    expect(kv.getComputedBlocks(req0).numComputedTokens).toBe(0);
    prefill(kv, req0);
    const salted = blockKeysFromTokens(tokens, 16, blockKeyRoot({ cacheSalt: 'salt1' }));
    const plain = blockKeysFromTokens(tokens, 16, blockKeyRoot({}));
    const stored = events[0];
    expect(stored?.type === 'BlockStored' && stored.blockHashes[0]).toBe(blockKeyToU64(salted[0] as number, salted[1] as number));
    expect(salted[0] === plain[0] && salted[1] === plain[1]).toBe(false);
    expect(kv.getComputedBlocks(makeRequest('1', tokens, { cacheSalt: 'salt1' })).numComputedTokens).toBe(48);
    expect(kv.getComputedBlocks(makeRequest('2', tokens, { cacheSalt: 'salt2' })).numComputedTokens).toBe(0);
    expect(kv.getComputedBlocks(makeRequest('3', tokens)).numComputedTokens).toBe(0);
    expect(kv.getComputedBlocks(makeRequest('4', tokens, { cacheSalt: 'salt1', lora: 'adapter-a' })).numComputedTokens).toBe(0);
    const lora = makeRequest('5', tokens, { lora: 'adapter-a' });
    events.length = 0;
    prefill(kv, lora);
    expect(events[0]).toMatchObject({ type: 'BlockStored', loraName: 'adapter-a' });
    expect(kv.getComputedBlocks(makeRequest('6', tokens, { lora: 'adapter-a' })).numComputedTokens).toBe(48);
    expect(kv.getComputedBlocks(makeRequest('7', tokens, { lora: 'adapter-b' })).numComputedTokens).toBe(0);
  });

  it('concurrent duplicates are deduplicated: the second request switches to the cached copy', () => {
    const { kv, events } = manager(10, { prefixCache });
    const a = makeRequest('a', range(40));
    const b = makeRequest('b', range(40));
    expect(kv.allocateSlots(a, 40, 0, kv.getComputedBlocks(a))).toEqual([0, 1, 2]);
    expect(kv.allocateSlots(b, 40, 0, kv.getComputedBlocks(b))).toEqual([3, 4, 5]);
    a.numComputedTokens = b.numComputedTokens = 40;
    expect(kv.cacheFullBlocks(a)).toBe(2);
    expect(kv.cacheFullBlocks(b)).toBe(0);
    expect(kv.getBlocks('b')).toEqual([0, 1, 5]);
    expect(kv.refCount(0)).toBe(2);
    expect(kv.numFreeBlocks).toBe(6); // blocks 3 and 4 went back
    expect(events.filter((e) => e.type === 'BlockStored')).toHaveLength(1);
    expect(kv.stats.dedupedBlocks).toBe(2);
    kv.verify();
  });
});

describe('KvCacheManager: arguments and options', () => {
  it('rejects bad arguments with codes and changes nothing', () => {
    const { kv } = manager(4);
    const r = makeRequest('r', range(20));
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isKvmgrError(e) ? e.code : 'not a KvmgrError';
      }
      return undefined;
    };
    expect(code(() => kv.allocateSlots(r, -1))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(code(() => kv.allocateSlots(r, 1, 16))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(code(() => new KvCacheManager({ numBlocks: 0 }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(code(() => new KvCacheManager({ numBlocks: 4, evictionPolicy: 'nope' }))).toBe('KVMGR_INVALID_ARGUMENT');
    kv.allocateSlots(r, 20);
    expect(code(() => kv.getComputedBlocks(r))).toBe('KVMGR_INVALID_STATE');
    expect(kv.numHeldBlocks).toBe(2);
  });

  it('enableCaching=false: nothing is matched or cached (test_basic_prefix_caching_disabled)', () => {
    const kv = new KvCacheManager({ numBlocks: 4, blockSize: 4, enableCaching: false });
    const r1 = makeRequest('1', range(10));
    expect(kv.allocateSlots(r1, 10, 0, kv.getComputedBlocks(r1))).toHaveLength(3);
    kv.cacheFullBlocks(r1, 10);
    kv.free(r1);
    const r2 = makeRequest('2', range(16));
    const hit = kv.getComputedBlocks(r2);
    expect(hit.numComputedTokens).toBe(0);
    expect(kv.allocateSlots(r2, 16, 0, hit)).toHaveLength(4);
    expect(kv.allocateSlots(makeRequest('3', range(4)), 4)).toBeNull();
  });

  it('a non-LRU policy from the registry orders eviction (LFU keeps the block hit most often)', () => {
    const { kv, events } = manager(3, { evictionPolicy: 'lfu' });
    const hot = makeRequest('hot', range(17));
    prefill(kv, hot);
    kv.free(hot);
    for (let i = 0; i < 3; i++) {
      const again = makeRequest(`hot${i}`, range(17));
      prefill(kv, again);
      kv.free(again);
    }
    const cold = makeRequest('cold', range(100, 117));
    prefill(kv, cold);
    kv.free(cold);
    events.length = 0;
    const big = makeRequest('big', Array<number>(33).fill(9));
    prefill(kv, big); // needs 3 blocks: 1 free + evicts 2 cached → cold goes, then hot
    expect(kv.isCached(kv.getBlocks('big')[0] as number)).toBe(true);
    const firstRemoved = events.find((e) => e.type === 'BlockRemoved');
    const coldKey = blockKeysFromTokens(range(100, 117), 16);
    expect(firstRemoved?.type === 'BlockRemoved' && firstRemoved.blockHashes[0]).toBe(blockKeyToU64(coldKey[0] as number, coldKey[1] as number));
  });

  it('keyed (trace) requests: equal block keys share blocks without token ids; only keyed blocks are cached; events carry key-derived tokens', () => {
    const { kv, events } = manager(16);
    // 50 tokens known only by 2 block keys (a trace row): tokenIds stay empty
    const a = { requestId: 'a', tokenIds: [] as number[], numTokens: 50, numComputedTokens: 0, blockKeys: [11, 2 ** 40 + 12] };
    expect(kv.getComputedBlocks(a).numComputedTokens).toBe(0);
    expect(kv.allocateSlots(a, 50)).toHaveLength(4);
    a.numComputedTokens = 50;
    expect(kv.cacheFullBlocks(a, 50)).toBe(2); // 3 full blocks computed, 2 keyed: the filler block is not cached
    const stored = events.filter((e) => e.type === 'BlockStored');
    expect(stored).toHaveLength(1);
    const ev = stored[0] as Extract<KvEvent, { type: 'BlockStored' }>;
    expect(ev.blockHashes).toHaveLength(2);
    expect(ev.tokenIds).toEqual([...range(16).map((j) => traceBlockToken(11, j)), ...range(16).map((j) => traceBlockToken(2 ** 40 + 12, j))]);
    kv.free(a);
    // same first key, a key that differs only above bit 32, then a third key: 1 block hit
    const b = { requestId: 'b', tokenIds: [] as number[], numTokens: 64, numComputedTokens: 0, blockKeys: [11, 12, 13] };
    expect(kv.getComputedBlocks(b).numComputedTokens).toBe(16);
    // the full chain of a: 2 blocks hit (never the last token, never past the keys)
    const c = { requestId: 'c', tokenIds: [] as number[], numTokens: 33, numComputedTokens: 0, blockKeys: [11, 2 ** 40 + 12] };
    expect(kv.getComputedBlocks(c).numComputedTokens).toBe(32);
    // a token request whose tokens equal the derived ones does not match a keyed block (separate key spaces)
    const t = makeRequest('t', [...range(16).map((j) => traceBlockToken(11, j)), 0]);
    expect(kv.getComputedBlocks(t).numComputedTokens).toBe(0);
    for (const bad of [-1, 1.5, 2 ** 53]) {
      const r = { requestId: `bad${bad}`, tokenIds: [] as number[], numTokens: 40, numComputedTokens: 0, blockKeys: [bad] };
      expect(() => kv.getComputedBlocks(r)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT', message: expect.stringContaining('blockKeys[0]') }));
    }
    kv.verify();
  });
});
