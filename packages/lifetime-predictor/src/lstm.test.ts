import { describe, expect, it } from 'vitest';
import { evaluatePrequential } from './evaluate.js';
import { LstmPredictor } from './lstm.js';
import { createPredictor } from './registry.js';
import type { TraceRecord } from './traces.js';
import { createRng } from '@kvmgr/core';

/** Sessions whose turn lengths follow the session's own level (learnable only from history). */
function sessions(n: number, seed: number): TraceRecord[] {
  const rng = createRng(seed);
  const out: TraceRecord[] = [];
  const live: { id: string; level: number; hist: number[] }[] = [];
  for (let i = 0; i < n; i++) {
    if (live.length < 30 || rng.next() < 0.1) live.push({ id: `s${i}`, level: 20 + rng.next() * 800, hist: [] });
    const s = live[rng.int(0, live.length - 1)] as (typeof live)[number];
    const y = Math.round(s.level * (0.9 + 0.2 * rng.next()));
    out.push({ features: { promptTokens: 100 + 50 * s.hist.length, sessionId: s.id, sessionHistory: [...s.hist] }, actualOutputTokens: y });
    s.hist.push(y);
  }
  return out;
}

describe('LstmPredictor', () => {
  const opts = { minTrain: 200, retrainEvery: 400, trainSteps: 30, window: 1024 } as const;

  it('hand-written forward pass agrees with tfjs within 1e-5 (network output units)', () => {
    const p = new LstmPredictor(opts);
    const recs = sessions(300, 5);
    for (const r of recs) p.observe(r.features, r.actualOutputTokens);
    expect(p.trainings).toBeGreaterThanOrEqual(1);
    let maxDiff = 0;
    for (const r of recs.slice(0, 60)) {
      const a = p.forwardHandWritten(r.features);
      const b = p.forwardTfjs(r.features);
      expect(Number.isFinite(a)).toBe(true);
      // outputs are in tokens = network units × 512
      maxDiff = Math.max(maxDiff, Math.abs(a - b) / 512);
    }
    expect(maxDiff).toBeLessThan(1e-5);
    p.dispose();
  });

  it('is deterministic for a seed', () => {
    const recs = sessions(250, 6);
    const a = new LstmPredictor(opts);
    const b = new LstmPredictor(opts);
    for (const r of recs) {
      a.observe(r.features, r.actualOutputTokens);
      b.observe(r.features, r.actualOutputTokens);
    }
    for (const r of recs.slice(0, 20)) expect(a.predict(r.features)).toEqual(b.predict(r.features));
    a.dispose();
    b.dispose();
  });

  it('learns from session history: beats the global median on history-driven lengths', () => {
    const recs = sessions(1200, 7);
    const lstm = evaluatePrequential(recs, new LstmPredictor({ ...opts, retrainEvery: 300, trainSteps: 60 }), { warmup: 400 });
    const base = evaluatePrequential(recs, createPredictor('global-median'), { warmup: 400 });
    expect(lstm.mae).toBeLessThan(0.6 * base.mae);
    expect(lstm.kendallTau).toBeGreaterThan(0.5);
  });

  it('predicts the window median before its first training and rejects bad input', () => {
    const p = new LstmPredictor({ minTrain: 1000 });
    for (let i = 0; i < 5; i++) p.observe({ promptTokens: 10 }, 100);
    expect(p.trainings).toBe(0);
    expect(Number.isNaN(p.forwardHandWritten({ promptTokens: 1 }))).toBe(true);
    expect(() => p.predict({ promptTokens: -1 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => new LstmPredictor({ units: 0 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    p.dispose();
  });
});
