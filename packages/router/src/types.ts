/**
 * Request and decision shapes of the router. Pure types.
 */
import type { RequestMetadata } from '@kvmgr/core';
import type { LocalKeys } from './hash64.js';

/**
 * A request to route: core {@link RequestMetadata} plus, optionally, precomputed local block
 * keys. Keys come from, in order: `localKeys`; `blockKeys` (trace ids, identity mapping);
 * `promptTokenIds` (chained hash, namespaced by model / LoRA / cache salt).
 */
export type RouteRequest = RequestMetadata & {
  /** Precomputed local keys (see `localKeysFromTokens`). */
  readonly localKeys?: LocalKeys;
};

/** Why an instance was chosen. */
export type RouteReason =
  | 'scored'
  | 'scored-tie'
  | 'prefix-gate'
  | 'prefix-gate-explore'
  | 'round-robin'
  | 'random'
  | 'no-candidates-fallback';

/** One routing decision. */
export interface RouteDecision {
  /** The chosen instance. */
  readonly instanceId: string;
  /** Position of the chosen instance in the snapshots array. */
  readonly position: number;
  /**
   * Weighted total score per snapshot position (NaN for instances filtered out); absent for the
   * round-robin and random baselines.
   */
  readonly scores?: Float64Array;
  readonly reason: RouteReason;
  /** Prompt tokens cached on the chosen instance per the block index. */
  readonly cachedTokens: number;
}

/** Why a P/D decision came out as it did. */
export type PdReason =
  | 'pd-disabled'
  | 'below-threshold'
  | 'disaggregated'
  | 'no-prefill-instance'
  | 'slo-pair'
  | 'slo-pair-explore'
  | 'slo-pair-negative';

/** One prefill/decode decision. */
export interface PdDecision {
  /** The prefill instance (equal to `decode` when not disaggregated). */
  readonly prefill: string;
  /** The decode instance. */
  readonly decode: string;
  /** True when prefill runs on another instance and the KV moves. */
  readonly disaggregated: boolean;
  readonly reason: PdReason;
  /** Prompt tokens not cached on the decode instance. */
  readonly uncachedTokensAtDecode: number;
  /** The chosen pair's predictions, when the SLO pair optimizer ran. */
  readonly pair?: PairEvaluation;
}

/** The evaluation of one (prefill, decode) pair by the SLO pair optimizer. All times in ms. */
export interface PairEvaluation {
  readonly prefill: string;
  readonly decode: string;
  readonly prefillMs: number;
  readonly decodeWaitMs: number;
  readonly transferMs: number;
  /** `prefillMs + decodeWaitMs + transferMs`. */
  readonly ttftMs: number;
  readonly tpotMs: number;
  /** `ttftSlo × buffer − ttftMs` (0 without a TTFT SLO). */
  readonly ttftHeadroomMs: number;
  /** `tpotSlo × buffer − tpotMs` (0 without a TPOT SLO). */
  readonly tpotHeadroomMs: number;
  /** `0.8 × ttftHeadroomMs + 0.2 × tpotHeadroomMs`. */
  readonly blendedHeadroomMs: number;
}
