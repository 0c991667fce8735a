import type { BenchSuite } from '../../../bench/types.js';
import { createRng } from '@kvmgr/core';
import { PassManager, StatisticSet, StepIR, createDefaultRegistry, parsePipeline } from '../src/index.js';
import type { PassContext, PassRun, SchedRequest, SchedState } from '../src/index.js';

/** 256 running (mostly decoding) + 1,024 waiting requests, a pool about 70% used. */
export function makeState(): SchedState {
  const rng = createRng(42);
  const running: SchedRequest[] = [];
  let held = 0;
  for (let i = 0; i < 256; i++) {
    const prompt = rng.int(64, 4096);
    const generated = rng.int(1, 400);
    const prefilling = i % 64 === 0;
    const computed = prefilling ? Math.max(0, prompt - 1024) : prompt + generated - 1;
    const blocks = Math.ceil(computed / 16);
    held += blocks;
    running.push({
      id: `r${i}`,
      status: 'running',
      promptTokens: prompt,
      computedTokens: computed,
      cachedPrefixTokens: 0,
      generatedTokens: prefilling ? 0 : generated,
      maxTokens: 1024,
      priority: 0,
      arrivalUs: i * 1000,
      admittedUs: i * 1000,
      blocksHeld: blocks,
      predictedRemainingTokens: rng.int(10, 500),
      predictedRemainingP90: rng.int(500, 900),
    });
  }
  const waiting: SchedRequest[] = [];
  for (let i = 0; i < 1024; i++) {
    const prompt = rng.int(64, 4096);
    waiting.push({
      id: `w${i}`,
      status: 'waiting',
      promptTokens: prompt,
      computedTokens: 0,
      cachedPrefixTokens: rng.int(0, 3) * 256,
      generatedTokens: 0,
      maxTokens: 1024,
      priority: 0,
      arrivalUs: 300_000 + i * 500,
      admittedUs: -1,
      blocksHeld: 0,
      ttftMs: 2000,
      predictedRemainingTokens: rng.int(10, 500),
      predictedRemainingP90: rng.int(500, 900),
    });
  }
  const total = Math.ceil(held / 0.7);
  return {
    nowUs: 1_000_000,
    running,
    waiting,
    kv: { blockSize: 16, freeBlocks: { gpu: total - held, cpu: 50_000, disk: 0 }, totalBlocks: { gpu: total, cpu: 50_000, disk: 0 }, evictablePrefixBlocks: 0 },
    budgets: { tokenBudget: 8192, maxSeqs: 1024 },
  };
}

/** Scheduler IR: one engine step of the presets, and the pass manager's own overhead. */
export function createSuite(): BenchSuite {
  const registry = createDefaultRegistry();
  const state = makeState();
  const vllm = new PassManager({ pipeline: 'vllm-default', registry });
  const kvmgr = new PassManager({ pipeline: 'kvmgr-default', registry });
  const sglang = new PassManager({ pipeline: 'sglang-default', registry });
  const hooked = new PassManager({ pipeline: 'vllm-default', registry });
  hooked.addInstrumentation({ runBeforePass: () => {}, runAfterPass: () => {} });
  // the same passes called in a bare loop: what a step costs without the pass manager
  const raw = parsePipeline('vllm-default', registry).children.map((c) => {
    if (c.kind !== 'pass') throw new Error('unexpected anchor');
    const def = registry.get(c.name)!;
    const ctx: PassContext = { analyses: {}, queue: 'waiting' };
    return { run: def.create(c.options, new StatisticSet(def.statistics, def.argument)) as PassRun, ctx };
  });
  const ir = new StepIR();
  let sink = 0;
  const vPlan = vllm.run(state);
  const kPlan = kvmgr.run(state);
  return {
    name: 'scheduler-ir',
    notes: {
      running: state.running.length,
      waiting: state.waiting.length,
      'vllm-default admitted': vPlan.ops.filter((o) => o.op === 'admit').length,
      'kvmgr-default admitted': kPlan.ops.filter((o) => o.op === 'admit').length,
      'vllm-default scheduledTokens': vPlan.scheduledTokens,
      'kvmgr-default scheduledTokens': kPlan.scheduledTokens,
    },
    cases: [
      {
        name: 'vllm-default step, raw pass loop (no PassManager)',
        fn: () => {
          ir.reset(state);
          for (const p of raw) p.run(ir, p.ctx);
          sink += ir.toPlan().scheduledTokens;
        },
        latencySamples: 5000,
      },
      { name: 'vllm-default step 256 running + 1024 waiting', fn: () => void (sink += vllm.run(state).scheduledTokens), baseline: 'vllm-default step, raw pass loop (no PassManager)', latencySamples: 5000 },
      { name: 'kvmgr-default step 256 running + 1024 waiting', fn: () => void (sink += kvmgr.run(state).scheduledTokens), baseline: 'vllm-default step 256 running + 1024 waiting', latencySamples: 5000 },
      { name: 'sglang-default step 256 running + 1024 waiting', fn: () => void (sink += sglang.run(state).scheduledTokens), baseline: 'vllm-default step 256 running + 1024 waiting', latencySamples: 5000 },
      { name: 'vllm-default step, empty instrumentation hooks', fn: () => void (sink += hooked.run(state).scheduledTokens), baseline: 'vllm-default step 256 running + 1024 waiting' },
    ],
  };
}
