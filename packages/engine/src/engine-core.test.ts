/**
 * EngineCore: a closed form (one request, constant-coefficient step time → exact TTFT / E2E and
 * step count), conservation over a random workload with aborts and preemptions, preemption of the
 * newest request under a tiny pool, and the idle / plan-less / abort paths leaving nothing held.
 */
import { type KvEvent, blockKeyToU64, createRng } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { BLOCK_KEY_STORED } from './block-key-log.js';
import { EngineCore } from './engine-core.js';
import type { EngineRequest, RequestFinishedStats, StepShape } from './engine-types.js';

const B0 = 6472;
const B1 = 19.8;
const B2 = 304.4;
const blis = (s: Readonly<StepShape>): number => B0 + B1 * s.prefillTokens + B2 * s.decodeTokens;

/** Runs the core to completion on a discrete-event clock; returns the end time, µs. */
function drain(core: EngineCore, startUs = 0, maxSteps = 100_000): number {
  let now = startUs;
  for (let i = 0; i < maxSteps; i++) {
    const step = core.startStep(now);
    if (step === null) return now;
    now += step.durationUs;
    core.finishStep(now);
  }
  throw new Error('did not drain');
}

function collect(core: EngineCore): { finished: RequestFinishedStats[]; tokens: Map<string, number[]>; events: KvEvent[] } {
  const finished: RequestFinishedStats[] = [];
  const tokens = new Map<string, number[]>();
  const events: KvEvent[] = [];
  core.hooks = {
    onToken: (id, t) => tokens.set(id, [...(tokens.get(id) ?? []), t]),
    onFinished: (_r, s) => finished.push(s),
    onKvEvents: (e) => events.push(...e),
  };
  return { finished, tokens, events };
}

describe('EngineCore', () => {
  it('closed form: one request, TTFT = β0 + β1·P, E2E = TTFT + (O−1)(β0 + β2), O steps; a repeat hits the cache', () => {
    const core = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: blis });
    const { finished, tokens, events } = collect(core);
    const P = 100;
    const O = 5;
    const prompt = Array.from({ length: P }, (_, i) => (i * 7) % 1000);
    core.addRequest({ requestId: 'a', promptTokenIds: prompt, maxTokens: O }, 0);
    const end = drain(core);
    const ttft = B0 + B1 * P;
    const e2e = ttft + (O - 1) * (B0 + B2);
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatchObject({ requestId: 'a', finishReason: 'length', ttftUs: ttft, e2eUs: e2e, outputTokens: O, promptTokens: P, cachedPromptTokens: 0, queueUs: 0 });
    expect(end).toBe(e2e);
    expect(core.metrics).toMatchObject({ steps: O, generationTokens: O, promptTokens: P, numPreemptions: 0, numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 });
    expect(tokens.get('a')).toHaveLength(O);
    // (P + O − 1) = 104 computed tokens → 6 full blocks stored (6 prompt blocks)
    const stored = events.filter((e) => e.type === 'BlockStored').reduce((n, e) => n + (e.type === 'BlockStored' ? e.blockHashes.length : 0), 0);
    expect(stored).toBe(6);

    // the same prompt again: 6 cached blocks (96 tokens), 4 tokens prefilled
    core.addRequest({ requestId: 'b', promptTokenIds: prompt, maxTokens: 1 }, end);
    const start = core.startStep(end);
    expect(start?.shape.prefillTokens).toBe(P - 96);
    core.finishStep(end + (start?.durationUs ?? 0));
    expect(finished[1]).toMatchObject({ requestId: 'b', cachedPromptTokens: 96, });
    expect(finished[1]?.ttftUs).toBeCloseTo(B0 + B1 * 4, 6);
    expect(core.metrics).toMatchObject({ prefixCacheQueries: 2 * P, prefixCacheHits: 96, promptTokensCached: 96 });
  });

  it('conservation over a random workload: every request finishes or is aborted, nothing held, tokens = Σ outputs', () => {
    const rng = createRng(7);
    const core = new EngineCore({ kv: { numBlocks: 48, blockSize: 16 }, stepTimeUs: blis, seed: 3, tokenBudget: 512, maxSeqs: 16, kvBlockKeys: true });
    const { finished, tokens, events } = collect(core);
    // kvBlockKeys: the same stream in compact form, one call just before each onKvEvents call
    const compact: string[] = [];
    let compactCalls = 0;
    let eventCalls = 0;
    const onKvEvents = core.hooks.onKvEvents;
    core.hooks.onKvEvents = (e) => {
      eventCalls++;
      expect(compactCalls).toBe(eventCalls);
      onKvEvents?.(e);
    };
    core.hooks.onKvBlockKeys = (log) => {
      compactCalls++;
      for (let i = 0; i < log.length; i++) {
        compact.push(`${log.kind(i) === BLOCK_KEY_STORED ? 'S' : 'R'}${blockKeyToU64(log.hi(i), log.lo(i))}`);
        expect(log.position(i)).toBeGreaterThanOrEqual(0);
      }
    };
    const shared = Array.from({ length: 64 }, (_, i) => 1000 + i);
    const N = 60;
    const reqs: { req: EngineRequest; atUs: number; abortAtUs: number }[] = [];
    let t = 0;
    for (let i = 0; i < N; i++) {
      t += Math.floor(rng.exponential(20_000));
      const own = Array.from({ length: rng.int(1, 120) }, () => rng.int(0, 31999));
      const prompt = rng.next() < 0.6 ? [...shared.slice(0, rng.int(0, 64)), ...own] : own;
      const maxTokens = rng.int(1, 40);
      const abortAtUs = rng.next() < 0.1 ? t + rng.int(0, 200_000) : Number.POSITIVE_INFINITY;
      reqs.push({ req: { requestId: `r${i}`, promptTokenIds: prompt, maxTokens }, atUs: t, abortAtUs });
    }
    let now = 0;
    let next = 0;
    const pendingAborts = [...reqs].filter((r) => Number.isFinite(r.abortAtUs)).sort((a, b) => a.abortAtUs - b.abortAtUs);
    for (let guard = 0; guard < 200_000; guard++) {
      while (next < N && (reqs[next] as (typeof reqs)[number]).atUs <= now) {
        const r = reqs[next++] as (typeof reqs)[number];
        core.addRequest(r.req, r.atUs);
      }
      while (pendingAborts.length > 0 && (pendingAborts[0] as (typeof reqs)[number]).abortAtUs <= now) core.abort((pendingAborts.shift() as (typeof reqs)[number]).req.requestId, now);
      const step = core.startStep(now);
      if (step === null) {
        if (next >= N && !core.hasWork()) break;
        now = Math.max(now + 1, next < N ? (reqs[next] as (typeof reqs)[number]).atUs : now + 1);
        continue;
      }
      now += step.durationUs;
      core.finishStep(now);
      core.kv.verify();
    }
    expect(finished).toHaveLength(N);
    expect(new Set(finished.map((f) => f.requestId)).size).toBe(N);
    for (const f of finished) {
      const r = reqs.find((x) => x.req.requestId === f.requestId) as (typeof reqs)[number];
      expect(f.outputTokens).toBe(tokens.get(f.requestId)?.length ?? 0);
      if (f.finishReason === 'length') expect(f.outputTokens).toBe(r.req.maxTokens);
      else expect(f.finishReason).toBe('abort');
    }
    const generated = [...tokens.values()].reduce((n, v) => n + v.length, 0);
    expect(generated).toBe(finished.reduce((n, f) => n + f.outputTokens, 0));
    expect(core.metrics.generationTokens).toBe(generated);
    expect(core.kv.numHeldBlocks).toBe(0);
    expect(core.kv.numFreeBlocks).toBe(48);
    expect(core.kv.numRequests).toBe(0);
    expect(core.metrics.prefixCacheHits).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'BlockRemoved')).toBe(true);
    const flat = events.flatMap((e) => (e.type === 'AllBlocksCleared' ? [] : e.blockHashes.map((h) => `${e.type === 'BlockStored' ? 'S' : 'R'}${h}`)));
    expect(compact).toEqual(flat);
    expect(compactCalls).toBe(eventCalls);
    core.kv.verify();
  });

  it('preemption under a tiny pool: the newest request is preempted by recompute and both still finish', () => {
    const core = new EngineCore({ kv: { numBlocks: 6, blockSize: 4 }, stepTimeUs: () => 1000 });
    const { finished } = collect(core);
    core.addRequest({ requestId: 'old', promptTokenIds: [1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 12 }, 0);
    core.addRequest({ requestId: 'new', promptTokenIds: [9, 10, 11, 12, 13, 14, 15, 16], maxTokens: 12 }, 0);
    drain(core);
    expect(core.metrics.numPreemptions).toBeGreaterThan(0);
    const byId = Object.fromEntries(finished.map((f) => [f.requestId, f]));
    expect(byId.old).toMatchObject({ finishReason: 'length', outputTokens: 12, preemptions: 0 });
    expect(byId.new).toMatchObject({ finishReason: 'length', outputTokens: 12 });
    expect(byId.new?.preemptions).toBeGreaterThan(0);
    expect(core.kv.numHeldBlocks).toBe(0);
    core.kv.verify();
  });

  it('idle, plan-less and abort paths leave nothing held', () => {
    const core = new EngineCore({ kv: { numBlocks: 2, blockSize: 16 }, stepTimeUs: () => 10 });
    const { finished } = collect(core);
    expect(core.startStep(0)).toBeNull();
    // a prompt that can never fit: planned as deferred, no step runs
    core.addRequest({ requestId: 'big', promptTokens: 100, maxTokens: 4 }, 0);
    expect(core.startStep(1)).toBeNull();
    expect(core.kv.numHeldBlocks).toBe(0);
    expect(core.numWaiting).toBe(1);
    expect(core.abort('big', 2)).toBe(true);
    expect(core.abort('big', 2)).toBe(false);
    expect(finished.at(-1)).toMatchObject({ requestId: 'big', finishReason: 'abort', outputTokens: 0, ttftUs: -1 });
    // abort in the middle of a step: its work is dropped, no token, blocks freed at once
    core.addRequest({ requestId: 'x', promptTokens: 20, maxTokens: 4 }, 3);
    const step = core.startStep(3);
    expect(step?.plan.admitted).toBe(1);
    expect(core.kv.numHeldBlocks).toBe(2);
    core.abort('x');
    expect(core.kv.numHeldBlocks).toBe(0);
    core.finishStep(3 + (step?.durationUs ?? 0));
    expect(finished.at(-1)).toMatchObject({ requestId: 'x', finishReason: 'abort', outputTokens: 0 });
    expect(core.hasWork()).toBe(false);
    expect(core.kv.numRequests).toBe(0);
    expect(core.kv.numFreeBlocks).toBe(2);
    expect(core.metrics.requestSuccess).toEqual({ stop: 0, length: 0, abort: 2, rejected: 0 });
  });

  it('trace requests (block keys only) share cached blocks by key; stop tokens finish with reason stop', () => {
    const core = new EngineCore({ kv: { numBlocks: 32, blockSize: 16 }, stepTimeUs: () => 100, tokenGenerator: (_id, i) => (i === 2 ? 7 : 100 + i) });
    const { finished } = collect(core);
    core.addRequest({ requestId: 't1', promptTokens: 40, blockKeys: [11, 12], maxTokens: 3 }, 0);
    const end = drain(core);
    core.addRequest({ requestId: 't2', promptTokens: 50, blockKeys: [11, 12, 13], maxTokens: 10, stopTokenIds: [7] }, end);
    drain(core, end);
    expect(finished[1]).toMatchObject({ requestId: 't2', cachedPromptTokens: 32, finishReason: 'stop', outputTokens: 3 });
  });

  it('arrivalUs: FCFS order and TTFT count from the front-end arrival, not from addRequest; later than nowUs is refused', () => {
    const core = new EngineCore({ kv: { numBlocks: 64, blockSize: 16 }, stepTimeUs: () => 100, maxSeqs: 1 });
    const { finished } = collect(core);
    core.addRequest({ requestId: 'late-front', promptTokens: 20, maxTokens: 2, arrivalUs: 50 }, 300);
    core.addRequest({ requestId: 'early-front', promptTokens: 20, maxTokens: 2, arrivalUs: 10 }, 300);
    drain(core, 300);
    expect(finished.map((f) => f.requestId)).toEqual(['early-front', 'late-front']);
    // early-front: 2 steps of 100 µs from 300 → first token at 400, from arrival 10
    expect(finished[0]).toMatchObject({ arrivalUs: 10, firstTokenUs: 400, ttftUs: 390, queueUs: 290 });
    expect(() => core.addRequest({ requestId: 'x', promptTokens: 4, maxTokens: 1, arrivalUs: 1000 }, 999)).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT', message: expect.stringContaining('request.arrivalUs') }),
    );
  });

  it('kvEvents: false builds no KV events while caching works the same; pure-decode steps match planned ones', () => {
    const run = (kvEvents: boolean) => {
      const core = new EngineCore({ kv: { numBlocks: 64, blockSize: 16 }, stepTimeUs: blis, kvEvents });
      const { finished, events } = collect(core);
      core.addRequest({ requestId: 'a', promptTokens: 70, blockKeys: [1, 2, 3, 4], maxTokens: 40 }, 0);
      const end = drain(core);
      core.addRequest({ requestId: 'b', promptTokens: 70, blockKeys: [1, 2, 3, 9], maxTokens: 5 }, end);
      drain(core, end);
      return { finished, events, cached: core.kv.numCachedBlocks, steps: core.metrics.steps };
    };
    const on = run(true);
    const off = run(false);
    expect(on.events.length).toBeGreaterThan(0);
    expect(off.events).toEqual([]);
    expect(off.cached).toBe(5); // keys 1..4 and 9: only keyed blocks are cached
    expect(off.finished).toEqual(on.finished);
    // a: prefill of 70 + 39 decode steps (each a pure-decode step: no planning), b: 48 cached tokens
    expect(on.finished[0]).toMatchObject({ outputTokens: 40, ttftUs: B0 + B1 * 70 });
    expect(on.finished[0]?.e2eUs).toBeCloseTo(B0 + B1 * 70 + 39 * (B0 + B2), 6);
    expect(on.finished[1]).toMatchObject({ cachedPromptTokens: 48 });
    expect(on.steps).toBe(40 + 5);
  });

  it('embedding requests: prefilled, then finished with reason stop and no token; a generate request beside them is unaffected', () => {
    const core = new EngineCore({ kv: { numBlocks: 64, blockSize: 16 }, stepTimeUs: blis, tokenBudget: 64 });
    const { finished, tokens } = collect(core);
    core.addRequest({ requestId: 'e', promptTokens: 100, maxTokens: 0, kind: 'embed' }, 0);
    core.addRequest({ requestId: 'g', promptTokens: 10, maxTokens: 3 }, 0);
    drain(core);
    const e = finished.find((f) => f.requestId === 'e');
    // 100 prompt tokens in chunks of ≤ 64 tokens per step (shared with g's prefill and decodes)
    expect(e).toMatchObject({ finishReason: 'stop', outputTokens: 0, promptTokens: 100 });
    expect(e?.firstTokenUs).toBe(e?.finishUs);
    expect(tokens.has('e')).toBe(false);
    expect(finished.find((f) => f.requestId === 'g')).toMatchObject({ finishReason: 'length', outputTokens: 3 });
    expect(core.metrics).toMatchObject({ generationTokens: 3, promptTokens: 110, requestSuccess: { stop: 1, length: 1, abort: 0, rejected: 0 } });
    expect(core.kv.numHeldBlocks).toBe(0);
    expect(() => core.addRequest({ requestId: 'x', promptTokens: 4, maxTokens: 1, kind: 'score' as 'embed' }, 0)).toThrow(
      expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT', message: expect.stringContaining('request.kind') }),
    );
    expect(() => core.addRequest({ requestId: 'y', promptTokens: 4, maxTokens: 0 }, 0)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });

  it('swap preemption: KV goes to the swap space and back (transfer charged to the step), progress is kept, every request finishes', () => {
    const run = (swap: boolean) => {
      const shapes: StepShape[] = [];
      const starts: { durationUs: number; transferUs: number; compute: number }[] = [];
      const core = new EngineCore({
        kv: { numBlocks: 14, blockSize: 16 },
        stepTimeUs: blis,
        scheduler: `sched.step(fcfs,memory-aware-preemption{mode=${swap ? 'swap' : 'recompute'} victim=newest},chunked-prefill{budget=96 max-seqs=8})`,
        ...(swap ? { swap: { cpuBlocks: 100, bytesPerBlock: 2 ** 20, hostBytesPerSec: 1e9, transferBaseUs: 50 } } : {}),
        hooks: { onStepStats: (st) => shapes.push(st.shape) },
      });
      const { finished } = collect(core);
      core.hooks.onStepStats = (st) => shapes.push(st.shape);
      for (let i = 0; i < 4; i++) core.addRequest({ requestId: `r${i}`, promptTokens: 60 + 7 * i, maxTokens: 40 }, i);
      let now = 0;
      for (let step = core.startStep(now); step !== null; step = core.startStep(now)) {
        starts.push({ durationUs: step.durationUs, transferUs: step.transferUs, compute: blis(step.shape) });
        now += step.durationUs;
        core.finishStep(now);
      }
      const prefilled = shapes.reduce((n, x) => n + x.prefillTokens, 0);
      return { finished, starts, prefilled, metrics: core.metrics, held: core.kv.numHeldBlocks };
    };
    const sw = run(true);
    const rc = run(false);
    for (const r of [sw, rc]) {
      expect(r.finished.map((f) => [f.requestId, f.finishReason, f.outputTokens]).sort()).toEqual([0, 1, 2, 3].map((i) => [`r${i}`, 'length', 40]));
      expect(r.held).toBe(0);
      expect(r.metrics.numPreemptions).toBeGreaterThan(0);
    }
    expect(sw.metrics.swappedOutBlocks).toBeGreaterThan(0);
    expect(sw.metrics).toMatchObject({ swappedInBlocks: sw.metrics.swappedOutBlocks, swapBlocksUsed: 0 });
    // 1 MiB blocks at 1 GB/s: 50 µs + 1048.576 µs per block, charged on top of the compute time
    const moved = sw.starts.filter((x) => x.transferUs > 0);
    expect(moved.length).toBeGreaterThan(0);
    for (const x of sw.starts) expect(x.durationUs).toBeCloseTo(x.compute + x.transferUs, 6);
    const perBlock = 2 ** 20 / 1e3;
    const totalBlocks = sw.metrics.swappedOutBlocks + sw.metrics.swappedInBlocks;
    expect(sw.metrics.transferUs).toBeGreaterThanOrEqual(totalBlocks * perBlock);
    expect(sw.metrics.transferUs).toBeLessThanOrEqual(totalBlocks * perBlock + 50 * totalBlocks);
    // recompute prefills preempted prompts again; swap keeps their progress
    const prompts = [0, 1, 2, 3].reduce((n, i) => n + 60 + 7 * i, 0);
    expect(sw.prefilled).toBeLessThan(rc.prefilled);
    expect(sw.prefilled).toBeGreaterThanOrEqual(prompts);
    expect(rc.metrics.swappedOutBlocks).toBe(0);
  });

  it('P/D: a decode leg with remote KV decodes without prefilling; prefill + decode legs give the tokens of one engine', () => {
    const prompt = Array.from({ length: 100 }, (_, i) => (i * 13) % 997);
    const whole = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: blis });
    const one = collect(whole);
    whole.addRequest({ requestId: 'q', promptTokenIds: prompt, maxTokens: 10 }, 0);
    drain(whole);

    const pre = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: blis, role: 'prefill' });
    const p = collect(pre);
    pre.addRequest({ requestId: 'q', promptTokenIds: prompt, maxTokens: 1 }, 0);
    const handoff = drain(pre);
    expect(p.finished[0]).toMatchObject({ finishReason: 'length', outputTokens: 1 });
    const first = p.tokens.get('q') as number[];

    const shapes: StepShape[] = [];
    const dec = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: blis });
    const d = collect(dec);
    dec.hooks.onStepStats = (st) => shapes.push(st.shape);
    dec.addRequest({ requestId: 'q', promptTokenIds: prompt, maxTokens: 10, remoteKv: { computedTokens: 100, outputTokenIds: first } }, handoff + 500);
    const end = drain(dec, handoff + 500);
    expect(shapes.every((x) => x.prefillTokens === 0 && x.decodeTokens === 1)).toBe(true);
    expect(shapes).toHaveLength(9);
    expect(end).toBeCloseTo(handoff + 500 + 9 * (B0 + B2), 6);
    expect(d.finished[0]).toMatchObject({ finishReason: 'length', outputTokens: 10, promptTokens: 100 });
    expect([...first, ...(d.tokens.get('q') as number[])]).toEqual(one.tokens.get('q'));
    // the received prompt KV is cached on the decode side: the same prompt hits 6 blocks there
    dec.addRequest({ requestId: 'again', promptTokenIds: prompt, maxTokens: 1 }, end);
    drain(dec, end);
    expect(d.finished[1]).toMatchObject({ requestId: 'again', cachedPromptTokens: 96 });
    expect(dec.kv.numHeldBlocks).toBe(0);

    const bad = (remoteKv: { computedTokens: number; outputTokenIds?: number[] }, maxTokens = 10) => () =>
      dec.addRequest({ requestId: `bad${JSON.stringify(remoteKv)}`, promptTokens: 20, maxTokens, remoteKv }, end);
    expect(bad({ computedTokens: 0 })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT', message: expect.stringContaining('remoteKv.computedTokens') }));
    expect(bad({ computedTokens: 21, outputTokenIds: [5] })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(bad({ computedTokens: 20, outputTokenIds: [5, 6] }, 2)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT', message: expect.stringContaining('outputTokenIds.length') }));
    expect(() => new EngineCore({ kv: { numBlocks: 8 }, stepTimeUs: blis, role: 'decode' as 'prefill' })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });

  it('trackEvictionRecompute: a keyed prompt computed again after its blocks were evicted counts as eviction recompute; the first computation and a hit do not', () => {
    // 8 blocks of 16: prompt a (4 blocks + 1 token) leaves 4 cached blocks, prompt b (7 blocks + 1 token, other keys) evicts them
    const core = new EngineCore({ kv: { numBlocks: 8 }, stepTimeUs: blis, trackEvictionRecompute: true });
    const { finished } = collect(core);
    const keyed = (id: string, base: number): EngineRequest => ({ requestId: id, promptTokens: 65, blockKeys: [base, base + 1, base + 2, base + 3], maxTokens: 2 });
    const stepStats: { runningComputedTokens: number; runningBlocks: number; numRequestsRunning: number }[] = [];
    core.hooks = { ...core.hooks, onStepStats: (st) => stepStats.push(st) };
    let now = 0;
    core.addRequest(keyed('a1', 100), now);
    now = drain(core, now);
    core.addRequest(keyed('a2', 100), now); // hit: 4 blocks cached
    now = drain(core, now);
    // b needs all 8 blocks: evicts a's 4 cached blocks
    core.addRequest({ requestId: 'b', promptTokens: 113, blockKeys: [200, 201, 202, 203, 204, 205, 206], maxTokens: 2 }, now);
    now = drain(core, now);
    core.addRequest(keyed('a3', 100), now); // a's prefix again, evicted: 4 blocks recomputed
    drain(core, now);
    const by = new Map(finished.map((f) => [f.requestId, f]));
    expect(by.get('a1')).toMatchObject({ cachedPromptTokens: 0, evictionRecomputedTokens: 0, recomputedTokens: 0 });
    expect(by.get('a2')).toMatchObject({ cachedPromptTokens: 64, evictionRecomputedTokens: 0 });
    expect(by.get('b')).toMatchObject({ cachedPromptTokens: 0, evictionRecomputedTokens: 0 });
    // b evicted a's 4 cached blocks, a3 then 4 of b's 7
    expect(core.kv.stats.evictedBlocks).toBe(8);
    const a3 = by.get('a3');
    expect(a3?.cachedPromptTokens).toBe(0);
    expect(a3?.evictionRecomputedTokens).toBe(64);
    expect(a3?.prefillComputedTokens).toBe(65);
    // step stats: Σ computed tokens and blocks of the running requests after each step
    for (const st of stepStats) {
      expect(st.runningBlocks).toBeGreaterThanOrEqual(Math.ceil(st.runningComputedTokens / 16));
      if (st.numRequestsRunning === 0) expect(st).toMatchObject({ runningComputedTokens: 0, runningBlocks: 0 });
    }
    // after a prefill step of one request: its 65 computed tokens in 5 blocks
    expect(stepStats[0]).toMatchObject({ runningComputedTokens: 65, runningBlocks: 5, numRequestsRunning: 1 });
    // planned steps: each admission is planned, the pure-decode steps are not
    expect(core.metrics.plannedSteps).toBeGreaterThanOrEqual(4);
    expect(core.metrics.plannedSteps).toBeLessThan(core.metrics.steps);
  });

  it('keyed requests: keys past the prompt cache the blocks the output fills, so a next turn that repeats the answer hits them', () => {
    const core = new EngineCore({ kv: { numBlocks: 64 }, stepTimeUs: blis });
    const { finished } = collect(core);
    // turn 1: 2 prompt blocks + 1 token, 48 output tokens → 80 computed tokens, keys for 5 blocks (3 of them the answer's)
    core.addRequest({ requestId: 't1', promptTokens: 33, blockKeys: [1, 2, 3, 4, 5], maxTokens: 48 }, 0);
    const now = drain(core);
    // turn 2 repeats turn 1's 80 tokens in full blocks, then its own 20 tokens
    // (without the answer's keys it would hit only the 2 prompt blocks, 32 tokens)
    core.addRequest({ requestId: 't2', promptTokens: 100, blockKeys: [1, 2, 3, 4, 5, 6], maxTokens: 4 }, now);
    drain(core, now);
    expect(finished.map((f) => f.cachedPromptTokens)).toEqual([0, 80]);
  });

  it('without trackEvictionRecompute nothing is counted', () => {
    const core = new EngineCore({ kv: { numBlocks: 8 }, stepTimeUs: blis });
    const { finished } = collect(core);
    let now = 0;
    for (const [id, base, blocks] of [['a1', 100, 4], ['b', 200, 7], ['a2', 100, 4]] as const) {
      core.addRequest({ requestId: id, promptTokens: blocks * 16 + 1, blockKeys: Array.from({ length: blocks }, (_, j) => base + j), maxTokens: 2 }, now);
      now = drain(core, now);
    }
    expect(finished.map((f) => f.evictionRecomputedTokens)).toEqual([0, 0, 0]);
    expect(finished[2]?.cachedPromptTokens).toBe(0);
  });

  it('rejects misuse with codes', () => {
    const core = new EngineCore({ kv: { numBlocks: 8 }, stepTimeUs: () => 1 });
    core.addRequest({ requestId: 'a', promptTokens: 4, maxTokens: 2 }, 0);
    expect(() => core.addRequest({ requestId: 'a', promptTokens: 4, maxTokens: 2 }, 0)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
    expect(() => core.finishStep(0)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_STATE' }));
    core.startStep(0);
    expect(() => core.startStep(0)).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_STATE' }));
    expect(() => new EngineCore({ kv: { numBlocks: 8 }, stepTimeUs: () => 1, scheduler: 'sched.step(no-such-pass)' })).toThrow(expect.objectContaining({ code: 'KVMGR_BAD_PIPELINE' }));
  });
});
