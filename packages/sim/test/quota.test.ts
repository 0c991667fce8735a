/**
 * The LLM / embedding quota split in the simulated engine (kv-pool's QuotaAllocator per
 * instance, enforced by the engine core) and the per-request predicted vs peak KV rows:
 * an embedding wave grows the embedding quota and it returns after the wave; no round finds a
 * kind over its quota or the quotas over the pool; predicted and peak blocks of a two-request
 * case computed by hand; bad quota options fail naming the option; off by default.
 */
import { createPredictor } from '@kvmgr/lifetime-predictor';
import { describe, expect, it } from 'vitest';
import { VLLM_DEFAULT_PROFILE, createBlisModel, lifetimeFeatures, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

/** Steady chat traffic for 60 s plus an embedding wave (2,048-token prompts at 40/s) from 20 s to 30 s. */
function waveTrace(): SimRequest[] {
  const out: SimRequest[] = [];
  for (let i = 0; i < 300; i++) {
    out.push({ requestId: `g${i}`, arrivalUs: i * 200_000, promptTokens: 512, maxTokens: 64, outputTokens: 64 });
  }
  for (let i = 0; i < 400; i++) {
    out.push({ requestId: `e${i}`, kind: 'embed', arrivalUs: 20_000_000 + i * 25_000, promptTokens: 2048, maxTokens: 1, outputTokens: 0 });
  }
  return out.sort((a, b) => a.arrivalUs - b.arrivalUs);
}

describe('LLM / embedding quota split', () => {
  const total = 2000;
  const res = runReplay({ trace: waveTrace(), profile: 'vllm-default', latency, instances: 1, gpuBlocks: total, quota: { intervalMs: 500 } });
  const tl = res.quotaTimeline ?? [];
  const emb = (from: number, to: number) => tl.filter((s) => s.tMs >= from && s.tMs < to).map((s) => s.embeddingQuota);

  it('grows the embedding quota with an embedding wave, then gives it back', () => {
    expect(res.violations).toEqual([]);
    expect(res.summary.rejected).toBe(0);
    const before = emb(10_000, 20_000);
    const during = emb(20_000, 32_000);
    const after = emb(50_000, 60_000);
    expect(before.length).toBeGreaterThan(10);
    const idle = Math.max(...before);
    // the wave's demand (held + waiting embeddings) is far above the idle quota: the quota grows by several damped steps
    expect(Math.max(...during)).toBeGreaterThan(idle + 3 * 0.1 * total);
    expect(Math.max(...after)).toBeLessThanOrEqual(idle + 20); // back to the idle split (within the dead band)
    // the LLM quota paid for it
    expect(Math.min(...tl.filter((s) => s.tMs >= 20_000 && s.tMs < 32_000).map((s) => s.llmQuota))).toBeLessThan(total - idle - 3 * 0.1 * total);
    const q = res.summary.quota;
    expect(q?.shifts).toBeGreaterThan(6);
    expect(q?.embeddingQuotaPeak).toBe(Math.max(...tl.map((s) => s.embeddingQuota)) / total);
  });

  it('never over-commits: each kind holds at most its quota and the quotas fit the pool, moving ≤ maxStep per round', () => {
    expect(tl.length).toBeGreaterThan(100);
    let prev: number | undefined;
    for (const s of tl) {
      expect(s.llmHeld).toBeLessThanOrEqual(s.llmQuota);
      expect(s.embeddingHeld).toBeLessThanOrEqual(s.embeddingQuota);
      expect(s.llmQuota + s.embeddingQuota).toBeLessThanOrEqual(total);
      if (prev !== undefined) expect(Math.abs(s.embeddingQuota - prev)).toBeLessThanOrEqual(0.1 * total);
      prev = s.embeddingQuota;
    }
    expect(res.summary.quota?.overCommitted).toBe(0);
    // some rounds ran with the embeddings holding real memory
    expect(Math.max(...tl.map((s) => s.embeddingHeld))).toBeGreaterThan(128);
  });

  it('is off by default: no quota in the config, summary or result', () => {
    const off = runReplay({ trace: waveTrace().slice(0, 60), profile: 'vllm-default', latency, instances: 1, gpuBlocks: total });
    expect(off.config.quota).toBeUndefined();
    expect(off.summary.quota).toBeUndefined();
    expect(off.quotaTimeline).toBeUndefined();
  });

  it('names the bad option', () => {
    const trace = waveTrace().slice(0, 5);
    expect(() => runReplay({ trace, latency, quota: { intervalMs: -1 } })).toThrow(/quota\.intervalMs/);
    expect(() => runReplay({ trace, latency, quota: { llmMinFraction: 0.8, embeddingMinFraction: 0.5 } })).toThrow(/quota\.llmMinFraction \+ quota\.embeddingMinFraction/);
    expect(() => runReplay({ trace, latency, quota: { maxStepFraction: 0 } })).toThrow(/quota\.maxStepFraction/);
  });
});

describe('predicted vs actual KV per request', () => {
  it('rows give the admission footprint and the peak blocks of a hand-computed case, and the summary their MAPE', () => {
    // two requests admitted in the same first step (the predictor has seen nothing yet)
    const trace: SimRequest[] = [
      { requestId: 'a', arrivalUs: 0, promptTokens: 100, maxTokens: 1000, outputTokens: 50 },
      { requestId: 'b', arrivalUs: 0, promptTokens: 100, maxTokens: 2000, outputTokens: 1000 },
      { requestId: 'c', arrivalUs: 0, promptTokens: 100, maxTokens: 400, outputTokens: 400 },
    ];
    const profile = { ...VLLM_DEFAULT_PROFILE, lifetimePredictor: 'constant' };
    const res = runReplay({ trace, profile, latency, instances: 1, gpuBlocks: 500 });
    // the constant predictor's p90 before any observation (its conformal band around 256 tokens)
    const p90 = createPredictor('constant').predictRemaining(lifetimeFeatures(trace[0] as SimRequest), 0).p90;
    expect(p90).toBe(770);
    // predicted: blocks(100 + ⌈770 × 1.1⌉ = 847) = ⌈947 / 16⌉ = 60, capped at blocks(100 + maxTokens)
    // (c: ⌈500 / 16⌉ = 32); peak: the last token is sampled, not computed: ⌈(100 + output − 1) / 16⌉
    const by = new Map(res.requests.map((r) => [r.requestId, r]));
    expect(by.get('a')).toMatchObject({ predictedKvBlocks: 60, peakKvBlocks: 10 }); // ⌈149 / 16⌉
    expect(by.get('b')).toMatchObject({ predictedKvBlocks: 60, peakKvBlocks: 69 }); // ⌈1099 / 16⌉: under-predicted
    expect(by.get('c')).toMatchObject({ predictedKvBlocks: 32, peakKvBlocks: 32 }); // ⌈499 / 16⌉
    // MAPE = (50 / 10 + 9 / 69 + 0) / 3; one of three under-predicted
    expect(res.summary.kvPredictionMape).toBeCloseTo((5 + 9 / 69) / 3, 12);
    expect(res.summary.kvUnderpredictionRate).toBeCloseTo(1 / 3, 12);
  });
});
