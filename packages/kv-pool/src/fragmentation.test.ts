import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { FragmentationSampler, unusableFreeTokens } from './fragmentation.js';

describe('FragmentationSampler', () => {
  it('integrates piecewise-constant occupancy over time exactly', () => {
    const s = new FragmentationSampler({ capacityTokens: 1600 });
    s.record(0, { usedTokens: 1000, allocatedTokens: 1008 });
    s.record(5_000, { usedTokens: 1500, allocatedTokens: 1504, unusableFreeTokens: 96 });
    const r = s.report(10_000);
    expect(r.durationUs).toBe(10_000);
    expect(r.utilization).toBeCloseTo((1000 * 5000 + 1500 * 5000) / (1600 * 10_000), 12);
    expect(r.internalFragmentation).toBeCloseTo((8 * 5000 + 4 * 5000) / (1600 * 10_000), 12);
    expect(r.externalFragmentation).toBeCloseTo((96 * 5000) / (1600 * 10_000), 12);
    expect(r.fragmentation).toBeCloseTo(r.internalFragmentation + r.externalFragmentation, 12);
    expect(r.allocatedFraction).toBeCloseTo((1008 * 5000 + 1504 * 5000) / (1600 * 10_000), 12);
    // report does not change the sampler
    expect(s.report(10_000)).toEqual(r);
  });

  it('rejects time going back and impossible occupancies, changing nothing', () => {
    const s = new FragmentationSampler({ capacityTokens: 100, startUs: 10 });
    s.record(20, { usedTokens: 10, allocatedTokens: 16 });
    const bad = [
      () => s.record(15, { usedTokens: 1, allocatedTokens: 1 }),
      () => s.record(30, { usedTokens: 17, allocatedTokens: 16 }),
      () => s.record(30, { usedTokens: 1, allocatedTokens: 96, unusableFreeTokens: 8 }),
      () => s.record(30, { usedTokens: -1, allocatedTokens: 1 }),
    ];
    for (const f of bad) {
      let e: unknown;
      try {
        f();
      } catch (x) {
        e = x;
      }
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    }
    expect(s.report(30).utilization).toBeCloseTo((10 * 10) / (100 * 20), 12);
    expect(new FragmentationSampler({ capacityTokens: 5 }).report(0).utilization).toBe(0);
  });

  it('counts free memory as unusable only when the next request fits by count but not by layout', () => {
    expect(unusableFreeTokens(10, 4, false, 16)).toBe(160);
    expect(unusableFreeTokens(10, 4, true, 16)).toBe(0);
    expect(unusableFreeTokens(3, 4, false, 16)).toBe(0); // short of memory, not fragmented
    expect(unusableFreeTokens(10, 0, false, 16)).toBe(0);
  });
});
