/**
 * EngineCore's per-request work accounting in `onFinished`: prefill tokens computed (cache hits
 * excluded) and tokens recomputed after a recompute preemption.
 */
import { describe, expect, it } from 'vitest';
import { EngineCore } from './engine-core.js';
import type { RequestFinishedStats } from './engine-types.js';

function run(core: EngineCore): RequestFinishedStats[] {
  const finished: RequestFinishedStats[] = [];
  core.hooks = { onFinished: (_r, s) => finished.push(s) };
  return finished;
}

function drain(core: EngineCore): void {
  let now = 0;
  for (let i = 0; i < 10_000; i++) {
    const step = core.startStep(now);
    if (step === null) return;
    now += step.durationUs;
    core.finishStep(now);
  }
  throw new Error('did not drain');
}

describe('EngineCore finished-request work stats', () => {
  it('counts the prompt tokens computed, not those served from the prefix cache', () => {
    const core = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: () => 1000 });
    const finished = run(core);
    const prompt = Array.from({ length: 100 }, (_, i) => i + 1);
    core.addRequest({ requestId: 'a', promptTokenIds: prompt, maxTokens: 3 }, 0);
    drain(core);
    core.addRequest({ requestId: 'b', promptTokenIds: prompt, maxTokens: 3 }, 0);
    drain(core);
    expect(finished.map((f) => [f.requestId, f.cachedPromptTokens, f.prefillComputedTokens, f.recomputedTokens])).toEqual([
      ['a', 0, 100, 0],
      ['b', 96, 4, 0],
    ]);
  });

  it('counts the tokens a recompute preemption makes the engine compute again', () => {
    const core = new EngineCore({ kv: { numBlocks: 6, blockSize: 4 }, stepTimeUs: () => 1000 });
    const finished = run(core);
    core.addRequest({ requestId: 'old', promptTokenIds: [1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 12 }, 0);
    core.addRequest({ requestId: 'new', promptTokenIds: [9, 10, 11, 12, 13, 14, 15, 16], maxTokens: 12 }, 0);
    drain(core);
    const byId = Object.fromEntries(finished.map((f) => [f.requestId, f]));
    expect(byId.old).toMatchObject({ preemptions: 0, prefillComputedTokens: 8, recomputedTokens: 0 });
    const n = byId.new as RequestFinishedStats;
    expect(n.preemptions).toBeGreaterThan(0);
    expect(n.recomputedTokens).toBeGreaterThan(0);
    // the first prefill, then per re-admission the recomputed tokens plus at most the one new token
    expect(n.prefillComputedTokens).toBeGreaterThanOrEqual(8 + n.recomputedTokens);
    expect(n.prefillComputedTokens).toBeLessThanOrEqual(8 + n.recomputedTokens + n.preemptions);
  });
});
