import { PassManager, type SchedRequest, type SchedState, blocksFor, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import { describe, expect, it } from 'vitest';
import { vllmLowering } from './index.js';

const registry = createDefaultRegistry();

function waiting(id: string, over: Partial<SchedRequest> = {}): SchedRequest {
  return { id, status: 'waiting', promptTokens: 100, computedTokens: 0, cachedPrefixTokens: 0, generatedTokens: 0, maxTokens: 1000, priority: 0, arrivalUs: 0, admittedUs: -1, blocksHeld: 0, ...over };
}

/** A running request in decode: `computed = prompt + generated - 1`, blocks for what is computed. */
function decoding(id: string, prompt: number, generated: number, admittedUs: number): SchedRequest {
  const computed = prompt + generated - 1;
  return { id, status: 'running', promptTokens: prompt, computedTokens: computed, cachedPrefixTokens: 0, generatedTokens: generated, maxTokens: 1000, priority: 0, arrivalUs: admittedUs, admittedUs, blocksHeld: blocksFor(computed, 16) };
}

function state(free: number, running: SchedRequest[], waitingReqs: SchedRequest[]): SchedState {
  return {
    nowUs: 0,
    waiting: waitingReqs,
    running,
    kv: { blockSize: 16, freeBlocks: { gpu: free, cpu: 0, disk: 0 }, totalBlocks: { gpu: 1000, cpu: 0, disk: 0 }, evictablePrefixBlocks: 0 },
    budgets: { tokenBudget: 8192, maxSeqs: 1024 },
  };
}

describe('vllmLowering', () => {
  it('lowers a plan to vLLM SchedulerOutput shape', () => {
    const preempted = waiting('p', { status: 'preempted', promptTokens: 16, generatedTokens: 4, arrivalUs: 0 });
    const s = state(0, [decoding('r1', 20, 13, 10), decoding('r2', 16, 1, 20)], [preempted]);
    const plan = new PassManager({ pipeline: 'vllm-default', registry }).run(s);
    expect(vllmLowering.name).toBe('vllm');
    expect(vllmLowering.lower(s, plan)).toEqual({
      scheduledNewReqs: [],
      scheduledCachedReqs: { reqIds: ['r1'], resumedFromPreemption: [false], numComputedTokens: [32], numNewBlocks: [1] },
      numScheduledTokens: { r1: 1 },
      totalNumScheduledTokens: 1,
      preemptedReqIds: ['r2'],
      rejectedReqIds: [],
    });
    const s2 = state(10, [decoding('r1', 20, 13, 10), decoding('r2', 16, 1, 20)], [preempted, waiting('n', { promptTokens: 40, arrivalUs: 1 })]);
    const out = vllmLowering.lower(s2, new PassManager({ pipeline: 'vllm-default', registry }).run(s2));
    expect(out.scheduledNewReqs).toEqual([{ reqId: 'n', promptTokenCount: 40, numComputedTokens: 0, numNewBlocks: 3 }]);
    expect(out.scheduledCachedReqs).toEqual({ reqIds: ['r1', 'r2', 'p'], resumedFromPreemption: [false, false, true], numComputedTokens: [32, 16, 0], numNewBlocks: [1, 1, 2] });
    expect(out.totalNumScheduledTokens).toBe(1 + 1 + 20 + 40);
  });
});
