import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { QuotaAllocator } from './quota-allocator.js';

const consumers = [
  { name: 'llm-kv', minBlocks: 200, maxBlocks: 1000 },
  { name: 'embedding', minBlocks: 50, maxBlocks: 600 },
];

describe('QuotaAllocator', () => {
  it('starts with an equal split clamped to bounds and computes urgency-weighted targets', () => {
    const q = new QuotaAllocator({ totalBlocks: 1000, consumers });
    expect(q.quotas()).toEqual({ 'llm-kv': 575, embedding: 425 });
    expect(q.maxStepBlocks).toBe(100);
    expect(q.deadbandBlocks).toBe(10);
    expect(q.convergenceRounds).toBe(10);
    q.report('llm-kv', { demandBlocks: 500 });
    q.report('embedding', { demandBlocks: 600, urgency: 2 });
    // min 200/50, then 750 spare by weight 1 : 3 up to the demands; what is left goes to llm-kv
    expect(q.targets()).toEqual({ 'llm-kv': 400, embedding: 600 });
    const r = q.rebalance(1_000);
    expect(r.changes).toEqual({ 'llm-kv': -100, embedding: 100 });
    expect(r.quotas).toEqual({ 'llm-kv': 475, embedding: 525 });
    expect(q.rebalance(2_000).quotas).toEqual({ 'llm-kv': 400, embedding: 600 });
    expect(q.rebalance(3_000).changes).toEqual({ 'llm-kv': 0, embedding: 0 });
    expect(q.history.map((h) => h.round)).toEqual([1, 2, 3]);
  });

  it('check 4: under an alternating load spike, converges within convergenceRounds (10) and never moves more than the damping bound', () => {
    const q = new QuotaAllocator({ totalBlocks: 1000, consumers, maxStepFraction: 0.1 });
    const stated = 10; // documented: ceil(totalBlocks / maxStepBlocks) = ceil(1000 / 100)
    expect(q.convergenceRounds).toBe(stated);
    const phases = [
      { llm: { demandBlocks: 500 }, emb: { demandBlocks: 600, urgency: 2 }, target: { 'llm-kv': 400, embedding: 600 } },
      { llm: { demandBlocks: 1000, urgency: 1 }, emb: { demandBlocks: 50 }, target: { 'llm-kv': 950, embedding: 50 } },
    ];
    let t = 0;
    for (let cycle = 0; cycle < 4; cycle++) {
      for (const p of phases) {
        q.report('llm-kv', p.llm);
        q.report('embedding', p.emb);
        const rounds = [];
        for (let i = 0; i < 15; i++) rounds.push(q.rebalance((t += 1_000_000)));
        // converged within the stated rounds, and stays there (no oscillation)
        const first = rounds.findIndex((r) => r.quotas['llm-kv'] === p.target['llm-kv'] && r.quotas.embedding === p.target.embedding);
        expect(first).toBeGreaterThanOrEqual(0);
        expect(first + 1).toBeLessThanOrEqual(stated);
        for (const r of rounds.slice(first)) expect(r.quotas).toEqual(p.target);
        for (const r of rounds) {
          for (const c of Object.values(r.changes)) expect(Math.abs(c)).toBeLessThanOrEqual(q.maxStepBlocks);
          expect(r.quotas['llm-kv']! + r.quotas.embedding!).toBeLessThanOrEqual(1000);
        }
        // monotone inside a phase: a quota never reverses direction
        for (const name of ['llm-kv', 'embedding']) {
          const signs = rounds.map((r) => Math.sign(r.changes[name]!)).filter((s) => s !== 0);
          expect(new Set(signs).size).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it('set / query APIs validate and leave state unchanged on failure', () => {
    const q = new QuotaAllocator({ totalBlocks: 100, consumers: [{ name: 'a', minBlocks: 10, maxBlocks: 80, initialBlocks: 40 }, { name: 'b', initialBlocks: 30 }] });
    expect(q.unassignedBlocks).toBe(30);
    q.setQuota('a', 70);
    expect(q.quota('a')).toBe(70);
    expect(codeOf(() => q.setQuota('a', 81))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => q.setQuota('b', 31))).toBe('KVMGR_INVALID_ARGUMENT'); // only 0 unassigned left
    expect(codeOf(() => q.quota('nope'))).toBe('KVMGR_NOT_FOUND');
    expect(codeOf(() => q.setBounds('b', 95, 100))).toBe('KVMGR_INVALID_ARGUMENT'); // Σ min > total
    expect(codeOf(() => q.report('a', { demandBlocks: -1 }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(q.quotas()).toEqual({ a: 70, b: 30 });
    q.setBounds('b', 40, 60);
    expect(q.bounds('b')).toEqual({ minBlocks: 40, maxBlocks: 60 });
    q.report('a', { demandBlocks: 100 });
    q.report('b', { demandBlocks: 0 });
    q.rebalance(0);
    expect(q.quota('b')).toBe(40); // pulled up into its new bounds
    expect(codeOf(() => new QuotaAllocator({ totalBlocks: 10, consumers: [{ name: 'x', minBlocks: 6 }, { name: 'y', minBlocks: 6 }] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new QuotaAllocator({ totalBlocks: 10, consumers: [{ name: 'x' }, { name: 'x' }] }))).toBe('KVMGR_INVALID_ARGUMENT');
  });

  it('random demands: bounds, total and damping always hold; two consumers converge within convergenceRounds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 5000 }),
        fc.array(fc.record({ min: fc.nat({ max: 100 }), span: fc.nat({ max: 5000 }), weight: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(fc.record({ demand: fc.nat({ max: 6000 }), urgency: fc.nat({ max: 3 }) }), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.double({ min: 0.05, max: 0.5, noNaN: true }),
        (total, cfg, phases, frac) => {
          const mins = cfg.map((c) => Math.min(c.min, Math.floor(total / cfg.length)));
          const q = new QuotaAllocator({
            totalBlocks: total,
            maxStepFraction: frac,
            consumers: cfg.map((c, i) => ({ name: `c${i}`, minBlocks: mins[i]!, maxBlocks: mins[i]! + c.span, weight: c.weight })),
          });
          let t = 0;
          for (const phase of phases) {
            cfg.forEach((_, i) => {
              q.report(`c${i}`, { demandBlocks: phase[i]!.demand, urgency: phase[i]!.urgency });
            });
            const target = q.targets();
            let convergedAt = -1;
            for (let r = 0; r < q.convergenceRounds + 2; r++) {
              const round = q.rebalance((t += 1000));
              for (const [name, d] of Object.entries(round.changes)) {
                expect(Math.abs(d)).toBeLessThanOrEqual(q.maxStepBlocks);
                const { minBlocks, maxBlocks } = q.bounds(name);
                expect(round.quotas[name]!).toBeGreaterThanOrEqual(minBlocks);
                expect(round.quotas[name]!).toBeLessThanOrEqual(maxBlocks);
              }
              expect(round.unassignedBlocks).toBeGreaterThanOrEqual(0);
              const close = Object.keys(target).every((n) => Math.abs(round.quotas[n]! - target[n]!) <= q.deadbandBlocks);
              if (close && convergedAt < 0) convergedAt = r + 1;
            }
            if (cfg.length <= 2) {
              expect(convergedAt).toBeGreaterThan(0);
              expect(convergedAt).toBeLessThanOrEqual(q.convergenceRounds);
            }
          }
        },
      ),
      { numRuns: 120 },
    );
  });
});
