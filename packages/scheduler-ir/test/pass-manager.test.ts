import { describe, expect, it } from 'vitest';
import { isKvmgrError } from '@kvmgr/core';
import { BUILTIN_PASSES, PASS_KINDS, PassManager, blocksFor, createDefaultRegistry, formatReproducer, parseState, verifyPlan } from '../src/index.js';
import type { PassDefinition, StepPlan } from '../src/index.js';
import { decoding, state, waiting } from './fixtures.js';

/** A deliberately broken pass: after materialization it un-chunks prefills, ignoring the budget. */
const overbook: PassDefinition = {
  argument: 'overbook',
  kind: 'materialize',
  summary: 'test: breaks the token budget',
  anchors: ['sched.step'],
  options: {},
  statistics: [],
  create: () => (ir) => {
    for (let k = 0; k < ir.nSched; k++) {
      const e = ir.schedOrder[k] as number;
      if (e >= 0) continue;
      const r = ir.state.waiting[~e]!;
      ir.wTokens[~e] = r.promptTokens - (ir.wStart[~e] as number);
      ir.wNewBlocks[~e] = blocksFor(r.promptTokens, 16) - (ir.wCached[~e] as number) / 16;
    }
  },
};

/** Another: rejects a request that was already admitted. */
const rejectAdmitted: PassDefinition = {
  argument: 'reject-admitted',
  kind: 'materialize',
  summary: 'test: admits and rejects the same request',
  anchors: ['sched.step'],
  options: {},
  statistics: [],
  create: () => (ir) => {
    for (let k = 0; k < ir.nSched; k++) {
      const e = ir.schedOrder[k] as number;
      if (e < 0) ir.decide(~e, 2, 'slo-infeasible');
    }
  },
};

const throws: PassDefinition = { argument: 'throws', kind: 'observe', summary: 'test: throws', anchors: ['sched.step'], options: {}, statistics: [], create: () => () => { throw new Error('boom'); } };

const registry = createDefaultRegistry().register(overbook).register(rejectAdmitted).register(throws);
const s = () => state({ running: [decoding('r', 16, 2, 0)], waiting: [waiting('w1', { arrivalUs: 1 }), waiting('w2', { arrivalUs: 2 })], budgets: { tokenBudget: 150, maxSeqs: 8 } });

function caught(f: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    f();
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return { code: e.code, message: e.message, details: e.details as Record<string, unknown> };
  }
  throw new Error('expected a KvmgrError');
}

describe('verifier', () => {
  it('catches a deliberately broken pass and names it, with a reproducer', () => {
    const pm = new PassManager({ pipeline: 'sched.step(fcfs,chunked-prefill,overbook,batching-efficiency)', registry, verify: true });
    const e = caught(() => pm.run(s()));
    expect(e.code).toBe('KVMGR_VERIFY_FAILED');
    expect(e.message).toContain("after pass 'overbook' (#2 on sched.step)");
    expect(e.details).toMatchObject({ pass: 'overbook', passIndex: 2, invariant: 'token-budget' });
    const repro = e.details.reproducer as { pipeline: string; state: string };
    expect(repro.pipeline).toBe(pm.canonical);
    expect(parseState(repro.state)).toEqual(s());
    expect(formatReproducer(repro)).toContain(`--pass-pipeline='${pm.canonical}'`);
    // without the verifier the broken plan comes out unchecked
    pm.enableVerifier(false);
    expect(verifyPlan(s(), pm.run(s()))?.invariant).toBe('token-budget');
  });

  it('names admit-and-reject and flags bad input before any pass', () => {
    const pm = new PassManager({ pipeline: 'sched.step(chunked-prefill,reject-admitted)', registry, verify: true });
    expect(caught(() => pm.run(s())).details).toMatchObject({ pass: 'reject-admitted', invariant: 'admit-and-reject', requestId: 'w1' });
    const dup = s();
    dup.waiting.push(waiting('r'));
    expect(caught(() => pm.run(dup)).details).toMatchObject({ pass: null, invariant: 'duplicate' });
  });

  it('checks each invariant on hand-made plans', () => {
    const st = s();
    const base: StepPlan = { ops: [], scheduledTokens: 0, prefillTokens: 0, decodeTokens: 0, scheduledSeqs: 0, newBlocks: 0, freeBlocksAfter: 1000, preemptions: 0, batchingEfficiency: 0 };
    const v = (ops: StepPlan['ops']) => verifyPlan(st, { ...base, ops })?.invariant ?? null;
    expect(v([{ op: 'decode', requestId: 'r', tokens: 1, newBlocks: 0 }])).toBeNull();
    expect(v([{ op: 'decode', requestId: 'r', tokens: 1, newBlocks: 2000 }])).toBe('memory-gpu');
    expect(v([{ op: 'decode', requestId: 'r', tokens: 5, newBlocks: 1 }])).toBe('ref-counts');
    expect(v([{ op: 'prefill', requestId: 'w1', tokens: 10, startToken: 0, cachedTokens: 0, newBlocks: 1 }])).toBe('admit-and-reject');
    expect(v([{ op: 'preempt', requestId: 'r', mode: 'recompute', freedBlocks: 1 }])).toBe('ref-counts');
    expect(v([{ op: 'preempt', requestId: 'r', mode: 'swap', freedBlocks: 2 }, { op: 'offload', requestId: 'r', blocks: 2, from: 'gpu', to: 'cpu' }])).toBe('memory-cpu');
    expect(v([{ op: 'admit', requestId: 'w1', reserveBlocks: 0 }, { op: 'admit', requestId: 'w1', reserveBlocks: 0 }])).toBe('duplicate');
    expect(v([{ op: 'defer', requestId: 'nope', reason: 'no-free-blocks' }])).toBe('unknown-request');
    expect(v([{ op: 'evict-prefix', blocks: 1 }])).toBe('ref-counts');
    expect(v([{ op: 'admit', requestId: 'w1', reserveBlocks: 0 }])).toBe('admit-and-reject');
  });
});

describe('PassManager', () => {
  it('calls instrumentation before and after each pass, and on failure', () => {
    const log: string[] = [];
    const pm = new PassManager({ pipeline: 'sched.step(fcfs,sched.running(priority),chunked-prefill)', registry });
    pm.addInstrumentation({
      runBeforePass: (p) => log.push(`before ${p.argument}@${p.anchorPath}`),
      runAfterPass: (p, ir) => log.push(`after ${p.argument} materialized=${ir.materialized}`),
      runAfterPassFailed: (p) => log.push(`failed ${p.argument}`),
    });
    pm.run(s());
    expect(log).toEqual([
      'before fcfs@sched.step',
      'after fcfs materialized=false',
      'before priority@sched.step/sched.running',
      'after priority materialized=false',
      'before chunked-prefill@sched.step',
      'after chunked-prefill materialized=true',
    ]);
    log.length = 0;
    pm.setPipeline('sched.step(fcfs,throws)');
    const e = caught(() => pm.run(s()));
    expect(e.code).toBe('KVMGR_PASS_FAILED');
    expect(e.details).toMatchObject({ pass: 'throws', passIndex: 1 });
    expect(log).toEqual(['before fcfs@sched.step', 'after fcfs materialized=false', 'before throws@sched.step', 'failed throws']);
  });

  it('accumulates statistics and timing', () => {
    const pm = new PassManager({ pipeline: 'vllm-default', registry, timing: true });
    pm.run(s());
    pm.run(s());
    const st = pm.statistics().find((x) => x.argument === 'chunked-prefill')!;
    expect(st.values).toEqual({ steps: 2, admitted: 4, preempted: 0, stalled: 0, 'evicted-prefix-blocks': 0 });
    expect(pm.timings().map((t) => t.runs)).toEqual([2, 2, 2]);
    expect(pm.printStatistics()).toContain('(S) 4 admitted - waiting requests admitted');
    expect(pm.printTiming()).toContain('Execution time report');
    pm.resetCounters();
    expect(pm.statistics()[2]!.values.steps).toBe(0);
  });

  it('bisect limit runs a prefix of the pipeline, and bisect() finds the culprit pass', () => {
    const pm = new PassManager({ pipeline: 'sched.step(fcfs,chunked-prefill,overbook,batching-efficiency)', registry, bisectLimit: 1 });
    expect(pm.run(s()).ops).toEqual([]);
    pm.setBisectLimit(Number.POSITIVE_INFINITY);
    const culprit = pm.bisect(s(), (plan) => verifyPlan(s(), plan) !== null);
    expect(culprit).toMatchObject({ index: 2, argument: 'overbook' });
    expect(pm.bisect(s(), () => false)).toBeNull();
    expect(() => pm.setBisectLimit(-1)).toThrow(/bisectLimit must be a non-negative integer/);
  });

  it('registry rejects taken names and bad names', () => {
    expect(() => createDefaultRegistry().register(overbook).register(overbook)).toThrow(/already registered/);
    expect(() => createDefaultRegistry().registerPreset('vllm-default', 'sched.step()')).toThrow(/already registered/);
    expect(() => createDefaultRegistry().register({ ...overbook, argument: 'Bad Name' })).toThrow(/kebab-case/);
  });
});

describe('pass kinds', () => {
  it('every built-in pass declares its kind', () => {
    expect(Object.fromEntries(BUILTIN_PASSES.map((p) => [p.argument, p.kind]))).toEqual({
      fcfs: 'order',
      priority: 'order',
      sjf: 'order',
      'prefix-cache-aware': 'order',
      'batching-efficiency': 'order',
      'slo-aware': 'order',
      admission: 'annotate',
      'lifetime-aware': 'annotate',
      'memory-aware-preemption': 'annotate',
      'pd-separation': 'annotate',
      'chunked-prefill': 'materialize',
    });
    for (const p of BUILTIN_PASSES) expect(PASS_KINDS).toContain(p.kind);
  });

  it('registry rejects a pass without a kind, or with an unknown one, and changes nothing', () => {
    const r = createDefaultRegistry();
    const { kind: _, ...noKind } = overbook;
    const e = caught(() => r.register(noKind as unknown as PassDefinition));
    expect(e.code).toBe('KVMGR_INVALID_ARGUMENT');
    expect(e.message).toBe('overbook.kind must be one of order, annotate, materialize, observe, got undefined');
    expect(caught(() => r.register({ ...overbook, kind: 'reorder' as never })).message).toContain('overbook.kind must be one of');
    expect(r.get('overbook')).toBeUndefined();
  });

  it('registry rejects a materialize pass that may anchor on a queue', () => {
    const e = caught(() => createDefaultRegistry().register({ ...overbook, anchors: ['sched.step', 'sched.waiting'] }));
    expect(e.code).toBe('KVMGR_INVALID_ARGUMENT');
    expect(e.message).toContain('only sched.step for a materialize pass');
    expect(() => createDefaultRegistry().register({ ...overbook, kind: 'observe', anchors: ['sched.step', 'sched.waiting'] })).not.toThrow();
  });

  it('a registered custom materialize pass satisfies requirePlan, and is named in the hint', () => {
    const r = createDefaultRegistry().register(overbook);
    expect(() => new PassManager({ pipeline: 'sched.step(fcfs,overbook)', registry: r, requirePlan: true })).not.toThrow();
    expect(caught(() => new PassManager({ pipeline: 'sched.step(fcfs)', registry: r, requirePlan: true })).message).toContain(
      '(add chunked-prefill{budget=8192 max-seqs=1024} or overbook)',
    );
  });
});

describe('statistics by name', () => {
  /** Counts long prompts through a counter looked up by name once per pipeline build. */
  const countLong: PassDefinition = {
    argument: 'count-long',
    kind: 'observe',
    summary: 'test: counts prompts over 30 tokens',
    anchors: ['sched.step', 'sched.waiting'],
    options: {},
    statistics: [
      { name: 'seen', description: 'waiting requests seen' },
      { name: 'long', description: 'prompts over 30 tokens' },
    ],
    create: (_o, stats) => {
      const long = stats.get('long');
      const seen = stats.get('seen');
      return (ir) => {
        seen.add(ir.nW);
        for (let w = 0; w < ir.nW; w++) if (ir.state.waiting[w]!.promptTokens > 30) long.add();
      };
    },
  };
  const r = createDefaultRegistry().register(countLong);
  const st = () => state({ waiting: [waiting('a', { promptTokens: 10 }), waiting('b', { promptTokens: 40 }), waiting('c', { promptTokens: 50 })] });

  it('reports each pass instance keyed by statistic name, and sums a pass by name', () => {
    const pm = new PassManager({ pipeline: 'sched.step(count-long,sched.waiting(count-long),chunked-prefill)', registry: r });
    pm.run(st());
    pm.run(st());
    const stats = pm.statistics();
    expect(stats.map((x) => [x.argument, x.anchorPath, x.values])).toEqual([
      ['count-long', 'sched.step', { seen: 6, long: 4 }],
      ['count-long', 'sched.step/sched.waiting', { seen: 6, long: 4 }],
      ['chunked-prefill', 'sched.step', { steps: 2, admitted: 6, preempted: 0, stalled: 0, 'evicted-prefix-blocks': 0 }],
    ]);
    expect(pm.statistic('count-long', 'long')).toBe(8);
    expect(pm.statistic('chunked-prefill', 'admitted')).toBe(6);
    expect(pm.printStatistics()).toContain('(S) 4 long - prompts over 30 tokens');
    expect(caught(() => pm.statistic('count-long', 'short')).message).toBe('pass count-long has no statistic "short" (declared: seen, long)');
    expect(caught(() => pm.statistic('fcfs', 'sorted')).code).toBe('KVMGR_INVALID_ARGUMENT');
    pm.resetCounters();
    expect(pm.statistic('count-long', 'long')).toBe(0);
  });

  it('a pass that asks for an undeclared statistic fails when the pipeline is built', () => {
    const typo: PassDefinition = {
      ...countLong,
      argument: 'typo',
      create: (_o, stats) => {
        stats.get('lnog');
        return () => {};
      },
    };
    const r2 = createDefaultRegistry().register(typo);
    const e = caught(() => new PassManager({ pipeline: 'sched.step(typo,chunked-prefill)', registry: r2 }));
    expect(e.code).toBe('KVMGR_INVALID_ARGUMENT');
    expect(e.message).toBe('pass typo has no statistic "lnog" (declared: seen, long)');
  });

  it('registry rejects repeated or badly spelled statistic names', () => {
    const twice = { ...countLong, statistics: [...countLong.statistics, { name: 'long', description: 'again' }] };
    expect(caught(() => createDefaultRegistry().register(twice)).message).toContain('count-long.statistics must be unique kebab-case statistic names, got "long"');
    expect(() => createDefaultRegistry().register({ ...countLong, statistics: [{ name: '__proto__', description: 'x' }] })).toThrow(/kebab-case/);
  });

  it('lifetime-aware counts the blocks it reserves', () => {
    const pm = new PassManager({ pipeline: 'sched.step(lifetime-aware{reserve=max},chunked-prefill)', registry: r });
    // reserve=max: blocks(prompt + maxTokens) per waiting request
    const s1 = st();
    pm.run(s1);
    const expected = s1.waiting.reduce((a, w) => a + blocksFor(w.promptTokens + w.maxTokens, s1.kv.blockSize), 0);
    expect(pm.statistic('lifetime-aware', 'reserved-blocks')).toBe(expected);
  });
});
