import { createRng } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { EmbeddingLoadForecaster } from './embedding-load.js';

describe('EmbeddingLoadForecaster', () => {
  it('learns a linear load model and covers ~90 % with its p90', () => {
    const f = new EmbeddingLoadForecaster();
    const rng = createRng(11);
    let covered = 0;
    let absErr = 0;
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const s = { queuedRequests: rng.int(0, 50), queuedTokens: rng.int(0, 20000), arrivalRatePerS: rng.next() * 10 };
      const bytes = 4096 * s.queuedTokens + 1e5 * s.queuedRequests + 2e5 * rng.next();
      const p = f.predict(s);
      expect(p.p90).toBeGreaterThanOrEqual(p.p50);
      if (i >= 1000) {
        if (bytes <= p.p90) covered++;
        absErr += Math.abs(p.mean - bytes);
      }
      f.observe(s, bytes);
    }
    expect(covered / (n - 1000)).toBeGreaterThan(0.86);
    expect(covered / (n - 1000)).toBeLessThan(0.94);
    // noise is uniform on [0, 2e5): the best MAE is 5e4
    expect(absErr / (n - 1000)).toBeLessThan(6e4);
  });

  it('rejects bad state and bad actuals without changing the forecast', () => {
    const f = new EmbeddingLoadForecaster();
    f.observe({ queuedRequests: 1, queuedTokens: 100 }, 1000);
    const s = { queuedRequests: 2, queuedTokens: 10 };
    const before = f.predict(s);
    expect(() => f.predict({ queuedRequests: -1, queuedTokens: 0 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => f.observe(s, Number.NaN)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => f.observe({ queuedRequests: 1, queuedTokens: Number.NaN }, 1)).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
    expect(f.predict(s)).toEqual(before);
    expect(() => new EmbeddingLoadForecaster({ forgetting: 2 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });
});
