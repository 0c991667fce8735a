import { isKvmgrError } from '@kvmgr/core';
import { type ResolvedRouterConfig, Router } from '@kvmgr/router';
import { describe, expect, it } from 'vitest';
import { AbExperiment, abHashUnit, resolveAbConfig, welchInterval } from './ab.js';
import { resolveGatewayConfig } from './config.js';

function badKey(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!isKvmgrError(e) || e.code !== 'KVMGR_BAD_CONFIG') throw e;
    return e.message;
  }
  throw new Error('did not throw');
}

const build = (c: ResolvedRouterConfig) => new Router(c);

describe('resolveAbConfig', () => {
  it('fills in defaults and resolves both routings', () => {
    const c = resolveAbConfig({ a: { routing: 'pa:3,qd:2,kv:2' }, b: { name: 'kv-only', routing: 'kv:1' } }, 'm');
    expect(c.split).toBe(0.5);
    expect(c.a.name).toBe('a');
    expect(c.b.name).toBe('kv-only');
    expect(c.sessionHeader).toBe('x-session-id');
    expect(c.a.routing.model).toBe('m');
    expect(c.b.routing.scorers.map((s) => s.name)).toEqual(['kv-utilization']);
  });

  it('errors name the key', () => {
    expect(badKey(() => resolveAbConfig({ split: 1.5, a: { routing: 'kv:1' }, b: { routing: 'kv:1' } }))).toMatch(/^ab\.split: /);
    expect(badKey(() => resolveAbConfig({ a: { routing: 'kv:1' } }))).toMatch(/^ab\.b: /);
    expect(badKey(() => resolveAbConfig({ a: { routing: 'kv:1' }, b: { routing: 'nope:1' } }))).toMatch(/^ab\.b\.routing/);
    expect(badKey(() => resolveAbConfig({ a: { routing: 'kv:1' }, b: { routing: { scorers: [{ name: 'kv-utilization', weight: -1 }] } } }))).toMatch(/^ab\.b\.routing/);
    expect(badKey(() => resolveAbConfig({ a: { routing: 'kv:1' }, b: {} }))).toMatch(/^ab\.b\.routing: /);
    expect(badKey(() => resolveAbConfig({ a: { name: 'x', routing: 'kv:1' }, b: { name: 'x', routing: 'qd:1' } }))).toMatch(/^ab\.b\.name: .*different names/);
    expect(badKey(() => resolveAbConfig({ a: { routing: 'kv:1' }, b: { routing: 'kv:1' }, extra: 1 }))).toMatch(/^ab: .*extra/);
    expect(badKey(() => resolveGatewayConfig({ ab: { a: { routing: 'kv:1' }, b: { routing: 'kv:1' }, split: -0.1 } }))).toMatch(/^ab\.split: /);
  });

  it('the gateway config carries it', () => {
    expect(resolveGatewayConfig({}).ab).toBeUndefined();
    expect(resolveGatewayConfig({ ab: { split: 0.2, a: { routing: 'kv:1' }, b: { routing: 'qd:1' } } }).ab?.split).toBe(0.2);
  });
});

describe('abHashUnit', () => {
  it('is stable, in [0, 1), salt-dependent, and splits near the configured fraction', () => {
    expect(abHashUnit('s:abc')).toBe(abHashUnit('s:abc'));
    expect(abHashUnit('s:abc', 'x')).not.toBe(abHashUnit('s:abc'));
    let below = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const u = abHashUnit(`s:${i}`);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      if (u < 0.3) below++;
    }
    // binomial(4000, 0.3): sd ≈ 29; 5 sd either side
    expect(Math.abs(below - 0.3 * n)).toBeLessThan(145);
  });
});

describe('welchInterval', () => {
  it('equal n and variances: ν = 2(n − 1), t(0.975, 10) = 2.228139 from the table', () => {
    // a = 1..6, b = 3..8: means 3.5 and 5.5, variances 3.5
    const w = welchInterval({ n: 6, mean: 3.5, variance: 3.5 }, { n: 6, mean: 5.5, variance: 3.5 });
    expect(w.diff).toBe(2);
    expect(w.dof).toBeCloseTo(10, 10);
    const half = 2.228139 * Math.sqrt(3.5 / 6 + 3.5 / 6);
    expect(w.ciLow).toBeCloseTo(2 - half, 4);
    expect(w.ciHigh).toBeCloseTo(2 + half, 4);
  });

  it('unequal variances: Welch–Satterthwaite ν', () => {
    const w = welchInterval({ n: 5, mean: 3, variance: 2.5 }, { n: 6, mean: 7, variance: 14 });
    const va = 2.5 / 5;
    const vb = 14 / 6;
    expect(w.dof).toBeCloseTo((va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 5), 10);
    expect(w.ciLow).toBeLessThan(4);
    expect(w.ciHigh).toBeGreaterThan(4);
  });

  it('no interval below 2 samples; zero width when both variances are 0', () => {
    expect(welchInterval({ n: 0, mean: 0, variance: Number.NaN }, { n: 3, mean: 1, variance: 1 })).toEqual({ diff: null, ciLow: null, ciHigh: null, dof: null });
    expect(welchInterval({ n: 1, mean: 2, variance: Number.NaN }, { n: 3, mean: 1, variance: 1 })).toEqual({ diff: -1, ciLow: null, ciHigh: null, dof: null });
    expect(welchInterval({ n: 3, mean: 1, variance: 0 }, { n: 3, mean: 1, variance: 0 })).toEqual({ diff: 0, ciLow: 0, ciHigh: 0, dof: 4 });
  });
});

describe('AbExperiment', () => {
  const cfg = resolveAbConfig({ split: 0.5, a: { name: 'control', routing: 'pa:3,qd:2,kv:2' }, b: { name: 'kv', routing: 'kv:1' } });

  it('assigns by session header, then user, then request id; the same key always gets the same arm', () => {
    const ex = new AbExperiment(cfg, build);
    const expectArm = (key: string) => (abHashUnit(key) < 0.5 ? 'kv' : 'control');
    for (let i = 0; i < 50; i++) {
      expect(ex.assign({ 'x-session-id': `conv-${i}` }, { user: 'ignored' }, `r${i}`).name).toBe(expectArm(`s:conv-${i}`));
      expect(ex.assign({ 'x-session-id': `conv-${i}` }, {}, `other-${i}`).name).toBe(expectArm(`s:conv-${i}`));
      expect(ex.assign({}, { user: `u${i}` }, `r${i}`).name).toBe(expectArm(`u:u${i}`));
      expect(ex.assign({}, {}, `r${i}`).name).toBe(expectArm(`r:r${i}`));
    }
    const r = ex.report();
    expect(r.keySources).toEqual({ session: 100, user: 50, request: 50 });
    expect(r.arms.a.assigned + r.arms.b.assigned).toBe(200);
  });

  it('split 0 and 1 send everything to one arm', () => {
    const all = new AbExperiment({ ...cfg, split: 1 }, build);
    const none = new AbExperiment({ ...cfg, split: 0 }, build);
    for (let i = 0; i < 20; i++) {
      expect(all.assign({}, {}, `r${i}`).index).toBe(1);
      expect(none.assign({}, {}, `r${i}`).index).toBe(0);
    }
  });

  it('records outcomes into per-arm means, goodput against the SLO headers, errors, and Welch differences', () => {
    const ex = new AbExperiment(cfg, build);
    const a = { name: 'control', index: 0 as const };
    const b = { name: 'kv', index: 1 as const };
    const slo = { ttftMs: 100 };
    for (const t of [50, 80, 120, 90]) ex.record(a, { ok: true, stream: true, ttftMs: t, e2eMs: t + 90, completionTokens: 10, promptTokens: 100, cachedTokens: 50, slo });
    ex.record(a, { ok: false, stream: true, slo });
    for (const t of [40, 60]) ex.record(b, { ok: true, stream: false, ttftMs: t, e2eMs: t, completionTokens: 10, promptTokens: 100, cachedTokens: 80, slo });
    const r = ex.report();
    expect(r.arms.a.requests).toBe(5);
    expect(r.arms.a.metrics.ttftMs.n).toBe(4);
    expect(r.arms.a.metrics.ttftMs.mean).toBe(85);
    expect(r.arms.a.metrics.tpotMs.mean).toBe(10);
    expect(r.arms.b.metrics.tpotMs.n).toBe(0); // not streamed: no TPOT
    expect(r.arms.a.metrics.goodput.mean).toBeCloseTo(3 / 5, 12); // 120 misses, the error misses
    expect(r.arms.a.metrics.errors.mean).toBeCloseTo(1 / 5, 12);
    expect(r.arms.b.metrics.cachedShare.mean).toBeCloseTo(0.8, 12);
    expect(r.differences.ttftMs.diff).toBe(50 - 85);
    expect(r.differences.cachedShare.diff).toBeCloseTo(0.3, 12);
    const ci = r.arms.a.metrics.ttftMs;
    expect(ci.ciLow).toBeLessThan(85);
    expect(ci.ciHigh).toBeGreaterThan(85);
    const d = r.differences.ttftMs;
    expect(d.ciLow).toBeLessThan(-35);
    expect(d.ciHigh).toBeGreaterThan(-35);
    expect(r.id).toMatch(/^[0-9a-f]{12}$/);
  });

  it('an arm without its own blockSize follows the endpoints; with one it keeps it', () => {
    const fixed = resolveAbConfig({ a: { routing: 'kv:1' }, b: { routing: { scorers: 'kv:1', blockSize: 32 } } });
    const ex = new AbExperiment(fixed, build);
    expect(ex.routerOf({ name: 'a', index: 0 }, 64).config.blockSize).toBe(64);
    expect(ex.routerOf({ name: 'a', index: 0 }, 16).config.blockSize).toBe(16);
    expect(ex.routerOf({ name: 'b', index: 1 }, 64).config.blockSize).toBe(32);
  });
});
