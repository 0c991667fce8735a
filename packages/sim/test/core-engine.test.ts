/**
 * `engine: 'core'`: the cluster driven over `@kvmgr/engine`'s EngineCore. Conservation on the
 * bundled sample, identical rows from its two prefix indexes where their eviction orders cannot
 * differ (nothing evicted), the router's block index fed by KV events, the CPU tier, and the
 * removed legacy engine refused with its name.
 */
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE, createSimRouter, loadMooncakeTrace, runReplay } from '../src/index.js';
import type { SimRouter } from '../src/engine/cluster-types.js';
import type { SimRequest } from '../src/traces/types.js';
import { MOONCAKE_SAMPLE } from './paths.js';

const sample = loadMooncakeTrace(MOONCAKE_SAMPLE);
const first = (k: number): SimRequest[] => sample.requests.slice(0, k);

function expectCode(fn: () => unknown, code: string, mentions: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, code)).toBe(true);
    expect((e as Error).message).toContain(mentions);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe("runReplay engine 'core'", () => {
  it('replays the first 600 sample requests with every request finished and no conservation violation', () => {
    const res = runReplay({ trace: first(600), profile: VLLM_DEFAULT_PROFILE, engine: 'core', gpuBlocks: 6000 });
    expect(res.config.engine).toBe('core');
    expect(res.violations).toEqual([]);
    // only prompts longer than the 6,000-block cache are refused (as vLLM's max_model_len)
    expect(Object.keys(res.summary.rejectedByReason).filter((k) => k !== 'exceeds-capacity')).toEqual([]);
    for (const r of res.requests) if (r.rejectedReason !== '') expect(Math.ceil((r.promptTokens + 1) / 16)).toBeGreaterThan(6000);
    expect(res.summary.finished).toBeGreaterThan(590);
    expect(res.summary.evictedBlocks).toBeGreaterThan(0);
    for (const r of res.requests) {
      if (r.rejectedReason !== '') continue;
      expect(r.ttftMs).toBeGreaterThan(0);
      expect(r.e2eMs).toBeGreaterThanOrEqual(r.ttftMs);
      expect(r.cachedTokens).toBeLessThan(r.promptTokens);
    }
    const perInst = res.summary.perInstance.reduce((a, i) => a + i.finished, 0);
    expect(perInst).toBe(res.summary.finished);
    // the counters a run reports: fragmentation and token-slot utilization from the
    // step stats, planned steps, re-prefill after eviction (evictions happen: see above)
    const m = res.summary;
    expect(m.fragmentation).toBeGreaterThan(0);
    expect(m.kvUtilization).toBeGreaterThan(0);
    expect(m.kvUtilization + m.fragmentation).toBeLessThanOrEqual(1);
    for (const i of m.perInstance) expect(i.plannedSteps).toBeGreaterThan(0);
    for (const i of m.perInstance) expect(i.plannedSteps).toBeLessThan(i.steps);
    expect(m.reprefillRate).toBeGreaterThan(0);
  });

  it('gives the same rows on the block-hash and the radix index when nothing is evicted or preempted', () => {
    const reqs = first(80);
    const base = { trace: reqs, profile: VLLM_DEFAULT_PROFILE, rateScale: 0.5 } as const;
    const a = runReplay({ ...base, prefixIndex: 'hash-map' });
    const b = runReplay({ ...base, prefixIndex: 'radix' });
    expect(a.summary.evictedBlocks).toBe(0);
    expect(a.summary.preemptions).toBe(0);
    expect(b.summary.evictedBlocks).toBe(0);
    expect(b.requests.length).toBe(a.requests.length);
    for (let i = 0; i < a.requests.length; i++) {
      const x = a.requests[i];
      const y = b.requests[i];
      expect(y?.requestId).toBe(x?.requestId);
      expect(y?.cachedTokens).toBe(x?.cachedTokens);
      expect(y?.instance).toBe(x?.instance);
      expect(y?.ttftMs).toBeCloseTo(x?.ttftMs as number, 6);
      expect(y?.e2eMs).toBeCloseTo(x?.e2eMs as number, 6);
    }
    expect(b.summary.hitRate).toBe(a.summary.hitRate);
  });

  it("feeds the router's block index from the engines' KV events, with the keys it routes on", () => {
    const reqs = first(400);
    const ids = ['inst-0', 'inst-1', 'inst-2', 'inst-3'];
    const inner = createSimRouter('pa:1', { instanceIds: ids, blockSize: 512, seed: 0 });
    const stored = new Set<string>();
    let removed = 0;
    let removedUnknown = 0;
    let routedKnown = 0;
    const router: SimRouter = {
      name: 'recording',
      route(req, keys, snaps, now, local) {
        // a follow-up turn routes on keys an engine announced when an earlier turn was cached
        if (local !== undefined && local.length >= 2 && stored.has(`${local[0]}:${local[1]}`)) routedKnown++;
        return inner.route(req, keys, snaps, now, local);
      },
      onKeyStored(i, hi, lo) {
        stored.add(`${hi}:${lo}`);
        inner.onKeyStored?.(i, hi, lo);
      },
      onKeyRemoved(i, hi, lo) {
        removed++;
        if (!stored.has(`${hi}:${lo}`)) removedUnknown++;
        inner.onKeyRemoved?.(i, hi, lo);
      },
    };
    const res = runReplay({ trace: reqs, profile: VLLM_DEFAULT_PROFILE, engine: 'core', simRouter: router, gpuBlocks: 4000 });
    expect(res.violations).toEqual([]);
    expect(stored.size).toBeGreaterThan(0);
    expect(removed).toBeGreaterThan(0);
    expect(removedUnknown).toBe(0); // only keys announced as stored are removed
    expect(routedKnown).toBeGreaterThan(0);
    // prefix-affinity on the fed index finds more cached prefix than round-robin
    const rr = runReplay({ trace: reqs, profile: VLLM_DEFAULT_PROFILE, engine: 'core', gpuBlocks: 4000 });
    expect(res.summary.hitRate).toBeGreaterThan(rr.summary.hitRate);
  });

  it('runs kvmgr-default (adaptive eviction, predictor, SLO-aware victims) without violations', () => {
    const res = runReplay({ trace: first(400), profile: KVMGR_DEFAULT_PROFILE, engine: 'core', gpuBlocks: 4000 });
    expect(res.violations).toEqual([]);
    expect(res.summary.finished + res.summary.rejected).toBe(400);
    expect(res.config.scheduler).toContain('sched.step');
  });

  it("runs a CPU tier on the KvCacheManager: offloads, reloads, more prompt tokens served from cache, no violation", () => {
    const base = { trace: first(300), profile: VLLM_DEFAULT_PROFILE, engine: 'core', gpuBlocks: 1500 } as const;
    const gpuOnly = runReplay(base);
    const res = runReplay({ ...base, cpuBlocks: 50_000 });
    expect(res.violations).toEqual([]);
    expect(res.config.cpuBlocks).toBe(50_000);
    expect(res.summary.finished + res.summary.rejected).toBe(300);
    expect(gpuOnly.summary.offloadedBlocks).toBe(0);
    expect(res.summary.offloadedBlocks).toBeGreaterThan(0);
    expect(res.summary.reloadedBlocks).toBeGreaterThan(0);
    expect(res.summary.hitRate).toBeGreaterThan(gpuOnly.summary.hitRate);
  });

  it('refuses the removed legacy engine, naming the value', () => {
    const reqs = first(10);
    for (const engine of ['legacy', 'instance', 'gpu']) expectCode(() => runReplay({ trace: reqs, engine: engine as never }), 'KVMGR_INVALID_ARGUMENT', engine);
    expectCode(() => runReplay({ trace: reqs, kvBackend: 'disk' as never }), 'KVMGR_INVALID_ARGUMENT', 'kvBackend');
  });

  it("runs kvBackend 'tiered-pool' (older configs) as the core's TieredPool CPU tier: the rows of 'kvmgr'", () => {
    const base = { trace: first(300), profile: VLLM_DEFAULT_PROFILE, gpuBlocks: 1500, cpuBlocks: 50_000 } as const;
    const tiered = runReplay({ ...base, kvBackend: 'tiered-pool' });
    const plain = runReplay(base);
    expect(tiered.config.engine).toBe('core');
    expect(tiered.config.kvBackend).toBe('tiered-pool');
    expect(tiered.violations).toEqual([]);
    expect(tiered.summary.offloadedBlocks).toBeGreaterThan(0);
    expect(tiered.requests).toEqual(plain.requests);
    expect(tiered.summary).toEqual(plain.summary);
  });
});
