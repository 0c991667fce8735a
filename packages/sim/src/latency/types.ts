/**
 * The latency-model interface every backend implements (BLIS α/β, roofline). Pure types.
 */

/**
 * What one engine step computes, summed over the batch. The engine fills one reusable object
 * per step (no per-token work).
 */
export interface StepWork {
  /** Prompt tokens computed this step (uncached, including recomputed ones), tokens. */
  prefillTokens: number;
  /** Sequences decoding one token this step. */
  decodeTokens: number;
  /** Sequences in the batch (prefill chunks + decodes). */
  numSeqs: number;
  /**
   * Attention work of the prefill chunks: Σ over chunks of `chunk × (contextBefore + chunk / 2)`,
   * token pairs (the causal triangle plus the cached/earlier context each chunk reads).
   */
  prefillAttnPairs: number;
  /** Σ over decoding sequences of their context length (tokens of KV read), tokens. */
  decodeContextTokens: number;
}

/** A step-time model. All times are microseconds. */
export interface LatencyModel {
  /** Backend name and row, e.g. `blis:meta-llama/llama-3.1-8b-instruct/H100/tp1/v0.11.0`. */
  readonly name: string;
  /** Kind of backend. */
  readonly kind: 'blis' | 'roofline';
  /** Duration of one step doing `work`, µs (≥ 1 when the step does anything). */
  stepTimeUs(work: StepWork): number;
  /** Arrival-to-queue delay of a request with `inputTokens` prompt tokens, µs (BLIS α0 + α1·input). */
  queueingUs(inputTokens: number): number;
  /** Per-output-token client-side processing time (BLIS α2), µs; added to each token's delivery. */
  readonly outputTokenUs: number;
  /** Physical lower bound of the step (roofline without efficiency factors or overheads), µs; 0 when unknown. */
  floorStepTimeUs(work: StepWork): number;
}

/** Creates an empty, reusable {@link StepWork}. */
export function createStepWork(): StepWork {
  return { prefillTokens: 0, decodeTokens: 0, numSeqs: 0, prefillAttnPairs: 0, decodeContextTokens: 0 };
}
