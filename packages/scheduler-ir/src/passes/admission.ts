/**
 * `admission`: ADMIT / DEFER / REJECT / PREEMPT from each request's predicted KV footprint.
 *
 * The footprint of a request is `blocks(prompt + generated + remaining_q × (1 + margin))`,
 * capped at `blocks(prompt + maxTokens)`. The projected peak of the pool is what is used now
 * plus the predicted growth of every running request. A waiting request is admitted while the
 * projected peak plus its footprint stays under `safety × total GPU blocks`; otherwise it is
 * deferred (`predicted-footprint`), and later ones may backfill unless it is starved. A request
 * whose prompt alone exceeds the pool is rejected (`exceeds-capacity`) when the step reaches it
 * (footprints are computed lazily, so a step costs O(running + admitted), not O(waiting)). With `preempt=true`, a
 * request that does not fit preempts lower-priority running requests.
 * Missing predictions fall back to an injected predictor, then to `fallback-tokens`.
 */
import type { SchedRequest } from '../ir.js';
import type { PassDefinition, SchedAnalyses } from '../pass.js';
import { type AdmissionAttr, blocksFor } from '../step-ir.js';
import { predictedRemaining, type QuantileName } from './predict.js';

/**
 * Predicted KV footprint of a request, blocks: `blocks(prompt + generated + ⌈remaining_q × (1 +
 * margin)⌉)`, capped at `blocks(prompt + max(maxTokens, generated))`, where `remaining_q` is the
 * remaining output at `quantile` ({@link predictedRemaining}: the request's own prediction, else
 * the injected predictor, else `min(maxTokens - generated, fallbackTokens)`). What the
 * `admission` pass admits by; an engine records it per request to compare with the blocks held.
 *
 * @param r - the request (prompt, generated and max tokens, predictions).
 * @param blockSize - tokens per block.
 * @param analyses - the pass context's analyses (the `predictor`).
 * @param quantile - @default 'p90'
 * @param margin - extra fraction on the predicted output, ≥ 0. @default 0.1
 * @param fallbackTokens - remaining output assumed when nothing predicts it. @default 256
 * @returns blocks, an integer ≥ 0.
 */
export function predictedFootprintBlocks(
  r: SchedRequest,
  blockSize: number,
  analyses: SchedAnalyses,
  quantile: QuantileName = 'p90',
  margin = 0.1,
  fallbackTokens = 256,
): number {
  const remaining = predictedRemaining(r, quantile, fallbackTokens, analyses);
  const predicted = blocksFor(r.promptTokens + r.generatedTokens + Math.ceil(remaining * (1 + margin)), blockSize);
  const cap = blocksFor(r.promptTokens + Math.max(r.maxTokens, r.generatedTokens), blockSize);
  return Math.min(predicted, cap);
}

/** The `admission` pass: ADMIT / DEFER / REJECT / PREEMPT from the predicted KV footprint (see the file comment). */
export const admissionPass: PassDefinition = {
  argument: 'admission',
  kind: 'annotate',
  summary: 'Admit, defer, reject or preempt from the predicted KV footprint at a quantile plus a margin.',
  anchors: ['sched.step'],
  options: {
    quantile: { type: 'enum', default: 'p90', values: ['p50', 'p90', 'max'], description: 'prediction quantile of the remaining output' },
    safety: { type: 'number', default: 0.9, min: 0, max: 1, description: 'fraction of GPU blocks the projected peak may use' },
    margin: { type: 'number', default: 0.1, min: 0, description: 'extra fraction on the predicted output' },
    'fallback-tokens': { type: 'int', default: 256, min: 0, description: 'assumed remaining output when nothing predicts it' },
    backfill: { type: 'bool', default: true, description: 'keep admitting smaller requests past a deferred one' },
    'backfill-window': { type: 'int', default: 16, min: 0, description: 'max requests examined past the first deferral' },
    'starvation-ms': { type: 'number', default: 5000, min: 0, description: 'a deferred request waiting this long blocks backfill' },
    preempt: { type: 'bool', default: false, description: 'preempt lower-priority running requests for a higher-priority one' },
  },
  statistics: [
    { name: 'rejected', description: 'requests rejected (exceeds-capacity)' },
    { name: 'evaluated', description: 'footprints computed' },
  ],
  create: (o, stats) => {
    const q = o.quantile as QuantileName;
    const safety = o.safety as number;
    const margin = o.margin as number;
    const fb = o['fallback-tokens'] as number;
    const starvationUs = (o['starvation-ms'] as number) * 1000;
    let blockSize = 16;
    let totalBlocks = 0;
    let waiting: SchedRequest[] = [];
    let analyses: SchedAnalyses = {};
    const rejected = stats.get('rejected');
    const evaluated = stats.get('evaluated');
    const footprint = (r: SchedRequest): number => predictedFootprintBlocks(r, blockSize, analyses, q, margin, fb);
    // one attribute object per pass instance, refreshed each step (no per-step allocation)
    const attr: AdmissionAttr = {
      limitBlocks: 0,
      projectedBlocks: 0,
      backfill: o.backfill as boolean,
      backfillWindow: o['backfill-window'] as number,
      starvationUs,
      preemptForPriority: o.preempt as boolean,
      runningFootprint: new Float64Array(16),
      // footprints of waiting requests are computed lazily, only for the ones the step reaches
      footprint: (w) => {
        evaluated.add(1);
        const r = waiting[w]!;
        // a request whose prompt alone exceeds the pool can never run
        if (r.promptTokens + r.generatedTokens >= totalBlocks * blockSize) {
          rejected.add(1);
          return -1;
        }
        return footprint(r);
      },
    };
    return (ir, ctx) => {
      const s = ir.state;
      blockSize = s.kv.blockSize;
      waiting = s.waiting;
      analyses = ctx.analyses;
      const total = s.kv.totalBlocks.gpu;
      totalBlocks = total;
      let projected = total - s.kv.freeBlocks.gpu - s.kv.evictablePrefixBlocks;
      if (attr.runningFootprint.length < ir.nR) attr.runningFootprint = new Float64Array(Math.max(ir.nR, attr.runningFootprint.length * 2));
      const rf = attr.runningFootprint;
      for (let i = 0; i < ir.nR; i++) {
        const r = s.running[i]!;
        const fp = footprint(r);
        rf[i] = Math.max(fp, r.blocksHeld);
        if (fp > r.blocksHeld) projected += fp - r.blocksHeld;
      }
      evaluated.add(ir.nR);
      attr.limitBlocks = Math.floor(safety * total);
      attr.projectedBlocks = projected;
      ir.admission = attr;
    };
  },
};
