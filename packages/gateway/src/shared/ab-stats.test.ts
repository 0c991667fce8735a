/**
 * Merging A/B statistics of replicas: the moments merged from disjoint parts of the traffic are
 * the moments of all of it (counts exactly; mean and M2 against an exact rational reference), the
 * merged report equals the report of one experiment that saw everything, and snapshots survive
 * their stored form bit for bit.
 */
import { type ResolvedRouterConfig, Router } from '@kvmgr/router';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AB_METRIC_NAMES, AbExperiment, type AbMoments, type AbOutcome, type AbSnapshot, mergeAbSnapshots, mergeMoments, resolveAbConfig } from '../ab.js';
import { decodeAbSnapshot, encodeAbSnapshot } from './ab-stats.js';

/** Welford over `xs` (what one replica's experiment keeps). */
function welford(xs: readonly number[]): AbMoments {
  let n = 0;
  let mean = 0;
  let m2 = 0;
  for (const x of xs) {
    n++;
    const d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  return { n, mean, m2 };
}

/**
 * Exact moments of observations k/8 (k integer): mean = Σk / 8n and M2 = (nΣk² − (Σk)²) / 64n in
 * BigInt, rounded once to a double at the end.
 */
function exact(ks: readonly number[]): AbMoments {
  const n = BigInt(ks.length);
  let s = 0n;
  let q = 0n;
  for (const k of ks) {
    s += BigInt(k);
    q += BigInt(k) * BigInt(k);
  }
  if (ks.length === 0) return { n: 0, mean: 0, m2: 0 };
  return { n: ks.length, mean: Number(s) / (8 * ks.length), m2: Number(n * q - s * s) / (64 * ks.length) };
}

function close(got: number, want: number, scale: number): boolean {
  return Math.abs(got - want) <= 1e-9 * Math.max(Math.abs(want), scale);
}

describe('mergeMoments', () => {
  it('moments merged from any partition of the observations (any number of replicas, any order) equal the moments of all of them', () => {
    fc.assert(
      fc.property(
        // observations k/8 ms (exact in binary), spread around a large mean like latencies; each tagged with its replica
        fc.array(fc.tuple(fc.integer({ min: 0, max: 8_000_000 }), fc.integer({ min: 0, max: 3 })), { maxLength: 300 }),
        fc.integer({ min: 0, max: 80_000_000 }),
        (obs, offset) => {
          const ks = obs.map(([k]) => k + offset);
          const parts: number[][] = [[], [], [], []];
          for (const [i, [, r]] of obs.entries()) (parts[r] as number[]).push((ks[i] as number) / 8);
          const merged = parts.map(welford).reduce(mergeMoments, { n: 0, mean: 0, m2: 0 });
          const want = exact(ks);
          expect(merged.n).toBe(want.n);
          const meanScale = offset / 8 + 1;
          expect(close(merged.mean, want.mean, meanScale), `mean ${merged.mean} vs ${want.mean}`).toBe(true);
          // M2's rounding scales with n·mean² ε-ish terms; bound against the spread and the data's magnitude
          expect(close(merged.m2, want.m2, want.n * 1e-3 * meanScale), `m2 ${merged.m2} vs ${want.m2}`).toBe(true);
          // and the same as one replica that saw everything, in order
          const one = welford(ks.map((k) => k / 8));
          expect(merged.n).toBe(one.n);
          expect(close(merged.mean, one.mean, meanScale)).toBe(true);
          expect(close(merged.m2, one.m2, want.n * 1e-3 * meanScale)).toBe(true);
        },
      ),
      // seeded: the bounds above are to rounding, a property of the draws fast-check made, not a universal one
      { numRuns: 300, seed: 301 },
    );
  });

  it('an empty side changes nothing (bit for bit)', () => {
    const m = welford([1.5, 2.25, 7]);
    expect(mergeMoments(m, { n: 0, mean: 0, m2: 0 })).toEqual(m);
    expect(mergeMoments({ n: 0, mean: 0, m2: 0 }, m)).toEqual(m);
  });
});

/** One router per arm configuration, built once (the merge does not route; building is the slow part). */
const routers = new Map<ResolvedRouterConfig, Router>();
const build = (c: ResolvedRouterConfig) => routers.get(c) ?? (routers.set(c, new Router(c)).get(c) as Router);
const config = resolveAbConfig({ split: 0.5, a: { name: 'prefix', routing: 'pa:3,qd:2,kv:2' }, b: { name: 'load', routing: 'qd:1,kv:1' } }, 'm');

/** A request outcome drawn from integers (exact in binary where the metrics are ratios of them). */
const outcome = fc.record({
  ok: fc.boolean(),
  stream: fc.boolean(),
  ttft: fc.integer({ min: 1, max: 40_000 }),
  tail: fc.integer({ min: 0, max: 40_000 }),
  prompt: fc.integer({ min: 0, max: 4000 }),
  cached: fc.integer({ min: 0, max: 4000 }),
  completion: fc.integer({ min: 0, max: 64 }),
  slo: fc.option(fc.integer({ min: 1, max: 40_000 }), { nil: undefined }),
  session: fc.integer({ min: 0, max: 40 }),
  replica: fc.integer({ min: 0, max: 2 }),
});

describe('mergeAbSnapshots', () => {
  it('the merged snapshot of replicas equals the snapshot of one experiment that saw all their requests; the reports agree', () => {
    fc.assert(
      fc.property(fc.array(outcome, { maxLength: 120 }), (reqs) => {
        const replicas = [0, 1, 2].map(() => new AbExperiment(config, build, 1000));
        const all = new AbExperiment(config, build, 1000);
        reqs.forEach((r, i) => {
          const o: AbOutcome = {
            ok: r.ok,
            stream: r.stream,
            ttftMs: r.ttft / 4,
            e2eMs: (r.ttft + r.tail) / 4,
            promptTokens: r.prompt,
            cachedTokens: Math.min(r.cached, r.prompt),
            completionTokens: r.completion,
            slo: { ttftMs: r.slo },
          };
          for (const x of [replicas[r.replica] as AbExperiment, all]) {
            const arm = x.assign({ 'x-session-id': `c${r.session}` }, {}, `req-${i}`);
            x.record(arm, o);
          }
        });
        const merged = replicas.map((x) => x.snapshot()).reduce(mergeAbSnapshots);
        const want = all.snapshot();
        expect(merged.id).toBe(want.id);
        expect(merged.assigned).toEqual(want.assigned);
        expect(merged.recorded).toEqual(want.recorded);
        expect(merged.keySources).toEqual(want.keySources);
        for (const i of [0, 1] as const) {
          for (const m of AB_METRIC_NAMES) {
            const g = merged.stats[i][m];
            const w = want.stats[i][m];
            expect(g.n, `${i} ${m} n`).toBe(w.n);
            expect(close(g.mean, w.mean, 1), `${i} ${m} mean ${g.mean} vs ${w.mean}`).toBe(true);
            expect(close(g.m2, w.m2, w.n), `${i} ${m} m2 ${g.m2} vs ${w.m2}`).toBe(true);
          }
        }
        // the report computed from the merge is the report of the whole (to rounding)
        const view = { snapshot: merged, scope: 'fleet' as const, contributors: [], fallback: null };
        const got = all.report(0.95, view);
        const ref = all.report();
        for (const arm of ['a', 'b'] as const) {
          expect(got.arms[arm].requests).toBe(ref.arms[arm].requests);
          for (const m of AB_METRIC_NAMES) {
            const g = got.arms[arm].metrics[m];
            const w = ref.arms[arm].metrics[m];
            expect(g.n).toBe(w.n);
            for (const k of ['mean', 'sd', 'ciLow', 'ciHigh'] as const) {
              if (w[k] === null) expect(g[k], `${arm} ${m} ${k}`).toBeNull();
              else expect(close(g[k] as number, w[k] as number, 1), `${arm} ${m} ${k}: ${g[k]} vs ${w[k]}`).toBe(true);
            }
          }
        }
        for (const m of AB_METRIC_NAMES) {
          const g = got.differences[m];
          const w = ref.differences[m];
          for (const k of ['diff', 'ciLow', 'ciHigh'] as const) {
            if (w[k] === null) expect(g[k]).toBeNull();
            else expect(close(g[k] as number, w[k] as number, 1), `${m} ${k}: ${g[k]} vs ${w[k]}`).toBe(true);
          }
        }
      }),
      // seeded, as above: the reports agree to rounding
      { numRuns: 150, seed: 151 },
    );
  });

  it('refuses snapshots of different experiments', () => {
    const a = new AbExperiment(config, build).snapshot();
    const b = new AbExperiment({ ...config, salt: 'other' }, build).snapshot();
    expect(() => mergeAbSnapshots(a, b)).toThrow(/cannot merge/);
  });
});

describe('stored snapshots', () => {
  // JSON writes −0 as 0 (the moments never hold −0: they start at +0)
  const dbl = (min?: number) => fc.double({ ...(min === undefined ? {} : { min }), noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x));
  const moments = fc.record({ n: fc.nat(), mean: dbl(), m2: dbl(0) });
  const armArb = fc.record(Object.fromEntries(AB_METRIC_NAMES.map((m) => [m, moments])) as Record<(typeof AB_METRIC_NAMES)[number], typeof moments>);
  it('round-trip bit for bit; anything else is refused', () => {
    fc.assert(
      fc.property(armArb, armArb, fc.nat(), fc.tuple(fc.nat(), fc.nat()), fc.tuple(fc.nat(), fc.nat()), fc.tuple(fc.nat(), fc.nat(), fc.nat()), (a, b, since, assigned, recorded, src) => {
        const s: AbSnapshot = { id: 'abc', sinceMs: since, assigned, recorded, keySources: { session: src[0], user: src[1], request: src[2] }, stats: [a, b] };
        const d = decodeAbSnapshot(encodeAbSnapshot(s, 12345), 'abc');
        expect(d?.atMs).toBe(12345);
        // every double (but −0) comes back as the same double
        expect(d?.snapshot).toEqual(s);
      }),
    );
    expect(decodeAbSnapshot('not json', 'x')).toBeUndefined();
    expect(decodeAbSnapshot('{"v":2}', 'x')).toBeUndefined();
    const good = JSON.parse(encodeAbSnapshot(new AbExperiment(config, build).snapshot(), 1)) as { stats: Record<string, unknown>[] };
    expect(decodeAbSnapshot(JSON.stringify(good), 'x')).toBeDefined();
    (good.stats[1] as Record<string, unknown>)['e2eMs'] = [1.5, 0, 0];
    expect(decodeAbSnapshot(JSON.stringify(good), 'x')).toBeUndefined();
  });
});
