/**
 * EngineCore block quotas per request kind and the per-request predicted vs peak KV record:
 * a hand-computed case (one request, a fixed p90), quotas never exceeded over a random mixed
 * workload whose quotas change between steps, a kind at its quota not blocking the other kind,
 * and bad quotas refused without changing the quotas in force.
 */
import { type LifetimePredictor, createRng, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { EngineCore } from './engine-core.js';
import type { RequestFinishedStats, StepShape } from './engine-types.js';

const stepUs = (s: Readonly<StepShape>): number => 5000 + 20 * s.prefillTokens + 300 * s.decodeTokens;

/** A predictor that always predicts `p90` remaining tokens (and learns nothing). */
function fixedPredictor(p90: number): LifetimePredictor {
  const p = { mean: p90 / 2, p50: p90 / 2, p90 };
  return { name: 'fixed', predict: () => p, predictRemaining: () => p, observe: () => {}, calibrate: () => {} };
}

function drain(core: EngineCore, onStep?: () => void, maxSteps = 200_000): number {
  let now = 0;
  for (let i = 0; i < maxSteps; i++) {
    const step = core.startStep(now);
    if (step === null) return now;
    onStep?.();
    now += step.durationUs;
    core.finishStep(now);
    onStep?.();
  }
  throw new Error('did not drain');
}

describe('predicted vs peak KV per request', () => {
  it('records the admission footprint and the peak blocks of a hand-computed case', () => {
    const finished: RequestFinishedStats[] = [];
    const core = new EngineCore({ kv: { numBlocks: 64, blockSize: 16 }, stepTimeUs: stepUs, predictor: fixedPredictor(40), hooks: { onFinished: (_r, s) => finished.push(s) } });
    core.addRequest({ requestId: 'a', promptTokens: 100, maxTokens: 200, outputTokens: 50 }, 0);
    drain(core);
    const a = finished[0] as RequestFinishedStats;
    // predicted: blocks(100 prompt + ⌈40 × 1.1⌉ = 44) = ⌈144 / 16⌉ = 9
    expect(a.predictedBlocks).toBe(9);
    // peak: the 50th token is sampled, not computed: 100 + 49 = 149 tokens in ⌈149 / 16⌉ = 10 blocks
    expect(a.peakBlocks).toBe(10);
    // capped by max tokens: maxTokens 20 → blocks(100 + 20) = 8 even though p90 says 40
    const b: RequestFinishedStats[] = [];
    const core2 = new EngineCore({ kv: { numBlocks: 64, blockSize: 16 }, stepTimeUs: stepUs, predictor: fixedPredictor(40), hooks: { onFinished: (_r, s) => b.push(s) } });
    core2.addRequest({ requestId: 'b', promptTokens: 100, maxTokens: 20 }, 0);
    drain(core2);
    expect(b[0]).toMatchObject({ predictedBlocks: 8, peakBlocks: 8 }); // 100 + 19 = 119 tokens → 8 blocks
  });

  it('reports -1 predicted and 0 peak for a request never admitted', () => {
    const finished: RequestFinishedStats[] = [];
    const core = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: stepUs, hooks: { onFinished: (_r, s) => finished.push(s) } });
    core.addRequest({ requestId: 'x', promptTokens: 10, maxTokens: 4 }, 0);
    expect(core.abort('x', 0)).toBe(true);
    expect(finished[0]).toMatchObject({ predictedBlocks: -1, peakBlocks: 0 });
  });
});

describe('block quotas per request kind', () => {
  it('never lets a kind hold more than its quota, while quotas change between steps', () => {
    const rng = createRng(11);
    const total = 400;
    const core = new EngineCore({ kv: { numBlocks: total, blockSize: 16 }, stepTimeUs: stepUs, maxSeqs: 64 });
    let q = { generate: 300, embed: 100 };
    core.setBlockQuota(q);
    let finished = 0;
    core.hooks = { onFinished: (_r, s) => void (s.finishReason === 'rejected' || s.finishReason === 'abort' ? 0 : finished++) };
    for (let i = 0; i < 120; i++) {
      const embed = rng.next() < 0.4;
      core.addRequest(
        embed
          ? { requestId: `e${i}`, kind: 'embed', promptTokens: 16 + Math.floor(rng.next() * 400), maxTokens: 0 }
          : { requestId: `g${i}`, promptTokens: 16 + Math.floor(rng.next() * 600), maxTokens: 1 + Math.floor(rng.next() * 300) },
        0,
      );
    }
    let checks = 0;
    let step = 0;
    let sawEmbedAtQuota = false;
    drain(core, () => {
      const u = core.blockUsage();
      const quota = core.blockQuota as { generate: number; embed: number };
      expect(u.generate.heldBlocks).toBeLessThanOrEqual(quota.generate);
      expect(u.embed.heldBlocks).toBeLessThanOrEqual(quota.embed);
      expect(u.generate.heldBlocks + u.embed.heldBlocks).toBe(core.kv.numHeldBlocks);
      if (u.embed.waiting > 0 && u.embed.heldBlocks + 26 > quota.embed) sawEmbedAtQuota = true;
      checks++;
      // between steps (after finishStep), move blocks between the kinds as a driver would: never below what a kind holds
      if (!core.isBusy && ++step % 7 === 0) {
        const embed = Math.max(u.embed.heldBlocks, Math.min(total - Math.max(u.generate.heldBlocks, 64), 40 + Math.floor(rng.next() * 200)));
        q = { generate: total - embed, embed };
        core.setBlockQuota(q);
      }
    });
    expect(checks).toBeGreaterThan(50);
    expect(sawEmbedAtQuota).toBe(true);
    expect(finished).toBe(120);
    expect(core.kv.numHeldBlocks).toBe(0);
    core.kv.verify();
  });

  it('keeps admitting the other kind when one kind is at its quota', () => {
    const order: string[] = [];
    const core = new EngineCore({ kv: { numBlocks: 200, blockSize: 16 }, stepTimeUs: stepUs, hooks: { onFinished: (_r, s) => order.push(s.requestId) } });
    // embeddings may hold 10 blocks: a 320-token embedding (20 blocks) waits, the LLM request behind it runs
    core.setBlockQuota({ generate: 190, embed: 10 });
    core.addRequest({ requestId: 'big-embed', kind: 'embed', promptTokens: 320, maxTokens: 0 }, 0);
    core.addRequest({ requestId: 'chat', promptTokens: 64, maxTokens: 4 }, 0);
    let now = 0;
    for (let i = 0; i < 10; i++) {
      const s = core.startStep(now);
      if (s === null) break;
      now += s.durationUs;
      core.finishStep(now);
    }
    expect(order).toEqual(['chat']);
    expect(core.blockUsage().embed).toMatchObject({ heldBlocks: 0, waiting: 1, waitingBlocks: 20 });
    // raising the quota lets it run
    core.setBlockQuota({ generate: 180, embed: 20 });
    drain(core);
    expect(order).toEqual(['chat', 'big-embed']);
  });

  it('preempts a request of the same kind when a running one grows past its quota', () => {
    const finished: RequestFinishedStats[] = [];
    const core = new EngineCore({ kv: { numBlocks: 100, blockSize: 16 }, stepTimeUs: stepUs, hooks: { onFinished: (_r, s) => finished.push(s) } });
    // two LLM requests of 4 blocks each that grow to 8 blocks; the LLM quota is 12 blocks (the pool has 100)
    core.setBlockQuota({ generate: 12, embed: 88 });
    core.addRequest({ requestId: 'a', promptTokens: 64, maxTokens: 64 }, 0);
    core.addRequest({ requestId: 'b', promptTokens: 64, maxTokens: 64 }, 0);
    drain(core, () => expect(core.blockUsage().generate.heldBlocks).toBeLessThanOrEqual(12));
    expect(finished.map((f) => f.outputTokens)).toEqual([64, 64]);
    expect(finished.reduce((a, f) => a + f.preemptions, 0)).toBeGreaterThan(0);
  });

  it('refuses a bad quota with the value named, keeping the quotas in force', () => {
    const core = new EngineCore({ kv: { numBlocks: 100 }, stepTimeUs: stepUs });
    core.setBlockQuota({ generate: 60, embed: 40 });
    for (const bad of [{ generate: -1, embed: 4 }, { generate: 1.5, embed: 4 }, { generate: 3, embed: Number.NaN }, 7]) {
      let err: unknown;
      try {
        core.setBlockQuota(bad as never);
      } catch (e) {
        err = e;
      }
      expect(isKvmgrError(err) && err.code).toBe('KVMGR_INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(/quota/);
    }
    expect(core.blockQuota).toEqual({ generate: 60, embed: 40 });
    core.setBlockQuota(null);
    expect(core.blockQuota).toBeNull();
  });
});
