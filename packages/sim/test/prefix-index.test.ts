/**
 * `prefixIndex`: the engine core's `KvCacheManager` over its block-hash index or over
 * @kvmgr/prefix-cache's radix cache: validation, and the analytic equivalence of the two when
 * nothing is evicted.
 */
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE, createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, code)).toBe(true);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('prefixIndex', () => {
  it('runReplay validates prefixIndex', () => {
    const trace: SimRequest[] = [{ requestId: 'r', arrivalUs: 0, promptTokens: 10, maxTokens: 2, outputTokens: 2 }];
    expectCode(() => runReplay({ trace, latency, prefixIndex: 'trie' as 'radix' }), 'KVMGR_INVALID_ARGUMENT');
  });
});

describe("prefixIndex 'radix' vs 'hash-map' without memory pressure", () => {
  // 4 conversations whose turns grow the previous prompt (shared prefixes), arriving while the
  // previous turn still decodes; every 3rd turn arrives twice at once (two requests prefilling the
  // same new blocks: concurrent duplicates), with a pool large enough that nothing is evicted.
  const requests: SimRequest[] = Array.from({ length: 48 }, (_, i) => {
    const conv = i % 4;
    const turn = Math.floor(i / 4);
    const prompt = 200 + turn * 90 + conv * 7;
    const ids = Uint32Array.from({ length: Math.ceil(prompt / 16) }, (_, b) => conv * 10_000 + b);
    return { requestId: `r${i}`, arrivalUs: i * 150_000, promptTokens: prompt, maxTokens: 40, outputTokens: 20 + (i % 30), hashIds: ids, hashBlockTokens: 16 };
  }).flatMap((r, i) => (Math.floor(i / 4) % 3 === 0 ? [r, { ...r, requestId: `${r.requestId}-twin`, outputTokens: 7 }] : [r]));

  // KvCacheManager's block-hash index vs its radix cache
  for (const [profile, instances] of [VLLM_DEFAULT_PROFILE, KVMGR_DEFAULT_PROFILE].flatMap((p) => [[p, 1], [p, 2]] as const)) {
    it(`gives identical hit rates and results (${profile.name}, ${instances} instance(s))`, () => {
      const run = (prefixIndex: 'hash-map' | 'radix') => runReplay({ trace: requests, instances, profile, latency, gpuBlocks: 4000, prefixIndex });
      const h = run('hash-map');
      const r = run('radix');
      expect(h.violations).toEqual([]);
      expect(r.violations).toEqual([]);
      expect(h.summary.evictedBlocks).toBe(0);
      expect(r.summary.evictedBlocks).toBe(0);
      expect(h.summary.hitRate).toBeGreaterThan(0.3);
      expect(r.summary.hitRate).toBe(h.summary.hitRate);
      expect(r.requests).toEqual(h.requests);
      expect(r.summary).toEqual(h.summary);
      expect(r.config).toEqual({ ...h.config, prefixIndex: 'radix' });
    });
  }
});
