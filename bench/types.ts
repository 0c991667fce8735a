/**
 * The shape of a benchmark file: each `packages/<pkg>/bench/*.bench.ts` exports
 * `createSuite()` returning a {@link BenchSuite}. The runner (`bench/run.ts`) times every case
 * with benchmark.js, and per-call latency percentiles where a case asks for them.
 */

/** One timed operation. */
export interface BenchCase {
  /** Case name, unique in the suite, e.g. `radix match 2K tokens`. */
  readonly name: string;
  /** The operation; called many times. */
  readonly fn: () => void;
  /** Name of the in-run peer/baseline case this one is compared against (ratio = peer time / this time). */
  readonly baseline?: string;
  /**
   * When set, also time this many single calls with `process.hrtime` and report p50/p99 µs
   * (use for operations ≥ about 1 µs; below that the timer dominates).
   */
  readonly latencySamples?: number;
}

/** A benchmark suite: cases plus extra numbers (metadata bytes, hit ratios) to record. */
export interface BenchSuite {
  readonly name: string;
  readonly cases: readonly BenchCase[];
  /** Extra facts measured during setup, written to the JSON as they are. */
  readonly notes?: Readonly<Record<string, number | string>>;
}

/** A bench file's export. Setup (building big structures) happens inside it. */
export type CreateSuite = () => BenchSuite | Promise<BenchSuite>;

/** One case's result as written to `bench/results/<package>.json`. */
export interface BenchResult {
  readonly suite: string;
  readonly name: string;
  readonly opsPerSec: number;
  /** Mean time per operation, µs. */
  readonly meanUs: number;
  /** Relative margin of error, percent. */
  readonly rme: number;
  /** Number of benchmark.js samples (cycles). */
  readonly samples: number;
  /** Per-call latency percentiles, µs, when `latencySamples` was set. */
  readonly p50Us?: number;
  readonly p99Us?: number;
  readonly baseline?: string;
  /** Baseline mean time / this mean time (> 1: faster than the baseline). */
  readonly speedupVsBaseline?: number;
}
