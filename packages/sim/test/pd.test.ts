import { createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

const requests: SimRequest[] = Array.from({ length: 30 }, (_, i) => ({
  requestId: `r${i}`,
  arrivalUs: i * 50_000,
  promptTokens: i % 3 === 0 ? 100 : 3000,
  maxTokens: 64,
  outputTokens: 20 + (i % 7),
}));

describe('P/D disaggregation', () => {
  it('prefills long prompts on the prefill instance and decodes after the KV transfer', () => {
    const res = runReplay({ trace: requests, instances: ['prefill', 'decode', 'decode'], profile: 'kvmgr-default', latency, gpuBlocks: 2000 });
    expect(res.violations).toEqual([]);
    expect(res.summary.finished).toBe(30);
    const disagg = res.requests.filter((r) => r.prefillInstance !== '');
    expect(disagg.length).toBeGreaterThan(0);
    for (const r of disagg) {
      expect(r.prefillInstance).toBe('prefill-0');
      expect(r.instance).toMatch(/^decode-/);
      // The first token comes from the prefill instance; the decode side waits for the KV
      // transfer (≥ 1 ms base), so TPOT includes that gap.
      expect(r.tpotMs * (r.outputTokens - 1)).toBeGreaterThan(1);
    }
    // Short prompts (below the router's 256-token threshold) stay on a decode instance.
    for (const r of res.requests.filter((x) => x.promptTokens === 100)) expect(r.prefillInstance).toBe('');
    const prefill = res.summary.perInstance.find((i) => i.id === 'prefill-0');
    expect(prefill?.finished).toBe(0);
    // the prompts were computed (and counted) on the prefill instance only
    expect(prefill?.hitRate).toBeGreaterThanOrEqual(0);
    expect(prefill?.steps).toBeGreaterThanOrEqual(disagg.length > 0 ? 1 : 0);
  });

  it('finishes a one-token answer on the prefill instance, with no transfer', () => {
    const one = requests.map((r) => ({ ...r, outputTokens: 1 }));
    const res = runReplay({ trace: one, instances: ['prefill', 'decode'], profile: 'kvmgr-default', latency, gpuBlocks: 2000 });
    expect(res.violations).toEqual([]);
    expect(res.summary.finished).toBe(30);
    const disagg = res.requests.filter((r) => r.prefillInstance !== '');
    expect(disagg.length).toBeGreaterThan(0);
    const prefill = res.summary.perInstance.find((i) => i.id === 'prefill-0');
    expect(prefill?.finished).toBe(disagg.length);
    for (const r of disagg) expect(r.e2eMs).toBeCloseTo(r.ttftMs, 9);
  });
});

describe('P/D on the engine core', () => {
  it('charges the KV transfer to the decode leg: base 1 ms + prompt blocks × bytes per block / 25 GB/s', () => {
    const one = [{ requestId: 'a', arrivalUs: 0, promptTokens: 4096, maxTokens: 8, outputTokens: 8 }];
    const common = { trace: one, profile: 'vllm-default', router: 'kvmgr-default', latency, gpuBlocks: 2000 } as const;
    const pd = runReplay({ ...common, instances: ['prefill', 'decode'] }).requests[0];
    const agg = runReplay({ ...common, instances: 1 }).requests[0];
    expect(pd?.prefillInstance).toBe('prefill-0');
    expect(agg?.prefillInstance).toBe('');
    // Llama-3.1-8B: 32 layers × 8 KV heads × 128 × 2 (K, V) × 2 bytes per token, 16 tokens a block
    const bytesPerBlock = createKVCacheSpec({ blockSize: 16, numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'bf16' }).bytesPerBlock;
    const transferMs = 1 + (((4096 / 16) * bytesPerBlock) / 25e9) * 1e3;
    const decodeMs = (r: typeof pd) => (r?.e2eMs as number) - (r?.ttftMs as number);
    expect(decodeMs(pd) - decodeMs(agg)).toBeCloseTo(transferMs, 6);
  });
});
