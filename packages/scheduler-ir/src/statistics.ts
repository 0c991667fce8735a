/**
 * Pass statistics addressed by name: a pass declares its counters in its definition's
 * `statistics` and looks each one up once, when the pipeline is built
 * (`const admitted = stats.get('admitted')`); a step then only does `admitted.add(n)`, a field
 * write on a small monomorphic object. Like MLIR's `Statistic` members, bound to the pass by
 * name.
 *
 * @see https://mlir.llvm.org/docs/PassManagement/#pass-statistics
 */
import { KvmgrError } from '@kvmgr/core';
import type { StatisticSpec } from './pass.js';

/** One named counter of a pass instance, summed over the steps it ran. */
export interface Statistic {
  /** The name declared in the definition's `statistics`, e.g. `admitted`. */
  readonly name: string;
  /** The current sum. */
  readonly value: number;
  /**
   * Adds `n` to the counter.
   * @param n - the amount (any finite number; the counters are floating point). @default 1
   */
  add(n?: number): void;
}

class Counter implements Statistic {
  value = 0;
  constructor(readonly name: string) {}
  add(n = 1): void {
    this.value += n;
  }
}

/**
 * The counters of one pass instance, by name. The pass manager makes one per pass instance and
 * hands it to `PassDefinition.create`.
 *
 * @example
 * ```ts
 * create: (options, stats) => {
 *   const long = stats.get('long'); // resolved once per pipeline build
 *   return (ir) => { if (tooLong) long.add(1); };
 * }
 * ```
 */
export class StatisticSet {
  private readonly counters: readonly Counter[];
  private readonly byName = new Map<string, Counter>();

  /**
   * @param specs - the definition's declared statistics (names unique; the registry checks it).
   * @param pass - the pass's argument, for error messages.
   */
  constructor(
    specs: readonly StatisticSpec[],
    private readonly pass = 'pass',
  ) {
    this.counters = specs.map((s) => new Counter(s.name));
    for (const c of this.counters) this.byName.set(c.name, c);
  }

  /**
   * The counter declared as `name`.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the definition declares no such statistic
   *   (a typo in the pass: it fails when the pipeline is built, not silently at run time).
   */
  get(name: string): Statistic {
    const c = this.byName.get(name);
    if (c === undefined) {
      const known = [...this.byName.keys()];
      throw new KvmgrError(
        'KVMGR_INVALID_ARGUMENT',
        `pass ${this.pass} has no statistic ${JSON.stringify(name)} (declared: ${known.length ? known.join(', ') : 'none'})`,
        { details: { field: `${this.pass}.statistics`, value: name } },
      );
    }
    return c;
  }

  /** Statistic name → current sum, in declaration order. */
  values(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.counters) out[c.name] = c.value;
    return out;
  }

  /** Zeroes every counter. */
  reset(): void {
    for (const c of this.counters) c.value = 0;
  }
}
