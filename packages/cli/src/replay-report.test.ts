/**
 * The replay table's edges (issue #21): a percentage changes in points, not relative percent;
 * no goodput ratio when both sides meet under 1% of their SLOs; a saturation warning when both
 * meet under half.
 */
import { describe, expect, it } from 'vitest';
import { comparisonRows, verdict } from './replay-report.js';
import type { RunSummary } from '@kvmgr/sim';
import type { RunResult } from './run.js';

const dist = (p50: number, p99: number) => ({ count: 100, mean: p50, p50, p90: p99, p99, max: p99 });

function run(label: string, over: Partial<RunSummary>): RunResult {
  const summary: RunSummary = {
    requests: 100,
    finished: 100,
    rejected: 0,
    rejectedByReason: {},
    durationS: 50,
    ttftMs: dist(500, 2000),
    tpotMs: dist(20, 80),
    e2eMs: dist(4000, 9000),
    itlMeanMs: 20,
    throughputRps: 2,
    outputTokPerSec: 500,
    goodputRps: 1.9,
    sloAttainment: 0.95,
    slo: { ttftMs: 2000, tpotMs: 100 },
    hitRate: 0.049,
    reprefillRate: 0.1,
    preemptions: 3,
    kvUtilization: 0.5,
    fragmentation: 0,
    evictedBlocks: 0,
    offloadedBlocks: 0,
    reloadedBlocks: 0,
    migratedBlocks: 0,
    migrationFailureRate: 0,
    jainIndex: 1,
    maxServiceGap: 0,
    kvPredictionMape: 0.2,
    kvUnderpredictionRate: 0.1,
    perInstance: [],
    ...over,
  };
  return { label, profile: label, pipeline: '', router: '', summary, requests: [], timeseries: { tSec: [] } as unknown as RunResult['timeseries'], wallS: 1 };
}

describe('replay table', () => {
  it('gives percentages their change in points (4.9% -> 8.5% is +3.6 pt, not +73.5%)', () => {
    const rows = comparisonRows(run('a', {}), run('b', { hitRate: 0.085, sloAttainment: 0.9, kvUtilization: 0.25 }));
    const change = (label: string) => rows.find((r) => r[0] === label)?.[3];
    expect(change('prefix hit rate (%)')).toBe('+3.6 pt');
    expect(change('SLO attainment (%)')).toBe('-5.0 pt');
    expect(change('KV utilization (%)')).toBe('-25.0 pt');
    expect(change('re-prefill rate (%)')).toBe('+0.00 pt');
    // everything else stays relative
    expect(change('TTFT p99 (ms)')).toBe('+0.0%');
    expect(change('goodput (req/s)')).toBe('+0.0%');
  });

  it('prints no goodput ratio when both sides meet under 1% of their SLOs, and says why', () => {
    const v = verdict(run('vllm', { sloAttainment: 0.004, goodputRps: 0.01 }), run('kvmgr', { sloAttainment: 0.009, goodputRps: 0.03 }));
    expect(v).not.toMatch(/goodput \d/);
    expect(v).toMatch(/both meet under 1% of their SLOs/);
  });

  it('warns that the rate is past saturation when both meet under half of their SLOs', () => {
    const v = verdict(run('vllm', { sloAttainment: 0.2, goodputRps: 0.4 }), run('kvmgr', { sloAttainment: 0.45, goodputRps: 0.9 }));
    expect(v).toMatch(/goodput 2\.25×/);
    expect(v.split('\n')[1]).toMatch(/^warning: both sides meet under 50% of their SLOs .* past saturation/);
    const fine = verdict(run('vllm', { sloAttainment: 0.4 }), run('kvmgr', { sloAttainment: 0.9 }));
    expect(fine).not.toContain('warning');
  });
});
