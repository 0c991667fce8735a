/**
 * Step-level passes that set attributes for materialization: reservation (`lifetime-aware`),
 * preemption (`memory-aware-preemption`), the instance phase (`pd-separation`), and the
 * materializing pass itself (`chunked-prefill`).
 */
import type { PassDefinition } from '../pass.js';
import { materialize } from '../materialize.js';
import { type PreemptionAttr, type VictimRule, blocksFor } from '../step-ir.js';
import type { StepRole } from '../ir.js';
import { predictedRemaining, type QuantileName } from './predict.js';

/**
 * `lifetime-aware{reserve,quantile,margin}`: reserves blocks for a request's lifetime at
 * admission — its predicted footprint (`reserve=predicted`) or prompt + max_tokens
 * (`reserve=max`, TGI's rule) — so decodes never need new blocks until the prediction is passed.
 */
export const lifetimeAwarePass: PassDefinition = {
  argument: 'lifetime-aware',
  kind: 'annotate',
  summary: 'Reserve KV blocks for the predicted (or maximum) lifetime of admitted requests.',
  anchors: ['sched.step'],
  options: {
    reserve: { type: 'enum', default: 'predicted', values: ['predicted', 'max'], description: 'what to reserve' },
    quantile: { type: 'enum', default: 'p90', values: ['p50', 'p90', 'max'], description: 'prediction quantile' },
    margin: { type: 'number', default: 0.1, min: 0, description: 'extra fraction on the predicted output' },
    'fallback-tokens': { type: 'int', default: 256, min: 0, description: 'assumed remaining output when nothing predicts it' },
  },
  statistics: [{ name: 'reserved-blocks', description: 'blocks reserved (summed over steps, waiting requests considered)' }],
  create: (o, stats) => {
    const max = o.reserve === 'max';
    const q = o.quantile as QuantileName;
    const margin = o.margin as number;
    const fb = o['fallback-tokens'] as number;
    const reserved = stats.get('reserved-blocks');
    return (ir, ctx) => {
      const bs = ir.state.kv.blockSize;
      let total = 0;
      for (let w = 0; w < ir.nW; w++) {
        const r = ir.state.waiting[w]!;
        const cap = blocksFor(r.promptTokens + Math.max(r.maxTokens, r.generatedTokens), bs);
        const b = max ? cap : Math.min(cap, blocksFor(r.promptTokens + r.generatedTokens + Math.ceil(predictedRemaining(r, q, fb, ctx.analyses) * (1 + margin)), bs));
        ir.wReserve[w] = b;
        total += b;
      }
      reserved.add(total);
    };
  },
};

/**
 * `memory-aware-preemption{mode,victim,swap-min-tokens}`: how running requests are preempted
 * when blocks run short. `victim=selector` uses the injected `VictimSelector` (newest-first
 * when none is injected); `mode=auto` swaps long requests when the CPU tier has room (or takes
 * the selector's mode); `mode=none` never preempts (the request stalls instead).
 */
export const memoryAwarePreemptionPass: PassDefinition = {
  argument: 'memory-aware-preemption',
  kind: 'annotate',
  summary: 'Choose preemption victims (request-level selector) and recompute vs swap.',
  anchors: ['sched.step'],
  options: {
    mode: { type: 'enum', default: 'auto', values: ['recompute', 'swap', 'auto', 'none'], description: 'preemption mode' },
    victim: { type: 'enum', default: 'selector', values: ['selector', 'newest', 'fewest-generated', 'lowest-priority'], description: 'victim order' },
    'swap-min-tokens': { type: 'int', default: 1024, min: 0, description: 'auto mode swaps victims with at least this many computed tokens' },
    'admit-after-preempt': { type: 'bool', default: false, description: 'still admit waiting requests in a step that preempted' },
  },
  statistics: [],
  create: (o) => {
    const mode = o.mode as 'recompute' | 'swap' | 'auto' | 'none';
    const rule = o.victim as VictimRule;
    const swapMin = o['swap-min-tokens'] as number;
    const after = o['admit-after-preempt'] as boolean;
    const withSelector: PreemptionAttr = { mode, victim: rule, swapMinTokens: swapMin };
    const fallback: PreemptionAttr = { mode, victim: rule === 'selector' ? 'newest' : rule, swapMinTokens: swapMin };
    return (ir, ctx) => {
      ir.preemption = ctx.analyses.victimSelector ? withSelector : fallback;
      ir.admitAfterPreempt = after;
    };
  },
};

/** `pd-separation{role}`: separate prefill and decode queues for disaggregated instances. */
export const pdSeparationPass: PassDefinition = {
  argument: 'pd-separation',
  kind: 'annotate',
  summary: 'Prefill instances schedule only prefill work, decode instances only decodes.',
  anchors: ['sched.step'],
  options: {
    role: { type: 'enum', default: 'auto', values: ['auto', 'prefill', 'decode', 'both'], description: 'instance role; auto = the state role' },
  },
  statistics: [],
  create: (o) => {
    const role = o.role as StepRole | 'auto';
    return (ir) => {
      ir.phase = role === 'auto' ? (ir.state.role ?? 'both') : role;
    };
  },
};

/**
 * `chunked-prefill{budget,max-seqs,long-prefill,enabled}`: the materializing pass. Schedules
 * running requests then waiting ones within the token budget and max sequences, splitting
 * prompts by the remaining budget.
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py
 */
export const chunkedPrefillPass: PassDefinition = {
  argument: 'chunked-prefill',
  kind: 'materialize',
  summary: 'Materialize the step: token budget, max sequences, prompts split across steps.',
  anchors: ['sched.step'],
  options: {
    budget: { type: 'int', default: 8192, min: 0, description: 'token budget per step (capped by the state budget); 0 = the state budget' },
    'max-seqs': { type: 'int', default: 1024, min: 0, description: 'max running sequences (capped by the state); 0 = the state limit' },
    'long-prefill': { type: 'int', default: 0, min: 0, description: 'max prefill tokens of one request per step; 0 = no cap' },
    enabled: { type: 'bool', default: true, description: 'split prompts across steps; false = a prompt runs whole or waits' },
  },
  statistics: [
    { name: 'steps', description: 'steps materialized' },
    { name: 'admitted', description: 'waiting requests admitted' },
    { name: 'preempted', description: 'running requests preempted' },
    { name: 'stalled', description: 'running requests that got no blocks and were not preempted' },
    { name: 'evicted-prefix-blocks', description: 'cached prefix blocks evicted' },
  ],
  create: (o, stats) => {
    const steps = stats.get('steps');
    const admitted = stats.get('admitted');
    const preempted = stats.get('preempted');
    const stalled = stats.get('stalled');
    const evicted = stats.get('evicted-prefix-blocks');
    const budget = o.budget as number;
    const maxSeqs = o['max-seqs'] as number;
    const longPrefill = o['long-prefill'] as number;
    const enabled = o.enabled as boolean;
    return (ir, ctx) => {
      if (budget > 0 && budget < ir.tokenBudget) ir.tokenBudget = budget;
      if (maxSeqs > 0 && maxSeqs < ir.maxSeqs) ir.maxSeqs = maxSeqs;
      ir.longPrefillTokens = longPrefill;
      ir.chunking = enabled;
      const c = materialize(ir, ctx.analyses);
      steps.add(1);
      admitted.add(c.admitted);
      preempted.add(c.preempted);
      stalled.add(c.stalled);
      evicted.add(c.evictedPrefixBlocks);
    };
  },
};
