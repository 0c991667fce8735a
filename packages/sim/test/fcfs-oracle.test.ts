/**
 * The `vllm-default` pipeline against the hand-written vLLM oracle (test/support/fcfs-planner.ts)
 * at the planner level, with no engine: random request streams are stepped by a small reference
 * model of vLLM's request lifecycle (admit → chunked prefill → decode → finish; preemption by
 * recompute puts the request back at the head of the waiting queue), and at every step both
 * planners get the same `SchedState` and must schedule the same work.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PlanOp, type SchedRequest, type SchedState, type StepPlan, type StepPlanner, VLLM_DEFAULT_PROFILE, createPlanner } from '../src/index.js';
import { createFcfsPlanner } from './support/fcfs-planner.js';

const BLOCK = 16;

interface Arrival {
  readonly atStep: number;
  readonly prompt: number;
  readonly output: number;
  /** Cached prefix blocks at admission (first admission only). */
  readonly cachedBlocks: number;
}

/**
 * A plan's decisions by kind, each in plan order (deferrals are advice, not work; the two planners
 * interleave admits with their chunks differently, which the engine does not see).
 */
function decisions(plan: StepPlan): Record<string, string[]> {
  const out: Record<string, string[]> = { preempt: [], reject: [], admit: [], work: [] };
  for (const op of plan.ops as readonly PlanOp[]) {
    if (op.op === 'defer') continue;
    // A recomputed request catching up on more than one generated token is a `prefill` chunk to
    // the oracle and a multi-token `decode` to the pipeline: the same tokens and blocks, so the
    // work is compared as request, tokens, prefix-cache hit and new blocks.
    if (op.op === 'prefill' || op.op === 'decode') {
      out.work?.push(`${op.requestId} tokens=${op.tokens} cached=${op.op === 'prefill' ? op.cachedTokens : 0} new=${op.newBlocks}`);
    } else (out[op.op] ??= []).push(JSON.stringify(op));
  }
  // Victims of one step are compared as a set: the oracle takes them from the end of the running
  // list, the pipeline's `victim=newest` by admission time, and requests admitted in the same step
  // tie (the order they are preempted in is not a scheduling decision of this step).
  out.preempt?.sort();
  return out;
}

/** Runs `arrivals` to completion (or `maxSteps`), comparing `pipeline` with `oracle` at every step; returns the steps and preemptions seen. */
function compare(arrivals: readonly Arrival[], totalBlocks: number, tokenBudget: number, maxSeqs: number, pipeline: StepPlanner, oracle: StepPlanner) {
  const reqs = arrivals.map<SchedRequest>((a, i) => ({
    id: `r${i}`,
    status: 'waiting',
    promptTokens: a.prompt,
    computedTokens: 0,
    cachedPrefixTokens: Math.min(a.cachedBlocks * BLOCK, Math.floor((a.prompt - 1) / BLOCK) * BLOCK),
    generatedTokens: 0,
    maxTokens: a.output,
    priority: 0,
    arrivalUs: a.atStep * 1000,
    admittedUs: -1,
    blocksHeld: 0,
  }));
  let waiting: SchedRequest[] = [];
  let running: SchedRequest[] = [];
  let next = 0;
  let steps = 0;
  let preemptions = 0;
  const order = arrivals.map((_, i) => i).sort((a, b) => (arrivals[a] as Arrival).atStep - (arrivals[b] as Arrival).atStep || a - b);
  for (let step = 0; step < 2000 && (next < order.length || waiting.length + running.length > 0); step++) {
    while (next < order.length && (arrivals[order[next] as number] as Arrival).atStep <= step) waiting.push(reqs[order[next++] as number] as SchedRequest);
    if (waiting.length + running.length === 0) continue;
    const held = running.reduce((s, r) => s + r.blocksHeld, 0);
    const state = (): SchedState => ({
      nowUs: step * 1000,
      waiting: waiting.map((r) => ({ ...r })),
      running: running.map((r) => ({ ...r })),
      kv: { blockSize: BLOCK, freeBlocks: { gpu: totalBlocks - held, cpu: 0, disk: 0 }, totalBlocks: { gpu: totalBlocks, cpu: 0, disk: 0 }, evictablePrefixBlocks: 0 },
      budgets: { tokenBudget, maxSeqs },
    });
    const want = oracle.plan(state());
    const got = pipeline.plan(state());
    expect(decisions(got), `step ${step}`).toEqual(decisions(want));
    expect(got.scheduledTokens).toBe(want.scheduledTokens);
    expect(got.newBlocks).toBe(want.newBlocks);
    expect(got.preemptions).toBe(want.preemptions);
    steps++;
    preemptions += want.preemptions;
    // Apply the oracle's plan as vLLM does: preempted requests go back to the head of the queue
    // with their KV dropped, admitted ones join the running list, then the batch runs.
    const byId = new Map(reqs.map((r) => [r.id, r]));
    const preempted: SchedRequest[] = [];
    for (const op of want.ops) {
      if (!('requestId' in op)) throw new Error(`the oracle emits request ops only, got ${op.op}`);
      const r = byId.get(op.requestId) as SchedRequest;
      if (op.op === 'preempt') {
        running = running.filter((x) => x !== r);
        Object.assign(r, { status: 'preempted', computedTokens: 0, cachedPrefixTokens: 0, blocksHeld: 0 });
        preempted.push(r);
      } else if (op.op === 'reject') {
        waiting = waiting.filter((x) => x !== r);
      } else if (op.op === 'admit') {
        waiting = waiting.filter((x) => x !== r);
        running.push(r);
        Object.assign(r, { status: 'running', admittedUs: step * 1000 });
      } else if (op.op === 'prefill' || op.op === 'decode') {
        r.computedTokens = (op.op === 'prefill' ? op.startToken : r.computedTokens) + op.tokens;
        r.blocksHeld += op.newBlocks;
        r.cachedPrefixTokens = 0;
        if (r.computedTokens === r.promptTokens + r.generatedTokens) r.generatedTokens++;
        if (r.generatedTokens >= r.maxTokens) running = running.filter((x) => x !== r);
      }
    }
    waiting = [...preempted.reverse(), ...waiting];
  }
  expect(waiting.length + running.length, 'every request finished or was rejected').toBe(0);
  return { steps, preemptions };
}

const arrivalArb = fc.record({
  atStep: fc.integer({ min: 0, max: 30 }),
  prompt: fc.integer({ min: 1, max: 300 }),
  output: fc.integer({ min: 1, max: 40 }),
  cachedBlocks: fc.integer({ min: 0, max: 6 }),
});

describe('vllm-default pipeline vs the fcfs oracle (planner level)', () => {
  it('schedules the same work at every step of random request streams, preemptions included', () => {
    const pipeline = createPlanner(VLLM_DEFAULT_PROFILE.scheduler);
    const oracle = createFcfsPlanner();
    let preemptions = 0;
    let steps = 0;
    fc.assert(
      fc.property(
        fc.array(arrivalArb, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 24, max: 80 }),
        fc.constantFrom(64, 256, 2048),
        fc.integer({ min: 1, max: 8 }),
        (arrivals, totalBlocks, tokenBudget, maxSeqs) => {
          const r = compare(arrivals, totalBlocks, tokenBudget, maxSeqs, pipeline, oracle);
          preemptions += r.preemptions;
          steps += r.steps;
        },
      ),
      { numRuns: 80, seed: 7 },
    );
    // the streams exercised preemption and many steps (not only the trivial paths)
    expect(preemptions).toBeGreaterThan(0);
    expect(steps).toBeGreaterThan(1000);
  });
});
