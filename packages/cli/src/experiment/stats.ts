/**
 * Statistics over seeds: the mean of a metric with a Student-t confidence interval, and the
 * verdict on a hypothesis from the paired differences of two cells run on the same seeds
 * (paired t-interval on the mean relative difference; Student 1908, as in any statistics text).
 */
import jstat from 'jstat';

const { jStat } = jstat;

/** Mean and two-sided confidence interval of a sample. */
export interface MeanCi {
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (0 for n < 2). */
  readonly sd: number;
  /** Interval bounds; equal to the mean when n < 2 or every value is equal. */
  readonly low: number;
  readonly high: number;
}

/**
 * Mean with a t-interval.
 * @param xs - finite values (others are dropped).
 * @param level - confidence level. @default 0.95
 * @returns NaN fields for an empty sample.
 */
export function meanCi(xs: readonly number[], level = 0.95): MeanCi {
  const v = xs.filter((x) => Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { n, mean: Number.NaN, sd: Number.NaN, low: Number.NaN, high: Number.NaN };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, sd: 0, low: mean, high: mean };
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = sd === 0 ? 0 : jStat.studentt.inv(1 - (1 - level) / 2, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, low: mean - half, high: mean + half };
}

/** A hypothesis verdict. */
export type Verdict = 'supported' | 'refuted' | 'inconclusive';

/** The judged comparison of two cells. */
export interface PairedVerdict {
  /** Pairs (seed × setup) with the metric in both cells. */
  readonly n: number;
  readonly treatmentMean: number;
  readonly baselineMean: number;
  /** Mean of (treatment − baseline) / |baseline| over pairs, with its CI. */
  readonly relDiff: MeanCi;
  readonly verdict: Verdict;
}

/**
 * Judges "treatment is `expect` than baseline": supported when the CI of the mean relative
 * difference lies wholly on the expected side of 0, refuted when wholly on the other side,
 * inconclusive otherwise and with fewer than 2 pairs (deterministic runs give a zero-width CI). A pair whose baseline is 0 counts as +100% (treatment > 0), −100% (< 0) or 0 (both 0).
 */
export function judgePaired(pairs: ReadonlyArray<readonly [treatment: number, baseline: number]>, expect: 'higher' | 'lower', level = 0.95): PairedVerdict {
  const ok = pairs.filter(([t, b]) => Number.isFinite(t) && Number.isFinite(b));
  // From a zero baseline the relative change is undefined: count it as ±100% (0 when both are 0).
  const rel = ok.map(([t, b]) => (b === 0 ? Math.sign(t) : (t - b) / Math.abs(b)));
  const ci = meanCi(rel, level);
  const sign = expect === 'higher' ? 1 : -1;
  let verdict: Verdict = 'inconclusive';
  const decisive = ci.n >= 2;
  if (decisive && sign * ci.low > 0 && sign * ci.high > 0) verdict = 'supported';
  else if (decisive && sign * ci.low < 0 && sign * ci.high < 0) verdict = 'refuted';
  return {
    n: ok.length,
    treatmentMean: meanCi(ok.map((p) => p[0])).mean,
    baselineMean: meanCi(ok.map((p) => p[1])).mean,
    relDiff: ci,
    verdict,
  };
}
