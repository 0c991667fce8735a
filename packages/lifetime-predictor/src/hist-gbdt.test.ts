import { createRng } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { predictHistGbdt, trainHistGbdt } from './hist-gbdt.js';

describe('histogram GBDT', () => {
  it('fits a step function of one feature and ignores a noise feature', () => {
    const rng = createRng(3);
    const n = 2000;
    const x = new Float64Array(n * 2);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = rng.next() * 100;
      x[i * 2] = a;
      x[i * 2 + 1] = rng.next();
      y[i] = a < 30 ? 10 : a < 70 ? 50 : 200;
    }
    const m = trainHistGbdt(x, y, 2, { trees: 80, learningRate: 0.3, minLeaf: 8, maxBins: 64 });
    for (const [a, want] of [
      [5, 10],
      [50, 50],
      [95, 200],
    ] as const) {
      expect(Math.abs(predictHistGbdt(m, Float64Array.of(a, 0.5)) - want)).toBeLessThan(2);
    }
    // no split on the noise feature near the root of the first tree
    expect(m.feature[m.roots[0] as number]).toBe(0);
  });

  it('predicts the mean when the target is constant, with single-leaf trees', () => {
    const x = Float64Array.from({ length: 100 }, (_, i) => i);
    const y = new Float64Array(100).fill(7);
    const m = trainHistGbdt(x, y, 1, { trees: 3 });
    expect(m.nodes).toBe(3);
    expect(predictHistGbdt(m, Float64Array.of(42))).toBe(7);
  });

  it('rejects mismatched shapes and bad options', () => {
    expect(() => trainHistGbdt(new Float64Array(3), new Float64Array(2), 2)).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
    expect(() => trainHistGbdt(new Float64Array(2), new Float64Array(2), 1, { maxBins: 1000 })).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
  });
});
