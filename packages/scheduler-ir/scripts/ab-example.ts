/**
 * The A/B example of docs/scheduler-ir.md: a custom pass registered and A/B tested against
 * vllm-default. Run: `node --conditions=@kvmgr/source --import tsx packages/scheduler-ir/scripts/ab-example.ts`.
 */
import { createRng } from '@kvmgr/core';
import { abTest, createDefaultRegistry } from '../src/index.js';
import type { PassDefinition, SchedRequest, SchedState } from '../src/index.js';

const shortestPromptPass: PassDefinition = {
  argument: 'shortest-prompt',
  kind: 'order',
  summary: 'Short uncached prompts first.',
  anchors: ['sched.step', 'sched.waiting'],
  options: { 'max-tokens': { type: 'int', default: 4096, min: 1, description: 'prompts longer than this go last' } },
  statistics: [],
  create: (options) => {
    const max = options['max-tokens'] as number;
    return (ir) => {
      const key = ir.pushWaitingKey();
      for (let w = 0; w < ir.nW; w++) {
        const r = ir.state.waiting[w]!;
        const uncached = r.promptTokens - Math.max(r.computedTokens, r.cachedPrefixTokens);
        key[w] = uncached > max ? Number.POSITIVE_INFINITY : uncached;
      }
    };
  },
};

// recorded states: in practice, captured from the simulator or an engine adapter
const rng = createRng(7);
const states: SchedState[] = Array.from({ length: 200 }, () => {
  const waiting: SchedRequest[] = Array.from({ length: 32 }, (_, i) => ({
    id: `w${i}`, status: 'waiting', promptTokens: rng.int(16, 6000), computedTokens: 0,
    cachedPrefixTokens: rng.int(0, 4) * 128, generatedTokens: 0, maxTokens: 512, priority: 0,
    arrivalUs: i * 1000, admittedUs: -1, blocksHeld: 0,
  }));
  return {
    nowUs: 100_000, waiting, running: [],
    kv: { blockSize: 16, freeBlocks: { gpu: rng.int(200, 2000), cpu: 0, disk: 0 }, totalBlocks: { gpu: 4000, cpu: 0, disk: 0 }, evictablePrefixBlocks: 0 },
    budgets: { tokenBudget: 8192, maxSeqs: 256 },
  };
});

const registry = createDefaultRegistry().register(shortestPromptPass);
const report = abTest({
  states,
  registry,
  baseline: 'vllm-default',
  candidate: 'sched.step(shortest-prompt{max-tokens=2048},chunked-prefill)',
  seed: 1,
});
console.log(report.experimentId);
for (const m of report.metrics) {
  console.log(`${m.name.padEnd(20)} ${m.baselineMean.toFixed(2).padStart(10)} → ${m.candidateMean.toFixed(2).padStart(10)}  Δ ${m.meanDiff.toFixed(2)} [${m.ciLow.toFixed(2)}, ${m.ciHigh.toFixed(2)}]${m.significant ? ' *' : ''}`);
}
