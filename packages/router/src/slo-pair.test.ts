import { createRng } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { snap } from '../test/helpers.js';
import { type DecodeCandidate, type PrefillCandidate, evaluatePair, selectSloPair } from './slo-pair.js';

describe('evaluatePair', () => {
  it('the seed pair example: 385 ms vs 500 at buffer 1.0 → 115; TPOT 15 vs 20 → 5; blended 93', () => {
    const e = evaluatePair({ prefill: 'p', decode: 'd', prefillMs: 320, decodeWaitMs: 60, transferMs: 5, tpotMs: 15, ttftSloMs: 500, tpotSloMs: 20, buffer: 1.0 });
    expect(e.ttftMs).toBe(385);
    expect(e.ttftHeadroomMs).toBe(115);
    expect(e.tpotHeadroomMs).toBe(5);
    expect(e.blendedHeadroomMs).toBeCloseTo(93, 12);
  });
  it('defaults to buffer 0.9; an absent SLO gives 0 headroom', () => {
    const e = evaluatePair({ prefill: 'p', decode: 'd', prefillMs: 320, decodeWaitMs: 60, transferMs: 5, tpotMs: 15, ttftSloMs: 500 });
    expect(e.ttftHeadroomMs).toBeCloseTo(65, 12); // 450 − 385
    expect(e.tpotHeadroomMs).toBe(0);
    expect(e.blendedHeadroomMs).toBeCloseTo(52, 12);
  });
});

const P = (id: string, prefillMs: number, fields = {}): PrefillCandidate => ({ snapshot: snap(id, { role: 'prefill', ...fields }), prefillMs });
const D = (id: string, decodeWaitMs: number, tpotMs: number, fields = {}): DecodeCandidate => ({
  snapshot: snap(id, { role: 'decode', ...fields }),
  decodeWaitMs,
  tpotMs,
  tokensToMove: 100,
});
const noTransfer = () => 0;

describe('selectSloPair', () => {
  it('picks among positive pairs only, in proportion to blended headroom', () => {
    // SLO ttft 100 (buffer 1), tpot 50: pairs (p1,d1) h = 0.8·80 + 0.2·40 = 72, (p2,d1) = 0.8·20 + 8 = 24,
    // (p3,·) negative TTFT
    const pre = [P('p1', 20), P('p2', 80), P('p3', 200, { waiting: 3 })];
    const dec = [D('d1', 0, 10, { running: 1 })];
    const rng = createRng(11);
    const count = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const c = selectSloPair(pre, dec, noTransfer, { ttftMs: 100, tpotMs: 50 }, rng, { buffer: 1, exploration: 0 });
      expect(c?.reason).toBe('slo-pair');
      count.set(c?.pair.prefill as string, (count.get(c?.pair.prefill as string) ?? 0) + 1);
    }
    expect(count.get('p3')).toBeUndefined();
    const share = (count.get('p1') as number) / 4000;
    expect(share).toBeGreaterThan(0.72); // expected 72/96 = 0.75
    expect(share).toBeLessThan(0.78);
  });

  it('explores a negative pair with the exploration probability', () => {
    const pre = [P('p1', 20), P('p3', 200, { waiting: 3 })];
    const dec = [D('d1', 0, 10, { running: 1 })];
    const c = selectSloPair(pre, dec, noTransfer, { ttftMs: 100, tpotMs: 50 }, createRng(1), { buffer: 1, exploration: 1 });
    expect(c?.reason).toBe('slo-pair-explore');
    expect(c?.pair.prefill).toBe('p3');
  });

  it('orders negative pairs: idle first, then only-TPOT, only-TTFT, both', () => {
    const slo = { ttftMs: 100, tpotMs: 20 };
    const rng = createRng(2);
    const pick = (pre: PrefillCandidate[], dec: DecodeCandidate[]) =>
      selectSloPair(pre, dec, noTransfer, slo, rng, { buffer: 1 })?.pair;
    const busy = { running: 1 };
    // both violated (busy) vs only TTFT violated (busy) vs only TPOT violated (busy) vs idle (both violated)
    const bothV = [P('pb', 500, busy)];
    const decBoth = D('db', 0, 30, busy);
    const decTtftOnly = D('dt', 0, 10, busy);
    expect(pick(bothV, [decBoth, decTtftOnly])?.decode).toBe('dt');
    const okP = [P('pok', 10, busy)];
    expect(pick(okP, [D('dtpot', 0, 30, busy)])?.decode).toBe('dtpot');
    const idleP = P('pidle', 500);
    const idleD = D('didle', 0, 30);
    const r = pick([idleP, P('pok2', 10, busy)], [idleD, D('dtpot2', 0, 30, busy)]);
    expect(r?.prefill).toBe('pidle');
    expect(r?.decode).toBe('didle');
    const c = selectSloPair([idleP], [idleD], noTransfer, slo, rng, { buffer: 1 });
    expect(c?.reason).toBe('slo-pair-negative');
  });

  it('prunes to top-k per side and counts pairs evaluated; same instance has no transfer or wait', () => {
    const pre = Array.from({ length: 10 }, (_, i) => P(`p${i}`, 10 + i));
    const dec = Array.from({ length: 10 }, (_, i) => D(`d${i}`, i, 10));
    const c = selectSloPair(pre, dec, () => 1, { ttftMs: 1000 }, createRng(3), { topK: 4 });
    expect(c?.pairsEvaluated).toBe(16);
    const both = { snapshot: snap('x'), prefillMs: 10 };
    const same = selectSloPair([both], [{ snapshot: snap('x'), decodeWaitMs: 50, tpotMs: 5, tokensToMove: 10 }], () => 99, { ttftMs: 100 }, createRng(3));
    expect(same?.pair.transferMs).toBe(0);
    expect(same?.pair.decodeWaitMs).toBe(0);
    expect(selectSloPair([], dec, noTransfer, {}, createRng(1))).toBeUndefined();
  });
});
