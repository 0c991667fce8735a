import { describe, expect, it } from 'vitest';
import { createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

describe('P/D disaggregation', () => {
  it('prefills long prompts on the prefill instance and decodes after the KV transfer', () => {
    const requests: SimRequest[] = Array.from({ length: 30 }, (_, i) => ({
      requestId: `r${i}`,
      arrivalUs: i * 50_000,
      promptTokens: i % 3 === 0 ? 100 : 3000,
      maxTokens: 64,
      outputTokens: 20 + (i % 7),
    }));
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
    expect(res.summary.perInstance.find((i) => i.id === 'prefill-0')!.finished).toBe(0);
  });
});
