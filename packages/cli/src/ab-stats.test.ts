import { describe, expect, it } from 'vitest';
import { goodputKnee, pairedDiffs } from './ab-stats.js';
import type { RequestRow } from '@kvmgr/sim';
import type { RunResult } from './run.js';

function run(label: string, ttft: (i: number) => number): RunResult {
  const requests: RequestRow[] = Array.from({ length: 200 }, (_, i) => ({
    requestId: `r${i}`,
    instance: 'i0',
    prefillInstance: '',
    arrivalMs: i,
    firstTokenMs: i + ttft(i),
    finishMs: i + ttft(i) + 90,
    promptTokens: 100,
    outputTokens: 10,
    cachedTokens: 0,
    ttftMs: ttft(i),
    tpotMs: 10,
    e2eMs: ttft(i) + 90,
    preemptions: 0,
    reprefillTokens: 0,
    sloMet: ttft(i) < 150,
    rejectedReason: '',
    tenant: '',
    sloClass: '',
    predictedKvBlocks: 8,
    peakKvBlocks: 7,
  }));
  return { label, profile: label, pipeline: label, router: 'rr', summary: {} as RunResult['summary'], requests, timeseries: { tSec: [], throughputTokPerS: [], kvUtilization: [], hitRate: [] }, wallS: 0 };
}

describe('pairedDiffs', () => {
  it('recovers a constant shift exactly, with a zero-width interval', () => {
    const a = run('a', (i) => 100 + (i % 7));
    const b = run('b', (i) => 80 + (i % 7));
    const ttft = pairedDiffs(a, b).find((d) => d.metric === 'TTFT');
    expect(ttft?.n).toBe(200);
    expect(ttft?.meanDiff).toBeCloseTo(-20, 10);
    expect(ttft?.ciLow).toBeCloseTo(-20, 10);
    expect(ttft?.ciHigh).toBeCloseTo(-20, 10);
  });

  it('gives an interval that contains the mean difference for noisy data and is seeded', () => {
    const a = run('a', (i) => 100 + ((i * 37) % 50));
    const b = run('b', (i) => 95 + ((i * 53) % 50));
    const d1 = pairedDiffs(a, b, { seed: 3 }).find((d) => d.metric === 'TTFT');
    const d2 = pairedDiffs(a, b, { seed: 3 }).find((d) => d.metric === 'TTFT');
    expect(d1).toEqual(d2);
    expect(d1!.ciLow).toBeLessThan(d1!.meanDiff);
    expect(d1!.ciHigh).toBeGreaterThan(d1!.meanDiff);
  });

  it('leaves rejected requests (NaN times) out of the latency metrics and counts them as missing the SLO', () => {
    const a = run('a', (i) => 100 + (i % 7));
    const b = run('b', (i) => 80 + (i % 7));
    const rejected = { ...b, requests: b.requests.map((r, i) => (i < 50 ? { ...r, ttftMs: Number.NaN, tpotMs: Number.NaN, e2eMs: Number.NaN, sloMet: false, rejectedReason: 'too long' } : r)) };
    const d = pairedDiffs(a, rejected);
    expect(d.find((x) => x.metric === 'TTFT')?.n).toBe(150);
    const slo = d.find((x) => x.metric === 'SLO met');
    expect(slo?.n).toBe(200);
    expect(slo?.meanB).toBeCloseTo(150 / 200, 12);
  });

  it('refuses runs over different requests', () => {
    const a = run('a', () => 1);
    const b = { ...run('b', () => 1), requests: run('b', () => 1).requests.map((r) => ({ ...r, requestId: `x${r.requestId}` })) };
    expect(() => pairedDiffs(a, b)).toThrow(/share no request ids/);
  });
});

describe('goodputKnee', () => {
  it('is the highest rate with attainment >= 90%', () => {
    const pts = [
      { rate: 1, sloAttainment: 0.99, goodputReqPerS: 0.99, throughputReqPerS: 1, ttftP99Ms: 1 },
      { rate: 2, sloAttainment: 0.95, goodputReqPerS: 1.9, throughputReqPerS: 2, ttftP99Ms: 1 },
      { rate: 4, sloAttainment: 0.6, goodputReqPerS: 2.4, throughputReqPerS: 4, ttftP99Ms: 1 },
    ];
    expect(goodputKnee(pts)).toEqual({ rate: 2, goodputReqPerS: 1.9 });
    expect(goodputKnee(pts.slice(2))).toEqual({ rate: undefined, goodputReqPerS: 0 });
  });
});
