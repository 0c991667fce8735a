import { describe, expect, it } from 'vitest';
import { isKvmgrError } from '@kvmgr/core';
import { PassManager, abTest, createDefaultRegistry, pairedBootstrap, parsePlan, parseState, printPlan, printState, runOpt } from '../src/index.js';
import type { SchedState } from '../src/index.js';
import { decoding, state, waiting } from './fixtures.js';

const registry = createDefaultRegistry();

describe('A/B harness', () => {
  const states: SchedState[] = Array.from({ length: 40 }, (_, i) =>
    state({
      free: 50 + (i % 7) * 10,
      waiting: Array.from({ length: 8 }, (_, j) => waiting(`w${j}`, { promptTokens: 64 + ((i * 7 + j * 13) % 300), cachedPrefixTokens: (j % 3) * 32, arrivalUs: j })),
    }),
  );

  it('reports paired differences with seeded bootstrap intervals', () => {
    const r = abTest({ states, baseline: 'vllm-default', candidate: 'sched.step(prefix-cache-aware{starvation-ms=0},chunked-prefill)', registry, seed: 7, resamples: 500 });
    expect(r.steps).toBe(40);
    expect(r.experimentId).toBe(`${r.baseline.id}-${r.candidate.id}`);
    const cached = r.metrics.find((m) => m.name === 'cachedPromptTokens')!;
    expect(cached.candidateMean).toBeGreaterThan(cached.baselineMean);
    expect(cached.meanDiff).toBeCloseTo(cached.candidateMean - cached.baselineMean, 9);
    expect(cached.ciLow).toBeLessThanOrEqual(cached.meanDiff);
    expect(cached.ciHigh).toBeGreaterThanOrEqual(cached.meanDiff);
    expect(cached.significant).toBe(true);
    // same seed → same report
    expect(abTest({ states, baseline: 'vllm-default', candidate: 'sched.step(prefix-cache-aware{starvation-ms=0},chunked-prefill)', registry, seed: 7, resamples: 500 })).toEqual(r);
    const same = abTest({ states, baseline: 'vllm-default', candidate: 'vllm-default', registry });
    expect(same.metrics.every((m) => m.meanDiff === 0 && m.ciLow === 0 && m.ciHigh === 0 && !m.significant)).toBe(true);
  });

  it('pairedBootstrap interpolates between order statistics, so swapping the sides negates the interval', () => {
    const base = Array.from({ length: 57 }, (_, i) => (i * 37) % 23);
    const cand = Array.from({ length: 57 }, (_, i) => (i * 53) % 29);
    for (const resamples of [2000, 401, 7]) {
      const ab = pairedBootstrap(base, cand, { seed: 5, resamples });
      const ba = pairedBootstrap(cand, base, { seed: 5, resamples });
      expect(ba.meanDiff).toBeCloseTo(-ab.meanDiff, 12);
      // ⌊q·B⌋-th-value rules are off by one order statistic here; linear interpolation is not.
      expect(ba.ciLow).toBeCloseTo(-ab.ciHigh, 9);
      expect(ba.ciHigh).toBeCloseTo(-ab.ciLow, 9);
      expect(ab.ciLow).toBeLessThanOrEqual(ab.meanDiff);
      expect(ab.ciHigh).toBeGreaterThanOrEqual(ab.meanDiff);
    }
  });

  it('pairedBootstrap validates its input', () => {
    expect(pairedBootstrap([1, 2, 3], [2, 3, 4])).toEqual({ meanDiff: 1, ciLow: 1, ciHigh: 1 });
    expect(() => pairedBootstrap([1], [1, 2])).toThrow(/candidate.length/);
    expect(() => pairedBootstrap([1], [1], { confidence: 1 })).toThrow(/confidence/);
    expect(() => abTest({ states: [], baseline: 'vllm-default', candidate: 'vllm-default', registry })).toThrow(/at least one/);
  });
});

describe('text forms and runOpt', () => {
  it('plans round-trip; bad state text names the field', () => {
    const s = state({ waiting: [waiting('w', { ttftMs: 100, predictedRemainingTokens: 5 })] });
    const plan = new PassManager({ pipeline: 'kvmgr-default', registry }).run(s);
    expect(parsePlan(printPlan(plan))).toEqual(plan);
    const bad = printState(s).replace('"promptTokens":100', '"promptTokens":-1');
    try {
      parseState(bad);
      throw new Error('expected failure');
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      expect((e as Error).message).toBe('state.waiting[0].promptTokens must be a positive integer, got -1');
    }
    expect(() => parseState('{')).toThrow(/not valid JSON/);
  });

  it('states round-trip the first-token time of a running request; a negative one is refused by name', () => {
    const s = state({ running: [decoding('r', 16, 4, 10, { tpotMs: 50, firstTokenUs: 1234 })] });
    const back = parseState(printState(s));
    expect(back.running[0]!.firstTokenUs).toBe(1234);
    expect(back.running[0]!.tpotMs).toBe(50);
    const bad = printState(s).replace('"firstTokenUs":1234', '"firstTokenUs":-5');
    expect(bad).not.toBe(printState(s));
    expect(() => parseState(bad)).toThrow(/state\.running\[0\]\.firstTokenUs/);
  });

  it('runOpt prints IR after each pass, the plan, timing and statistics', () => {
    const s = state({ running: [decoding('r', 16, 2, 0)], waiting: [waiting('w')] });
    const out = runOpt({ stateText: `// configuration: whatever\n${printState(s)}`, pipeline: 'vllm-default', printIrAfterAll: true, timing: true, passStatistics: true });
    expect(out).toContain('// -----// IR Dump After fcfs (sched.step) //----- //');
    expect(out).toContain('// -----// IR Dump After chunked-prefill (sched.step) //----- //');
    expect(out).toContain('"op": "sched.step"');
    expect(out).toContain('// pipeline: sched.step(fcfs,memory-aware-preemption{');
    expect(out).toContain('{"op":"admit","requestId":"w","reserveBlocks":0}');
    expect(out).toContain('Execution time report');
    expect(out).toContain('Pass statistics report');
    const plain = runOpt({ stateText: printState(s), pipeline: 'vllm-default' });
    expect(plain).not.toContain('IR Dump');
    expect(() => runOpt({ stateText: printState(s), pipeline: 'sched.step(bogus)' })).toThrow(/unknown pass "bogus"/);
  });
});
