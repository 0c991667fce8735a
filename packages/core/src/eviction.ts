/**
 * Eviction interfaces (implemented by `@kvmgr/eviction`). Pure types.
 *
 * Node level: which cached prefix / block to drop. Request level: which running request to
 * preempt (recompute or swap) when the pool is short.
 */

/** Facts about an entry that cost-, size-, time- or prediction-aware policies read. */
export interface EvictionEntryInfo {
  /** Time of the access, µs. */
  readonly nowUs?: number;
  /** Size of the entry in tokens (or blocks; a policy documents which). @default 1 */
  readonly size?: number;
  /** Cost to recompute the entry if evicted, µs (or FLOPs; relative values matter). */
  readonly cost?: number;
  /** Probability the entry is reused soon, 0..1 (predictive policies). */
  readonly reuseProbability?: number;
  /** Predicted time of next access, µs (predictive policies). */
  readonly nextAccessUs?: number;
  /** Tenant owning the entry (fairness-aware policies). */
  readonly tenant?: string;
}

/**
 * Node-level eviction policy over integer keys (node ids, block ids or block hashes that fit
 * in u32). Implementations keep O(1) or O(log n) per operation.
 */
export interface EvictionPolicy {
  /** Registry name, e.g. `lru`, `arc`, `s3fifo`. */
  readonly name: string;
  /** Number of keys tracked (resident). */
  readonly size: number;
  /** Starts tracking a key that became evictable / resident. */
  insert(key: number, info?: EvictionEntryInfo): void;
  /** Records an access of a tracked key. */
  touch(key: number, info?: EvictionEntryInfo): void;
  /** Stops tracking a key (evicted by the owner, or no longer evictable). No-op if absent. */
  remove(key: number): void;
  /** The key to evict next, without removing it; -1 when nothing is tracked. */
  victim(): number;
  has(key: number): boolean;
  clear(): void;
}

/** A running (or swapped) request that could be preempted. */
export interface VictimCandidate {
  readonly requestId: string;
  /** GPU blocks it holds that preemption would free. */
  readonly blocks: number;
  readonly promptTokens: number;
  /** Tokens with KV computed so far (prompt progress + generated). */
  readonly computedTokens: number;
  readonly generatedTokens: number;
  /** Predicted remaining output tokens (or maxTokens - generated when unknown). */
  readonly remainingTokens: number;
  /** Admission time, µs (vLLM preempts the newest). */
  readonly admittedUs: number;
  /** Larger = more important. @default 0 */
  readonly priority?: number;
  /** Slack against its SLO, ms; negative = already late. */
  readonly sloSlackMs?: number;
  /** Cost to recompute its KV if dropped, µs. */
  readonly recomputeCostUs?: number;
  /** Cost to swap its KV out and back in, µs. */
  readonly swapCostUs?: number;
}

/** Preempt by recomputing later, or by swapping KV to a lower tier. */
export type PreemptionMode = 'recompute' | 'swap';

/** One chosen victim. */
export interface VictimDecision {
  readonly requestId: string;
  readonly mode: PreemptionMode;
  readonly freedBlocks: number;
}

/** Result of a victim selection. */
export interface VictimSelection {
  readonly victims: readonly VictimDecision[];
  readonly freedBlocks: number;
  /** True when `freedBlocks ≥ requiredBlocks`. */
  readonly satisfied: boolean;
  /** Blocks still missing when not satisfied (0 otherwise). */
  readonly shortfallBlocks: number;
}

/** Request-level victim selection (preemption / offload of running requests). */
export interface VictimSelector {
  readonly name: string;
  /**
   * Picks victims until `requiredBlocks` are freed or no candidate is left.
   * @param nowUs - current time, µs.
   */
  selectVictims(candidates: readonly VictimCandidate[], requiredBlocks: number, nowUs: number): VictimSelection;
}
