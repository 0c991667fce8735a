/**
 * Prequential ("test-then-train") evaluation: each record is first predicted, then learned, in
 * arrival order, so every prediction uses only the past.
 *
 * @see Dawid, "Present Position and Potential Developments: Some Personal Views: Statistical
 *   Theory: The Prequential Approach", JRSS A 147 (1984).
 */
import type { LifetimePredictor } from '@kvmgr/core';
import { invalidArgument, requireNonNegativeInt } from '@kvmgr/core';
import { kendallTau } from './kendall.js';
import type { TraceRecord } from './traces.js';

/** Options of {@link evaluatePrequential}. */
export interface EvaluateOptions {
  /** The first `warmup` records are learned but not scored. @default 0 */
  readonly warmup?: number;
  /** Which prediction is the point forecast scored by MAE/within-10 %/τ. @default 'p50' */
  readonly point?: 'p50' | 'mean';
}

/** Prequential metrics. Lengths in tokens, latencies in µs. */
export interface EvaluationResult {
  readonly predictor: string;
  /** Records scored. */
  readonly n: number;
  /** Mean absolute error of the point forecast, tokens. */
  readonly mae: number;
  /** Fraction of point forecasts within 10 % of the actual length (`|p − a| ≤ 0.1 a`). */
  readonly within10: number;
  /** Kendall τ-b between point forecast and actual length (exact, O(n log n)). */
  readonly kendallTau: number;
  /** Fraction of actual lengths ≤ the predicted p90. */
  readonly p90Coverage: number;
  /** `predict` latency percentiles, µs. */
  readonly predictP50Us: number;
  readonly predictP99Us: number;
  /** Mean `observe` cost (including any retraining it triggers), µs. */
  readonly observeMeanUs: number;
}

function pct(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/**
 * Replays `records` through `predictor`: `predict`, then `observe`, in order.
 * @param records - arrival-ordered records (see {@link TraceRecord}).
 * @param predictor - any {@link LifetimePredictor}; it is trained as a side effect.
 * @param options - see {@link EvaluateOptions}.
 * @returns the metrics over the scored records.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when no record is left to score or an option is
 *   bad; whatever the predictor throws on bad features.
 */
export function evaluatePrequential(
  records: readonly TraceRecord[],
  predictor: LifetimePredictor,
  options: EvaluateOptions = {},
): EvaluationResult {
  const warmup = requireNonNegativeInt('warmup', options.warmup ?? 0);
  const point = options.point ?? 'p50';
  if (point !== 'p50' && point !== 'mean') throw invalidArgument('point', point, '"p50" or "mean"');
  const n = records.length - warmup;
  if (n <= 0) throw invalidArgument('records.length', records.length, `more than warmup (${warmup})`);
  const preds = new Float64Array(n);
  const actual = new Float64Array(n);
  const lat = new Float64Array(n);
  let absErr = 0;
  let within = 0;
  let covered = 0;
  let observeNs = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as TraceRecord;
    if (i >= warmup) {
      const t0 = process.hrtime.bigint();
      const p = predictor.predict(r.features);
      const t1 = process.hrtime.bigint();
      const j = i - warmup;
      const y = r.actualOutputTokens;
      const x = point === 'p50' ? p.p50 : p.mean;
      lat[j] = Number(t1 - t0) / 1000;
      preds[j] = x;
      actual[j] = y;
      absErr += Math.abs(x - y);
      if (Math.abs(x - y) <= 0.1 * y) within++;
      if (y <= p.p90) covered++;
    }
    const t2 = process.hrtime.bigint();
    predictor.observe(r.features, r.actualOutputTokens);
    observeNs += Number(process.hrtime.bigint() - t2);
  }
  lat.sort();
  return {
    predictor: predictor.name,
    n,
    mae: absErr / n,
    within10: within / n,
    kendallTau: kendallTau(preds, actual),
    p90Coverage: covered / n,
    predictP50Us: pct(lat, 0.5),
    predictP99Us: pct(lat, 0.99),
    observeMeanUs: observeNs / records.length / 1000,
  };
}
