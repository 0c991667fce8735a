/**
 * Paired comparison of two runs over the same requests (same trace, same seed): per-request
 * differences of TTFT, TPOT, E2E and SLO attainment, with the percentile-bootstrap confidence
 * intervals of `@kvmgr/scheduler-ir`'s `pairedBootstrap` (requests resampled with the seeded PRNG;
 * its docstring gives the quantile rule).
 */
import { KvmgrError } from '@kvmgr/core';
import { pairedBootstrap } from '@kvmgr/scheduler-ir';
import type { RequestRow } from '@kvmgr/sim';
import type { RunResult } from './run.js';

/** A paired difference `b − a` with its confidence interval. */
export interface PairedDiff {
  readonly metric: string;
  readonly unit: string;
  /** Requests that have the metric in both runs. */
  readonly n: number;
  readonly meanA: number;
  readonly meanB: number;
  /** Mean of per-request `b − a`. */
  readonly meanDiff: number;
  readonly ciLow: number;
  readonly ciHigh: number;
  /** Relative change of the means, `(meanB − meanA) / meanA`. */
  readonly relChange: number;
}

/** Options of {@link pairedDiffs}. */
export interface PairedOptions {
  /** Bootstrap resamples. @default 2000 */
  readonly resamples?: number;
  /** Confidence level. @default 0.95 */
  readonly level?: number;
  /** Seed of the resampling PRNG. @default 1 */
  readonly seed?: number;
}

type Pick = (r: RequestRow) => number | undefined;

const METRICS: ReadonlyArray<{ metric: string; unit: string; pick: Pick }> = [
  { metric: 'TTFT', unit: 'ms', pick: (r) => r.ttftMs },
  { metric: 'TPOT', unit: 'ms', pick: (r) => r.tpotMs },
  { metric: 'E2E', unit: 'ms', pick: (r) => r.e2eMs },
  { metric: 'SLO met', unit: 'fraction', pick: (r) => (r.rejectedReason ? 0 : r.sloMet ? 1 : 0) },
  { metric: 'cached tokens', unit: 'tokens', pick: (r) => r.cachedTokens },
];

/**
 * Pairs the requests of two runs by id and bootstraps the mean difference of each metric.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the runs share no request ids (not the same trace).
 */
export function pairedDiffs(a: RunResult, b: RunResult, options: PairedOptions = {}): PairedDiff[] {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  const byId = new Map<string, RequestRow>();
  for (const r of a.requests) byId.set(r.requestId, r);
  const pairs: Array<[RequestRow, RequestRow]> = [];
  for (const r of b.requests) {
    const m = byId.get(r.requestId);
    if (m) pairs.push([m, r]);
  }
  if (pairs.length === 0) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', 'ab: the two runs share no request ids; they must replay the same trace');
  return METRICS.map(({ metric, unit, pick }) => {
    const xa: number[] = [];
    const xb: number[] = [];
    for (const [ra, rb] of pairs) {
      const va = pick(ra);
      const vb = pick(rb);
      if (va !== undefined && vb !== undefined && Number.isFinite(va) && Number.isFinite(vb)) {
        xa.push(va);
        xb.push(vb);
      }
    }
    const n = xa.length;
    if (n === 0) return { metric, unit, n, meanA: Number.NaN, meanB: Number.NaN, meanDiff: Number.NaN, ciLow: Number.NaN, ciHigh: Number.NaN, relChange: Number.NaN };
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < n; i++) {
      sa += xa[i] as number;
      sb += xb[i] as number;
    }
    const meanA = sa / n;
    const meanB = sb / n;
    const { ciLow, ciHigh } = pairedBootstrap(xa, xb, { resamples, confidence: level, seed: options.seed ?? 1 });
    return {
      metric,
      unit,
      n,
      meanA,
      meanB,
      meanDiff: meanB - meanA,
      ciLow,
      ciHigh,
      relChange: meanA !== 0 ? (meanB - meanA) / Math.abs(meanA) : Number.NaN,
    };
  });
}

/** One configuration's result at one rate. */
export interface SweepPoint {
  /** Rate scale (× the trace's arrival rate). */
  readonly rate: number;
  /** Fraction of requests meeting both SLOs, 0..1. */
  readonly sloAttainment: number;
  readonly goodputReqPerS: number;
  readonly throughputReqPerS: number;
  readonly ttftP99Ms: number;
  /** Optional detail written to sweep.json (not used for the knee). */
  readonly tpotP99Ms?: number;
  /** Prompt tokens served from the prefix cache / prompt tokens, 0..1. */
  readonly hitRate?: number;
  readonly preemptions?: number;
  readonly rejected?: number;
}

/** The goodput knee of a configuration. */
export interface Knee {
  /** Highest swept rate with attainment ≥ the target; undefined when none reaches it. */
  readonly rate: number | undefined;
  readonly goodputReqPerS: number;
}

/**
 * The goodput knee: the highest rate whose SLO attainment is ≥ `target` (default 0.9), and the
 * goodput there.
 */
export function goodputKnee(points: readonly SweepPoint[], target = 0.9): Knee {
  let best: SweepPoint | undefined;
  for (const p of points) if (p.sloAttainment >= target && (!best || p.rate > best.rate)) best = p;
  return { rate: best?.rate, goodputReqPerS: best?.goodputReqPerS ?? 0 };
}
