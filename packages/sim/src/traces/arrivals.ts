/**
 * Arrival processes for length-only datasets: Poisson (exponential gaps) or Gamma (bursty when
 * the coefficient of variation > 1), drawn from core's seeded PRNG.
 */
import { type Rng, createRng, invalidArgument } from '@kvmgr/core';

/** An arrival process. */
export type ArrivalProcess =
  | { readonly kind: 'poisson'; readonly ratePerSec: number }
  | { readonly kind: 'gamma'; readonly ratePerSec: number; /** Coefficient of variation of the gaps. */ readonly cv: number }
  | { readonly kind: 'constant'; readonly ratePerSec: number };

/** Standard normal variate (Box–Muller) from a seeded {@link Rng}. */
export function normalVariate(rng: Rng): number {
  // Box–Muller; 1 - next() is in (0, 1].
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Gamma variate with shape `k` and scale `theta` (Marsaglia–Tsang; boosted for k < 1).
 * @see Marsaglia & Tsang, "A simple method for generating gamma variables", ACM TOMS 2000
 */
export function sampleGamma(rng: Rng, k: number, theta: number): number {
  if (k < 1) {
    const u = 1 - rng.next();
    return sampleGamma(rng, k + 1, theta) * u ** (1 / k);
  }
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normalVariate(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * theta;
  }
}

/**
 * Draws `n` arrival times, µs, starting at 0 (the first gap is drawn too).
 *
 * @param n - number of arrivals.
 * @param process - Poisson (`ratePerSec`), Gamma (`ratePerSec`, `cv`) or constant spacing.
 * @param seed - PRNG seed (or an {@link Rng}).
 * @returns a Float64Array of non-decreasing times, µs.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive rate or cv.
 */
export function generateArrivals(n: number, process: ArrivalProcess, seed: number | Rng): Float64Array {
  if (!(process.ratePerSec > 0) || !Number.isFinite(process.ratePerSec)) {
    throw invalidArgument('arrival.ratePerSec', process.ratePerSec, 'a finite number > 0 (requests per second)');
  }
  const rng = typeof seed === 'number' ? createRng(seed) : seed;
  const meanGapUs = 1e6 / process.ratePerSec;
  const out = new Float64Array(n);
  let t = 0;
  if (process.kind === 'gamma') {
    if (!(process.cv > 0) || !Number.isFinite(process.cv)) throw invalidArgument('arrival.cv', process.cv, 'a finite number > 0');
    const k = 1 / (process.cv * process.cv);
    const theta = meanGapUs / k;
    for (let i = 0; i < n; i++) out[i] = t += sampleGamma(rng, k, theta);
  } else if (process.kind === 'poisson') {
    for (let i = 0; i < n; i++) out[i] = t += rng.exponential(meanGapUs);
  } else {
    for (let i = 0; i < n; i++) out[i] = t += meanGapUs;
  }
  return out;
}
