/**
 * Multi-tenant fairness: Virtual Token Counter (VTC) accounting, Jain's index and the service gap.
 */
import { KvmgrError, invalidArgument, requireNonNegativeNumber, requirePositiveNumber } from '@kvmgr/core';

/** Options of {@link VirtualTokenCounter}. */
export interface VtcOptions {
  /** Service per input (prompt) token. @default 1 */
  readonly inputWeight?: number;
  /** Service per output (generated) token. @default 2 */
  readonly outputWeight?: number;
}

/** Fairness over the backlogged tenants. */
export interface FairnessReport {
  /** Jain's index over weight-normalised service, in (0, 1]; 1 when ≤ 1 tenant is backlogged. */
  readonly jainIndex: number;
  /** Largest difference of weight-normalised service between two backlogged tenants. */
  readonly maxServiceGap: number;
  /** Backlogged tenants considered. */
  readonly tenants: readonly string[];
}

/**
 * Jain's fairness index (Σx)² / (n·Σx²) of non-negative values; 1 for an empty or all-zero list.
 * @see Jain, Chiu & Hawe, "A Quantitative Measure of Fairness and Discrimination", DEC-TR-301, 1984
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative or non-finite value.
 */
export function jainIndex(values: readonly number[]): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(`values[${i}]`, v, 'a finite number >= 0');
    s += v;
    s2 += v * v;
  }
  return s2 === 0 ? 1 : (s * s) / (values.length * s2);
}

/**
 * VTC's bound on the service gap between two backlogged tenants: 2·U, with
 * U = inputWeight·maxInputTokens + outputWeight·maxOutputTokens the largest service one request
 * can add, divided by the smallest tenant weight for weight-normalised service.
 * @see Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024, Theorem 4.3
 */
export function vtcServiceGapBound(maxInputTokens: number, maxOutputTokens: number, minTenantWeight = 1, inputWeight = 1, outputWeight = 2): number {
  requireNonNegativeNumber('maxInputTokens', maxInputTokens);
  requireNonNegativeNumber('maxOutputTokens', maxOutputTokens);
  requirePositiveNumber('minTenantWeight', minTenantWeight);
  return (2 * (inputWeight * maxInputTokens + outputWeight * maxOutputTokens)) / minTenantWeight;
}

/**
 * Virtual Token Counter (Sheng et al., OSDI 2024): each tenant has a counter of the
 * weight-normalised service it received (input tokens ×1, output ×2 by default). The next
 * request comes from the backlogged tenant with the smallest counter; a tenant that becomes
 * backlogged again is lifted to the smallest counter among backlogged tenants, so idling
 * earns no credit.
 *
 * Complexity: O(t) per pick and lift over t tenants (t is small); O(1) per charge.
 *
 * @see https://www.usenix.org/conference/osdi24/presentation/sheng
 */
export class VirtualTokenCounter {
  private readonly inputWeight: number;
  private readonly outputWeight: number;
  private readonly weights = new Map<string, number>();
  private readonly counters = new Map<string, number>();
  private readonly served = new Map<string, number>();
  private readonly backlog = new Set<string>();

  /**
   * @param options - see {@link VtcOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative or non-finite weight.
   */
  constructor(options: VtcOptions = {}) {
    this.inputWeight = requireNonNegativeNumber('options.inputWeight', options.inputWeight ?? 1);
    this.outputWeight = requireNonNegativeNumber('options.outputWeight', options.outputWeight ?? 2);
  }

  /**
   * Declares a tenant and its share weight (re-declaring changes the weight).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an empty name or a non-positive weight.
   */
  addTenant(tenant: string, weight = 1): void {
    if (typeof tenant !== 'string' || tenant.length === 0) throw invalidArgument('tenant', tenant, 'a non-empty string');
    requirePositiveNumber('weight', weight);
    this.weights.set(tenant, weight);
    if (!this.counters.has(tenant)) {
      this.counters.set(tenant, 0);
      this.served.set(tenant, 0);
    }
  }

  private need(tenant: string): number {
    const w = this.weights.get(tenant);
    if (w === undefined) throw new KvmgrError('KVMGR_UNKNOWN_HANDLE', `vtc: unknown tenant ${JSON.stringify(tenant)}; call addTenant first`);
    return w;
  }

  /**
   * Marks a tenant backlogged (has queued requests) or not. Becoming backlogged lifts its
   * counter to the smallest counter of the other backlogged tenants.
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` for an undeclared tenant.
   */
  setBacklogged(tenant: string, backlogged: boolean): void {
    this.need(tenant);
    if (!backlogged) {
      this.backlog.delete(tenant);
      return;
    }
    if (this.backlog.has(tenant)) return;
    let min = Number.POSITIVE_INFINITY;
    for (const t of this.backlog) min = Math.min(min, this.counters.get(t) as number);
    if (min !== Number.POSITIVE_INFINITY && (this.counters.get(tenant) as number) < min) this.counters.set(tenant, min);
    this.backlog.add(tenant);
  }

  /** The backlogged tenant with the smallest counter (ties: first declared), or undefined. */
  pick(): string | undefined {
    let best: string | undefined;
    let min = Number.POSITIVE_INFINITY;
    for (const t of this.weights.keys()) {
      if (!this.backlog.has(t)) continue;
      const c = this.counters.get(t) as number;
      if (c < min) {
        min = c;
        best = t;
      }
    }
    return best;
  }

  /**
   * Charges service: counter += (inputWeight·inputTokens + outputWeight·outputTokens) / weight.
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` for an undeclared tenant; `KVMGR_INVALID_ARGUMENT`
   *   for negative token counts (nothing changes).
   */
  charge(tenant: string, inputTokens: number, outputTokens: number): void {
    const w = this.need(tenant);
    requireNonNegativeNumber('inputTokens', inputTokens);
    requireNonNegativeNumber('outputTokens', outputTokens);
    const s = this.inputWeight * inputTokens + this.outputWeight * outputTokens;
    this.served.set(tenant, (this.served.get(tenant) as number) + s);
    this.counters.set(tenant, (this.counters.get(tenant) as number) + s / w);
  }

  /** VTC counter of a tenant (weight-normalised, with lifts). */
  counter(tenant: string): number {
    this.need(tenant);
    return this.counters.get(tenant) as number;
  }

  /** Raw weighted-token service a tenant received (no normalisation, no lifts). */
  service(tenant: string): number {
    this.need(tenant);
    return this.served.get(tenant) as number;
  }

  /** Jain's index and the max gap over weight-normalised service of backlogged tenants. */
  fairness(): FairnessReport {
    const tenants = [...this.weights.keys()].filter((t) => this.backlog.has(t));
    const x = tenants.map((t) => (this.served.get(t) as number) / (this.weights.get(t) as number));
    let gap = 0;
    if (x.length > 0) gap = Math.max(...x) - Math.min(...x);
    return { jainIndex: jainIndex(x), maxServiceGap: gap, tenants };
  }
}
