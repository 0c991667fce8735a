/** Small statistics helpers (percentiles as numpy's default linear interpolation). */

/** Distribution summary, in the unit of the input. */
export interface Distribution {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Percentile `p` (0..100) of sorted values, linear interpolation (numpy `percentile` default).
 * @returns NaN for an empty array.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const f = pos - lo;
  return (sorted[lo] as number) * (1 - f) + (sorted[hi] as number) * f;
}

/** Mean, p50, p90, p99 and max of the values (NaN fields when empty). */
export function distribution(values: ArrayLike<number>): Distribution {
  const a = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] as number;
  return {
    count: a.length,
    mean: a.length > 0 ? sum / a.length : Number.NaN,
    p50: percentileSorted(a, 50),
    p90: percentileSorted(a, 90),
    p99: percentileSorted(a, 99),
    max: a.length > 0 ? (a[a.length - 1] as number) : Number.NaN,
  };
}

/**
 * Jain's fairness index (Σx)² / (n · Σx²) over non-negative values; 1 when all equal, 1/n when
 * one gets everything. 1 for an empty or all-zero input.
 * @see R. Jain, D. Chiu, W. Hawe, "A Quantitative Measure of Fairness…", DEC-TR-301, 1984
 */
export function jainIndex(values: ArrayLike<number>): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    s += v;
    s2 += v * v;
  }
  if (values.length === 0 || s2 === 0) return 1;
  return (s * s) / (values.length * s2);
}
