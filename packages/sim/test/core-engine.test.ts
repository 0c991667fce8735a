/**
 * `engine: 'core'`: the cluster driven over `@kvmgr/engine`'s EngineCore. Conservation on the
 * bundled sample, identical rows with the instance engine where the three documented differences
 * cannot arise (no eviction, no preemption), the router's block index fed by KV events, and the
 * configurations the core does not take yet rejected with the option named.
 */
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { KVMGR_DEFAULT_PROFILE, VLLM_DEFAULT_PROFILE, createSimRouter, loadMooncakeTrace, runReplay } from '../src/index.js';
import { createFcfsPlanner } from './support/fcfs-planner.js';
import type { SimRouter } from '../src/engine/cluster.js';
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
    // the counters the instance engine reports: fragmentation and token-slot utilization from the
    // step stats, planned steps, re-prefill after eviction (evictions happen: see above)
    const m = res.summary;
    expect(m.fragmentation).toBeGreaterThan(0);
    expect(m.kvUtilization).toBeGreaterThan(0);
    expect(m.kvUtilization + m.fragmentation).toBeLessThanOrEqual(1);
    for (const i of m.perInstance) expect(i.plannedSteps).toBeGreaterThan(0);
    for (const i of m.perInstance) expect(i.plannedSteps).toBeLessThan(i.steps);
    expect(m.reprefillRate).toBeGreaterThan(0);
  });

  it('gives the rows of the legacy engine when nothing is evicted or preempted', () => {
    const reqs = first(80);
    const base = { trace: reqs, profile: VLLM_DEFAULT_PROFILE, rateScale: 0.5 } as const;
    const a = runReplay({ ...base, engine: 'legacy' });
    const b = runReplay({ ...base, engine: 'core' });
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

  it('rejects what the core does not take yet, naming the option', () => {
    const reqs = first(10);
    expectCode(() => runReplay({ trace: reqs, kvBackend: 'tiered-pool', engine: 'core' }), 'KVMGR_INVALID_ARGUMENT', 'kvBackend');
    expectCode(() => runReplay({ trace: reqs, planner: createFcfsPlanner(), engine: 'core' }), 'KVMGR_INVALID_ARGUMENT', 'pipeline');
    expectCode(() => runReplay({ trace: reqs, engine: 'gpu' as never }), 'KVMGR_INVALID_ARGUMENT', 'engine');
  });

  it('is the default engine; with no engine asked, what it does not take yet runs on legacy and says why', () => {
    const reqs = first(10);
    const plain = runReplay({ trace: reqs, gpuBlocks: 4000 });
    expect(plain.config.engine).toBe('core');
    expect(plain.config.engineFallback).toBeUndefined();
    const offload = runReplay({ trace: reqs, profile: { ...KVMGR_DEFAULT_PROFILE, name: 'with-cpu-tier', cpuOffloadGiB: 4 }, gpuBlocks: 4000 });
    expect(offload.config.engine, 'a CPU tier runs on the core').toBe('core');
    expect(offload.config.cpuBlocks).toBeGreaterThan(0);
    expect(offload.config.engineFallback).toBeUndefined();
    const tiered = runReplay({ trace: reqs, kvBackend: 'tiered-pool', gpuBlocks: 4000 });
    expect(tiered.config.engine).toBe('legacy');
    expect(tiered.config.engineFallback).toContain('tiered-pool');
    const fcfs = runReplay({ trace: reqs, planner: createFcfsPlanner(), gpuBlocks: 4000 });
    expect(fcfs.config.engine).toBe('legacy');
    expect(fcfs.config.engineFallback).toContain('planner builtin-fcfs');
    // asked for explicitly, legacy runs without a fallback note ('instance' is its older name)
    for (const engine of ['legacy', 'instance'] as const) {
      const l = runReplay({ trace: reqs, gpuBlocks: 4000, engine });
      expect(l.config.engine).toBe('legacy');
      expect(l.config.engineFallback).toBeUndefined();
    }
  });
});
