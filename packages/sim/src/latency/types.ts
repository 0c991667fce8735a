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
  /**
   * Engine steps by which output reaches the client late (vLLM's async output processing and
   * incremental detokenization): each request's first and last token are delivered this many of
   * its own mean decode intervals after the engine produced them. @default 0
   */
  readonly deliveryLagSteps?: number;
  /** What the coefficients were fitted on and how well they matched real vLLM, when known. */
  readonly evidence?: LatencyEvidence;
}

/** What a latency model's coefficients were fitted (or calibrated) on. */
export interface LatencyFit {
  /** vLLM version, e.g. `0.11.0`. */
  readonly vllmVersion: string;
  /** HuggingFace ids (lower or mixed case). */
  readonly models: readonly string[];
  /** GPU keys of `GPU_SPECS` (`H100`, `A100-80`, …). */
  readonly gpus: readonly string[];
  /** Tensor-parallel sizes. */
  readonly tp: readonly number[];
  /** Where the fit comes from. */
  readonly source: string;
}

/** Median |relative error| of whole-run means (0.05 = 5%). */
export interface LatencyErrors {
  readonly ttft: number;
  readonly itl: number;
  readonly e2e: number;
}

/** A measured comparison of a latency model with real vLLM runs. */
export interface LatencyValidation {
  readonly vllmVersion: string;
  readonly gpus: readonly string[];
  readonly models: readonly string[];
  readonly tp: readonly number[];
  /** Experiments the medians are over. */
  readonly experiments: number;
  /** True when no experiment here was used to fit the coefficients (cross-validated). */
  readonly heldOut: boolean;
  readonly medianAbsError: LatencyErrors;
  /** Command or document that produced the numbers. */
  readonly source: string;
}

/** Provenance and validation of a latency model. */
export interface LatencyEvidence {
  readonly fittedOn: LatencyFit;
  /** Most specific first is not required; selection looks for the best match. */
  readonly validations: readonly LatencyValidation[];
}

/** Creates an empty, reusable {@link StepWork}. */
export function createStepWork(): StepWork {
  return { prefillTokens: 0, decodeTokens: 0, numSeqs: 0, prefillAttnPairs: 0, decodeContextTokens: 0 };
}
