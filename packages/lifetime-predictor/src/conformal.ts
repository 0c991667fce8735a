/**
 * Conformal calibration shared by every predictor. A predictor supplies a point `center` and a
 * `spread` (a scale, tokens) per request; the calibrator keeps the normalised nonconformity
 * scores `s = (actual − center) / spread` of recent requests and reads any quantile of the
 * output length as `center + spread · Q_s(level)`. Levels are adapted online with adaptive
 * conformal inference so that long-run coverage tracks the nominal level under drift.
 *
 * @see Romano, Patterson, Candès, "Conformalized Quantile Regression", NeurIPS 2019.
 * @see Gibbs, Candès, "Adaptive Conformal Inference Under Distribution Shift", NeurIPS 2021.
 */
import { requireInRange, requirePositiveInt } from '@kvmgr/core';
import { SlidingWindow } from './sliding-window.js';

/** Options of a {@link ConformalCalibrator}. */
export interface ConformalOptions {
  /** Recent scores kept. @default 1024 */
  readonly window?: number;
  /** `calibrate()` runs by itself after this many observations. @default 64 */
  readonly calibrateEvery?: number;
  /** Adaptive-conformal step size γ (0 disables level adaptation). @default 0.005 */
  readonly adaptRate?: number;
}

/** Nominal levels served: p50, p90, p99. */
export const LEVELS: readonly number[] = [0.5, 0.9, 0.99];

/** Scores used until real ones are calibrated: a relative spread of −60 % … +200 %. */
const PRIOR_SCORES = [-0.6, -0.4, -0.2, -0.1, 0, 0.1, 0.25, 0.5, 1, 2];

/** Keeps nonconformity scores, a calibrated snapshot, and adaptive levels. */
export class ConformalCalibrator {
  private readonly scores: SlidingWindow;
  private readonly calibrateEvery: number;
  private readonly adaptRate: number;
  private snap: Float64Array = Float64Array.from(PRIOR_SCORES);
  /** suffix[i] = sum of snap[i..n). */
  private suffix: Float64Array = new Float64Array(PRIOR_SCORES.length + 1);
  private readonly levelShift = new Float64Array(LEVELS.length);
  private sinceCalibration = 0;

  /** @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option. */
  constructor(options: ConformalOptions = {}) {
    this.scores = new SlidingWindow(requirePositiveInt('window', options.window ?? 1024));
    this.calibrateEvery = requirePositiveInt('calibrateEvery', options.calibrateEvery ?? 64);
    this.adaptRate = requireInRange('adaptRate', options.adaptRate ?? 0.005, 0, 0.5);
    this.rebuildSuffix();
  }

  /** Number of calibrated scores in the snapshot. */
  get calibratedSize(): number {
    return this.snap.length;
  }

  /** The current (adapted) level for nominal level index `k` of {@link LEVELS}. */
  level(k: number): number {
    const nominal = LEVELS[k] as number;
    const l = nominal + (this.levelShift[k] as number);
    return l < 0.01 ? 0.01 : Math.min(l , 0.999);
  }

  /** Score quantile at `level` from the snapshot (finite-sample conformal rank). */
  scoreQuantile(level: number): number {
    const n = this.snap.length;
    let i = Math.ceil((n + 1) * level) - 1;
    if (i >= n) i = n - 1;
    if (i < 0) i = 0;
    return this.snap[i] as number;
  }

  /** Mean score of the snapshot. */
  meanScore(): number {
    return (this.suffix[0] as number) / this.snap.length;
  }

  /**
   * The conditional score distribution above threshold `t`: index of the first snapshot score
   * `> t`, or `n` when none.
   */
  firstAbove(t: number): number {
    let lo = 0;
    let hi = this.snap.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.snap[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Score at rank `level` among snapshot scores `[from, n)`. */
  tailQuantile(from: number, level: number): number {
    const m = this.snap.length - from;
    let i = Math.ceil((m + 1) * level) - 1;
    if (i >= m) i = m - 1;
    if (i < 0) i = 0;
    return this.snap[from + i] as number;
  }

  /** Mean of snapshot scores `[from, n)`. */
  tailMean(from: number): number {
    return ((this.suffix[from] as number) - (this.suffix[this.snap.length] as number)) / (this.snap.length - from);
  }

  /**
   * Records the score of a finished request, adapts levels, and recalibrates every
   * `calibrateEvery` observations.
   */
  observe(score: number): void {
    if (this.adaptRate > 0) {
      for (let k = 0; k < LEVELS.length; k++) {
        const miss = score > this.scoreQuantile(this.level(k)) ? 1 : 0;
        this.levelShift[k] = (this.levelShift[k] as number) + this.adaptRate * (miss - (1 - (LEVELS[k] as number)));
      }
    }
    this.scores.push(score);
    if (++this.sinceCalibration >= this.calibrateEvery) this.calibrate();
  }

  /** Installs the current score window as the calibrated snapshot (keeps the prior if empty). */
  calibrate(): void {
    this.sinceCalibration = 0;
    if (this.scores.size === 0) return;
    this.snap = Float64Array.from(this.scores.sortedView());
    this.suffix = new Float64Array(this.snap.length + 1);
    this.rebuildSuffix();
  }

  private rebuildSuffix(): void {
    let s = 0;
    this.suffix[this.snap.length] = 0;
    for (let i = this.snap.length - 1; i >= 0; i--) {
      s += this.snap[i] as number;
      this.suffix[i] = s;
    }
  }
}
