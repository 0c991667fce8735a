import { describe, expect, it } from 'vitest';
import type { VictimSelector } from '@kvmgr/core';
import { PassManager, createDefaultRegistry, verifyPlan } from '../src/index.js';
import type { SchedAnalyses, SchedState, StepPlan } from '../src/index.js';
import { decoding, state, waiting } from './fixtures.js';

const registry = createDefaultRegistry();
function run(pipeline: string, s: SchedState, analyses: SchedAnalyses = {}): StepPlan {
  const plan = new PassManager({ pipeline, registry, analyses, verify: true }).run(s);
  expect(verifyPlan(s, plan)).toBeNull();
  return plan;
}
function order(pipeline: string, s: SchedState): string[] {
  const ir = new PassManager({ pipeline, registry }).runIR(s);
  return ir.waitingOrder().map((w) => s.waiting[w]!.id);
}

describe('chunked-prefill (vLLM v1 step loop)', () => {
  it('schedules running decodes first, then waiting FCFS, splitting the last prompt by the budget', () => {
    const s = state({
      running: [decoding('r1', 32, 9, 10)],
      waiting: [waiting('w1', { promptTokens: 100, arrivalUs: 1 }), waiting('w2', { promptTokens: 8000, arrivalUs: 2 }), waiting('w3', { promptTokens: 50, arrivalUs: 3 })],
      budgets: { tokenBudget: 4096, maxSeqs: 1024 },
    });
    const plan = run('vllm-default', s);
    expect(plan.ops).toEqual([
      { op: 'decode', requestId: 'r1', tokens: 1, newBlocks: 0 },
      { op: 'admit', requestId: 'w1', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w1', tokens: 100, startToken: 0, cachedTokens: 0, newBlocks: 7 },
      { op: 'admit', requestId: 'w2', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w2', tokens: 3995, startToken: 0, cachedTokens: 0, newBlocks: 250 },
    ]);
    expect(plan).toMatchObject({ scheduledTokens: 4096, prefillTokens: 4095, decodeTokens: 1, scheduledSeqs: 3, newBlocks: 257, freeBlocksAfter: 743, preemptions: 0, batchingEfficiency: 1 });
  });

  it('continues a chunked prefill of a running request', () => {
    const r = decoding('r1', 1000, 0, 5, { computedTokens: 600, generatedTokens: 0, blocksHeld: 38 });
    const plan = run('sched.step(chunked-prefill{budget=256})', state({ running: [r] }));
    expect(plan.ops).toEqual([{ op: 'prefill', requestId: 'r1', tokens: 256, startToken: 600, cachedTokens: 0, newBlocks: 16 }]);
  });

  it('never serves the last prompt token from cache', () => {
    const plan = run('vllm-default', state({ waiting: [waiting('w', { promptTokens: 64, cachedPrefixTokens: 64 })] }));
    expect(plan.ops).toEqual([
      { op: 'admit', requestId: 'w', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w', tokens: 16, startToken: 48, cachedTokens: 48, newBlocks: 1 },
    ]);
  });

  it('stops at the first waiting request that does not fit (no skipping) and respects max-seqs and long-prefill', () => {
    const s = state({ free: 10, waiting: [waiting('w1', { promptTokens: 64 }), waiting('w2', { promptTokens: 200 }), waiting('w3', { promptTokens: 16 })] });
    expect(run('vllm-default', s).ops).toEqual([
      { op: 'defer', requestId: 'w2', reason: 'no-free-blocks' },
      { op: 'admit', requestId: 'w1', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w1', tokens: 64, startToken: 0, cachedTokens: 0, newBlocks: 4 },
    ]);
    const s2 = state({ running: [decoding('r', 16, 1, 0)], waiting: [waiting('w1'), waiting('w2')], budgets: { tokenBudget: 8192, maxSeqs: 2 } });
    expect(run('vllm-default', s2).ops.map((o) => `${o.op}:${'requestId' in o ? o.requestId : ''}`)).toEqual(['decode:r', 'admit:w1', 'prefill:w1']);
    const s3 = state({ waiting: [waiting('w1', { promptTokens: 1000 })] });
    expect(run('sched.step(chunked-prefill{long-prefill=300})', s3).ops[1]).toMatchObject({ op: 'prefill', tokens: 300, newBlocks: 19 });
    expect(run('sched.step(chunked-prefill{budget=500 enabled=false})', s3).ops).toEqual([]);
  });

  it('preempts the most recently admitted running request (recompute) and admits nothing that step', () => {
    const s = state({
      free: 0,
      running: [decoding('r1', 20, 13, 10), decoding('r2', 16, 1, 20)],
      waiting: [waiting('w1', { promptTokens: 16 })],
    });
    // r1 needs a 3rd block for token 33; r2 (newest) is preempted to give it one
    const plan = run('vllm-default', s);
    expect(plan.ops).toEqual([
      { op: 'preempt', requestId: 'r2', mode: 'recompute', freedBlocks: 1 },
      { op: 'decode', requestId: 'r1', tokens: 1, newBlocks: 1 },
    ]);
    expect(plan).toMatchObject({ preemptions: 1, freeBlocksAfter: 0 });
  });

  it('preempts the request itself when it is the newest', () => {
    const s = state({ free: 0, running: [decoding('old', 16, 1, 5), decoding('new', 20, 13, 10)] });
    expect(run('vllm-default', s).ops).toEqual([
      { op: 'preempt', requestId: 'new', mode: 'recompute', freedBlocks: 2 },
      { op: 'decode', requestId: 'old', tokens: 1, newBlocks: 1 },
    ]);
  });

  it('evicts cached prefix blocks before preempting, and reloads swapped requests', () => {
    const s = state({ free: 0, waiting: [waiting('w', { promptTokens: 32 })] });
    s.kv.evictablePrefixBlocks = 5;
    expect(run('vllm-default', s).ops).toEqual([
      { op: 'evict-prefix', blocks: 2 },
      { op: 'admit', requestId: 'w', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w', tokens: 32, startToken: 0, cachedTokens: 0, newBlocks: 2 },
    ]);
    const sw = state({ free: 10, cpu: 5, waiting: [waiting('s', { status: 'swapped', promptTokens: 32, computedTokens: 40, generatedTokens: 9, blocksHeld: 3 })] });
    const plan = run('vllm-default', sw);
    expect(plan.ops).toEqual([
      { op: 'reload', requestId: 's', blocks: 3, from: 'cpu', to: 'gpu' },
      { op: 'admit', requestId: 's', reserveBlocks: 0 },
      { op: 'decode', requestId: 's', tokens: 1, newBlocks: 0 },
    ]);
    expect(plan.freeBlocksAfter).toBe(7);
  });
});

describe('memory-aware-preemption', () => {
  const tight = (): SchedState => state({ free: 0, cpu: 10, running: [decoding('a', 20, 13, 20, { generatedTokens: 13 }), decoding('b', 16, 1, 10)] });

  it('victim=fewest-generated retracts the request with the fewest output tokens (SGLang)', () => {
    const plan = run('sglang-default', tight());
    expect(plan.ops).toEqual([
      { op: 'preempt', requestId: 'b', mode: 'recompute', freedBlocks: 1 },
      { op: 'decode', requestId: 'a', tokens: 1, newBlocks: 1 },
    ]);
  });

  it('mode=swap offloads the victim to CPU; mode=none stalls instead', () => {
    const s = state({ free: 0, cpu: 10, running: [decoding('a', 20, 13, 10), decoding('b', 16, 1, 20)] });
    expect(run('sched.step(memory-aware-preemption{mode=swap victim=newest},chunked-prefill)', s).ops).toEqual([
      { op: 'preempt', requestId: 'b', mode: 'swap', freedBlocks: 1 },
      { op: 'offload', requestId: 'b', blocks: 1, from: 'gpu', to: 'cpu' },
      { op: 'decode', requestId: 'a', tokens: 1, newBlocks: 1 },
    ]);
    // both need a block and nothing may be preempted: both stall
    expect(run('sched.step(memory-aware-preemption{mode=none},chunked-prefill)', s).ops).toEqual([]);
  });

  it('victim=selector asks the injected VictimSelector and uses its mode under mode=auto', () => {
    const calls: string[][] = [];
    const selector: VictimSelector = {
      name: 'oldest',
      selectVictims(cands, required) {
        calls.push(cands.map((c) => c.requestId));
        const v = [...cands].sort((x, y) => x.admittedUs - y.admittedUs)[0]!;
        return { victims: [{ requestId: v.requestId, mode: 'swap', freedBlocks: v.blocks }], freedBlocks: v.blocks, satisfied: v.blocks >= required, shortfallBlocks: 0 };
      },
    };
    const s = state({ free: 0, cpu: 10, running: [decoding('a', 20, 13, 30), decoding('b', 16, 1, 10), decoding('c', 20, 1, 20)] });
    const plan = run('sched.step(memory-aware-preemption{mode=auto victim=selector},chunked-prefill)', s, { victimSelector: selector });
    expect(calls).toEqual([['b', 'c']]);
    expect(plan.ops).toEqual([
      { op: 'preempt', requestId: 'b', mode: 'swap', freedBlocks: 1 },
      { op: 'offload', requestId: 'b', blocks: 1, from: 'gpu', to: 'cpu' },
      { op: 'decode', requestId: 'a', tokens: 1, newBlocks: 1 },
      { op: 'decode', requestId: 'c', tokens: 1, newBlocks: 0 },
    ]);
    // without a selector, victim=selector falls back to newest-admitted-first (a, admitted at 30)
    expect(run('sched.step(memory-aware-preemption{mode=recompute},chunked-prefill)', s).ops[0]).toEqual({ op: 'preempt', requestId: 'a', mode: 'recompute', freedBlocks: 2 });
  });

  it('victim=selector passes each candidate its SLO slack (TTFT before the first token, TPOT pace after)', () => {
    const seen = new Map<string, number | undefined>();
    const selector: VictimSelector = {
      name: 'spy',
      selectVictims(cands, required) {
        for (const c of cands) seen.set(c.requestId, c.sloSlackMs);
        const v = cands[0]!;
        return { victims: [{ requestId: v.requestId, mode: 'recompute', freedBlocks: v.blocks }], freedBlocks: v.blocks, satisfied: v.blocks >= required, shortfallBlocks: 0 };
      },
    };
    const s = state({
      free: 0,
      cpu: 0,
      running: [
        decoding('self', 20, 13, 40),
        // 5 tokens after a first token at 1,000 µs with TPOT 100 ms: on pace until 501,000 µs
        decoding('paced', 16, 5, 10, { tpotMs: 100, firstTokenUs: 1_000 }),
        decoding('no-slo', 16, 2, 20),
        // still prefilling: 2 s TTFT from arrival at 0
        decoding('prefill', 16, 1, 30, { generatedTokens: 0, computedTokens: 8, ttftMs: 2000, arrivalUs: 0 }),
      ],
    });
    s.nowUs = 101_000;
    run('sched.step(memory-aware-preemption{mode=recompute victim=selector},chunked-prefill)', s, { victimSelector: selector });
    expect(seen.get('paced')).toBeCloseTo(400, 9); // (1,000 − 101,000) µs + 5 × 100 ms
    expect(seen.get('prefill')).toBeCloseTo(1899, 9); // 2,000 ms − 101 ms since arrival
    expect(seen.has('no-slo')).toBe(true);
    expect(seen.get('no-slo')).toBeUndefined();
  });

  it('mode=auto swaps long requests when the CPU tier has room', () => {
    const s = state({ free: 0, cpu: 200, running: [decoding('a', 20, 13, 10), decoding('long', 2000, 1, 20)] });
    s.running[1]!.generatedTokens = 0;
    s.running[1]!.computedTokens = 2000;
    s.running[1]!.blocksHeld = 125;
    s.running[1]!.generatedTokens = 1;
    const plan = run('sched.step(memory-aware-preemption{mode=auto victim=newest swap-min-tokens=1024},chunked-prefill)', s);
    expect(plan.ops.slice(0, 2)).toEqual([
      { op: 'preempt', requestId: 'long', mode: 'swap', freedBlocks: 125 },
      { op: 'offload', requestId: 'long', blocks: 125, from: 'gpu', to: 'cpu' },
    ]);
  });
});

describe('ordering passes', () => {
  const three = (): SchedState =>
    state({
      nowUs: 10_000_000,
      waiting: [waiting('w1', { arrivalUs: 3, cachedPrefixTokens: 0 }), waiting('w2', { arrivalUs: 1, cachedPrefixTokens: 32 }), waiting('w3', { arrivalUs: 2, cachedPrefixTokens: 64 })],
    });

  it('fcfs orders by arrival', () => {
    expect(order('sched.step(fcfs)', three())).toEqual(['w2', 'w3', 'w1']);
    expect(run('sched.step(fcfs,chunked-prefill)', three()).ops.filter((o) => o.op === 'admit').map((o) => (o as { requestId: string }).requestId)).toEqual(['w2', 'w3', 'w1']);
  });

  it('prefix-cache-aware: longest prefix first, starvation guard, FCFS above a queue length', () => {
    const s = three();
    s.nowUs = 1000;
    expect(order('sched.step(prefix-cache-aware)', s)).toEqual(['w3', 'w2', 'w1']);
    s.waiting[0]!.arrivalUs = 0;
    s.nowUs = 6_000_000;
    for (const w of s.waiting.slice(1)) w.arrivalUs = 5_000_000;
    expect(order('sched.step(prefix-cache-aware{starvation-ms=5000})', s)).toEqual(['w1', 'w3', 'w2']);
    expect(order('sched.step(prefix-cache-aware{fcfs-above=2 starvation-ms=0})', s)).toEqual(['w1', 'w2', 'w3']);
  });

  it('priority with and without aging; later passes are the primary key', () => {
    const s = state({ nowUs: 5_000_000, waiting: [waiting('old', { priority: 0, arrivalUs: 0 }), waiting('vip', { priority: 1, arrivalUs: 5_000_000 })] });
    expect(order('sched.step(priority)', s)).toEqual(['vip', 'old']);
    expect(order('sched.step(priority{aging-ms=1000})', s)).toEqual(['old', 'vip']);
    const t = three();
    t.waiting[0]!.priority = 1;
    expect(order('sched.step(prefix-cache-aware{starvation-ms=0},priority)', t)).toEqual(['w1', 'w3', 'w2']);
  });

  it('sjf: shortest predicted remaining work first', () => {
    const s = state({
      waiting: [
        waiting('a', { promptTokens: 1000, predictedRemainingTokens: 10 }),
        waiting('b', { promptTokens: 100, predictedRemainingTokens: 500 }),
        waiting('c', { promptTokens: 100, predictedRemainingTokens: 10 }),
      ],
    });
    expect(order('sched.step(sjf)', s)).toEqual(['c', 'b', 'a']);
    // a predictor fills in missing predictions
    s.waiting[1]!.predictedRemainingTokens = undefined as never;
    delete s.waiting[1]!.predictedRemainingTokens;
    const predictor = { name: 'fixed', predict: () => ({ mean: 2000, p50: 2000, p90: 3000 }), predictRemaining: () => ({ mean: 2000, p50: 2000, p90: 3000 }), observe: () => {}, calibrate: () => {} };
    const ir = new PassManager({ pipeline: 'sched.step(sjf)', registry, analyses: { predictor } }).runIR(s);
    expect(ir.waitingOrder().map((w) => s.waiting[w]!.id)).toEqual(['c', 'a', 'b']);
  });

  it('slo-aware orders by TTFT slack and rejects infeasible requests', () => {
    const s = state({
      waiting: [waiting('none'), waiting('loose', { ttftMs: 1000 }), waiting('tight', { ttftMs: 100 }), waiting('late', { ttftMs: 5 })],
    });
    expect(order('sched.step(slo-aware)', s)).toEqual(['late', 'tight', 'loose', 'none']);
    const plan = run('sched.step(slo-aware{reject=true},chunked-prefill)', s);
    expect(plan.ops[0]).toEqual({ op: 'reject', requestId: 'late', reason: 'slo-infeasible' });
    expect(plan.ops.filter((o) => o.op === 'admit').map((o) => (o as { requestId: string }).requestId)).toEqual(['tight', 'loose', 'none']);
  });

  it('slo-aware{late=back} puts requests that cannot meet their TTFT behind the on-time ones', () => {
    const s = state({
      waiting: [waiting('none'), waiting('late', { ttftMs: 5 }), waiting('loose', { ttftMs: 1000 }), waiting('late2', { ttftMs: 1 }), waiting('tight', { ttftMs: 100 })],
    });
    // EDF on the on-time ones, then the no-SLO request, then the late ones in earlier order
    expect(order('sched.step(slo-aware{late=back})', s)).toEqual(['tight', 'loose', 'none', 'late', 'late2']);
    // edf=false: on-time requests keep the earlier order (here: index), only the late move
    expect(order('sched.step(slo-aware{edf=false late=back})', s)).toEqual(['none', 'loose', 'tight', 'late', 'late2']);
    // an earlier pass still orders the late group among itself
    expect(order('sched.step(sjf,slo-aware{edf=false late=back})', state({
      waiting: [waiting('lateLong', { ttftMs: 1, promptTokens: 900 }), waiting('ok', { ttftMs: 1000 }), waiting('lateShort', { ttftMs: 1, promptTokens: 10 })],
    }))).toEqual(['ok', 'lateShort', 'lateLong']);
    const pm = new PassManager({ pipeline: 'sched.step(slo-aware{edf=false late=back})', registry });
    pm.run(s);
    expect(pm.statistics()[0]!.values).toMatchObject({ late: 2, urgent: 0 });
    expect(() => new PassManager({ pipeline: 'sched.step(slo-aware{late=sideways})', registry })).toThrow(/late/);
  });

  it('batching-efficiency groups lengths with the oldest request and reports efficiency', () => {
    const s = state({
      waiting: [waiting('long', { promptTokens: 1000, arrivalUs: 0 }), waiting('short', { promptTokens: 20, arrivalUs: 1 }), waiting('long2', { promptTokens: 900, arrivalUs: 2 })],
      budgets: { tokenBudget: 4000, maxSeqs: 1024 },
    });
    expect(order('sched.step(batching-efficiency)', s)).toEqual(['long', 'long2', 'short']);
    const pm = new PassManager({ pipeline: 'sched.step(batching-efficiency,chunked-prefill,batching-efficiency)', registry });
    pm.run(s);
    expect(pm.statistics()[2]!.values).toEqual({ 'steps-measured': 1, 'efficiency-sum': 1920 / 4000 });
  });
});

describe('admission', () => {
  const s = (): SchedState =>
    state({
      free: 100,
      total: 100,
      nowUs: 1_000_000,
      waiting: [
        waiting('w1', { promptTokens: 640, predictedRemainingP90: 160, arrivalUs: 900_000 }),
        waiting('w2', { promptTokens: 640, predictedRemainingP90: 160, arrivalUs: 900_001 }),
        waiting('w3', { promptTokens: 16, predictedRemainingP90: 16, arrivalUs: 900_002 }),
      ],
    });

  it('defers requests whose predicted footprint would overflow, and backfills smaller ones', () => {
    // footprints: w1 = blocks(640 + 176) = 51, w2 = 51, w3 = blocks(16 + 18) = 3; limit 0.9 × 100 = 90
    expect(run('sched.step(admission,chunked-prefill)', s()).ops).toEqual([
      { op: 'defer', requestId: 'w2', reason: 'predicted-footprint' },
      { op: 'admit', requestId: 'w1', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w1', tokens: 640, startToken: 0, cachedTokens: 0, newBlocks: 40 },
      { op: 'admit', requestId: 'w3', reserveBlocks: 0 },
      { op: 'prefill', requestId: 'w3', tokens: 16, startToken: 0, cachedTokens: 0, newBlocks: 1 },
    ]);
  });

  it('a starved request blocks backfill; backfill=false stops at the first deferral', () => {
    const t = s();
    t.waiting[1]!.arrivalUs = 0;
    t.nowUs = 6_000_000;
    const admits = (p: StepPlan) => p.ops.filter((o) => o.op === 'admit').map((o) => (o as { requestId: string }).requestId);
    expect(admits(run('sched.step(admission{starvation-ms=5000},chunked-prefill)', t))).toEqual(['w1']);
    expect(admits(run('sched.step(admission{backfill=false},chunked-prefill)', s()))).toEqual(['w1']);
  });

  it('rejects requests that can never fit and falls back when predictions are missing', () => {
    const t = s();
    t.waiting.push(waiting('huge', { promptTokens: 1600 }));
    const plan = run('sched.step(admission,chunked-prefill)', t);
    expect(plan.ops.find((o) => o.op === 'reject')).toEqual({ op: 'reject', requestId: 'huge', reason: 'exceeds-capacity' });
    // no prediction: min(maxTokens, fallback-tokens=256) → blocks(640 + 282) = 58; two do not fit
    const u = s();
    for (const w of u.waiting) delete w.predictedRemainingP90;
    expect(run('sched.step(admission,chunked-prefill)', u).ops[0]).toEqual({ op: 'defer', requestId: 'w2', reason: 'predicted-footprint' });
  });

  it('preempt=true preempts a lower-priority running request for a higher-priority one', () => {
    const t = state({ free: 10, total: 100, running: [decoding('low', 1000, 200, 5, { priority: 0, maxTokens: 300 })], waiting: [waiting('vip', { promptTokens: 64, priority: 2, predictedRemainingP90: 10 })] });
    const plan = run('sched.step(admission{preempt=true},memory-aware-preemption{admit-after-preempt=true},chunked-prefill)', t);
    expect(plan.ops.map((o) => o.op)).toEqual(['preempt', 'admit', 'prefill']);
    expect(plan.ops[0]).toMatchObject({ requestId: 'low', mode: 'recompute' });
  });
});

describe('lifetime-aware, tgi-default, pd-separation', () => {
  it('reserves input + max_new_tokens and never preempts (TGI)', () => {
    const s = state({ free: 0, running: [decoding('r', 20, 13, 0)], waiting: [waiting('w', { promptTokens: 100, maxTokens: 60 })] });
    expect(run('tgi-default', s).ops).toEqual([{ op: 'defer', requestId: 'w', reason: 'no-free-blocks' }]);
    s.kv.freeBlocks.gpu = 12;
    expect(run('tgi-default', s).ops).toEqual([
      { op: 'decode', requestId: 'r', tokens: 1, newBlocks: 1 },
      { op: 'admit', requestId: 'w', reserveBlocks: 10 },
      { op: 'prefill', requestId: 'w', tokens: 100, startToken: 0, cachedTokens: 0, newBlocks: 10 },
    ]);
  });

  it('reserves the predicted footprint with reserve=predicted', () => {
    const s = state({ waiting: [waiting('w', { promptTokens: 100, maxTokens: 1000, predictedRemainingP90: 100 })] });
    expect(run('sched.step(lifetime-aware,chunked-prefill)', s).ops[0]).toEqual({ op: 'admit', requestId: 'w', reserveBlocks: 14 });
  });

  it('prefill instances schedule prefills only; decode instances decodes only', () => {
    const s = state({ running: [decoding('d', 16, 1, 0), decoding('p', 500, 0, 1, { computedTokens: 100, generatedTokens: 0, blocksHeld: 7 })], waiting: [waiting('w')] });
    expect(run('sched.step(pd-separation{role=prefill},chunked-prefill)', s).ops.map((o) => `${o.op}:${'requestId' in o ? o.requestId : ''}`)).toEqual(['prefill:p', 'admit:w', 'prefill:w']);
    expect(run('sched.step(pd-separation{role=decode},chunked-prefill)', s).ops).toEqual([
      { op: 'defer', requestId: 'w', reason: 'pd-needs-prefill' },
      { op: 'decode', requestId: 'd', tokens: 1, newBlocks: 1 },
    ]);
    s.role = 'decode';
    expect(run('sched.step(pd-separation,chunked-prefill)', s).ops).toHaveLength(2);
  });
});
