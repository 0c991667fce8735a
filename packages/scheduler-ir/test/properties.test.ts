import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PRESETS, PassManager, blocksFor, createDefaultRegistry, parseState, printState, verifyPlan } from '../src/index.js';
import type { SchedState } from '../src/index.js';
import { arbState } from './fixtures.js';

const registry = createDefaultRegistry();

/** A plain-array model of vLLM v1's step loop (the reference for `vllm-default`). */
function referenceVllm(s: SchedState): { tokens: Map<string, number>; preempted: string[]; admitted: string[] } {
  const bs = s.kv.blockSize;
  let free = s.kv.freeBlocks.gpu;
  let evictable = s.kv.evictablePrefixBlocks;
  let budget = s.budgets.tokenBudget;
  const live = s.running.map((r, i) => ({ r, i }));
  const tokens = new Map<string, number>();
  const newBlocks = new Map<string, number>();
  const preempted: string[] = [];
  const take = (need: number): void => {
    while (free < need && evictable > 0) {
      const t = Math.min(evictable, need - free);
      evictable -= t;
      free += t;
    }
  };
  let k = 0;
  while (k < live.length && budget > 0) {
    const { r } = live[k]!;
    const need = r.promptTokens + r.generatedTokens - r.computedTokens;
    if (need <= 0) {
      k++;
      continue;
    }
    const n = Math.min(need, budget);
    const blocks = Math.max(0, blocksFor(r.computedTokens + n, bs) - r.blocksHeld);
    take(blocks);
    let self = false;
    while (free < blocks) {
      let v = 0;
      for (let j = 1; j < live.length; j++) if (live[j]!.r.admittedUs >= live[v]!.r.admittedUs) v = j;
      const victim = live[v]!.r;
      live.splice(v, 1);
      preempted.push(victim.id);
      free += victim.blocksHeld;
      if (tokens.has(victim.id)) {
        budget += tokens.get(victim.id)!;
        free += newBlocks.get(victim.id)!;
        tokens.delete(victim.id);
      }
      if (v < k) k--;
      if (victim === r) {
        self = true;
        break;
      }
    }
    if (self) continue;
    tokens.set(r.id, n);
    newBlocks.set(r.id, blocks);
    budget -= n;
    free -= blocks;
    k++;
  }
  const admitted: string[] = [];
  if (preempted.length === 0) {
    const order = s.waiting.map((w, i) => ({ w, i })).sort((a, b) => a.w.arrivalUs - b.w.arrivalUs || a.i - b.i);
    for (const { w } of order) {
      if (live.length + admitted.length >= s.budgets.maxSeqs || budget <= 0) break;
      const cb = Math.max(0, Math.min(Math.floor(w.cachedPrefixTokens / bs), Math.floor((w.promptTokens - 1) / bs)));
      const start = cb * bs;
      const n = Math.min(w.promptTokens - start, budget);
      const blocks = blocksFor(start + n, bs) - cb;
      take(blocks);
      if (free < blocks) break;
      free -= blocks;
      budget -= n;
      tokens.set(w.id, n);
      admitted.push(w.id);
    }
  }
  return { tokens, preempted, admitted };
}

describe('properties over random states', () => {
  it('vllm-default matches the reference model of vLLM v1 scheduling', () => {
    const pm = new PassManager({ pipeline: 'vllm-default', registry });
    fc.assert(
      fc.property(arbState, (s) => {
        const plan = pm.run(s);
        const ref = referenceVllm(s);
        const tokens = new Map<string, number>();
        for (const op of plan.ops) if (op.op === 'prefill' || op.op === 'decode') tokens.set(op.requestId, op.tokens);
        expect(tokens).toEqual(ref.tokens);
        expect(plan.ops.filter((o) => o.op === 'preempt').map((o) => (o as { requestId: string }).requestId).sort()).toEqual([...ref.preempted].sort());
        expect(plan.ops.filter((o) => o.op === 'admit').map((o) => (o as { requestId: string }).requestId)).toEqual(ref.admitted);
      }),
      { numRuns: 400 },
    );
  });

  it('every preset and random pipelines keep the verifier invariants after every pass', () => {
    const names = Object.keys(PRESETS);
    const extra = [
      'sched.step(sjf{starvation-ms=100},admission{preempt=true},lifetime-aware,memory-aware-preemption{mode=auto admit-after-preempt=true},chunked-prefill{long-prefill=64})',
      'sched.step(slo-aware{reject=true},priority{aging-ms=50},batching-efficiency,pd-separation{role=prefill},chunked-prefill{enabled=false},batching-efficiency)',
      'sched.step(sched.running(priority),prefix-cache-aware,memory-aware-preemption{mode=swap victim=lowest-priority},chunked-prefill)',
    ];
    const pms = [...names, ...extra].map((p) => new PassManager({ pipeline: p, registry, verify: true }));
    fc.assert(
      fc.property(arbState, (s) => {
        for (const pm of pms) {
          const plan = pm.run(s);
          expect(verifyPlan(s, plan)).toBeNull();
          expect(plan.scheduledTokens).toBeLessThanOrEqual(s.budgets.tokenBudget);
          expect(plan.freeBlocksAfter).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('kvmgr-default never preempts more than vllm-default on the same state', () => {
    const v = new PassManager({ pipeline: 'vllm-default', registry });
    const k = new PassManager({ pipeline: 'kvmgr-default', registry });
    fc.assert(
      fc.property(arbState, (s) => {
        expect(k.run(s).preemptions).toBeLessThanOrEqual(v.run(s).preemptions);
      }),
      { numRuns: 200 },
    );
  });

  it('the state text form round-trips losslessly and running does not modify the state', () => {
    const pm = new PassManager({ pipeline: 'kvmgr-default', registry });
    fc.assert(
      fc.property(arbState, (s) => {
        const text = printState(s);
        expect(parseState(text)).toEqual(s);
        pm.run(s);
        expect(printState(s)).toBe(text);
      }),
      { numRuns: 200 },
    );
  });
});
