import { createRng, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { VirtualTokenCounter, jainIndex, vtcServiceGapBound } from './fairness.js';

describe('jainIndex', () => {
  it('is 1 for equal shares and 1/n for one tenant taking all', () => {
    expect(jainIndex([3, 3, 3])).toBe(1);
    expect(jainIndex([6, 0, 0])).toBeCloseTo(1 / 3, 12);
    expect(jainIndex([1, 2])).toBeCloseTo(9 / 10, 12);
    expect(jainIndex([])).toBe(1);
    expect(() => jainIndex([-1])).toThrow();
  });
});

describe('VirtualTokenCounter', () => {
  it('charges input ×1 and output ×2, normalised by weight', () => {
    const v = new VirtualTokenCounter();
    v.addTenant('a', 2);
    v.charge('a', 100, 10);
    expect(v.service('a')).toBe(120);
    expect(v.counter('a')).toBe(60);
    try {
      v.charge('zz', 1, 1);
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_UNKNOWN_HANDLE')).toBe(true);
    }
    expect(() => v.charge('a', -1, 0)).toThrow();
    expect(v.service('a')).toBe(120);
  });

  it('lifts a tenant that returns from idle to the smallest backlogged counter', () => {
    const v = new VirtualTokenCounter();
    v.addTenant('a');
    v.addTenant('b');
    v.setBacklogged('a', true);
    v.charge('a', 1000, 0);
    v.setBacklogged('b', true);
    expect(v.counter('b')).toBe(1000);
    expect(v.pick()).toBe('a');
  });

  it('three tenants with weights 1:1:2 under backlog: Jain ≥ 0.95 and the gap within VTC’s bound', () => {
    const rng = createRng(42);
    const v = new VirtualTokenCounter();
    const weights: Record<string, number> = { a: 1, b: 1, c: 2 };
    for (const [t, w] of Object.entries(weights)) {
      v.addTenant(t, w);
      v.setBacklogged(t, true);
    }
    const maxIn = 2048;
    const maxOut = 512;
    const bound = vtcServiceGapBound(maxIn, maxOut, 1);
    let worstGap = 0;
    for (let i = 0; i < 3000; i++) {
      const t = v.pick() as string;
      // tenant b sends long prompts, c long outputs: unequal request sizes, equal shares wanted
      const inTok = t === 'b' ? rng.int(1024, maxIn) : rng.int(16, 512);
      const outTok = t === 'c' ? rng.int(128, maxOut) : rng.int(1, 128);
      v.charge(t, inTok, outTok);
      worstGap = Math.max(worstGap, v.fairness().maxServiceGap);
    }
    const f = v.fairness();
    expect(f.tenants).toEqual(['a', 'b', 'c']);
    expect(f.jainIndex).toBeGreaterThanOrEqual(0.95);
    expect(worstGap).toBeLessThanOrEqual(bound);
    // service is split 1:1:2 in raw tokens
    const total = v.service('a') + v.service('b') + v.service('c');
    expect(v.service('c') / total).toBeCloseTo(0.5, 1);
  });
});
