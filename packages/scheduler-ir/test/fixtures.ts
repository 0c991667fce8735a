import fc from 'fast-check';
import type { SchedRequest, SchedState } from '../src/index.js';
import { blocksFor } from '../src/index.js';

/** A waiting request with defaults. */
export function waiting(id: string, over: Partial<SchedRequest> = {}): SchedRequest {
  return {
    id,
    status: 'waiting',
    promptTokens: 100,
    computedTokens: 0,
    cachedPrefixTokens: 0,
    generatedTokens: 0,
    maxTokens: 1000,
    priority: 0,
    arrivalUs: 0,
    admittedUs: -1,
    blocksHeld: 0,
    ...over,
  };
}

/** A running request in decode: `computed = prompt + generated - 1`, blocks for what is computed. */
export function decoding(id: string, prompt: number, generated: number, admittedUs: number, over: Partial<SchedRequest> = {}): SchedRequest {
  const computed = prompt + generated - 1;
  return {
    id,
    status: 'running',
    promptTokens: prompt,
    computedTokens: computed,
    cachedPrefixTokens: 0,
    generatedTokens: generated,
    maxTokens: 1000,
    priority: 0,
    arrivalUs: admittedUs,
    admittedUs,
    blocksHeld: blocksFor(computed, 16),
    ...over,
  };
}

/** A state with defaults: block size 16, 1000 free GPU blocks, budget 8192, 1024 seqs. */
export function state(over: Partial<SchedState> & { free?: number; total?: number; cpu?: number } = {}): SchedState {
  const { free = 1000, total = 1000, cpu = 0, ...rest } = over;
  return {
    nowUs: 0,
    waiting: [],
    running: [],
    kv: { blockSize: 16, freeBlocks: { gpu: free, cpu, disk: 0 }, totalBlocks: { gpu: total, cpu, disk: 0 }, evictablePrefixBlocks: 0 },
    budgets: { tokenBudget: 8192, maxSeqs: 1024 },
    ...rest,
  };
}

/** Random, internally consistent states. */
export const arbState: fc.Arbitrary<SchedState> = fc
  .record({
    running: fc.array(
      fc.record({
        prompt: fc.integer({ min: 1, max: 400 }),
        progress: fc.integer({ min: 0, max: 500 }),
        generated: fc.integer({ min: 0, max: 100 }),
        priority: fc.integer({ min: 0, max: 3 }),
        admittedUs: fc.integer({ min: 0, max: 1000 }),
      }),
      { maxLength: 16 },
    ),
    waiting: fc.array(
      fc.record({
        prompt: fc.integer({ min: 1, max: 600 }),
        cached: fc.integer({ min: 0, max: 600 }),
        arrivalUs: fc.integer({ min: 0, max: 10_000_000 }),
        priority: fc.integer({ min: 0, max: 3 }),
        predicted: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
        ttftMs: fc.option(fc.integer({ min: 1, max: 2000 }), { nil: undefined }),
      }),
      { maxLength: 24 },
    ),
    free: fc.integer({ min: 0, max: 150 }),
    extraTotal: fc.integer({ min: 0, max: 200 }),
    cpu: fc.integer({ min: 0, max: 60 }),
    evictable: fc.integer({ min: 0, max: 20 }),
    budget: fc.integer({ min: 1, max: 2048 }),
    maxSeqs: fc.integer({ min: 1, max: 48 }),
    nowUs: fc.integer({ min: 0, max: 12_000_000 }),
  })
  .map((g) => {
    const running: SchedRequest[] = g.running.map((r, i) => {
      const decodingNow = r.progress >= r.prompt;
      const generated = decodingNow ? Math.max(1, r.generated) : 0;
      const computed = decodingNow ? r.prompt + generated - 1 : r.progress;
      return {
        id: `r${i}`,
        status: 'running',
        promptTokens: r.prompt,
        computedTokens: computed,
        cachedPrefixTokens: 0,
        generatedTokens: generated,
        maxTokens: generated + 200,
        priority: r.priority,
        arrivalUs: r.admittedUs,
        admittedUs: r.admittedUs,
        blocksHeld: blocksFor(computed, 16),
      };
    });
    const waitingReqs: SchedRequest[] = g.waiting.map((w, i) => {
      const r: SchedRequest = {
        id: `w${i}`,
        status: 'waiting',
        promptTokens: w.prompt,
        computedTokens: 0,
        cachedPrefixTokens: Math.min(w.cached, w.prompt),
        generatedTokens: 0,
        maxTokens: 256,
        priority: w.priority,
        arrivalUs: w.arrivalUs,
        admittedUs: -1,
        blocksHeld: 0,
      };
      if (w.predicted !== undefined) r.predictedRemainingTokens = w.predicted;
      if (w.ttftMs !== undefined) r.ttftMs = w.ttftMs;
      return r;
    });
    const held = running.reduce((a, r) => a + r.blocksHeld, 0);
    return {
      nowUs: g.nowUs,
      running,
      waiting: waitingReqs,
      kv: {
        blockSize: 16,
        freeBlocks: { gpu: g.free, cpu: g.cpu, disk: 0 },
        totalBlocks: { gpu: g.free + held + g.evictable + g.extraTotal, cpu: g.cpu, disk: 0 },
        evictablePrefixBlocks: g.evictable,
      },
      budgets: { tokenBudget: g.budget, maxSeqs: Math.max(g.maxSeqs, running.length) },
    };
  });
