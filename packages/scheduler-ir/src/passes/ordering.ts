/**
 * Ordering passes. Each pushes a new primary order key on its queue (a stable sort: earlier
 * keys break ties), so `sched.step(fcfs,priority)` is "by priority, then by arrival". The
 * materializer pops the waiting queue lazily through a heap, so a step sorts only what it admits.
 */
import type { SchedRequest } from '../ir.js';
import type { PassContext, PassDefinition } from '../pass.js';
import { DECISION_REJECT, type StepIR } from '../step-ir.js';
import { predictedRemaining, type QuantileName } from './predict.js';

/** Prompt tokens a waiting request still has to prefill (neither computed nor cached). */
function uncachedPromptTokens(r: SchedRequest): number {
  return Math.max(0, r.promptTokens - Math.max(r.computedTokens, r.cachedPrefixTokens));
}

function queueOf(ir: StepIR, ctx: PassContext): { reqs: SchedRequest[]; n: number; key: () => Float64Array } {
  return ctx.queue === 'running'
    ? { reqs: ir.state.running, n: ir.nR, key: () => ir.pushRunningKey() }
    : { reqs: ir.state.waiting, n: ir.nW, key: () => ir.pushWaitingKey() };
}

/** `fcfs`: first come, first served (by arrival time). */
export const fcfsPass: PassDefinition = {
  argument: 'fcfs',
  kind: 'order',
  summary: 'First come, first served: order by arrival time.',
  anchors: ['sched.step', 'sched.waiting', 'sched.running'],
  options: {},
  statistics: [{ name: 'sorted', description: 'steps whose queue was not already in arrival order' }],
  create: (_o, stats) => {
    const sortedSteps = stats.get('sorted');
    return (ir, ctx) => {
      const { reqs, n, key } = queueOf(ir, ctx);
      const count = ctx.queue === 'running' ? ir.rKeyCount : ir.wKeyCount;
      if (count === 0) {
        let sorted = true;
        for (let i = 1; i < n; i++) {
          if (reqs[i]!.arrivalUs < reqs[i - 1]!.arrivalUs) {
            sorted = false;
            break;
          }
        }
        // already in arrival order and nothing else ordered it: the index order is FCFS
        if (sorted) return;
      }
      sortedSteps.add(1);
      const k = key();
      for (let i = 0; i < n; i++) k[i] = reqs[i]!.arrivalUs;
    };
  },
};

/** `priority{aging-ms}`: higher priority first; waiting time raises priority by 1 per `aging-ms`. */
export const priorityPass: PassDefinition = {
  argument: 'priority',
  kind: 'order',
  summary: 'Order by priority (larger first), aged by waiting time.',
  anchors: ['sched.step', 'sched.waiting', 'sched.running'],
  options: {
    'aging-ms': { type: 'number', default: 0, min: 0, description: 'waiting this long raises priority by 1; 0 = no aging' },
  },
  statistics: [],
  create: (o) => {
    const agingUs = (o['aging-ms'] as number) * 1000;
    return (ir, ctx) => {
      const { reqs, n, key } = queueOf(ir, ctx);
      const k = key();
      const now = ir.state.nowUs;
      for (let i = 0; i < n; i++) {
        const r = reqs[i]!;
        k[i] = -(r.priority + (agingUs > 0 ? (now - r.arrivalUs) / agingUs : 0));
      }
    };
  },
};

function pushStarvationKey(ir: StepIR, starvationUs: number): number {
  if (starvationUs <= 0) return 0;
  const k = ir.pushWaitingKey();
  const now = ir.state.nowUs;
  let starved = 0;
  for (let w = 0; w < ir.nW; w++) {
    const r = ir.state.waiting[w]!;
    if (now - r.arrivalUs >= starvationUs) {
      k[w] = r.arrivalUs;
      starved++;
    } else k[w] = Number.POSITIVE_INFINITY;
  }
  // a constant key orders nothing: drop it so the heap compares fewer keys
  if (starved === 0) ir.wKeyCount--;
  return starved;
}

/** `sjf{quantile,starvation-ms}`: shortest predicted remaining work first. */
export const sjfPass: PassDefinition = {
  argument: 'sjf',
  kind: 'order',
  summary: 'Shortest job first by predicted remaining work (uncached prompt + predicted output).',
  anchors: ['sched.step', 'sched.waiting'],
  options: {
    quantile: { type: 'enum', default: 'p50', values: ['p50', 'p90', 'max'], description: 'prediction quantile' },
    'fallback-tokens': { type: 'int', default: 256, min: 0, description: 'assumed output when unpredicted' },
    'starvation-ms': { type: 'number', default: 0, min: 0, description: 'requests waiting this long go first, FCFS; 0 = off' },
  },
  statistics: [{ name: 'starved', description: 'waiting requests promoted by the starvation guard' }],
  create: (o, stats) => {
    const q = o.quantile as QuantileName;
    const fb = o['fallback-tokens'] as number;
    const starvationUs = (o['starvation-ms'] as number) * 1000;
    const starved = stats.get('starved');
    return (ir, ctx) => {
      const k = ir.pushWaitingKey();
      for (let w = 0; w < ir.nW; w++) {
        const r = ir.state.waiting[w]!;
        k[w] = uncachedPromptTokens(r) + predictedRemaining(r, q, fb, ctx.analyses);
      }
      starved.add(pushStarvationKey(ir, starvationUs));
    };
  },
};

/**
 * `prefix-cache-aware{starvation-ms,fcfs-above}`: longest cached prefix first (SGLang LPM), with
 * a starvation guard; falls back to FCFS when more than `fcfs-above` requests wait.
 * @see sgl-project/sglang:python/sglang/srt/managers/schedule_policy.py
 */
export const prefixCacheAwarePass: PassDefinition = {
  argument: 'prefix-cache-aware',
  kind: 'order',
  summary: 'Longest prefix match first, with a starvation guard and an FCFS fallback for long queues.',
  anchors: ['sched.step', 'sched.waiting'],
  options: {
    'starvation-ms': { type: 'number', default: 5000, min: 0, description: 'requests waiting this long go first, FCFS; 0 = off' },
    'fcfs-above': { type: 'int', default: 0, min: 0, description: 'use FCFS when more requests wait; 0 = never (SGLang: 128)' },
  },
  statistics: [
    { name: 'fcfs-fallbacks', description: 'steps that fell back to FCFS' },
    { name: 'starved', description: 'waiting requests promoted by the starvation guard' },
  ],
  create: (o, stats) => {
    const starvationUs = (o['starvation-ms'] as number) * 1000;
    const fcfsAbove = o['fcfs-above'] as number;
    const fcfsFallbacks = stats.get('fcfs-fallbacks');
    const starvedCount = stats.get('starved');
    return (ir) => {
      const k = ir.pushWaitingKey();
      if (fcfsAbove > 0 && ir.nW > fcfsAbove) {
        fcfsFallbacks.add(1);
        for (let w = 0; w < ir.nW; w++) k[w] = ir.state.waiting[w]!.arrivalUs;
        return;
      }
      // one pass over the requests; the starvation key is built only when someone starved
      const waiting = ir.state.waiting;
      const oldestAllowed = ir.state.nowUs - starvationUs;
      let starved = false;
      for (let w = 0; w < ir.nW; w++) {
        const r = waiting[w]!;
        k[w] = -r.cachedPrefixTokens;
        if (r.arrivalUs <= oldestAllowed) starved = true;
      }
      if (starved && starvationUs > 0) starvedCount.add(pushStarvationKey(ir, starvationUs));
    };
  },
};

/**
 * `slo-aware{urgent-ms,edf,late,reject}`: order by TTFT deadline slack (least slack first);
 * optionally reject requests whose TTFT target cannot be met even if prefilled now. With
 * `edf=false` on-time requests keep the earlier passes' order and only late ones move.
 *
 * `late` says where requests with negative slack (already unable to meet their TTFT) go:
 * `first` (plain earliest-deadline-first: the most late first) or `back` (behind every
 * request that can still make its deadline, served when capacity allows). EDF alone collapses
 * under overload — every request is served late because the late ones go first — while
 * demoting the late keeps the on-time ones on time; this is the deadline-aware overload
 * control of real-time scheduling, applied to TTFT.
 * @see Liu & Layland, "Scheduling Algorithms for Multiprogramming in a Hard-Real-Time
 *   Environment", JACM 1973 (EDF); Haritsa, Livny & Carey, "Earliest Deadline Scheduling for
 *   Real-Time Database Systems", RTSS 1991 (EDF's overload collapse and its remedies)
 */
export const sloAwarePass: PassDefinition = {
  argument: 'slo-aware',
  // it pushes a slack key (no deadline attribute): an ordering, which may also reject
  kind: 'order',
  summary: 'Least TTFT slack first; early rejection of requests that cannot meet their SLO.',
  anchors: ['sched.step', 'sched.waiting'],
  options: {
    'prefill-us-per-token': { type: 'number', default: 20, min: 0, description: 'estimated prefill cost, µs per uncached token (BLIS β1 ≈ 19.8 on H100)' },
    'step-us': { type: 'number', default: 6500, min: 0, description: 'estimated fixed cost of a step, µs (BLIS β0)' },
    'urgent-ms': { type: 'number', default: 0, min: 0, description: 'only slack below this reorders (others keep earlier order); 0 = all' },
    edf: { type: 'bool', default: true, description: 'order on-time requests by slack (earliest deadline first); false = keep the earlier order' },
    late: { type: 'enum', default: 'first', values: ['first', 'back'], description: 'requests with negative slack go first (EDF) or behind every on-time request' },
    reject: { type: 'bool', default: false, description: 'reject requests with negative slack' },
  },
  statistics: [
    { name: 'rejected', description: 'requests rejected as SLO-infeasible' },
    { name: 'urgent', description: 'requests ordered by slack' },
    { name: 'late', description: 'waiting requests with negative slack put behind the on-time ones (late=back)' },
  ],
  create: (o, stats) => {
    const rejected = stats.get('rejected');
    const urgentCount = stats.get('urgent');
    const lateCount = stats.get('late');
    const perTok = o['prefill-us-per-token'] as number;
    const stepUs = o['step-us'] as number;
    const urgentUs = (o['urgent-ms'] as number) * 1000;
    const reject = o.reject as boolean;
    const lateBack = o.late === 'back';
    const edf = o.edf as boolean;
    // keys: on-time urgent = slack; not urgent = NOT_URGENT (ties fall to earlier passes);
    // late with late=back = +∞ (behind everyone, ties fall to earlier passes)
    const NOT_URGENT = lateBack ? Number.MAX_VALUE : Number.POSITIVE_INFINITY;
    return (ir) => {
      const k = ir.pushWaitingKey();
      const now = ir.state.nowUs;
      let urgent = 0;
      let late = 0;
      for (let w = 0; w < ir.nW; w++) {
        const r = ir.state.waiting[w]!;
        if (r.ttftMs === undefined || r.generatedTokens > 0) {
          k[w] = NOT_URGENT;
          continue;
        }
        const slack = r.arrivalUs + r.ttftMs * 1000 - now - stepUs - uncachedPromptTokens(r) * perTok;
        if (reject && slack < 0 && ir.wDecision[w] === 0) {
          ir.decide(w, DECISION_REJECT, 'slo-infeasible');
          rejected.add(1);
        }
        if (lateBack && slack < 0) {
          k[w] = Number.POSITIVE_INFINITY;
          late++;
        } else if (!edf || (urgentUs > 0 && slack >= urgentUs)) k[w] = NOT_URGENT;
        else {
          k[w] = slack;
          urgent++;
        }
      }
      urgentCount.add(urgent);
      lateCount.add(late);
      if (urgent === 0 && late === 0) ir.wKeyCount--;
    };
  },
};

/**
 * `batching-efficiency`: groups requests of similar remaining prompt length with the oldest
 * one (log2 buckets), and reports batching efficiency (scheduled tokens / budget) when it runs
 * after materialization.
 */
export const batchingEfficiencyPass: PassDefinition = {
  argument: 'batching-efficiency',
  // before materialization it groups the queue; after it, it only measures (observes)
  kind: 'order',
  summary: 'Group similar prompt lengths; report useful tokens / token budget.',
  anchors: ['sched.step', 'sched.waiting'],
  options: {
    group: { type: 'bool', default: true, description: 'reorder waiting requests by length bucket distance to the oldest' },
  },
  statistics: [
    { name: 'steps-measured', description: 'steps measured after materialization' },
    { name: 'efficiency-sum', description: 'sum of scheduled tokens / budget over measured steps' },
  ],
  create: (o, stats) => {
    const group = o.group as boolean;
    const stepsMeasured = stats.get('steps-measured');
    const efficiencySum = stats.get('efficiency-sum');
    return (ir) => {
      if (ir.materialized) {
        let tokens = 0;
        for (let k = 0; k < ir.nSched; k++) {
          const e = ir.schedOrder[k] as number;
          tokens += e >= 0 ? (ir.rPreempt[e] === 0 ? (ir.rTokens[e] as number) : 0) : (ir.wTokens[~e] as number);
        }
        stepsMeasured.add(1);
        efficiencySum.add(ir.tokenBudget > 0 ? tokens / ir.tokenBudget : 0);
        return;
      }
      if (!group || ir.nW === 0) return;
      let oldest = 0;
      for (let w = 1; w < ir.nW; w++) if (ir.state.waiting[w]!.arrivalUs < ir.state.waiting[oldest]!.arrivalUs) oldest = w;
      const bucket = (r: SchedRequest): number => Math.floor(Math.log2(Math.max(1, r.promptTokens - r.computedTokens)));
      const head = bucket(ir.state.waiting[oldest]!);
      const k = ir.pushWaitingKey();
      for (let w = 0; w < ir.nW; w++) k[w] = Math.abs(bucket(ir.state.waiting[w]!) - head);
    };
  },
};
