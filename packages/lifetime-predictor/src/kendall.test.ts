import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kendallTau } from './kendall.js';

/** O(n²) τ-b reference. */
function naiveTauB(x: number[], y: number[]): number {
  let c = 0;
  let d = 0;
  let tx = 0;
  let ty = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const a = Math.sign((x[i] as number) - (x[j] as number));
      const b = Math.sign((y[i] as number) - (y[j] as number));
      if (a === 0 && b === 0) continue;
      if (a === 0) tx++;
      else if (b === 0) ty++;
      else if (a === b) c++;
      else d++;
    }
  }
  const den = Math.sqrt((c + d + tx) * (c + d + ty));
  return den === 0 ? 0 : (c - d) / den;
}

describe('kendallTau', () => {
  it('equals the O(n²) τ-b with ties', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 })), { maxLength: 60 }),
        (pairs) => {
          const x = pairs.map((p) => p[0]);
          const y = pairs.map((p) => p[1]);
          expect(kendallTau(x, y)).toBeCloseTo(naiveTauB(x, y), 10);
        },
      ),
    );
  });

  it('gives exact values on small cases', () => {
    expect(kendallTau([1, 2, 3, 4], [1, 2, 3, 4])).toBe(1);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    expect(kendallTau([1, 2, 3], [1, 3, 2])).toBeCloseTo(1 / 3, 12);
    expect(kendallTau([5, 5, 5], [1, 2, 3])).toBe(0);
    expect(kendallTau([1], [1])).toBe(0);
  });

  it('rejects mismatched lengths and NaN', () => {
    expect(() => kendallTau([1, 2], [1])).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => kendallTau([1, Number.NaN], [1, 2])).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });
});
