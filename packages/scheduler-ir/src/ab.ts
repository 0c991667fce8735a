/**
 * A/B harness: runs two pipelines over the same recorded states and reports paired
 * differences of per-step metrics with bootstrap confidence intervals (seeded PRNG).
 * {@link pairedBootstrap} is kvmgr's one paired bootstrap: `kvmgr ab` uses it for its
 * per-request differences of whole-trace replays too.
 */
import { createRng, invalidArgument } from '@kvmgr/core';
import type { SchedState, StepPlan } from './ir.js';
import { PassManager } from './pass-manager.js';
import type { SchedAnalyses } from './pass.js';
import type { PassRegistry } from './registry.js';

/** A per-step metric. */
export interface AbMetric {
  readonly name: string;
  measure(state: SchedState, plan: StepPlan): number;
}

const count = (plan: StepPlan, kind: string): number => {
  let n = 0;
  for (const op of plan.ops) if (op.op === kind) n++;
  return n;
};

/** Default metrics: tokens, efficiency, admissions, preemptions, rejections, free blocks after. */
export const DEFAULT_AB_METRICS: readonly AbMetric[] = [
  { name: 'scheduledTokens', measure: (_s, p) => p.scheduledTokens },
  { name: 'prefillTokens', measure: (_s, p) => p.prefillTokens },
  { name: 'batchingEfficiency', measure: (_s, p) => p.batchingEfficiency },
  { name: 'admitted', measure: (_s, p) => count(p, 'admit') },
  { name: 'preemptions', measure: (_s, p) => p.preemptions },
  { name: 'rejected', measure: (_s, p) => count(p, 'reject') },
  { name: 'freeBlocksAfter', measure: (_s, p) => p.freeBlocksAfter },
  {
    name: 'cachedPromptTokens',
    measure: (_s, p) => {
      let n = 0;
      for (const op of p.ops) if (op.op === 'prefill') n += op.cachedTokens;
      return n;
    },
  },
];

/** A paired difference (candidate − baseline) with its confidence interval. */
export interface PairedDifference {
  readonly name: string;
  readonly baselineMean: number;
  readonly candidateMean: number;
  readonly meanDiff: number;
  /** Bootstrap percentile interval of the mean difference. */
  readonly ciLow: number;
  readonly ciHigh: number;
  /** True when the interval excludes 0. */
  readonly significant: boolean;
}

/** Result of {@link abTest}. */
export interface AbReport {
  readonly baseline: { readonly pipeline: string; readonly id: string };
  readonly candidate: { readonly pipeline: string; readonly id: string };
  /** Experiment id: `<baseline id>-<candidate id>`. */
  readonly experimentId: string;
  readonly steps: number;
  readonly seed: number;
  readonly confidence: number;
  readonly metrics: readonly PairedDifference[];
}

/** Options of {@link abTest}. */
export interface AbOptions {
  /** Recorded states (each run independently through both pipelines). */
  readonly states: readonly SchedState[];
  /** Pipeline text / preset name, or a built pass manager. */
  readonly baseline: string | PassManager;
  readonly candidate: string | PassManager;
  /** Registry for pipeline texts. */
  readonly registry: PassRegistry;
  /** Analyses injected into pipelines built from text. @default {} */
  readonly analyses?: SchedAnalyses;
  /** @default DEFAULT_AB_METRICS */
  readonly metrics?: readonly AbMetric[];
  /** Seed of the bootstrap. @default 1 */
  readonly seed?: number;
  /** Bootstrap resamples. @default 2000 */
  readonly resamples?: number;
  /** Confidence level. @default 0.95 */
  readonly confidence?: number;
}

/** Options of {@link pairedBootstrap}. */
export interface PairedBootstrapOptions {
  /** Seed of the resampling PRNG (`@kvmgr/core` `createRng`). @default 1 */
  readonly seed?: number;
  /** Bootstrap resamples B, a positive integer. @default 2000 */
  readonly resamples?: number;
  /** Confidence level, in (0, 1). @default 0.95 */
  readonly confidence?: number;
}

/**
 * Value at quantile `q` (0..1) of ascending-sorted `v` by linear interpolation between the two
 * nearest order statistics, at position `(n − 1)·q` (Hyndman & Fan 1996, definition 7; numpy's
 * and R's default, and `percentileSorted` of `@kvmgr/sim`).
 */
function quantileSorted(v: Float64Array, q: number): number {
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (v[lo] as number) + ((v[hi] as number) - (v[lo] as number)) * (pos - lo);
}

/**
 * Mean of `candidate[i] − baseline[i]` with a paired percentile-bootstrap interval: B resamples
 * of the n per-unit differences with replacement (seeded), the mean of each, and the
 * `(1 − confidence)/2` and `(1 + confidence)/2` quantiles of those B means.
 *
 * Quantile rule: linear interpolation between order statistics (Hyndman & Fan definition 7,
 * position `(B − 1)·q`). Chosen over taking the `⌊q·B⌋`-th mean because it is symmetric —
 * swapping baseline and candidate negates the interval exactly — and because it is the rule of
 * every other percentile kvmgr reports (`percentileSorted`), numpy and R; the two rules differ by
 * at most one order statistic.
 *
 * @param baseline - per-unit values (steps, requests), any unit; same length as `candidate`.
 * @param candidate - the paired values of the candidate, unit i paired with `baseline[i]`.
 * @param options - seed, resamples, confidence (see {@link PairedBootstrapOptions}).
 * @returns `meanDiff` (mean of candidate − baseline, in the values' unit) and the interval
 *   `[ciLow, ciHigh]` in the same unit.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for different lengths or no data, resamples that
 *   are not a positive integer, a confidence outside (0, 1).
 * @see Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), ch. 13 (percentile interval)
 */
export function pairedBootstrap(
  baseline: ArrayLike<number>,
  candidate: ArrayLike<number>,
  options: PairedBootstrapOptions = {},
): { meanDiff: number; ciLow: number; ciHigh: number } {
  const n = baseline.length;
  if (n === 0 || candidate.length !== n) throw invalidArgument('candidate.length', candidate.length, `equal to baseline.length (${n}) and > 0`);
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  if (!Number.isSafeInteger(resamples) || resamples < 1) throw invalidArgument('resamples', resamples, 'a positive integer');
  if (!(confidence > 0 && confidence < 1)) throw invalidArgument('confidence', confidence, 'a number in (0, 1)');
  const d = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    d[i] = (candidate[i] as number) - (baseline[i] as number);
    sum += d[i] as number;
  }
  const rng = createRng(options.seed ?? 1);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += d[Math.floor(rng.next() * n)] as number;
    means[b] = s / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  return { meanDiff: sum / n, ciLow: quantileSorted(means, alpha), ciHigh: quantileSorted(means, 1 - alpha) };
}

/**
 * Runs both pipelines over every state and reports paired differences per metric.
 * @throws KvmgrError `KVMGR_BAD_PIPELINE` for a bad pipeline; `KVMGR_INVALID_ARGUMENT` for no states.
 */
export function abTest(options: AbOptions): AbReport {
  const { states } = options;
  if (states.length === 0) throw invalidArgument('states', states, 'at least one recorded state');
  const build = (p: string | PassManager): PassManager =>
    typeof p === 'string' ? new PassManager({ pipeline: p, registry: options.registry, analyses: options.analyses ?? {} }) : p;
  const a = build(options.baseline);
  const b = build(options.candidate);
  const metrics = options.metrics ?? DEFAULT_AB_METRICS;
  const va = metrics.map(() => new Float64Array(states.length));
  const vb = metrics.map(() => new Float64Array(states.length));
  states.forEach((s, i) => {
    const pa = a.run(s);
    metrics.forEach((m, k) => {
      va[k]![i] = m.measure(s, pa);
    });
    const pb = b.run(s);
    metrics.forEach((m, k) => {
      vb[k]![i] = m.measure(s, pb);
    });
  });
  const seed = options.seed ?? 1;
  const confidence = options.confidence ?? 0.95;
  const resamples = options.resamples ?? 2000;
  const mean = (x: Float64Array): number => x.reduce((p, c) => p + c, 0) / x.length;
  return {
    baseline: { pipeline: a.canonical, id: a.id },
    candidate: { pipeline: b.canonical, id: b.id },
    experimentId: `${a.id}-${b.id}`,
    steps: states.length,
    seed,
    confidence,
    metrics: metrics.map((m, k) => {
      const r = pairedBootstrap(va[k]!, vb[k]!, { seed, resamples, confidence });
      return {
        name: m.name,
        baselineMean: mean(va[k]!),
        candidateMean: mean(vb[k]!),
        ...r,
        significant: r.ciLow > 0 || r.ciHigh < 0,
      };
    }),
  };
}
