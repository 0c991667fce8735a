/**
 * `prefixIndex: 'radix'` (RadixKvManager over @kvmgr/prefix-cache's RadixPrefixCache): exact
 * bookkeeping on small cases, and the analytic equivalence with the block-hash map when nothing
 * is evicted.
 */
import { createKVCacheSpec, isKvmgrError } from '@kvmgr/core';
import { createEvictionPolicy } from '@kvmgr/eviction';
import { BlockPool } from '@kvmgr/kv-pool';
import { describe, expect, it } from 'vitest';
import { KVMGR_DEFAULT_PROFILE, RadixKvManager, VLLM_DEFAULT_PROFILE, createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const spec = createKVCacheSpec({ blockSize: 16, numLayers: 32, numKvHeads: 8, headDim: 128 });
const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

function manager(numBlocks: number, cpuBlocks = 0): RadixKvManager {
  return new RadixKvManager({
    pool: new BlockPool({ spec, numBlocks }),
    policy: createEvictionPolicy('lru', { capacity: numBlocks }),
    blockSize: 16,
    cpuBlocks,
  });
}

const keys = (...k: number[]) => Float64Array.from(k);

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, code)).toBe(true);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('RadixKvManager', () => {
  it('caches committed prefixes, matches them, and evicts leaf first when short', () => {
    const kv = manager(8);
    const stored: number[] = [];
    const evicted: number[] = [];
    kv.onStore = (k) => stored.push(k);
    kv.onEvict = (k) => evicted.push(k);
    const a: number[] = [];
    const ka = keys(1, 2, 3, 4);
    expect(kv.allocate(4, a)).toBe(true);
    kv.commitPrefix(ka, 4, a);
    expect(stored).toEqual([1, 2, 3, 4]);
    expect(kv.cachedBlocks).toBe(4);
    expect(kv.evictableBlocks).toBe(0); // locked by its request
    expect(kv.blocksInUse).toBe(4);
    expect(kv.freeBlocks).toBe(4);
    kv.release(a, 0);
    expect(kv.evictableBlocks).toBe(4);
    expect(kv.freeBlocks).toBe(8);
    expect(kv.blocksInUse).toBe(0);
    // A second request shares the first two blocks.
    const out = new Int32Array(2);
    kv.matchPrefix(keys(1, 2, 9), 3, out);
    expect([out[0], out[1]]).toEqual([2, 0]);
    const b: number[] = [];
    kv.acquireCached(keys(1, 2, 9), 2, b);
    expect(kv.evictableBlocks).toBe(2);
    // 6 blocks: 4 free + 2 evicted from the unlocked tail (4, then 3); the shared path stays.
    expect(kv.allocate(6, b)).toBe(true);
    expect(evicted).toEqual([4, 3]);
    expect(kv.hasCached(3)).toBe(false);
    expect(kv.hasCached(2)).toBe(true);
    expect(kv.freeBlocks).toBe(0);
    // Nothing evictable is left: all or nothing.
    expect(kv.allocate(1, b)).toBe(false);
    expect(b.length).toBe(8);
    expect(kv.checkConservation()).toBeUndefined();
    kv.release(b, 0);
    expect(kv.freeBlocks).toBe(8);
    expect(kv.clearCache()).toBe(2);
    expect(kv.pool.numFreeBlocks).toBe(8);
    expect(kv.checkConservation()).toBeUndefined();
  });

  it('frees a concurrent duplicate and hands the request the cached block', () => {
    const kv = manager(10);
    const k = keys(7, 8, 9);
    const a: number[] = [];
    const b: number[] = [];
    kv.allocate(3, a);
    kv.allocate(3, b);
    expect(kv.pool.numFreeBlocks).toBe(4);
    kv.commitPrefix(k, 3, a);
    const bBefore = [...b];
    kv.commitPrefix(k, 2, b);
    // b's first two blocks were duplicates: back to the pool, replaced by a's.
    expect(b).toEqual([a[0], a[1], bBefore[2]]);
    expect(kv.pool.numFreeBlocks).toBe(6);
    expect(kv.cachedBlocks).toBe(3);
    expect(kv.blocksInUse).toBe(4);
    expect(kv.checkConservation()).toBeUndefined();
    kv.release(a, 0);
    // Still locked by b up to depth 2: only the third page is evictable.
    expect(kv.evictableBlocks).toBe(1);
    kv.release(b, 0);
    expect(kv.evictableBlocks).toBe(3);
    expect(kv.freeBlocks).toBe(10);
    expect(kv.checkConservation()).toBeUndefined();
  });

  it('keeps evicted keys in the CPU tier and reloads them behind the GPU match', () => {
    const kv = manager(4, 8);
    const a: number[] = [];
    kv.allocate(4, a);
    kv.commitPrefix(keys(1, 2, 3, 4), 4, a);
    kv.release(a, 0);
    const other: number[] = [];
    kv.allocate(2, other); // evicts keys 4 and 3 to the CPU tier
    expect(kv.counters.offloadedBlocks).toBe(2);
    kv.release(other, 0);
    const out = new Int32Array(2);
    kv.matchPrefix(keys(1, 2, 3, 4), 4, out);
    expect([out[0], out[1]]).toEqual([2, 2]);
    const r: number[] = [];
    kv.acquireCached(keys(1, 2, 3, 4), 2, r);
    expect(kv.reload(keys(1, 2, 3, 4), 2, 2, r)).toBeGreaterThan(0);
    expect(r.length).toBe(4);
    expect(kv.cachedBlocks).toBe(4);
    expect(kv.counters.reloadedBlocks).toBe(2);
    expect(kv.evictableBlocks).toBe(0);
    kv.release(r, 0);
    expect(kv.freeBlocks).toBe(4);
    expect(kv.checkConservation()).toBeUndefined();
  });

  it('rejects keys outside u32 and per-block commits, changing nothing', () => {
    const kv = manager(4);
    const a: number[] = [];
    kv.allocate(1, a);
    expectCode(() => kv.commitPrefix(keys(2 ** 32), 1, a), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => kv.commit(1, a[0] as number), 'KVMGR_INVALID_STATE');
    expect(kv.cachedBlocks).toBe(0);
    expect(kv.checkConservation()).toBeUndefined();
  });

  it('runReplay validates prefixIndex', () => {
    const trace: SimRequest[] = [{ requestId: 'r', arrivalUs: 0, promptTokens: 10, maxTokens: 2, outputTokens: 2 }];
    expectCode(() => runReplay({ trace, latency, prefixIndex: 'trie' as 'radix' }), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => runReplay({ trace, latency, prefixIndex: 'radix', kvBackend: 'tiered-pool', eviction: 'lru' }), 'KVMGR_INVALID_ARGUMENT');
  });
});

describe("prefixIndex 'radix' vs 'hash-map' without memory pressure", () => {
  // 4 conversations whose turns grow the previous prompt (shared prefixes), arriving while the
  // previous turn still decodes; every 3rd turn arrives twice at once (two requests prefilling the
  // same new blocks: concurrent duplicates), with a pool large enough that nothing is evicted.
  const requests: SimRequest[] = Array.from({ length: 48 }, (_, i) => {
    const conv = i % 4;
    const turn = Math.floor(i / 4);
    const prompt = 200 + turn * 90 + conv * 7;
    const ids = Uint32Array.from({ length: Math.ceil(prompt / 16) }, (_, b) => conv * 10_000 + b);
    return { requestId: `r${i}`, arrivalUs: i * 150_000, promptTokens: prompt, maxTokens: 40, outputTokens: 20 + (i % 30), hashIds: ids, hashBlockTokens: 16 };
  }).flatMap((r, i) => (Math.floor(i / 4) % 3 === 0 ? [r, { ...r, requestId: `${r.requestId}-twin`, outputTokens: 7 }] : [r]));

  // legacy: KvManager vs RadixKvManager; core: KvCacheManager's block-hash index vs its radix cache
  for (const [profile, instances, engine] of [VLLM_DEFAULT_PROFILE, KVMGR_DEFAULT_PROFILE].flatMap((p) => [[p, 1, 'legacy'], [p, 2, 'legacy'], [p, 2, 'core']] as const)) {
    it(`gives identical hit rates and results (${profile.name}, ${instances} instance(s), engine ${engine})`, () => {
      const run = (prefixIndex: 'hash-map' | 'radix') => runReplay({ trace: requests, instances, profile, latency, gpuBlocks: 4000, prefixIndex, engine });
      const h = run('hash-map');
      const r = run('radix');
      expect(h.violations).toEqual([]);
      expect(r.violations).toEqual([]);
      expect(h.summary.evictedBlocks).toBe(0);
      expect(r.summary.evictedBlocks).toBe(0);
      expect(h.summary.hitRate).toBeGreaterThan(0.3);
      expect(r.summary.hitRate).toBe(h.summary.hitRate);
      expect(r.requests).toEqual(h.requests);
      expect(r.summary).toEqual(h.summary);
      expect(r.config).toEqual({ ...h.config, prefixIndex: 'radix' });
    });
  }
});
