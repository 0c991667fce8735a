/**
 * KvCacheManager with a CPU tier: a hit after GPU eviction reloads from CPU with the link's
 * transfer time, the CPU tier drops its least recently used key when full, the events describe
 * both tiers, and EngineCore charges the reload to the step.
 */
import { type KvEvent, blockKeyToU64, createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { EngineCore } from './engine-core.js';
import { KvCacheManager, type KvCacheRequest } from './kv-cache-manager.js';

// 2 layers × 2 heads × 8 dims × K,V × 2 B = 128 B/token → 512 B per 4-token block; the link moves
// 512e3 B/s = one block per ms, plus 10 µs per batch
const spec = createKVCacheSpec({ blockSize: 4, numLayers: 2, numKvHeads: 2, headDim: 8 });
const cpuTier = { capacityBlocks: 2, bandwidthBytesPerSec: 512e3, baseLatencyUs: 10 };

function run(kv: KvCacheManager, r: KvCacheRequest & { numComputedTokens: number }): ReturnType<KvCacheManager['getComputedBlocks']> {
  const hit = kv.getComputedBlocks(r);
  const n = r.tokenIds.length - hit.numComputedTokens;
  expect(kv.allocateSlots(r, n, hit.numComputedTokens, hit)).not.toBeNull();
  kv.cacheFullBlocks(r, r.tokenIds.length);
  kv.free(r);
  kv.verify();
  return hit;
}

/** Events as `type medium count` lines. */
const brief = (events: readonly KvEvent[]): string[] => events.map((e) => `${e.type} ${e.medium} ${e.type === 'AllBlocksCleared' ? 0 : e.blockHashes.length}`);

describe('KvCacheManager CPU tier', () => {
  it('offloads evicted blocks, serves a later hit from CPU with the reload time, and drops the CPU LRU key when full', () => {
    const events: KvEvent[] = [];
    const kv = new KvCacheManager({ numBlocks: 4, spec, cpuTier, onEvent: (e) => events.push(e) });
    const a = { requestId: 'a', tokenIds: [0, 1, 2, 3, 4, 5, 6, 7, 8], numComputedTokens: 0 };
    run(kv, a); // 2 full blocks cached on GPU
    const aKeys: bigint[] = [];
    kv.forEachCachedBlock((_b, hi, lo) => aKeys.push(blockKeyToU64(hi, lo)));
    events.length = 0;
    kv.nowUs = 1000;
    run(kv, { requestId: 'b', tokenIds: [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112], numComputedTokens: 0 });
    // b needs all 4 GPU blocks: a's 2 cached blocks are evicted and written back to CPU
    expect(brief(events)).toEqual(['BlockRemoved GPU 1', 'BlockRemoved GPU 1', 'BlockStored CPU 2', 'BlockStored GPU 3']);
    const cpuStored = events[2] as Extract<KvEvent, { type: 'BlockStored' }>;
    expect(new Set(cpuStored.blockHashes)).toEqual(new Set(aKeys));
    expect(cpuStored).toMatchObject({ parentBlockHash: null, tokenIds: [], blockSize: 4 });
    expect(kv.stats).toMatchObject({ offloadedBlocks: 2, evictedBlocks: 2, cpuHits: 0 });
    expect(kv.cpuTier?.pendingTransferLatency(1000)).toBe(2010); // 10 µs + 2 blocks × 1 ms
    expect(kv.takeReloadUs()).toBe(0); // offloads are not waited for

    // a again with one more block: its 2 blocks are on CPU only
    events.length = 0;
    kv.nowUs = 5000;
    const a2 = { requestId: 'a2', tokenIds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], numComputedTokens: 0 };
    const hit = kv.getComputedBlocks(a2);
    expect(hit).toMatchObject({ blocks: [], numCpuBlocks: 2, numComputedTokens: 8 });
    expect(kv.stats).toMatchObject({ hits: 0, cpuHits: 8 });
    const fresh = kv.allocateSlots(a2, 4, 8, hit);
    expect(fresh).toHaveLength(3); // 2 reloaded + 1 new
    expect(kv.getNumCachedBlocks('a2')).toBe(2);
    expect(kv.takeReloadUs()).toBe(2010); // the link was idle: 10 µs + 2 blocks × 1 ms
    expect(kv.takeReloadUs()).toBe(0);
    expect(kv.stats).toMatchObject({ reloadedBlocks: 2 });
    // room for the reload and the new block: two of b's cached blocks are evicted and written back;
    // the CPU tier is full, so it drops its least recently used keys (a's, reloaded just now but
    // also on the GPU now)
    expect(brief(events)).toEqual([
      'BlockRemoved GPU 1',
      'BlockRemoved CPU 1',
      'BlockStored CPU 1',
      'BlockStored GPU 2',
      'BlockRemoved GPU 1',
      'BlockRemoved CPU 1',
      'BlockStored CPU 1',
    ]);
    expect(kv.numCpuBlocks).toBe(2);
    kv.cacheFullBlocks(a2, 12);
    kv.free(a2);
    kv.verify();
    // the reloaded blocks are GPU hits now
    expect(kv.getComputedBlocks({ requestId: 'a3', tokenIds: a2.tokenIds, numComputedTokens: 0 })).toMatchObject({ numCpuBlocks: 0, numComputedTokens: 8 });
    kv.free('a3');
    // reset clears both tiers
    expect(kv.resetPrefixCache()).toBe(true);
    expect(kv.numCpuBlocks).toBe(0);
    expect(brief(events.slice(-2))).toEqual(['AllBlocksCleared GPU 0', 'AllBlocksCleared CPU 0']);
    kv.verify();
  });

  it('refuses CPU blocks evicted since the match and a bad tier, changing nothing', () => {
    expect(() => new KvCacheManager({ numBlocks: 4, spec, cpuTier: { capacityBlocks: 0 } })).toThrow(/cpuTier.capacityBlocks/);
    const kv = new KvCacheManager({ numBlocks: 2, spec, cpuTier: { capacityBlocks: 1 } });
    run(kv, { requestId: 'a', tokenIds: [0, 1, 2, 3, 4], numComputedTokens: 0 });
    run(kv, { requestId: 'b', tokenIds: [9, 9, 9, 9, 8], numComputedTokens: 0 }); // a's block → CPU
    const a2 = { requestId: 'a2', tokenIds: [0, 1, 2, 3, 4], numComputedTokens: 0 };
    const hit = kv.getComputedBlocks(a2);
    expect(hit.numCpuBlocks).toBe(1);
    run(kv, { requestId: 'c', tokenIds: [7, 7, 7, 7, 6], numComputedTokens: 0 }); // b's block → CPU, a's dropped
    const before = { pool: kv.pool.state(), cpu: kv.cpuTier?.state() };
    expect(() => kv.allocateSlots(a2, 1, 4, hit)).toThrow(/no longer on the CPU tier/);
    expect({ pool: kv.pool.state(), cpu: kv.cpuTier?.state() }).toEqual(before);
    kv.free(a2);
    kv.verify();
  });

  it("with events: false builds no 'CPU' events but still offloads", () => {
    const events: KvEvent[] = [];
    const kv = new KvCacheManager({ numBlocks: 2, spec, cpuTier: { capacityBlocks: 1, events: false }, onEvent: (e) => events.push(e) });
    run(kv, { requestId: 'a', tokenIds: [0, 1, 2, 3, 4], numComputedTokens: 0 });
    run(kv, { requestId: 'b', tokenIds: [9, 9, 9, 9, 8], numComputedTokens: 0 });
    run(kv, { requestId: 'c', tokenIds: [7, 7, 7, 7, 6], numComputedTokens: 0 });
    expect(kv.stats.offloadedBlocks).toBe(2);
    expect(brief(events)).toEqual(['BlockStored GPU 1', 'BlockRemoved GPU 1', 'BlockStored GPU 1', 'BlockRemoved GPU 1', 'BlockStored GPU 1']);
    expect(() => new KvCacheManager({ numBlocks: 2, spec, cpuTier: { capacityBlocks: 1, events: 'no' as never } })).toThrow(/cpuTier.events/);
  });

  it('EngineCore adds the reload wait to the step and counts CPU hits', () => {
    const step = 1000;
    const core = new EngineCore({ kv: { numBlocks: 4, spec, cpuTier }, stepTimeUs: () => step });
    const drain = (t0: number): number => {
      let now = t0;
      for (;;) {
        const s = core.startStep(now);
        if (s === null) return now;
        now += s.durationUs;
        core.finishStep(now);
      }
    };
    core.addRequest({ requestId: 'a', promptTokenIds: [0, 1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 1 }, 0);
    let now = drain(0);
    core.addRequest({ requestId: 'b', promptTokenIds: [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112], maxTokens: 1 }, now);
    now = drain(now); // evicts a's blocks to CPU
    expect(core.metrics.offloadedBlocks).toBe(2);
    now += 1_000_000; // the link is idle again
    core.addRequest({ requestId: 'a2', promptTokenIds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], maxTokens: 1 }, now);
    const s = core.startStep(now);
    expect(s).toMatchObject({ durationUs: step + 2010, transferUs: 2010 });
    core.finishStep(now + (s?.durationUs ?? 0));
    expect(core.metrics).toMatchObject({ cpuPrefixCacheHits: 8, reloadedBlocks: 2, promptTokensCached: 8, numRequestsRunning: 0 });
    core.kv.verify();
  });

  it('reports KV pressure for a router: pending link time and CPU reloads per second (0 without a CPU tier)', () => {
    const kv = new KvCacheManager({ numBlocks: 4, spec, cpuTier: { ...cpuTier, thrashingWindowUs: 1_000_000 } });
    const none = new KvCacheManager({ numBlocks: 4, spec });
    const a = { requestId: 'a', tokenIds: [0, 1, 2, 3, 4, 5, 6, 7, 8], numComputedTokens: 0 };
    const b = { requestId: 'b', tokenIds: [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112], numComputedTokens: 0 };
    for (const m of [kv, none]) {
      run(m, a);
      m.nowUs = 1000;
      run(m, b); // evicts a's 2 blocks (written back to CPU with a tier)
    }
    expect(kv.pendingTransferLatencyUs()).toBe(2010); // at nowUs: 10 µs + 2 blocks × 1 ms queued
    expect(kv.pendingTransferLatencyUs(2000)).toBe(1010);
    expect(kv.pendingTransferLatencyUs(4000)).toBe(0);
    expect(kv.kvThrashingRate(4000)).toBe(0); // offloaded, not reloaded yet
    kv.nowUs = 5000;
    run(kv, { ...a, requestId: 'a2' }); // a's 2 blocks come back from CPU
    expect(kv.stats.reloadedBlocks).toBe(2);
    // 2 reloads in the 1 s window; the reload and the write-back of b's evicted blocks are queued
    expect(kv.kvThrashingRate(5000)).toBe(2);
    expect(kv.pendingTransferLatencyUs(5000)).toBeGreaterThan(2000);
    expect(kv.kvThrashingRate(1_005_000)).toBe(0); // out of the window
    for (const t of [1000, 5000, 1_005_000]) {
      expect(none.pendingTransferLatencyUs(t)).toBe(0);
      expect(none.kvThrashingRate(t)).toBe(0);
    }
    expect(() => new KvCacheManager({ numBlocks: 2, spec, cpuTier: { capacityBlocks: 1, thrashingWindowUs: 0 } })).toThrow(/^cpuTier\.thrashingWindowUs must be .*got 0$/);
  });
});
