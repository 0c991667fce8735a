/**
 * Check 2: analytic cases with exact expected values from the latency model's closed form.
 */
import { describe, expect, it } from 'vitest';
import { type EngineProfile, VLLM_DEFAULT_PROFILE, createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const ROW = {
  model: 'test/model',
  gpu: 'H100',
  tp: 1,
  vllmVersion: 'v0',
  alpha: [10000, 2, 300] as const,
  beta: [6000, 20, 300] as const,
};
const latency = createBlisModel(ROW);
const [a0, a1, a2] = ROW.alpha;
const [b0, b1, b2] = ROW.beta;

function req(id: string, arrivalUs: number, prompt: number, output: number, hashIds?: number[]): SimRequest {
  return {
    requestId: id,
    arrivalUs,
    promptTokens: prompt,
    maxTokens: output,
    outputTokens: output,
    ...(hashIds === undefined ? {} : { hashIds: Uint32Array.from(hashIds), hashBlockTokens: 16 }),
  };
}

function replay(requests: SimRequest[], profile: EngineProfile = VLLM_DEFAULT_PROFILE, gpuBlocks = 1000) {
  return runReplay({ trace: requests, instances: 1, profile, latency, gpuBlocks, cpuBlocks: 0, slo: {} });
}

describe('one request alone', () => {
  it('TTFT and E2E equal the BLIS closed form', () => {
    const P = 1000;
    const O = 50;
    const res = replay([req('r', 0, P, O)]);
    const row = res.requests[0]!;
    const ttftUs = a0 + a1 * P + (b0 + b1 * P) + a2;
    const e2eUs = a0 + a1 * P + (b0 + b1 * P) + (O - 1) * (b0 + b2) + a2 * O;
    expect(row.ttftMs).toBeCloseTo(ttftUs / 1000, 9);
    expect(row.e2eMs).toBeCloseTo(e2eUs / 1000, 9);
    expect(row.tpotMs).toBeCloseTo((b0 + b2 + a2) / 1000, 9);
    expect(res.violations).toEqual([]);
  });

  it('chunks a prompt longer than the token budget', () => {
    const P = 20000;
    const res = replay([req("r", 0, P, 2)], VLLM_DEFAULT_PROFILE, 2000);
    // 8192 + 8192 + 3616 prompt tokens in three steps, then one decode step.
    const prefill = b0 + b1 * 8192 + (b0 + b1 * 8192) + (b0 + b1 * 3616);
    expect(res.requests[0]!.ttftMs).toBeCloseTo((a0 + a1 * P + prefill + a2) / 1000, 9);
    expect(res.requests[0]!.e2eMs).toBeCloseTo((a0 + a1 * P + prefill + b0 + b2 + 2 * a2) / 1000, 9);
  });
});

describe('prefix cache', () => {
  const ids = [1, 2, 3, 4, 5];
  it('a fully cached prefix computes only the last token', () => {
    // 65 tokens = 4 full blocks + 1; the second request finds all 4 blocks cached.
    const first = req('a', 0, 65, 4, ids);
    const second = req('b', 1_000_000, 65, 4, ids);
    const res = replay([first, second]);
    const b = res.requests[1]!;
    expect(b.cachedTokens).toBe(64);
    expect(b.ttftMs).toBeCloseTo((a0 + a1 * 65 + b0 + b1 * 1 + a2) / 1000, 9);
    expect(res.summary.hitRate).toBeCloseTo(64 / 130, 12);
  });

  it('never serves the last prompt token from cache (block-aligned prompt recomputes its last block)', () => {
    const res = replay([req('a', 0, 64, 4, ids), req('b', 1_000_000, 64, 4, ids)]);
    const b = res.requests[1]!;
    expect(b.cachedTokens).toBe(48);
    expect(b.ttftMs).toBeCloseTo((a0 + a1 * 64 + b0 + b1 * 16 + a2) / 1000, 9);
  });
});

describe('preemption under vllm-default', () => {
  // 10 blocks of 16 tokens. Two 64-token prompts (4 blocks each) with 40 output tokens each end
  // at 103 KV tokens = 7 blocks: both fit at admission (8 blocks), both take a 5th block, and
  // when A needs its 6th block no block is free: the newest (B) is preempted by recompute, once.
  const run = () => replay([req('A', 0, 64, 40), req('B', 0, 64, 40)], VLLM_DEFAULT_PROFILE, 10);
    it('preempts exactly the newest request once (vllm-default)', () => {
      const res = run();
      const [A, B] = res.requests;
      expect(A!.preemptions).toBe(0);
      expect(B!.preemptions).toBe(1);
      expect(res.summary.preemptions).toBe(1);
      expect(A!.finishMs).toBeLessThan(B!.finishMs);
      // B had computed 80 tokens (64 prompt + 16 generated) when it was dropped; it recomputes
      // them (its prompt blocks come back from the prefix cache only if they were cached:
      // without hash ids nothing is cached, so all 80 are re-prefilled).
      expect(B!.reprefillTokens).toBe(80);
      expect(res.violations).toEqual([]);
    });
});
