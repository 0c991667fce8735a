/**
 * A router latency predictor backed by the simulator's latency model: the prefill of a new
 * request waits for the prompt tokens queued ahead of it and runs in token-budget chunks next
 * to the instance's decoding batch.
 */
import type { EngineSnapshot } from '@kvmgr/core';
import type { LatencyModel } from '../latency/types.js';
import { createStepWork } from '../latency/types.js';

/** The predictor shape `@kvmgr/router` accepts (`LatencyPredictor`), times in ms. */
export interface ModelLatencyPredictor {
  prefillMs(input: { readonly snapshot: EngineSnapshot; readonly promptTokens: number; readonly uncachedTokens: number }): number;
  decodeWaitMs(snapshot: EngineSnapshot): number;
  tpotMs(snapshot: EngineSnapshot): number;
}

/**
 * Creates a predictor from a latency model and the engine's token budget.
 * prefill ms = Σ over the ⌈tokens / budget⌉ chunk steps (queued prefill tokens + this request's
 * uncached tokens) of the step time with the running batch decoding alongside.
 */
export function createModelPredictor(latency: LatencyModel, tokenBudget: number): ModelLatencyPredictor {
  const w = createStepWork();
  const stepUs = (prefill: number, decodes: number, context: number): number => {
    w.prefillTokens = prefill;
    w.decodeTokens = decodes;
    w.numSeqs = decodes + (prefill > 0 ? 1 : 0);
    w.prefillAttnPairs = prefill * (prefill / 2);
    w.decodeContextTokens = context;
    return latency.stepTimeUs(w);
  };
  const prefillUs = (tokens: number, s: EngineSnapshot): number => {
    if (tokens <= 0) return 0;
    const full = Math.floor(tokens / tokenBudget);
    const rest = tokens - full * tokenBudget;
    const ctx = s.running * 1024;
    return full * stepUs(tokenBudget, s.running, ctx) + (rest > 0 ? stepUs(rest, s.running, ctx) : 0);
  };
  return {
    prefillMs({ snapshot, uncachedTokens }) {
      return prefillUs((snapshot.queuedPrefillTokens ?? 0) + uncachedTokens, snapshot) / 1000;
    },
    decodeWaitMs(snapshot) {
      return prefillUs(snapshot.queuedPrefillTokens ?? 0, snapshot) / 1000;
    },
    tpotMs(snapshot) {
      return stepUs(0, snapshot.running + 1, (snapshot.running + 1) * 1024) / 1000;
    },
  };
}
