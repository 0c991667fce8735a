/**
 * TGI `/metrics` → {@link EngineSnapshot}, with an estimated KV utilization.
 *
 * Read: `tgi_queue_size` (→ `waiting`), `tgi_batch_current_size` (→ `running`), and the means of
 * the histograms `tgi_request_input_length` and `tgi_request_max_new_tokens` (`_sum / _count`).
 * TGI's metric names come from the Rust `metrics` crate: no `_total` suffix on counters
 * (`tgi_request_count`, `tgi_request_success`).
 *
 * KV usage estimate: TGI exports no KV usage. Its router admits a request only when the block
 * allocator can reserve `input + max_new_tokens` tokens for it, and it never preempts, so the
 * tokens held are about `batch size × mean(input length + max_new_tokens)`:
 *
 *   kvUtilization ≈ min(1, tgi_batch_current_size × (mean input length + mean max_new_tokens) / tokenCapacity)
 *
 * where `tokenCapacity` is the server's KV capacity in tokens (the launcher's
 * `--max-batch-total-tokens`, or what TGI logged at warm-up as "Setting max batch total tokens").
 * The means are over all requests since start, not over the running batch, and block rounding
 * and prefix-cache sharing are ignored: treat the value as a load signal, not a measurement.
 * The snapshot lists `kvUtilization` in `estimated`; without `tokenCapacity` it is 0 and listed
 * in `missing`.
 *
 * API differences from vLLM: native `POST /generate` and `POST /generate_stream` take
 * `{inputs, parameters: {max_new_tokens, temperature, top_p, stop, details, …}}` (`inputs` is text
 * only; no token-id prompts) and stream `data: {token: {id, text, logprob, special},
 * generated_text, details}` events without a `[DONE]` terminator; `/v1/chat/completions` (and
 * `/v1/completions`) are OpenAI-compatible, ending `data: [DONE]`. No `kv_transfer_params`, no
 * `cached_tokens` in `usage`.
 *
 * @see huggingface/text-generation-inference:docs/source/reference/metrics.md
 * @see huggingface/text-generation-inference:router/src/lib.rs (GenerateRequest, StreamResponse)
 */
import {
  type EngineMetricsMapper,
  type EngineSnapshot,
  type MetricsExposition,
  type MetricsMapContext,
  TGI_METRICS,
  aggregateSamples,
  histogramTotals,
  requireEnginePrefix,
  requirePositiveInt,
} from '@kvmgr/core';

/** Options of {@link createTgiMetricsMapper}. */
export interface TgiMetricsOptions {
  /** KV capacity of the server in tokens (`--max-batch-total-tokens`). Without it KV utilization is not estimated. */
  readonly tokenCapacity?: number;
}

/** Mean of a histogram (`_sum / _count`), or undefined when it has no observations. */
function histogramMean(expo: MetricsExposition, family: string): number | undefined {
  const h = histogramTotals(expo, family);
  return h === undefined || h.count === 0 ? undefined : h.sum / h.count;
}

/**
 * Makes the TGI mapper for a server of `tokenCapacity` tokens.
 *
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `tokenCapacity` is not a positive integer.
 *   The mapper throws `KVMGR_PROTOCOL` when the exposition has no `tgi_` sample.
 */
export function createTgiMetricsMapper(options: TgiMetricsOptions = {}): EngineMetricsMapper {
  const capacity = options.tokenCapacity === undefined ? undefined : requirePositiveInt('tokenCapacity', options.tokenCapacity);
  return (expo: MetricsExposition, ctx: MetricsMapContext): EngineSnapshot => {
    requireEnginePrefix(expo, 'tgi_', 'TGI');
    const missing: (keyof EngineSnapshot)[] = ['pendingTransferLatency', 'kvThrashingRate', 'prefixCacheQueries', 'prefixCacheHits'];
    const waiting = aggregateSamples(expo, TGI_METRICS.queueSize, 'sum');
    const running = aggregateSamples(expo, TGI_METRICS.batchCurrentSize, 'sum');
    if (waiting === undefined) missing.push('waiting');
    if (running === undefined) missing.push('running');
    const meanInput = histogramMean(expo, TGI_METRICS.requestInputLength);
    const meanMaxNew = histogramMean(expo, TGI_METRICS.requestMaxNewTokens);
    let kvUtilization = 0;
    let estimated = false;
    if (capacity !== undefined && running !== undefined && (running === 0 || (meanInput !== undefined && meanMaxNew !== undefined))) {
      kvUtilization = running === 0 ? 0 : Math.min(1, (running * ((meanInput ?? 0) + (meanMaxNew ?? 0))) / capacity);
      estimated = true;
    } else missing.push('kvUtilization');
    return {
      instanceId: ctx.instanceId,
      role: ctx.role,
      timeUs: ctx.timeUs,
      engine: 'tgi',
      kvUtilization,
      waiting: waiting ?? 0,
      running: running ?? 0,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      // TGI reserves at admission and never preempts.
      preemptions: 0,
      ...(estimated ? { estimated: ['kvUtilization'] as const } : {}),
      missing,
    };
  };
}

/** The TGI mapper without a token capacity (KV utilization not estimated). */
export const mapTgiMetrics: EngineMetricsMapper = createTgiMetricsMapper();
