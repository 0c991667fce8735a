/**
 * Hot-spot prefetch (`cpuTier.prefetch`): a waiting request's CPU-held prefix is reloaded into GPU
 * blocks before its step; a request that takes them after they landed waits for nothing, one that
 * takes them earlier waits for the rest (late), and blocks evicted before anyone took them are
 * counted as evicted. EngineCore prefetches for requests that arrive during a step.
 */
import { createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { EngineCore } from './engine-core.js';
import { KvCacheManager, type KvCacheRequest, type KvCpuTierOptions } from './kv-cache-manager.js';

// 2 layers × 2 heads × 8 dims × K,V × 2 B = 128 B/token → 512 B per 4-token block; the link moves
// 512e3 B/s = one block per ms, plus 10 µs per batch
const spec = createKVCacheSpec({ blockSize: 4, numLayers: 2, numKvHeads: 2, headDim: 8 });
const cpuTier: KvCpuTierOptions = { capacityBlocks: 8, bandwidthBytesPerSec: 512e3, baseLatencyUs: 10, prefetch: true };

function run(kv: KvCacheManager, r: KvCacheRequest): void {
  const hit = kv.getComputedBlocks(r);
  expect(kv.allocateSlots(r, r.tokenIds.length - hit.numComputedTokens, hit.numComputedTokens, hit)).not.toBeNull();
  kv.cacheFullBlocks(r, r.tokenIds.length);
  kv.free(r);
  kv.verify();
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** a's 2 full blocks cached, then evicted to CPU by b (4 GPU blocks); the offload ends at 3010 µs. */
function withPrefixOnCpu(options: KvCpuTierOptions = cpuTier): KvCacheManager {
  const kv = new KvCacheManager({ numBlocks: 4, spec, cpuTier: options });
  run(kv, { requestId: 'a', tokenIds: range(0, 9), numComputedTokens: 0 });
  kv.nowUs = 1000;
  run(kv, { requestId: 'b', tokenIds: range(100, 13), numComputedTokens: 0 });
  expect(kv.numCpuBlocks).toBe(2);
  return kv;
}

const a2 = (): KvCacheRequest => ({ requestId: 'a2', tokenIds: range(0, 12), numComputedTokens: 0 });

describe('KvCacheManager hot-spot prefetch', () => {
  it('reloads a waiting request\'s CPU-held prefix into cached GPU blocks; taken after it landed, its step waits for nothing', () => {
    const kv = withPrefixOnCpu();
    const r = a2();
    expect(kv.getComputedBlocks(r, { recordStats: false })).toMatchObject({ blocks: [], numCpuBlocks: 2 });
    expect(kv.prefetch(r, 10_000)).toBe(2);
    kv.verify();
    expect(kv.prefetchStats).toEqual({ prefetchedBlocks: 2, hitBlocks: 0, lateBlocks: 0, evictedBlocks: 0, pendingBlocks: 2 });
    expect(kv.stats.reloadedBlocks).toBe(2);
    // ordinary cached blocks now: a GPU hit, nobody holds them, they count as free
    const hit = kv.getComputedBlocks(r);
    expect(hit.blocks).toHaveLength(2);
    expect(hit.numCpuBlocks).toBe(0);
    expect(kv.numHeldBlocks).toBe(0);
    expect(kv.numFreeBlocks).toBe(4);
    expect(kv.prefetchLandsAtUs(hit)).toBe(12_010); // idle link at 10 ms: 10 µs + 2 blocks × 1 ms
    expect(kv.prefetchLandedByUs).toBe(12_010);
    kv.nowUs = 12_010;
    expect(kv.allocateSlots(r, 4, 8, hit)).toHaveLength(1);
    expect(kv.takeReloadUs()).toBe(0);
    expect(kv.prefetchStats).toMatchObject({ hitBlocks: 2, lateBlocks: 0, pendingBlocks: 0 });
    expect(kv.stats.reloadedBlocks).toBe(2); // no second reload
    kv.free(r);
    kv.verify();
  });

  it('counts blocks taken before they landed as late, and the step waits for the rest of the transfer', () => {
    const kv = withPrefixOnCpu();
    const r = a2();
    expect(kv.prefetch(r, 10_000)).toBe(2);
    const hit = kv.getComputedBlocks(r);
    kv.nowUs = 11_000;
    expect(kv.allocateSlots(r, 4, 8, hit)).not.toBeNull();
    expect(kv.takeReloadUs()).toBe(1010);
    expect(kv.prefetchStats).toMatchObject({ hitBlocks: 0, lateBlocks: 2, pendingBlocks: 0 });
    kv.free(r);
    kv.verify();
  });

  it('counts prefetched blocks evicted before any request took them as evicted (a failed migration)', () => {
    const kv = withPrefixOnCpu();
    const r = a2();
    expect(kv.prefetch(r, 10_000)).toBe(2);
    kv.nowUs = 20_000;
    // 16 new tokens need all 4 GPU blocks: the prefetched ones go (back to CPU) before a2 runs
    run(kv, { requestId: 'c', tokenIds: range(500, 16), numComputedTokens: 0 });
    expect(kv.prefetchStats).toEqual({ prefetchedBlocks: 2, hitBlocks: 0, lateBlocks: 0, evictedBlocks: 2, pendingBlocks: 0 });
    // a2 falls back to a demand reload from CPU
    expect(kv.getComputedBlocks(r, { recordStats: false })).toMatchObject({ blocks: [], numCpuBlocks: 2 });
  });

  it('does nothing when off, without a CPU continuation, past maxBlocks or while the link is backlogged', () => {
    const off = withPrefixOnCpu({ ...cpuTier, prefetch: false });
    expect(off.prefetchEnabled).toBe(false);
    const before = off.pool.state();
    expect(off.prefetch(a2(), 10_000)).toBe(0);
    expect(off.pool.state()).toEqual(before);
    expect(off.numRequests).toBe(0);

    const kv = withPrefixOnCpu({ ...cpuTier, prefetchMaxLinkBacklogUs: 1000 });
    // at 1.5 ms the offload of a's blocks still runs until 3010 µs: backlog 1510 µs > 1000 µs
    expect(kv.prefetch(a2(), 1500)).toBe(0);
    expect(kv.prefetch({ requestId: 'z', tokenIds: range(900, 12), numComputedTokens: 0 }, 10_000)).toBe(0);
    expect(kv.prefetch(a2(), 10_000, 1)).toBe(1);
    expect(kv.numRequests).toBe(0); // prefetch keeps no state for requests it did not know
    expect(kv.getComputedBlocks(a2(), { recordStats: false })).toMatchObject({ numCpuBlocks: 1, numComputedTokens: 8 });
    kv.verify();
    expect(() => kv.prefetch(a2(), -1)).toThrow(/nowUs/);
    expect(() => new KvCacheManager({ numBlocks: 4, spec, cpuTier: { ...cpuTier, prefetch: 'yes' as never } })).toThrow(/cpuTier\.prefetch/);
  });
});

describe('EngineCore hot-spot prefetch', () => {
  /** a's prefix on CPU; then x runs a 5 ms step during which a2 arrives; returns a2's admission step. */
  function scenario(prefetch: boolean) {
    const step = 5000;
    const core = new EngineCore({ kv: { numBlocks: 4, spec, cpuTier: { ...cpuTier, prefetch } }, stepTimeUs: () => step });
    const drain = (t0: number): number => {
      let now = t0;
      for (let s = core.startStep(now); s !== null; s = core.startStep(now)) core.finishStep((now += s.durationUs));
      return now;
    };
    core.addRequest({ requestId: 'a', promptTokenIds: range(0, 9), maxTokens: 1 }, 0);
    let now = drain(0);
    core.addRequest({ requestId: 'b', promptTokenIds: range(100, 13), maxTokens: 1 }, now);
    now = drain(now) + 1_000_000; // a's blocks are on CPU, the link is idle
    core.addRequest({ requestId: 'x', promptTokenIds: [50, 51], maxTokens: 3 }, now);
    const first = core.startStep(now);
    expect(first?.plan.admitted).toBe(1);
    core.addRequest({ requestId: 'a2', promptTokenIds: range(0, 12), maxTokens: 1 }, now + 100); // queued mid-step
    now += first?.durationUs ?? 0;
    core.finishStep(now);
    const next = core.startStep(now);
    core.finishStep(now + (next?.durationUs ?? 0));
    drain(now + (next?.durationUs ?? 0));
    core.kv.verify();
    return { next, core };
  }

  it("loads a queued request's CPU-tier prefix during the running step, so its own step does not wait for the reload", () => {
    const on = scenario(true);
    expect(on.next?.plan.admitted).toBe(1);
    expect(on.next?.transferUs).toBe(0);
    expect(on.core.kv.prefetchStats).toMatchObject({ prefetchedBlocks: 2, hitBlocks: 2, lateBlocks: 0, evictedBlocks: 0 });
    expect(on.core.metrics).toMatchObject({ promptTokensCached: 8, reloadedBlocks: 2 });
    // without prefetch the same request reloads at admission: 10 µs + 2 blocks × 1 ms in its step
    const off = scenario(false);
    expect(off.next?.plan.admitted).toBe(1);
    expect(off.next?.transferUs).toBe(2010);
    expect(off.core.kv.prefetchStats.prefetchedBlocks).toBe(0);
    expect(off.core.metrics).toMatchObject({ promptTokensCached: 8, reloadedBlocks: 2 });
  });

  it('keeps a request whose prefetched prefix has not landed waiting, and lets others run', () => {
    const core = new EngineCore({ kv: { numBlocks: 4, spec, cpuTier }, stepTimeUs: () => 100 });
    core.addRequest({ requestId: 'a', promptTokenIds: range(0, 9), maxTokens: 1 }, 0);
    let now = 0;
    for (let s = core.startStep(now); s !== null; s = core.startStep(now)) core.finishStep((now += s.durationUs));
    core.addRequest({ requestId: 'b', promptTokenIds: range(100, 13), maxTokens: 1 }, now);
    for (let s = core.startStep(now); s !== null; s = core.startStep(now)) core.finishStep((now += s.durationUs));
    now += 1_000_000;
    expect(core.kv.prefetch({ requestId: 'a2', tokenIds: range(0, 12), numComputedTokens: 0 }, now)).toBe(2);
    core.addRequest({ requestId: 'a2', promptTokenIds: range(0, 12), maxTokens: 1 }, now);
    expect(core.startStep(now)).toBeNull(); // its KV lands at now + 2010 µs
    expect(core.kv.prefetchLandedByUs).toBe(now + 2010);
    const s = core.startStep(now + 2010);
    expect(s).toMatchObject({ transferUs: 0, plan: { admitted: 1 } });
    core.finishStep(now + 2010 + (s?.durationUs ?? 0));
    expect(core.kv.prefetchStats).toMatchObject({ hitBlocks: 2, lateBlocks: 0 });
    core.kv.verify();
  });
});
