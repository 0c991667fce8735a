import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SlidingWindow } from './sliding-window.js';

describe('SlidingWindow', () => {
  it('matches a sorted-array reference for any push sequence', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: -50, max: 50 }), { maxLength: 200 }), (cap, xs) => {
        const w = new SlidingWindow(cap);
        const ref: number[] = [];
        for (const x of xs) {
          w.push(x);
          ref.push(x);
          if (ref.length > cap) ref.shift();
          const sorted = [...ref].sort((a, b) => a - b);
          expect(Array.from(w.sortedView())).toEqual(sorted);
          expect(w.size).toBe(ref.length);
          expect(w.mean).toBeCloseTo(ref.reduce((a, b) => a + b, 0) / ref.length, 9);
          for (const q of [0, 0.25, 0.5, 0.9, 1]) {
            expect(w.quantile(q)).toBe(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
          }
        }
      }),
    );
  });

  it('is NaN when empty and rejects a bad capacity', () => {
    expect(new SlidingWindow(3).quantile(0.5)).toBeNaN();
    expect(() => new SlidingWindow(0)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });
});
