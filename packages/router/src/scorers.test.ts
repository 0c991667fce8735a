import { describe, expect, it } from 'vitest';
import { req, snap } from '../test/helpers.js';
import { localKeysFromBlockIds } from './hash64.js';
import { KvBlockIndex } from './kv-block-index.js';
import { createRouter } from './router.js';
import type { RouteRequest } from './types.js';

// Hand-built cluster: A busy-ish with the whole prefix on GPU, B idle with half of it on CPU
// (block 0 also on GPU), C overloaded and cold.
const SNAPS = [
  snap('A', { kvUtilization: 0.5, waiting: 2, running: 4, pendingTransferLatency: 5000, kvThrashingRate: 2 }),
  snap('B', { kvUtilization: 0.2, waiting: 0, running: 1 }),
  snap('C', { kvUtilization: 0.9, waiting: 6, running: 8, pendingTransferLatency: 20000, kvThrashingRate: 20 }),
];
const BLOCKS = [1, 2, 3, 4];

function cluster(): KvBlockIndex {
  const index = new KvBlockIndex({ maxKeys: 1024 });
  const keys = localKeysFromBlockIds(BLOCKS);
  index.recordBlocks('A', keys, 'gpu');
  index.recordBlocks('B', keys, 'cpu', 0, 2);
  index.recordBlocks('B', keys, 'gpu', 0, 1);
  return index;
}

function scoresOf(scorers: string, request: RouteRequest = req('r', BLOCKS)): number[] {
  const router = createRouter({ scorers, speculativeTtlMs: 0 }, { index: cluster() });
  const d = router.route(request, SNAPS, 0);
  return Array.from(d.scores as Float64Array);
}

function expectClose(got: number[], want: number[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 12);
}

describe('scorers (golden, hand-computed)', () => {
  it('prefix-affinity: tier-weighted consecutive blocks / total', () => {
    // A 4 GPU blocks → 4/4; B block 0 GPU (1.0) + block 1 CPU (0.8) → 1.8/4; C none
    expectClose(scoresOf('pa:1'), [1, 0.45, 0]);
  });
  it('queue-depth: (max − waiting) / (max − min)', () => {
    expectClose(scoresOf('qd:1'), [4 / 6, 1, 0]);
  });
  it('kv-utilization: 1 − kvUtilization', () => {
    expectClose(scoresOf('kv:1'), [0.5, 0.8, 0.1]);
  });
  it('load-aware: 0.5 idle, 0.5 × (1 − waiting/128)', () => {
    expectClose(scoresOf('la:1'), [0.4921875, 0.5, 0.4765625]);
  });
  it('active-requests: (max − active) / max', () => {
    expectClose(scoresOf('ar:1'), [8 / 14, 13 / 14, 0]);
  });
  it('kv-pressure: 1 − (kv + 0.5·transfer share + 0.5·thrash share)', () => {
    // A: 1 − (0.5 + 0.5·0.5 + 0.5·0.2) = 0.15; B: 0.8; C: floored at 0
    expectClose(scoresOf('kp:1'), [0.15, 0.8, 0]);
  });
  it('kv-pressure-slo: transfer penalty × class weight (critical 5, batch 0.2)', () => {
    expectClose(scoresOf('kps:1', req('r', BLOCKS, { sloClass: 'critical' })), [0, 0.8, 0]);
    // A batch: 1 − (0.5 + 0.2·0.25 + 0.1) = 0.35
    expectClose(scoresOf('kps:1', req('r', BLOCKS, { sloClass: 'batch' })), [0.35, 0.8, 0]);
    expectClose(scoresOf('kps:1'), [0.15, 0.8, 0]);
  });
  it('predicted-latency: min–max of predicted TTFT, or SLO headroom share', () => {
    // TTFT: A 0 uncached + 10·2 = 20 ms; B 0.5·32 = 16 ms; C 0.5·64 + 10·6 = 92 ms
    expectClose(scoresOf('pl:1'), [72 / 76, 1, 0]);
    expectClose(scoresOf('pl:1', req('r', BLOCKS, { slo: { ttftMs: 50 } })), [0.6, 0.68, 0]);
  });
  it('no-hit-lru: 0.5 everywhere when some instance has a hit', () => {
    expectClose(scoresOf('nh:1'), [0.5, 0.5, 0.5]);
  });
  it('no-hit-lru: cold requests go to instances not used for cold requests recently', () => {
    const router = createRouter({ scorers: 'nh:1', speculativeTtlMs: 0 });
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) seen.push(router.route(req(`r${i}`, [100 + i]), SNAPS, 0).instanceId);
    expect(new Set(seen).size).toBe(3);
    const d = router.route(req('r4', [200]), SNAPS, 0);
    // ranks by last cold use: seen[0] oldest → 2/3, seen[1] → 1/3, seen[2] → 0
    expect(d.instanceId).toBe(seen[0]);
    const byId = new Map(SNAPS.map((s, i) => [s.instanceId, (d.scores as Float64Array)[i]]));
    expect(byId.get(seen[0] as string)).toBeCloseTo(2 / 3, 12);
    expect(byId.get(seen[1] as string)).toBeCloseTo(1 / 3, 12);
    expect(byId.get(seen[2] as string)).toBe(0);
  });
  it('approx-prefix: blocks this router sent to an instance before', () => {
    const router = createRouter({ scorers: 'ap:1,qd:0.001', speculativeTtlMs: 0 });
    const first = router.route(req('r1', [7, 8, 9, 10]), SNAPS, 0);
    expect(first.instanceId).toBe('B'); // queue depth breaks the all-zero tie
    const again = router.route(req('r2', [7, 8, 11, 12]), SNAPS, 0);
    expect(again.instanceId).toBe('B');
    expect((again.scores as Float64Array)[1]).toBeCloseTo(0.5 + 0.001, 12);
  });
});

describe('weighted sums and picks (golden)', () => {
  it('pa:3,qd:2,kv:2 picks A: 5.333 vs 4.95 vs 0.2', () => {
    expectClose(scoresOf('pa:3,qd:2,kv:2'), [3 + 8 / 6 + 1, 1.35 + 2 + 1.6, 0.2]);
    const router = createRouter('pa:3,qd:2,kv:2', { index: cluster() });
    const d = router.route(req('r', BLOCKS), SNAPS, 0);
    expect(d.instanceId).toBe('A');
    expect(d.reason).toBe('scored');
    expect(d.cachedTokens).toBe(64);
  });
  it('kvmgr-default (pa:3,qd:2,kp:2) prefers B: KV pressure outweighs A’s extra prefix', () => {
    const router = createRouter('kvmgr-default', { index: cluster() });
    const d = router.route(req('r', BLOCKS), SNAPS, 0);
    expectClose(Array.from(d.scores as Float64Array), [3 + 8 / 6 + 0.3, 1.35 + 2 + 1.6, 0]);
    expect(d.instanceId).toBe('B');
    expect(d.cachedTokens).toBe(32);
  });
});
