/**
 * Predicted remaining output of a request at a quantile, with fallbacks: the request's own
 * prediction fields, then an injected `LifetimePredictor`, then `min(maxTokens - generated,
 * fallbackTokens)`.
 */
import type { SchedRequest } from '../ir.js';
import type { SchedAnalyses } from '../pass.js';

/** Quantile names the passes accept. */
export type QuantileName = 'p50' | 'p90' | 'max';

/**
 * Remaining output tokens of `r` at `quantile`, capped at `maxTokens - generatedTokens`.
 * @param fallbackTokens - assumed remaining output when nothing predicts it.
 */
export function predictedRemaining(r: SchedRequest, quantile: QuantileName, fallbackTokens: number, analyses: SchedAnalyses): number {
  const cap = Math.max(0, r.maxTokens - r.generatedTokens);
  if (quantile === 'max') return cap;
  let v: number | undefined = quantile === 'p90' ? (r.predictedRemainingP90 ?? r.predictedRemainingTokens) : r.predictedRemainingTokens;
  if (v === undefined && analyses.predictor) {
    const p = analyses.predictor.predictRemaining({ promptTokens: r.promptTokens, maxTokens: r.maxTokens }, r.generatedTokens);
    v = quantile === 'p90' ? p.p90 : p.p50;
  }
  if (v === undefined || !(v >= 0)) v = fallbackTokens;
  return v < cap ? v : cap;
}
