import { type VictimCandidate, type VictimDecision, type VictimSelector, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createVictimSelector } from './registry.js';
import { SglangVictimSelector, SloAwareVictimSelector, VllmVictimSelector } from './victim-selectors.js';

const cand = (id: string, o: Partial<VictimCandidate> = {}): VictimCandidate => ({
  requestId: id,
  blocks: 4,
  promptTokens: 64,
  computedTokens: 64,
  generatedTokens: 10,
  remainingTokens: 100,
  admittedUs: 0,
  ...o,
});

/** The reference selection: every candidate that frees blocks, fully sorted by (protection, index), taken until `need` is freed. */
function fullSortSelection(sel: SloAwareVictimSelector, cs: readonly VictimCandidate[], need: number): { victims: VictimDecision[]; freed: number } {
  const order = cs
    .map((x, i) => ({ x, i, s: sel.protectionOf(x) }))
    .filter((e) => e.x.blocks > 0)
    .sort((a, b) => a.s - b.s || a.i - b.i);
  const victims: VictimDecision[] = [];
  let freed = 0;
  for (const e of order) {
    if (freed >= need) break;
    victims.push({ requestId: e.x.requestId, mode: sel.modeFor(e.x).mode, freedBlocks: e.x.blocks });
    freed += e.x.blocks;
  }
  return { victims, freed };
}

describe('SloAwareVictimSelector', () => {
  const sel = new SloAwareVictimSelector();

  it('preempts the request with the most SLO slack first', () => {
    const r = sel.selectVictims([cand('tight', { sloSlackMs: 10 }), cand('loose', { sloSlackMs: 5000 })], 4, 0);
    expect(r.victims.map((v) => v.requestId)).toEqual(['loose']);
    expect(r).toMatchObject({ freedBlocks: 4, satisfied: true, shortfallBlocks: 0 });
  });

  it('protects high priority and near-completion requests', () => {
    const r = sel.selectVictims(
      [cand('vip', { priority: 10 }), cand('almost', { remainingTokens: 3 }), cand('plain')],
      12,
      0,
    );
    // near-completion protection (default 100) outranks priority 10 (weight 1)
    expect(r.victims.map((v) => v.requestId)).toEqual(['plain', 'vip', 'almost']);
    expect(sel.selectVictims([cand('vip', { priority: 10 }), cand('plain')], 4, 0).victims[0]?.requestId).toBe('plain');
  });

  it('prefers victims that are cheap to preempt per freed block', () => {
    const r = sel.selectVictims([cand('costly', { recomputeCostUs: 400_000 }), cand('cheap', { recomputeCostUs: 1000 })], 1, 0);
    expect(r.victims.map((v) => v.requestId)).toEqual(['cheap']);
  });

  it('chooses swap only when it is cheaper than recompute', () => {
    const r = sel.selectVictims(
      [cand('a', { recomputeCostUs: 5000, swapCostUs: 1000 }), cand('b', { recomputeCostUs: 1000, swapCostUs: 5000 })],
      8,
      0,
    );
    expect(Object.fromEntries(r.victims.map((v) => [v.requestId, v.mode]))).toEqual({ a: 'swap', b: 'recompute' });
    const est = new SloAwareVictimSelector({ swapUsPerBlock: 100 });
    // recompute estimate: 64 tokens × 19.8 µs = 1267 µs > swap 4 blocks × 100 µs
    expect(est.modeFor(cand('x'))).toEqual({ mode: 'swap', costUs: 400 });
  });

  it('reports the shortfall when the candidates cannot free enough', () => {
    const r = sel.selectVictims([cand('a', { blocks: 3 }), cand('b', { blocks: 0 }), cand('c', { blocks: 2 })], 10, 0);
    expect(r.victims.map((v) => v.requestId).sort()).toEqual(['a', 'c']);
    expect(r).toMatchObject({ freedBlocks: 5, satisfied: false, shortfallBlocks: 5 });
    expect(sel.selectVictims([], 0, 0)).toEqual({ victims: [], freedBlocks: 0, satisfied: true, shortfallBlocks: 0 });
  });

  it('rejects bad arguments', () => {
    for (const f of [
      () => sel.selectVictims([], -1, 0),
      () => sel.selectVictims([], 1.5, 0),
      () => sel.selectVictims([], 1, Number.NaN),
      () => sel.selectVictims([cand('a', { blocks: -2 })], 1, 0),
      () => new SloAwareVictimSelector({ priorityWeight: -1 }),
      () => createVictimSelector('lifo'),
    ]) {
      expect(f).toThrow();
      try {
        f();
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      }
    }
  });

  it('greedy property: victims are the lowest-protection prefix that frees enough', () => {
    const c = fc.record({
      blocks: fc.integer({ min: 0, max: 20 }),
      priority: fc.integer({ min: 0, max: 3 }),
      sloSlackMs: fc.integer({ min: -500, max: 20000 }),
      remainingTokens: fc.integer({ min: 0, max: 500 }),
      recomputeCostUs: fc.integer({ min: 0, max: 100000 }),
    });
    fc.assert(
      fc.property(fc.array(c, { maxLength: 60 }), fc.integer({ min: 0, max: 200 }), (raw, need) => {
        const cs = raw.map((r, i) => cand(`r${i}`, r));
        const got = sel.selectVictims(cs, need, 0);
        const { victims: want, freed } = fullSortSelection(sel, cs, need);
        expect(got.victims.map((v) => v.requestId)).toEqual(want.map((v) => v.requestId));
        expect(got.freedBlocks).toBe(freed);
        expect(got.satisfied).toBe(freed >= need);
        expect(got.shortfallBlocks).toBe(Math.max(0, need - freed));
      }),
    );
  });
});

describe('SloAwareVictimSelector partial selection (top-8 kept aside, heap beyond)', () => {
  it('equals the full sort for many victims, heavy ties and swap/recompute modes', () => {
    const sel = new SloAwareVictimSelector({ swapUsPerBlock: 50 });
    const c = fc.record({
      blocks: fc.integer({ min: 0, max: 6 }),
      priority: fc.integer({ min: 0, max: 1 }),
      sloSlackMs: fc.constantFrom(0, 500, 20000),
      remainingTokens: fc.constantFrom(1, 400),
      computedTokens: fc.integer({ min: 0, max: 40 }),
    });
    fc.assert(
      fc.property(fc.array(c, { maxLength: 300 }), fc.integer({ min: 0, max: 1200 }), (raw, need) => {
        const cs = raw.map((r, i) => cand(`r${i}`, r));
        const got = sel.selectVictims(cs, need, 0);
        const { victims: want, freed } = fullSortSelection(sel, cs, need);
        expect(got.victims).toEqual(want);
        expect(got.freedBlocks).toBe(freed);
        expect(got.shortfallBlocks).toBe(Math.max(0, need - freed));
      }),
      { numRuns: 200 },
    );
  });

  it('equals the full sort with real-valued scores, negative costs (count as 0) and swap where set', () => {
    // random doubles: the scoring pass skips most candidates by their lower bound (score
    // without the cost term); the result must still be exactly the full sort's
    const sel = new SloAwareVictimSelector();
    const c = fc.record({
      blocks: fc.integer({ min: 0, max: 64 }),
      priority: fc.double({ min: 0, max: 3, noNaN: true }),
      sloSlackMs: fc.double({ min: -1000, max: 12000, noNaN: true }),
      remainingTokens: fc.integer({ min: 0, max: 40 }),
      recomputeCostUs: fc.double({ min: -5000, max: 2e6, noNaN: true }),
      swapCostUs: fc.option(fc.double({ min: -100, max: 2e5, noNaN: true }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(c, { maxLength: 400 }), fc.integer({ min: 0, max: 600 }), (raw, need) => {
        const cs = raw.map(({ swapCostUs, ...r }, i) => cand(`r${i}`, swapCostUs === undefined ? r : { ...r, swapCostUs }));
        const got = sel.selectVictims(cs, need, 0);
        const { victims: want, freed } = fullSortSelection(sel, cs, need);
        expect(got.victims.map((v) => v.requestId)).toEqual(want.map((v) => v.requestId));
        expect(got.freedBlocks).toBe(freed);
      }),
      { numRuns: 200 },
    );
    // a negative cost counts as zero cost, not as extra protection removed
    expect(sel.protectionOf(cand('n', { recomputeCostUs: -1e9, sloSlackMs: 0 }))).toBe(0);
  });

  it('accepts block counts beyond 2^31', () => {
    const sel = new SloAwareVictimSelector();
    const r = sel.selectVictims([cand('big', { blocks: 3_000_000_000 }), cand('small', { blocks: 1, priority: 5 })], 2, 0);
    expect(r.victims.map((v) => v.requestId)).toEqual(['big']);
    expect(r.freedBlocks).toBe(3_000_000_000);
  });

  it('rejects fractional blocks anywhere in the list, and leaves the selector usable', () => {
    const sel = new SloAwareVictimSelector();
    const cs = [cand('a'), cand('b', { blocks: 2.5 })];
    try {
      sel.selectVictims(cs, 1, 0);
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      expect((e as Error).message).toContain('candidates[1].blocks');
    }
    expect(sel.selectVictims([cand('a')], 1, 0).victims.map((v) => v.requestId)).toEqual(['a']);
  });
});

describe('baseline selectors', () => {
  const cs = [
    cand('old', { admittedUs: 1, generatedTokens: 5, blocks: 2 }),
    cand('new', { admittedUs: 9, generatedTokens: 50, blocks: 2 }),
    cand('mid', { admittedUs: 5, generatedTokens: 5, promptTokens: 900, blocks: 2 }),
  ];
  it('vllm preempts the newest admitted first, by recompute', () => {
    const r = new VllmVictimSelector().selectVictims(cs, 3, 0);
    expect(r.victims).toEqual([
      { requestId: 'new', mode: 'recompute', freedBlocks: 2 },
      { requestId: 'mid', mode: 'recompute', freedBlocks: 2 },
    ]);
    expect(createVictimSelector('vllm').name).toBe('vllm');
  });
  it('sglang retracts the fewest generated tokens first (ties: longest prompt)', () => {
    const r = new SglangVictimSelector().selectVictims(cs, 3, 0);
    expect(r.victims.map((v) => v.requestId)).toEqual(['mid', 'old']);
    expect(createVictimSelector('sglang', { mode: 'swap' }).selectVictims(cs, 1, 0).victims[0]?.mode).toBe('swap');
    expect(new SglangVictimSelector().selectVictims(cs, 100, 0)).toMatchObject({ freedBlocks: 6, satisfied: false, shortfallBlocks: 94 });
  });
});

describe('baseline selectors against a sorting reference', () => {
  it('vllm and sglang take the greedy prefix of their order', () => {
    const c = fc.record({
      blocks: fc.integer({ min: 0, max: 20 }),
      admittedUs: fc.integer({ min: 0, max: 30 }),
      generatedTokens: fc.integer({ min: 0, max: 10 }),
      promptTokens: fc.integer({ min: 1, max: 10 }),
    });
    fc.assert(
      fc.property(fc.array(c, { maxLength: 40 }), fc.integer({ min: 0, max: 150 }), (raw, need) => {
        const cs = raw.map((r, i) => cand(`r${i}`, r));
        const refs: [VictimSelector, (a: VictimCandidate, b: VictimCandidate) => number][] = [
          [new VllmVictimSelector(), (a, b) => b.admittedUs - a.admittedUs],
          [new SglangVictimSelector(), (a, b) => a.generatedTokens - b.generatedTokens || b.promptTokens - a.promptTokens],
        ];
        for (const [sel, cmp] of refs) {
          const order = cs.map((x, i) => ({ x, i })).filter((e) => e.x.blocks > 0);
          order.sort((a, b) => cmp(a.x, b.x) || a.i - b.i);
          const want: string[] = [];
          let freed = 0;
          for (const e of order) {
            if (freed >= need) break;
            want.push(e.x.requestId);
            freed += e.x.blocks;
          }
          const got = sel.selectVictims(cs, need, 0);
          expect(got.victims.map((v) => v.requestId)).toEqual(want);
          expect(got.shortfallBlocks).toBe(Math.max(0, need - freed));
        }
      }),
    );
  });
});
