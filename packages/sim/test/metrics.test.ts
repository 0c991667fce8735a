import { describe, expect, it } from 'vitest';
import { distribution, jainIndex, percentileSorted } from '../src/index.js';

describe('metrics helpers', () => {
  it('percentiles interpolate linearly like numpy', () => {
    expect(percentileSorted([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentileSorted([1, 2, 3, 4], 90)).toBeCloseTo(3.7, 12);
    expect(percentileSorted([5], 99)).toBe(5);
    expect(Number.isNaN(percentileSorted([], 50))).toBe(true);
    const d = distribution([4, 1, 3, 2]);
    expect(d).toEqual({ count: 4, mean: 2.5, p50: 2.5, p90: 3.7 + 0 * 0, p99: percentileSorted([1, 2, 3, 4], 99), max: 4 });
  });
  it("Jain's index is 1 when equal and 1/n when one tenant gets everything", () => {
    expect(jainIndex([2, 2, 2])).toBe(1);
    expect(jainIndex([5, 0, 0, 0])).toBe(0.25);
    expect(jainIndex([1, 3])).toBeCloseTo(16 / 20, 12);
  });
});
