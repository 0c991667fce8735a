import type { LifetimeFeatures, LifetimePredictor } from '@kvmgr/core';
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluatePrequential } from './evaluate.js';
import { createPredictor, listPredictors } from './registry.js';
import { templatedWorkload } from './synthetic.js';

/** The fast predictors (the LSTM has its own test file: its training dominates runtime). */
const FAST = ['constant', 'global-median', 'ewma', 'quantile', 'gbdt'] as const;
const small: Record<string, Record<string, unknown>> = { gbdt: { minTrain: 64, retrainEvery: 128 } };

function trained(name: string, n = 400): LifetimePredictor {
  const p = createPredictor(name, small[name] ?? {});
  for (const r of templatedWorkload({ requests: n, templates: 5 })) p.observe(r.features, r.actualOutputTokens);
  return p;
}

describe('registry', () => {
  it('lists every predictor and builds each by name', () => {
    expect(listPredictors()).toEqual(['constant', 'global-median', 'ewma', 'quantile', 'gbdt', 'lstm', 'auto']);
    for (const n of FAST) expect(createPredictor(n).name).toBe(n);
  });

  it('rejects an unknown name, listing the known ones', () => {
    try {
      createPredictor('oracle');
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      expect((e as Error).message).toContain('"oracle"');
      expect((e as Error).message).toContain('constant, global-median, ewma, quantile, gbdt, lstm');
    }
    expect(() => createPredictor('toString')).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });

  it('rejects bad options', () => {
    expect(() => createPredictor('ewma', { alpha: 2 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => createPredictor('constant', { value: -1 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => createPredictor('quantile', { keyBy: ['user' as 'session'] })).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
    expect(() => createPredictor('gbdt', { target: 'cube' as 'raw' })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });
});

const BAD: [string, LifetimeFeatures][] = [
  ['negative prompt', { promptTokens: -1 }],
  ['NaN prompt', { promptTokens: Number.NaN }],
  ['infinite maxTokens', { promptTokens: 1, maxTokens: Number.POSITIVE_INFINITY }],
  ['NaN history', { promptTokens: 1, sessionHistory: [3, Number.NaN] }],
  ['negative arrival', { promptTokens: 1, arrivalMs: -5 }],
  ['NaN prefix', { promptTokens: 1, prefixId: Number.NaN }],
  ['numeric tenant', { promptTokens: 1, tenant: 5 as unknown as string }],
];

describe.each(FAST)('%s', (name) => {
  const probe: LifetimeFeatures = { promptTokens: 100, prefixId: 1, tenant: 't1' };

  it.each(BAD)('throws KVMGR_INVALID_ARGUMENT on %s and stays unchanged', (_what, bad) => {
    const p = trained(name, 200);
    const before = p.predict(probe);
    expect(() => p.predict(bad)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => p.predictRemaining(bad, 1)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => p.observe(bad, 10)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(p.predict(probe)).toEqual(before);
  });

  it('rejects a negative or NaN actual length and generatedSoFar, leaving state unchanged', () => {
    const p = trained(name, 200);
    const before = p.predict(probe);
    for (const v of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => p.observe(probe, v)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
      expect(() => p.predictRemaining(probe, v)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    }
    expect(p.predict(probe)).toEqual(before);
  });

  it('returns ordered, non-negative quantiles capped by maxTokens', () => {
    const p = trained(name);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10000 }),
        fc.integer({ min: 0, max: 6 }),
        fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
        (prompt, prefix, maxTokens) => {
          const f: LifetimeFeatures = { promptTokens: prompt, prefixId: prefix, ...(maxTokens === undefined ? {} : { maxTokens }) };
          const d = p.predict(f);
          const q99 = d.quantiles?.['0.99'] as number;
          expect(d.p50).toBeGreaterThanOrEqual(0);
          expect(d.p90).toBeGreaterThanOrEqual(d.p50);
          expect(q99).toBeGreaterThanOrEqual(d.p90);
          expect(d.mean).toBeGreaterThanOrEqual(0);
          if (maxTokens !== undefined) expect(q99).toBeLessThanOrEqual(maxTokens);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('predicts at least one remaining token, and the remaining p90 moves with progress', () => {
    const p = trained(name);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), (g) => {
        const r = p.predictRemaining(probe, g);
        expect(r.p50).toBeGreaterThanOrEqual(g === 0 ? 0 : 1);
        expect(r.p90).toBeGreaterThanOrEqual(r.p50);
        expect(r.mean).toBeGreaterThanOrEqual(g === 0 ? 0 : 1);
      }),
      { numRuns: 100 },
    );
    // total = generated + remaining never falls below what was generated
    const d0 = p.predict(probe);
    const mid = Math.floor(d0.p50);
    if (mid > 0) expect(mid + p.predictRemaining(probe, mid).p90).toBeGreaterThanOrEqual(d0.p90 - 1e-9);
    expect(p.predictRemaining({ ...probe, maxTokens: 50 }, 50).p90).toBe(1);
  });

  it('is deterministic: two instances fed the same stream predict identically', () => {
    const a = trained(name);
    const b = trained(name);
    for (const r of templatedWorkload({ requests: 50, templates: 5, seed: 99 })) {
      expect(a.predict(r.features)).toEqual(b.predict(r.features));
    }
  });
});

describe('conformal calibration', () => {
  it.each(FAST)('%s reaches p90 coverage 0.88–0.92 on a templated workload', (name) => {
    const r = evaluatePrequential(templatedWorkload({ requests: 3000, jitter: 0.3 }), createPredictor(name), { warmup: 500 });
    expect(r.p90Coverage).toBeGreaterThanOrEqual(0.88);
    expect(r.p90Coverage).toBeLessThanOrEqual(0.92);
  });

  it('calibrate() installs the recent scores without error on a fresh predictor', () => {
    const p = createPredictor('ewma');
    p.calibrate();
    const before = p.predict({ promptTokens: 1 });
    p.calibrate();
    expect(p.predict({ promptTokens: 1 })).toEqual(before);
  });
});

describe('check 2: synthetic templated workload (20 templates, ±5 % lengths, 5000 requests)', () => {
  it('ewma reaches MAE < 10 tokens and ≥ 70 % within 10 %', () => {
    const r = evaluatePrequential(templatedWorkload(), createPredictor('ewma'));
    expect(r.mae).toBeLessThan(10);
    expect(r.within10).toBeGreaterThanOrEqual(0.7);
  });

  it('quantile and gbdt put ≥ 70 % within 10 % and rank well (τ > 0.85)', () => {
    for (const n of ['quantile', 'gbdt'] as const) {
      const r = evaluatePrequential(templatedWorkload(), createPredictor(n));
      expect(r.within10).toBeGreaterThanOrEqual(0.7);
      expect(r.kendallTau).toBeGreaterThan(0.85);
    }
  });

  it('the global-median baseline cannot: templates differ', () => {
    const r = evaluatePrequential(templatedWorkload(), createPredictor('global-median'));
    expect(r.mae).toBeGreaterThan(100);
  });
});

/** Mean relative error of p50 over requests [from, to) of a shifted stream. */
function shiftErrors(name: string): (from: number, to: number) => number {
  const p = createPredictor(name);
  const errs: number[] = [];
  for (const r of templatedWorkload({ requests: 4000, shiftAt: 2000 })) {
    errs.push(Math.abs(p.predict(r.features).p50 - r.actualOutputTokens) / r.actualOutputTokens);
    p.observe(r.features, r.actualOutputTokens);
  }
  return (a, b) => errs.slice(a, b).reduce((x, y) => x + y, 0) / (b - a);
}

describe('check 4: online learning recovers after a distribution shift', () => {
  // At request 2000 every template's mean output length is redrawn (20 templates).
  it.each([
    ['ewma', 200, 2],
    ['quantile', 400, 2],
    ['gbdt', 1800, 3],
  ] as const)('%s: 200-request mean relative error is back within %i observations to ≤ %i× its pre-shift level', (name, within, factor) => {
    const err = shiftErrors(name);
    const pre = err(1800, 2000);
    expect(err(2000, 2100)).toBeGreaterThan(10 * pre);
    expect(err(2000 + within, 2000 + within + 200)).toBeLessThan(factor * pre);
  });
});
