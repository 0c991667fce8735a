import { createRng, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { evaluatePrequential } from './evaluate.js';
import { AutoPredictor } from './model-selection.js';
import { createPredictor, listPredictors } from './registry.js';
import { templatedWorkload } from './synthetic.js';
import type { TraceRecord } from './traces.js';

/** Templated lengths with the outputs permuted: no feature carries any signal. */
function noSignal(): TraceRecord[] {
  const records = templatedWorkload({ requests: 3000, seed: 3 });
  const ys = createRng(5).shuffle(records.map((r) => r.actualOutputTokens));
  return records.map((r, i) => ({ features: r.features, actualOutputTokens: ys[i] as number }));
}

describe('AutoPredictor (online model selection with a global-median fallback)', () => {
  it('is registered as auto', () => {
    expect(listPredictors()).toContain('auto');
    expect(createPredictor('auto').name).toBe('auto');
  });

  it('serves gbdt where it helps: templated workload, MAE well under the median baseline, p90 covered', () => {
    const records = templatedWorkload({ requests: 3000 });
    const base = evaluatePrequential(records, createPredictor('global-median'));
    const auto = new AutoPredictor();
    const r = evaluatePrequential(records, auto);
    expect(auto.serving).toBe('learned');
    expect(auto.models).toEqual({ learned: 'gbdt', baseline: 'global-median' });
    expect(auto.learnedShare).toBeGreaterThan(0.8);
    expect(r.mae / base.mae).toBeLessThan(0.3);
    expect(r.p90Coverage).toBeGreaterThanOrEqual(0.88);
    expect(r.p90Coverage).toBeLessThanOrEqual(0.92);
  });

  it('falls back to the global median where the features carry no signal: MAE <= 1.02x the baseline', () => {
    const records = noSignal();
    const base = evaluatePrequential(records, createPredictor('global-median'));
    const auto = new AutoPredictor();
    const r = evaluatePrequential(records, auto);
    expect(auto.learnedShare).toBeLessThan(0.3);
    expect(r.mae / base.mae).toBeLessThanOrEqual(1.02);
    expect(r.p90Coverage).toBeGreaterThanOrEqual(0.88);
    expect(r.p90Coverage).toBeLessThanOrEqual(0.92);
  });

  it('a bad observation throws and changes nothing', () => {
    const auto = new AutoPredictor({ minObservations: 1 });
    for (const r of templatedWorkload({ requests: 50 })) auto.observe(r.features, r.actualOutputTokens);
    const before = [auto.serving, auto.learnedShare, auto.recentMae(), auto.predict({ promptTokens: 100 })];
    for (const bad of [-1, Number.NaN]) {
      try {
        auto.observe({ promptTokens: 100 }, bad);
        expect.unreachable();
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      }
    }
    expect([auto.serving, auto.learnedShare, auto.recentMae(), auto.predict({ promptTokens: 100 })]).toEqual(before);
    expect(() => new AutoPredictor({ window: 0 })).toThrow(/window/);
  });
});
