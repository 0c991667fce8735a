/**
 * Memory quotas shared by consumers of one instance (LLM KV cache, embedding workspace, …):
 * budgets in blocks with min/max, periodic rebalancing toward targets weighted by SLO urgency,
 * and damping: a quota moves at most `maxStepBlocks` per round and not at all inside a dead band,
 * so quotas do not oscillate.
 *
 * Convergence: with demands held constant and two consumers (more generally, whenever the
 * shrinking consumers release what the growing ones take), every quota reaches its target (within
 * the dead band) in at most `ceil(totalBlocks / maxStepBlocks)` rounds: each round closes every
 * gap by `maxStepBlocks` or fully, and no gap exceeds `totalBlocks`. See
 * {@link QuotaAllocator.convergenceRounds}; with the default `maxStepFraction` 0.1 that is 10
 * rounds. With more consumers, growth can be rationed by what others release; quotas still move
 * monotonically toward their targets and never by more than `maxStepBlocks` per round.
 *
 * @see max–min fair water filling (Bertsekas & Gallager, Data Networks §6.5.2); damping as a
 *   bounded step per control round
 */
import { KvmgrError, invalidArgument, requireInRange, requireNonNegativeInt, requireNonNegativeNumber, requirePositiveInt, requirePositiveNumber } from '@kvmgr/core';

/** One consumer of the shared memory. */
export interface QuotaConsumerConfig {
  /** Unique name, e.g. `llm-kv`, `embedding`. */
  readonly name: string;
  /** Blocks always kept. @default 0 */
  readonly minBlocks?: number;
  /** Blocks never exceeded. @default totalBlocks */
  readonly maxBlocks?: number;
  /** Share weight (larger = more of the spare memory). @default 1 */
  readonly weight?: number;
  /** Quota at start. @default an equal split by weight, clamped to min/max */
  readonly initialBlocks?: number;
}

/** Options of {@link QuotaAllocator}. */
export interface QuotaAllocatorOptions {
  /** Blocks shared by all consumers. */
  readonly totalBlocks: number;
  /** The consumers (at least one); Σ min ≤ totalBlocks. */
  readonly consumers: readonly QuotaConsumerConfig[];
  /** Damping: most a quota changes per round, as a fraction of `totalBlocks`. @default 0.1 */
  readonly maxStepFraction?: number;
  /** Gaps below this many blocks are left alone (hysteresis). @default 1% of totalBlocks, at least 1 */
  readonly deadbandBlocks?: number;
  /** Rounds of history kept. @default 256 */
  readonly historyLength?: number;
}

/** What a consumer reports before a round. */
export interface QuotaDemand {
  /** Blocks it would use now if it had them. */
  readonly demandBlocks: number;
  /**
   * SLO urgency ≥ 0: 0 = on target, 1 = at the SLO limit, > 1 = violating (e.g. p99 TTFT / SLO
   * TTFT − 1 clamped at 0, or queue delay / slack). Multiplies the weight by `1 + urgency`.
   * @default 0
   */
  readonly urgency?: number;
}

/** One rebalancing round. */
export interface QuotaRound {
  readonly round: number;
  /** Time of the round, µs. */
  readonly nowUs: number;
  /** Quota per consumer after the round. */
  readonly quotas: Readonly<Record<string, number>>;
  /** Target per consumer in this round. */
  readonly targets: Readonly<Record<string, number>>;
  /** Change per consumer in this round (|change| ≤ maxStepBlocks). */
  readonly changes: Readonly<Record<string, number>>;
  /** Blocks assigned to no consumer after the round. */
  readonly unassignedBlocks: number;
}

interface Consumer {
  readonly name: string;
  min: number;
  max: number;
  readonly weight: number;
  quota: number;
  demand: number;
  urgency: number;
}

/** Largest-remainder rounding of non-negative reals summing to an integer `total`. */
/**
 * Share weights that stay finite in every sum and product the split makes (`spare · w / Σw`):
 * the weights as given when `Σw · totalBlocks` is finite (always, for sane weights: the split is
 * unchanged then), else rescaled factor by factor to at most 1 (`weight / max weight` times
 * `(1 + urgency) / max (1 + urgency)`), which keeps their ratios. Without this, weights near
 * 1e308 overflow to Infinity and the quotas to NaN.
 */
function shareWeights(weights: readonly number[], urgencies: readonly number[] | undefined, totalBlocks: number): number[] {
  const raw = weights.map((w, i) => (urgencies ? w * (1 + (urgencies[i] as number)) : w));
  if (Number.isFinite(raw.reduce((a, b) => a + b, 0) * totalBlocks)) return raw;
  const maxW = Math.max(...weights);
  const maxU = urgencies ? Math.max(...urgencies.map((u) => 1 + u)) : 1;
  return weights.map((w, i) => Math.max(Number.MIN_VALUE, (w / maxW) * (urgencies ? (1 + (urgencies[i] as number)) / maxU : 1)));
}

function roundShares(shares: number[], total: number): number[] {
  const floors = shares.map((s) => Math.floor(s + 1e-9));
  let left = total - floors.reduce((a, b) => a + b, 0);
  const order = shares.map((s, i) => [s - Math.floor(s + 1e-9), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    floors[i] = (floors[i] as number) + 1;
    left--;
  }
  return floors;
}

/**
 * Splits a fixed number of blocks between consumers and rebalances them by demand and urgency.
 *
 * Targets (per round): every consumer gets its `min`; the rest goes to consumers by max–min
 * water filling with weight × (1 + urgency), each capped at `min(max, max(min, demand))`; what
 * is still left is spread by weight up to `max`; anything beyond every `max` stays unassigned.
 * Quotas then move toward the targets by at most `maxStepBlocks` each, conserving the total.
 *
 * @example
 * ```ts
 * const q = new QuotaAllocator({ totalBlocks: 1000, consumers: [{ name: 'llm-kv', minBlocks: 200 }, { name: 'embedding', minBlocks: 50 }] });
 * q.report('embedding', { demandBlocks: 600, urgency: 2 });
 * q.report('llm-kv', { demandBlocks: 500 });
 * q.rebalance(1_000_000); // moves ≤ 100 blocks per consumer toward the targets
 * q.quota('embedding');
 * ```
 */
export class QuotaAllocator {
  /** Blocks shared. */
  readonly totalBlocks: number;
  /** Damping bound: most blocks a quota changes per round. */
  readonly maxStepBlocks: number;
  /** Gaps to target below this are not acted on. */
  readonly deadbandBlocks: number;
  private readonly consumers: Consumer[];
  private readonly byName = new Map<string, Consumer>();
  private readonly historyLength: number;
  private readonly rounds: QuotaRound[] = [];
  private roundNo = 0;

  /**
   * @param options - see {@link QuotaAllocatorOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad total, fraction, duplicate or empty
   *   name, min > max, Σ min > total, or initial quotas outside min/max or above the total.
   */
  constructor(options: QuotaAllocatorOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgument('options', options, 'an object');
    const total = requirePositiveInt('totalBlocks', options.totalBlocks);
    this.totalBlocks = total;
    const frac = requireInRange('maxStepFraction', options.maxStepFraction ?? 0.1, Number.MIN_VALUE, 1);
    this.maxStepBlocks = Math.max(1, Math.floor(total * frac));
    this.deadbandBlocks = requireNonNegativeInt('deadbandBlocks', options.deadbandBlocks ?? Math.max(1, Math.floor(total * 0.01)));
    this.historyLength = requirePositiveInt('historyLength', options.historyLength ?? 256);
    if (!Array.isArray(options.consumers) || options.consumers.length === 0) throw invalidArgument('consumers', options.consumers, 'a non-empty array');
    this.consumers = options.consumers.map((c, i) => {
      if (c === null || typeof c !== 'object') throw invalidArgument(`consumers[${i}]`, c, 'an object { name, minBlocks?, maxBlocks?, weight?, initialBlocks? }');
      if (typeof c.name !== 'string' || c.name.length === 0) throw invalidArgument(`consumers[${i}].name`, c.name, 'a non-empty string');
      if (this.byName.has(c.name)) throw invalidArgument(`consumers[${i}].name`, c.name, 'a unique name');
      const min = requireNonNegativeInt(`consumers[${i}].minBlocks`, c.minBlocks ?? 0);
      const max = requireNonNegativeInt(`consumers[${i}].maxBlocks`, c.maxBlocks ?? total);
      if (min > max) throw invalidArgument(`consumers[${i}].minBlocks`, min, `at most maxBlocks (${max})`);
      const weight = requirePositiveNumber(`consumers[${i}].weight`, c.weight ?? 1);
      const consumer: Consumer = { name: c.name, min, max, weight, quota: min, demand: 0, urgency: 0 };
      this.byName.set(c.name, consumer);
      return consumer;
    });
    const sumMin = this.consumers.reduce((a, c) => a + c.min, 0);
    if (sumMin > total) throw invalidArgument('consumers[].minBlocks', sumMin, `a sum at most totalBlocks (${total})`);
    const given = options.consumers.map((c) => c.initialBlocks);
    if (given.every((g) => g === undefined)) {
      const split = this.fill(this.consumers.map((c) => c.max));
      this.consumers.forEach((c, i) => {
        c.quota = split[i] as number;
      });
    } else {
      let sum = 0;
      this.consumers.forEach((c, i) => {
        const q = requireNonNegativeInt(`consumers[${i}].initialBlocks`, given[i] ?? c.min);
        if (q < c.min || q > c.max) throw invalidArgument(`consumers[${i}].initialBlocks`, q, `in [${c.min}, ${c.max}]`);
        c.quota = q;
        sum += q;
      });
      if (sum > total) throw invalidArgument('consumers[].initialBlocks', sum, `a sum at most totalBlocks (${total})`);
    }
  }

  /**
   * The stated convergence bound, in rounds: `ceil(totalBlocks / maxStepBlocks)` (10 with the
   * default `maxStepFraction` 0.1). With constant demands, two consumers reach their targets
   * (within `deadbandBlocks`) in at most this many rounds.
   */
  get convergenceRounds(): number {
    return Math.ceil(this.totalBlocks / this.maxStepBlocks);
  }

  private get(name: string): Consumer {
    const c = this.byName.get(name);
    if (!c) throw new KvmgrError('KVMGR_NOT_FOUND', `no quota consumer named ${JSON.stringify(name)}; known: ${[...this.byName.keys()].join(', ')}`, { details: { name } });
    return c;
  }

  /** Names of the consumers, in configuration order. */
  get names(): string[] {
    return this.consumers.map((c) => c.name);
  }

  /**
   * Current quota of a consumer, blocks.
   * @throws KvmgrError `KVMGR_NOT_FOUND` for an unknown name.
   */
  quota(name: string): number {
    return this.get(name).quota;
  }

  /** All quotas by name. */
  quotas(): Record<string, number> {
    return Object.fromEntries(this.consumers.map((c) => [c.name, c.quota]));
  }

  /** Blocks assigned to no consumer. */
  get unassignedBlocks(): number {
    return this.totalBlocks - this.consumers.reduce((a, c) => a + c.quota, 0);
  }

  /**
   * Records a consumer's demand and urgency for the next round.
   * @throws KvmgrError `KVMGR_NOT_FOUND` for an unknown name, `KVMGR_INVALID_ARGUMENT` for a
   *   negative demand or urgency.
   */
  report(name: string, demand: QuotaDemand): void {
    const c = this.get(name);
    if (demand === null || typeof demand !== 'object') throw invalidArgument('demand', demand, 'an object { demandBlocks, urgency? }');
    const d = requireNonNegativeInt('demandBlocks', demand.demandBlocks);
    const u = requireNonNegativeNumber('urgency', demand.urgency ?? 0);
    c.demand = d;
    c.urgency = u;
  }

  /**
   * Sets a quota by hand (an operator override), taking blocks from the unassigned pool.
   * @throws KvmgrError `KVMGR_NOT_FOUND`; `KVMGR_INVALID_ARGUMENT` outside `[min, max]` or when
   *   the total would be exceeded. Nothing changes on a throw.
   */
  setQuota(name: string, blocks: number): void {
    const c = this.get(name);
    requireNonNegativeInt('blocks', blocks);
    if (blocks < c.min || blocks > c.max) throw invalidArgument('blocks', blocks, `in [${c.min}, ${c.max}] for ${name}`);
    if (blocks - c.quota > this.unassignedBlocks) throw invalidArgument('blocks', blocks, `at most ${c.quota + this.unassignedBlocks} (quota + unassigned blocks)`);
    c.quota = blocks;
  }

  /**
   * Changes a consumer's bounds; the quota moves into them at the next rounds (damped).
   * @throws KvmgrError `KVMGR_NOT_FOUND`; `KVMGR_INVALID_ARGUMENT` when min > max or Σ min
   *   would exceed the total. Nothing changes on a throw.
   */
  setBounds(name: string, minBlocks: number, maxBlocks: number): void {
    const c = this.get(name);
    requireNonNegativeInt('minBlocks', minBlocks);
    requireNonNegativeInt('maxBlocks', maxBlocks);
    if (minBlocks > maxBlocks) throw invalidArgument('minBlocks', minBlocks, `at most maxBlocks (${maxBlocks})`);
    const sumMin = this.consumers.reduce((a, x) => a + (x === c ? minBlocks : x.min), 0);
    if (sumMin > this.totalBlocks) throw invalidArgument('minBlocks', minBlocks, `a value keeping Σ min ≤ totalBlocks (${this.totalBlocks})`);
    c.min = minBlocks;
    c.max = maxBlocks;
  }

  /** Bounds of a consumer. @throws KvmgrError `KVMGR_NOT_FOUND`. */
  bounds(name: string): { readonly minBlocks: number; readonly maxBlocks: number } {
    const c = this.get(name);
    return { minBlocks: c.min, maxBlocks: c.max };
  }

  /** Water filling of the blocks above every min, capped per consumer, by urgency-weighted shares. */
  private fill(caps: number[]): number[] {
    const cs = this.consumers;
    const alloc = cs.map((c) => c.min);
    let spare = this.totalBlocks - alloc.reduce((a, b) => a + b, 0);
    const w = shareWeights(
      cs.map((c) => c.weight),
      cs.map((c) => c.urgency),
      this.totalBlocks,
    );
    let open = cs.map((_, i) => i).filter((i) => (caps[i] as number) > (alloc[i] as number));
    while (spare > 1e-9 && open.length > 0) {
      const wsum = open.reduce((a, i) => a + (w[i] as number), 0);
      // the consumer that hits its cap first bounds this step
      let step = Number.POSITIVE_INFINITY;
      for (const i of open) step = Math.min(step, ((caps[i] as number) - (alloc[i] as number)) / (w[i] as number));
      const use = Math.min(step * wsum, spare);
      for (const i of open) alloc[i] = (alloc[i] as number) + (use * (w[i] as number)) / wsum;
      spare -= use;
      open = open.filter((i) => (caps[i] as number) - (alloc[i] as number) > 1e-9);
    }
    const assigned = Math.round(this.totalBlocks - spare);
    return roundShares(alloc, assigned).map((v, i) => Math.min(v, Math.max(caps[i] as number, cs[i]!.min)));
  }

  /** Targets for the current demands (no state change). */
  targets(): Record<string, number> {
    const byDemand = this.fill(this.consumers.map((c) => Math.min(c.max, Math.max(c.min, c.demand))));
    const spare = this.totalBlocks - byDemand.reduce((a, b) => a + b, 0);
    let final = byDemand;
    if (spare > 0) {
      // spread what demand left over by weight up to max, starting from the demand split
      const extra = this.fillFrom(byDemand);
      final = extra;
    }
    return Object.fromEntries(this.consumers.map((c, i) => [c.name, final[i] as number]));
  }

  private fillFrom(base: number[]): number[] {
    const cs = this.consumers;
    const alloc = base.slice();
    let spare = this.totalBlocks - alloc.reduce((a, b) => a + b, 0);
    // integer round robin by weight: cheap and exact for the small number of consumers
    const w = shareWeights(
      cs.map((c) => c.weight),
      undefined,
      this.totalBlocks,
    );
    while (spare > 0) {
      const open = cs.map((_, i) => i).filter((i) => (alloc[i] as number) < cs[i]!.max);
      if (open.length === 0) break;
      const wsum = open.reduce((a, i) => a + (w[i] as number), 0);
      const shares = roundShares(
        open.map((i) => (spare * (w[i] as number)) / wsum),
        spare,
      );
      let given = 0;
      open.forEach((i, j) => {
        const add = Math.min(shares[j] as number, cs[i]!.max - (alloc[i] as number));
        alloc[i] = (alloc[i] as number) + add;
        given += add;
      });
      if (given === 0) break;
      spare -= given;
    }
    return alloc;
  }

  /**
   * One rebalancing round: computes targets from the last reports and moves every quota toward
   * its target by at most `maxStepBlocks` (gaps within `deadbandBlocks` are left alone), keeping
   * Σ quotas ≤ totalBlocks: growth is paid by shrinking consumers and unassigned blocks.
   *
   * @param nowUs - time of the round, µs (recorded in the history).
   * @returns the round (also appended to {@link history}).
   */
  rebalance(nowUs: number): QuotaRound {
    requireNonNegativeNumber('nowUs', nowUs);
    const t = this.targets();
    const cs = this.consumers;
    const want = cs.map((c) => {
      const gap = (t[c.name] as number) - c.quota;
      if (Math.abs(gap) <= this.deadbandBlocks && c.quota >= c.min && c.quota <= c.max) return 0;
      return Math.max(-this.maxStepBlocks, Math.min(this.maxStepBlocks, gap));
    });
    const shrink = want.reduce((a, d) => a + (d < 0 ? -d : 0), 0);
    const grow = want.reduce((a, d) => a + Math.max(d, 0), 0);
    const budget = shrink + this.unassignedBlocks;
    // growth beyond what is released is granted proportionally (rounded down, remainder by order)
    const granted = grow <= budget ? want.map((d) => Math.max(d, 0)) : roundShares(want.map((d) => (d > 0 ? (d * budget) / grow : 0)), budget);
    const changes: Record<string, number> = {};
    cs.forEach((c, i) => {
      const d = (want[i] as number) < 0 ? (want[i] as number) : (granted[i] as number);
      c.quota += d;
      changes[c.name] = d;
    });
    const round: QuotaRound = { round: ++this.roundNo, nowUs, quotas: this.quotas(), targets: t, changes, unassignedBlocks: this.unassignedBlocks };
    this.rounds.push(round);
    if (this.rounds.length > this.historyLength) this.rounds.shift();
    return round;
  }

  /** Past rounds, oldest first (at most `historyLength`). */
  get history(): readonly QuotaRound[] {
    return this.rounds;
  }
}
