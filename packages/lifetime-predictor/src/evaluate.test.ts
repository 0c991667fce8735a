import type { LifetimeFeatures, LifetimePrediction, LifetimePredictor } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { evaluatePrequential } from './evaluate.js';
import type { TraceRecord } from './traces.js';

/** Predicts promptTokens as p50 and 2 × promptTokens as p90; records the call order. */
class Echo implements LifetimePredictor {
  readonly name = 'echo';
  readonly calls: string[] = [];
  predict(f: LifetimeFeatures): LifetimePrediction {
    this.calls.push(`p${f.promptTokens}`);
    return { mean: f.promptTokens, p50: f.promptTokens, p90: 2 * f.promptTokens };
  }
  predictRemaining(f: LifetimeFeatures): LifetimePrediction {
    return this.predict(f);
  }
  observe(f: LifetimeFeatures): void {
    this.calls.push(`o${f.promptTokens}`);
  }
  calibrate(): void {}
}

const rec = (prompt: number, actual: number): TraceRecord => ({ features: { promptTokens: prompt }, actualOutputTokens: actual });

describe('evaluatePrequential', () => {
  it('predicts then learns in order and computes exact metrics', () => {
    const p = new Echo();
    // predictions 10, 20, 30, 40 vs actual 10, 25, 100, 41
    const r = evaluatePrequential([rec(10, 10), rec(20, 25), rec(30, 100), rec(40, 41)], p);
    expect(p.calls).toEqual(['p10', 'o10', 'p20', 'o20', 'p30', 'o30', 'p40', 'o40']);
    expect(r.n).toBe(4);
    expect(r.mae).toBe((0 + 5 + 70 + 1) / 4);
    expect(r.within10).toBe(2 / 4);
    expect(r.p90Coverage).toBe(3 / 4);
    // pairs: 5 concordant, 1 discordant ((30,100) vs (40,41))
    expect(r.kendallTau).toBeCloseTo(4 / 6, 12);
    expect(r.predictor).toBe('echo');
    expect(r.predictP99Us).toBeGreaterThanOrEqual(r.predictP50Us);
  });

  it('skips scoring the warm-up records but still learns them', () => {
    const p = new Echo();
    const r = evaluatePrequential([rec(10, 99), rec(20, 20)], p, { warmup: 1 });
    expect(r.n).toBe(1);
    expect(r.mae).toBe(0);
    expect(p.calls).toEqual(['o10', 'p20', 'o20']);
  });

  it('rejects nothing to score and a bad point option', () => {
    expect(() => evaluatePrequential([rec(1, 1)], new Echo(), { warmup: 1 })).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
    expect(() => evaluatePrequential([rec(1, 1)], new Echo(), { point: 'p99' as 'p50' })).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }),
    );
  });
});
