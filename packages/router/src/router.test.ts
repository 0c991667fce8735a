import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { req, snap } from '../test/helpers.js';
import { localKeysFromBlockIds, localKeysFromTokens } from './hash64.js';
import { KvBlockIndex } from './kv-block-index.js';
import { HeuristicPredictor } from './predictors.js';
import { createRouter } from './router.js';

const THREE = [snap('A', { waiting: 1 }), snap('B', { waiting: 1 }), snap('C', { waiting: 1 })];

describe('baselines', () => {
  it('round-robin cycles over the candidates', () => {
    const r = createRouter('round-robin');
    const got = Array.from({ length: 5 }, (_, i) => r.route(req(`r${i}`, [i]), THREE, 0).instanceId);
    expect(got).toEqual(['A', 'B', 'C', 'A', 'B']);
    expect(r.stats().selectionsByReason).toEqual({ 'round-robin': 5 });
  });
  it('random is deterministic per seed and covers every instance', () => {
    const run = (seed: number) => {
      const r = createRouter({ strategy: 'random', seed });
      return Array.from({ length: 60 }, (_, i) => r.route(req(`r${i}`, [i]), THREE, 0).instanceId);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
    expect(new Set(run(7)).size).toBe(3);
  });
});

describe('routing', () => {
  it('is deterministic: same seed and inputs → same decisions', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 30 }), (reqs) => {
        const a = createRouter({ scorers: 'pa:3,qd:2,kv:2', seed: 3 });
        const b = createRouter({ scorers: 'pa:3,qd:2,kv:2', seed: 3 });
        reqs.forEach((ids, i) => {
          expect(a.route(req(`r${i}`, ids), THREE, i * 1000).instanceId).toBe(b.route(req(`r${i}`, ids), THREE, i * 1000).instanceId);
        });
      }),
      { numRuns: 50 },
    );
  });

  it('writes speculative entries at routing time; they attract the same prefix until the TTL', () => {
    const r = createRouter({ scorers: 'pa:1', speculativeTtlMs: 2 }); // 2 ms
    const first = r.route(req('r1', [1, 2, 3]), THREE, 0);
    const index = r.index as KvBlockIndex;
    expect(index.holders(0, 1, 1)).toEqual([{ instanceId: first.instanceId, tier: 'speculative' }]);
    expect(r.stats().speculativeBlocks).toBe(3);
    const second = r.route(req('r2', [1, 2, 9]), THREE, 1000);
    expect(second.instanceId).toBe(first.instanceId);
    expect(second.cachedTokens).toBe(32);
    expect(index.holders(0, 1, 2000)).toEqual([]); // expired
  });

  it('keys token ids the same way the index keys BlockStored events', () => {
    const index = new KvBlockIndex({ maxKeys: 256 });
    index.addInstance('B');
    const tokens = Array.from({ length: 48 }, (_, i) => i * 3);
    index.applyEvent('B', { type: 'BlockStored', blockHashes: [91n, 92n, 93n], parentBlockHash: null, tokenIds: tokens, blockSize: 16 });
    const r = createRouter('pa:1', { index });
    const d = r.route({ requestId: 'x', arrivalUs: 0, promptTokens: 50, maxTokens: 1, promptTokenIds: [...tokens, 1, 2] }, THREE, 0);
    expect(d.instanceId).toBe('B');
    expect(d.cachedTokens).toBe(48);
    expect(Array.from(r.keysFor({ requestId: 'x', arrivalUs: 0, promptTokens: 48, maxTokens: 1, promptTokenIds: tokens }))).toEqual(
      Array.from(localKeysFromTokens(tokens, 16)),
    );
  });

  it('prefix gate keeps only instances at or above the threshold, with 1% exploration', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    index.recordBlocks('C', localKeysFromBlockIds([5, 6]));
    const snaps = [snap('A'), snap('B'), snap('C', { waiting: 50, kvUtilization: 0.9 })];
    const r = createRouter({ scorers: 'qd:1,kv:1', prefixGate: { threshold: 0.5 }, speculativeTtlMs: 0, seed: 1 }, { index });
    let gated = 0;
    let explored = 0;
    for (let i = 0; i < 2000; i++) {
      const d = r.route(req(`r${i}`, [5, 6]), snaps, 0);
      if (d.reason === 'prefix-gate') {
        gated++;
        expect(d.instanceId).toBe('C');
      } else {
        expect(d.reason).toBe('prefix-gate-explore');
        explored++;
        expect(d.instanceId).not.toBe('C');
      }
    }
    expect(gated + explored).toBe(2000);
    expect(explored).toBeGreaterThan(5);
    expect(explored).toBeLessThan(50);
  });

  it('max picker breaks ties at random (seeded); weighted-random and top-k follow scores', () => {
    const tie = createRouter({ scorers: 'qd:1', seed: 5, speculativeTtlMs: 0 });
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const d = tie.route(req(`r${i}`, [i]), THREE, 0);
      expect(d.reason).toBe('scored-tie');
      ids.add(d.instanceId);
    }
    expect(ids.size).toBe(3);
    const snaps = [snap('A', { kvUtilization: 0 }), snap('B', { kvUtilization: 0.75 }), snap('C', { kvUtilization: 1 })];
    const wr = createRouter({ scorers: 'kv:1', picker: 'weighted-random', seed: 9, speculativeTtlMs: 0 });
    const count = { A: 0, B: 0, C: 0 } as Record<string, number>;
    for (let i = 0; i < 4000; i++) {
      const id = wr.route(req(`w${i}`, [i]), snaps, 0).instanceId;
      count[id] = (count[id] ?? 0) + 1;
    }
    expect(count.C).toBe(0); // weight 0
    expect((count.A as number) / 4000).toBeGreaterThan(0.75); // expected 0.8
    expect((count.A as number) / 4000).toBeLessThan(0.85);
    const tk = createRouter({ scorers: 'kv:1', picker: 'top-k', topK: 2, seed: 9, speculativeTtlMs: 0 });
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(tk.route(req(`t${i}`, [i]), snaps, 0).instanceId);
    expect([...seen].sort()).toEqual(['A', 'B']);
  });

  it('filters by role: generation never goes to embedding instances, embeddings only there', () => {
    const snaps = [snap('E', { role: 'embedding' }), snap('G', { role: 'both', waiting: 9 })];
    const r = createRouter('kvmgr-default');
    expect(r.route(req('g', [1]), snaps, 0).instanceId).toBe('G');
    expect(r.route(req('e', [2], { kind: 'embed' }), snaps, 0).instanceId).toBe('E');
    try {
      r.route(req('e2', [1], { kind: 'embed' }), [snap('G')].map((s) => ({ ...s, role: 'decode' as const })), 0);
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_UNAVAILABLE')).toBe(true);
    }
    expect(() => r.route(req('x', [1]), [], 0)).toThrow(/snapshots/);
  });

  it('counts predictor calls and failures, falls back to the heuristic, and records (prediction, actual)', () => {
    const broken = {
      prefillMs: () => {
        throw new Error('remote predictor down');
      },
      decodeWaitMs: () => Number.NaN,
      tpotMs: () => 12,
    };
    const r = createRouter({ scorers: 'pl:1', speculativeTtlMs: 0 }, { predictor: broken });
    const d = r.route(req('r1', [1, 2]), [snap('A', { waiting: 3 }), snap('B', { waiting: 1 })], 0);
    expect(d.instanceId).toBe('B');
    const s = r.stats();
    // 2 scorer calls + 1 prefill and 1 TPOT prediction for the record
    expect(s.predictorCalls).toBe(4);
    expect(s.predictorFailures).toBe(3);
    expect(r.recordActual('r1', { ttftMs: 30, tpotMs: 11 })).toBe(true);
    expect(r.recordActual('r1', { ttftMs: 30 })).toBe(false);
    // heuristic TTFT at B: 0.5 ms × 32 uncached + 10 ms × 1 waiting = 26 ms; TPOT from the predictor: 12 ms
    expect(r.predictionRecords()).toEqual([
      { requestId: 'r1', instanceId: 'B', predictedTtftMs: 26, predictedTpotMs: 12, actualTtftMs: 30, actualTpotMs: 11 },
    ]);
  });
});

describe('P/D decider', () => {
  const cluster = [snap('P1', { role: 'prefill' }), snap('D1', { role: 'decode' }), snap('D2', { role: 'decode', waiting: 4 })];

  it('disaggregates when uncached tokens at the decode instance reach nonCachedTokens', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    index.recordBlocks('D1', localKeysFromBlockIds([1, 2, 3]));
    const r = createRouter({ scorers: 'pa:3,qd:2', speculativeTtlMs: 0, pd: { nonCachedTokens: 32 } }, { index });
    // 4 blocks, 3 cached on D1: 16 uncached < 32
    const a = r.routePd(req('a', [1, 2, 3, 4]), cluster, 0);
    expect(a).toEqual({ prefill: 'D1', decode: 'D1', disaggregated: false, reason: 'below-threshold', uncachedTokensAtDecode: 16 });
    // 5 blocks: 32 uncached ≥ 32
    const b = r.routePd(req('b', [1, 2, 3, 4, 5]), cluster, 0);
    expect(b).toEqual({ prefill: 'P1', decode: 'D1', disaggregated: true, reason: 'disaggregated', uncachedTokensAtDecode: 32 });
    expect(r.stats().pdDecisionsByReason).toEqual({ 'below-threshold': 1, disaggregated: 1 });
    expect(r.recordActual('b', { ttftMs: 1 })).toBe(true);
    expect(r.predictionRecords().map((p) => p.instanceId)).toEqual(['D1']);
  });

  it('0 disables disaggregation; no prefill instance is reported', () => {
    const off = createRouter({ pd: { nonCachedTokens: 0 } });
    expect(off.routePd(req('a', [1, 2, 3]), cluster, 0).reason).toBe('pd-disabled');
    const r = createRouter({ pd: { nonCachedTokens: 1 } });
    const d = r.routePd(req('b', [1]), cluster.slice(1), 0);
    expect(d.reason).toBe('no-prefill-instance');
    expect(d.disaggregated).toBe(false);
  });
});

describe('SLO pair optimizer through the router', () => {
  it('reproduces the seed example: 320 + 60 + 5 = 385 ms vs 500 → 115; TPOT 15 vs 20 → 5; blended 93', () => {
    // 640 uncached tokens × 0.5 ms = 320 ms; decode waiting 6 × 10 ms = 60 ms;
    // transfer 1 ms + 640 × 131072 B / 20.97152 GB/s = 5 ms; TPOT 10 + 5 × 1 running = 15 ms
    const r = createRouter(
      { speculativeTtlMs: 0, pd: { buffer: 1.0, bytesPerToken: 131072, bandwidthBytesPerSec: 20_971_520_000, transferBaseUs: 1000 } },
      { predictor: new HeuristicPredictor({ tpotBaseMs: 10 }) },
    );
    const snaps = [snap('P', { role: 'prefill' }), snap('D', { role: 'decode', waiting: 6, running: 1 })];
    const blocks = Array.from({ length: 40 }, (_, i) => i + 1);
    const d = r.routePd(req('slo', blocks, { slo: { ttftMs: 500, tpotMs: 20 } }), snaps, 0);
    expect(d.prefill).toBe('P');
    expect(d.decode).toBe('D');
    expect(d.disaggregated).toBe(true);
    expect(d.reason).toBe('slo-pair');
    const p = d.pair;
    expect(p?.prefillMs).toBe(320);
    expect(p?.decodeWaitMs).toBe(60);
    expect(p?.transferMs).toBeCloseTo(5, 12);
    expect(p?.ttftMs).toBeCloseTo(385, 12);
    expect(p?.ttftHeadroomMs).toBeCloseTo(115, 12);
    expect(p?.tpotMs).toBe(15);
    expect(p?.tpotHeadroomMs).toBe(5);
    expect(p?.blendedHeadroomMs).toBeCloseTo(93, 12);
    expect(r.stats().pairsEvaluated).toBe(1);
  });
});
