/**
 * The SLO pair optimizer for P/D: for each (prefill, decode) pair, joint TTFT = predicted
 * prefill + decode queue wait + KV transfer; TPOT from the decode instance; headroom = SLO ×
 * buffer − predicted; blended = 0.8 × TTFT headroom + 0.2 × TPOT headroom. Weighted-random
 * choice among pairs with non-negative headroom on both, 1% exploration of the others, which
 * are ordered idle first, then only-TPOT-violating, only-TTFT-violating, both.
 *
 * @see llm-d/llm-d-inference-scheduler: docs/proposals (SLO-aware routing, P/D pair selection)
 */
import type { EngineSnapshot, Rng } from '@kvmgr/core';
import type { PairEvaluation } from './types.js';

/** Inputs of {@link evaluatePair}, all in ms. */
export interface PairInput {
  readonly prefill: string;
  readonly decode: string;
  readonly prefillMs: number;
  readonly decodeWaitMs: number;
  readonly transferMs: number;
  readonly tpotMs: number;
  /** TTFT target, ms; absent = no target (headroom 0). */
  readonly ttftSloMs?: number | undefined;
  /** TPOT target, ms; absent = no target (headroom 0). */
  readonly tpotSloMs?: number | undefined;
  /** Fraction of the SLO the prediction may use. @default 0.9 */
  readonly buffer?: number;
  /** @default 0.8 */
  readonly ttftWeight?: number;
  /** @default 0.2 */
  readonly tpotWeight?: number;
}

/**
 * Evaluates one pair.
 * @returns predictions and headrooms (see {@link PairEvaluation}).
 */
export function evaluatePair(input: PairInput): PairEvaluation {
  const buffer = input.buffer ?? 0.9;
  const ttftMs = input.prefillMs + input.decodeWaitMs + input.transferMs;
  const ttftHeadroomMs = input.ttftSloMs === undefined ? 0 : input.ttftSloMs * buffer - ttftMs;
  const tpotHeadroomMs = input.tpotSloMs === undefined ? 0 : input.tpotSloMs * buffer - input.tpotMs;
  return {
    prefill: input.prefill,
    decode: input.decode,
    prefillMs: input.prefillMs,
    decodeWaitMs: input.decodeWaitMs,
    transferMs: input.transferMs,
    ttftMs,
    tpotMs: input.tpotMs,
    ttftHeadroomMs,
    tpotHeadroomMs,
    blendedHeadroomMs: (input.ttftWeight ?? 0.8) * ttftHeadroomMs + (input.tpotWeight ?? 0.2) * tpotHeadroomMs,
  };
}

/** A prefill candidate: the snapshot and its predicted prefill time. */
export interface PrefillCandidate {
  readonly snapshot: EngineSnapshot;
  readonly prefillMs: number;
}

/** A decode candidate: the snapshot, its queue wait and TPOT, and its uncached prompt tokens. */
export interface DecodeCandidate {
  readonly snapshot: EngineSnapshot;
  readonly decodeWaitMs: number;
  readonly tpotMs: number;
  /** Prompt tokens whose KV must move to this instance when prefill runs elsewhere. */
  readonly tokensToMove: number;
}

/** Options of {@link selectSloPair}. */
export interface SloPairOptions {
  /** @default 0.9 */
  readonly buffer?: number;
  /** @default 0.8 */
  readonly ttftWeight?: number;
  /** @default 0.2 */
  readonly tpotWeight?: number;
  /** Probability of picking among the negative-headroom pairs. @default 0.01 */
  readonly exploration?: number;
  /** Candidates kept per side (lowest prefill ms; lowest wait + TPOT). @default 16 */
  readonly topK?: number;
}

/** Result of {@link selectSloPair}. */
export interface SloPairChoice {
  readonly pair: PairEvaluation;
  /** `slo-pair` (positive tier), `slo-pair-explore` (explored a negative pair), `slo-pair-negative` (no positive pair). */
  readonly reason: 'slo-pair' | 'slo-pair-explore' | 'slo-pair-negative';
  readonly pairsEvaluated: number;
}

function pruneTopK<T>(items: readonly T[], k: number, key: (t: T) => number): readonly T[] {
  if (items.length <= k) return items;
  return [...items].sort((a, b) => key(a) - key(b)).slice(0, k);
}

function isIdle(s: EngineSnapshot): boolean {
  return s.waiting === 0 && s.running === 0;
}

/**
 * Picks a (prefill, decode) pair for a request with SLOs.
 *
 * @param prefill - prefill candidates (non-empty).
 * @param decode - decode candidates (non-empty).
 * @param transferMs - KV transfer time for a pair and the tokens to move, ms (0 for the same instance).
 * @param slo - TTFT / TPOT targets, ms.
 * @param rng - the seeded stream for the weighted-random pick and exploration.
 * @param options - see {@link SloPairOptions}.
 * @returns the chosen pair, why, and how many pairs were evaluated; undefined when a side is empty.
 */
export function selectSloPair(
  prefill: readonly PrefillCandidate[],
  decode: readonly DecodeCandidate[],
  transferMs: (prefill: EngineSnapshot, decode: EngineSnapshot, tokens: number) => number,
  slo: { readonly ttftMs?: number | undefined; readonly tpotMs?: number | undefined },
  rng: Rng,
  options: SloPairOptions = {},
): SloPairChoice | undefined {
  if (prefill.length === 0 || decode.length === 0) return undefined;
  const k = options.topK ?? 16;
  const ps = pruneTopK(prefill, k, (p) => p.prefillMs);
  const ds = pruneTopK(decode, k, (d) => d.decodeWaitMs + d.tpotMs);
  const buffer = options.buffer ?? 0.9;
  const tw = options.ttftWeight ?? 0.8;
  const pw = options.tpotWeight ?? 0.2;
  const positive: PairEvaluation[] = [];
  // best negative pair per category: 0 idle, 1 only TPOT violated, 2 only TTFT, 3 both
  const bestNeg: (PairEvaluation | undefined)[] = [undefined, undefined, undefined, undefined];
  let positiveSum = 0;
  for (const p of ps) {
    for (const d of ds) {
      const same = p.snapshot.instanceId === d.snapshot.instanceId;
      const ev = evaluatePair({
        prefill: p.snapshot.instanceId,
        decode: d.snapshot.instanceId,
        prefillMs: p.prefillMs,
        decodeWaitMs: same ? 0 : d.decodeWaitMs,
        transferMs: same ? 0 : transferMs(p.snapshot, d.snapshot, d.tokensToMove),
        tpotMs: d.tpotMs,
        ttftSloMs: slo.ttftMs,
        tpotSloMs: slo.tpotMs,
        buffer,
        ttftWeight: tw,
        tpotWeight: pw,
      });
      const ttftOk = ev.ttftHeadroomMs >= 0;
      const tpotOk = ev.tpotHeadroomMs >= 0;
      if (ttftOk && tpotOk) {
        positive.push(ev);
        positiveSum += ev.blendedHeadroomMs;
        continue;
      }
      const cat = isIdle(p.snapshot) && isIdle(d.snapshot) ? 0 : ttftOk ? 1 : tpotOk ? 2 : 3;
      const cur = bestNeg[cat];
      if (cur === undefined || ev.blendedHeadroomMs > cur.blendedHeadroomMs) bestNeg[cat] = ev;
    }
  }
  const pairsEvaluated = ps.length * ds.length;
  const firstNeg = bestNeg.find((e) => e !== undefined);
  if (positive.length === 0) {
    return { pair: firstNeg as PairEvaluation, reason: 'slo-pair-negative', pairsEvaluated };
  }
  if (firstNeg !== undefined && rng.next() < (options.exploration ?? 0.01)) {
    return { pair: firstNeg, reason: 'slo-pair-explore', pairsEvaluated };
  }
  let chosen = positive[positive.length - 1] as PairEvaluation;
  if (positiveSum > 0) {
    let r = rng.next() * positiveSum;
    for (const ev of positive) {
      r -= ev.blendedHeadroomMs;
      if (r < 0) {
        chosen = ev;
        break;
      }
    }
  } else {
    chosen = positive[Math.floor(rng.next() * positive.length)] as PairEvaluation;
  }
  return { pair: chosen, reason: 'slo-pair', pairsEvaluated };
}
