/**
 * Check 4: conservation. Random small workloads on random configurations: every request
 * finishes or is rejected with a reason, no block leaks (the pool holds exactly the evictable
 * cached blocks, and is empty after the cache is cleared), and the prefix cache is accounted.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE, createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

const requestArb = fc.record({
  arrivalUs: fc.integer({ min: 0, max: 3_000_000 }),
  prompt: fc.integer({ min: 1, max: 400 }),
  output: fc.integer({ min: 1, max: 60 }),
  conv: fc.integer({ min: 0, max: 3 }),
  embed: fc.boolean(),
});
const workloadArb = fc.array(requestArb, { minLength: 1, maxLength: 25 });

interface W {
  arrivalUs: number;
  prompt: number;
  output: number;
  conv: number;
  embed: boolean;
}

function toRequests(ws: readonly W[]): SimRequest[] {
  return ws
    .map((w, i) => {
      const n = Math.ceil(w.prompt / 16);
      const ids = new Uint32Array(n);
      for (let b = 0; b < n; b++) ids[b] = w.conv * 1000 + b;
      return {
        requestId: `r${i}`,
        arrivalUs: w.arrivalUs,
        promptTokens: w.prompt,
        maxTokens: w.output,
        outputTokens: w.embed ? 0 : w.output,
        hashIds: ids,
        hashBlockTokens: 16,
        ...(w.embed && i % 5 === 0 ? { kind: 'embed' as const } : {}),
      };
    })
    .sort((a, b) => a.arrivalUs - b.arrivalUs);
}

// Swap preemption as a pipeline (the pipeline owns the preemption mode).
const SWAP_PIPELINE = 'sched.step(fcfs,memory-aware-preemption{mode=swap victim=newest},chunked-prefill{budget=256 max-seqs=8})';

describe('conservation', () => {
  // On EngineCore: a run's violations hold `KvCacheManager.verify()` failures (ref counts, free
  // queue, index consistency) and blocks still held by requests at the end, per instance.
  for (const prefixIndex of ['hash-map', 'radix'] as const) {
    it(`every request finishes or is rejected with a reason; no block leaks (prefixIndex ${prefixIndex})`, () => {
      let evicted = 0;
      let cachedTokens = 0;
      fc.assert(
        fc.property(
          workloadArb,
          fc.integer({ min: 8, max: 120 }),
          fc.constantFrom(0, 40),
          fc.constantFrom('lru', 's3fifo', 'arc', 'sieve', 'lfu'),
          fc.constantFrom('vllm-default', 'kvmgr-default', 'sglang-default', SWAP_PIPELINE),
          fc.integer({ min: 1, max: 3 }),
          fc.constantFrom<'kvmgr' | 'tiered-pool'>('kvmgr', 'tiered-pool'),
          (ws, gpuBlocks, cpuBlocks, eviction, pipeline, nInst, kvBackend) => {
            const requests = toRequests(ws);
            const res = runReplay({
              trace: requests,
              instances: nInst,
              profile: { ...VLLM_DEFAULT_PROFILE, name: 'small', tokenBudget: 256, maxSeqs: 8 },
              pipeline,
              router: nInst > 1 ? 'kvmgr-default' : 'round-robin',
              eviction,
              gpuBlocks,
              cpuBlocks,
              kvBackend,
              prefixIndex,
              latency,
              seed: 1,
            });
            expect(res.violations).toEqual([]);
            expect(res.requests.length).toBe(requests.length);
            for (const r of res.requests) {
              if (r.rejectedReason === '') {
                expect(r.ttftMs).toBeGreaterThanOrEqual(0);
                expect(r.e2eMs).toBeGreaterThanOrEqual(r.ttftMs);
              }
              cachedTokens += Math.max(0, r.cachedTokens);
            }
            expect(res.summary.finished + res.summary.rejected).toBe(requests.length);
            evicted += res.summary.evictedBlocks;
          },
        ),
        { numRuns: 60, seed: 42 },
      );
      // The runs exercise prefix hits and eviction under pressure.
      expect(evicted).toBeGreaterThan(0);
      expect(cachedTokens).toBeGreaterThan(0);
    });
  }

  it('rejects a prompt that can never fit, with a reason', () => {
    const res = runReplay({
      trace: [{ requestId: 'huge', arrivalUs: 0, promptTokens: 10_000, maxTokens: 4, outputTokens: 4 }],
      instances: 1,
      gpuBlocks: 100,
      latency,
    });
    expect(res.requests[0]!.rejectedReason).toBe('exceeds-capacity');
    expect(res.violations).toEqual([]);
  });

  for (const [profile, prefixIndex] of [VLLM_DEFAULT_PROFILE, KVMGR_DEFAULT_PROFILE].flatMap((p) => [[p, 'hash-map'], [p, 'radix']] as const)) {
    it(`conserves requests and blocks under memory pressure (${profile.name}, prefixIndex ${prefixIndex})`, () => {
      const requests = toRequests(
        Array.from({ length: 40 }, (_, i) => ({ arrivalUs: i * 20_000, prompt: 100 + ((i * 37) % 300), output: 30 + (i % 50), conv: i % 4, embed: false })),
      );
      const res = runReplay({ trace: requests, instances: 2, profile, gpuBlocks: 40, latency, prefixIndex });
      expect(res.violations).toEqual([]);
      expect(res.summary.finished + res.summary.rejected).toBe(40);
      expect(res.summary.finished).toBe(40);
    });
  }
});
