/**
 * Feeds an {@link EngineCore}'s counters into vLLM's metric families (`createVllmMetricsRegistry`):
 * gauges are set from the core, counters advance by the core's delta since the last sync, and the
 * latency histograms observe each token gap, step and finished request. Latencies are on the
 * model's clock (the modelled GPU's seconds, i.e. wall seconds × `timeScale`), as a real engine
 * would report them.
 *
 * The step loop only records: observations wait in plain arrays ({@link ObservationBuffer}) and
 * reach the prom-client registry in `sync()`, which the `/metrics` route runs before it reads the
 * registry (and which runs by itself when a buffer fills). A prom-client `observe` validates and
 * hashes its label set on every call (a few µs); per streamed token on the step loop that delayed
 * the step's later tokens. Each histogram receives the same values in the same order as before,
 * so its buckets, count and floating-point sum are the same at every read. A buffer that fills on
 * the step loop is drained in the next event-loop turn (`setImmediate`), not in the token's hook:
 * a drain observes thousands of values (milliseconds), which would hold back the rest of that step's
 * tokens.
 */
import { type VllmMetrics, createVllmMetricsRegistry, setVllmCacheConfig } from '@kvmgr/adapter-vllm';
import type { EngineCore, EngineMetrics, FinishReason, RequestFinishedStats, StepShape } from '@kvmgr/engine';

/** vLLM's `finished_reason` label of a core finish reason (vLLM has no `rejected`: it counts as `abort`). */
const REASON_LABEL: Readonly<Record<FinishReason, string>> = { stop: 'stop', length: 'length', abort: 'abort', rejected: 'abort' };

/** Observations buffered before a `sync()` is forced (per histogram): bounds the memory of a server that is never scraped. */
const BUFFER_CAPACITY = 4096;

/** Values waiting for one histogram, in observation order. */
class ObservationBuffer {
  private values = new Float64Array(256);
  private n = 0;

  /** @returns whether the buffer is full (the owner should drain it). */
  push(value: number): boolean {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = value;
    return this.n >= BUFFER_CAPACITY;
  }

  /** Observes every buffered value in `histogram` (in order) and empties the buffer. */
  drain(histogram: VllmMetrics['interTokenLatency'], labels: VllmMetrics['labels']): void {
    const v = this.values;
    for (let i = 0; i < this.n; i++) histogram.observe(labels, v[i] as number);
    this.n = 0;
  }
}

/** Options of {@link EngineMetricsExporter}. */
export interface EngineMetricsExporterOptions {
  readonly core: EngineCore;
  /** `model_name` label. */
  readonly modelName: string;
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  /** @default 0.9 */
  readonly gpuMemoryUtilization?: number;
}

/** The vLLM registry of one engine server, kept in step with its core. */
export class EngineMetricsExporter {
  readonly metrics: VllmMetrics;
  private readonly core: EngineCore;
  private last: EngineMetrics;
  /** `vllm:inter_token_latency_seconds`, seconds. */
  private readonly itl = new ObservationBuffer();
  /** `vllm:iteration_tokens_total`, tokens per step. */
  private readonly iterationTokens = new ObservationBuffer();
  /** `vllm:time_to_first_token_seconds`, `vllm:request_queue_time_seconds`, `vllm:e2e_request_latency_seconds`, seconds. */
  private readonly ttft = new ObservationBuffer();
  private readonly queueTime = new ObservationBuffer();
  private readonly e2e = new ObservationBuffer();
  /** A drain of full buffers is scheduled for the next event-loop turn. */
  private drainScheduled: ReturnType<typeof setImmediate> | null = null;
  private readonly drainLater = (): void => {
    this.drainScheduled = null;
    this.drainHistograms();
  };

  constructor(options: EngineMetricsExporterOptions) {
    this.core = options.core;
    this.metrics = createVllmMetricsRegistry({ modelName: options.modelName });
    setVllmCacheConfig(this.metrics, {
      blockSize: options.blockSize,
      numGpuBlocks: options.numGpuBlocks,
      enablePrefixCaching: true,
      gpuMemoryUtilization: options.gpuMemoryUtilization ?? 0.9,
    });
    const m = this.metrics;
    for (const reason of ['stop', 'length', 'abort']) m.requestSuccess.inc({ ...m.labels, finished_reason: reason }, 0);
    m.promptTokensCached.inc(m.labels, 0);
    this.last = this.core.metrics;
  }

  /**
   * Brings the registry up to date: observes the buffered histogram values, sets the gauges from
   * the core and advances the counters by what the core counted since the last call. Call it
   * before reading `metrics.registry` (the `/metrics` route does).
   */
  sync(): void {
    const m = this.metrics;
    const l = m.labels;
    this.drainHistograms();
    const now = this.core.metrics;
    const prev = this.last;
    m.numRequestsRunning.set(l, now.numRequestsRunning);
    m.numRequestsWaiting.set(l, now.numRequestsWaiting);
    m.kvCacheUsagePerc.set(l, now.kvCacheUsagePerc);
    const inc = (c: VllmMetrics['prefixCacheHits'], d: number): void => {
      if (d > 0) c.inc(l, d);
    };
    inc(m.prefixCacheQueries, now.prefixCacheQueries - prev.prefixCacheQueries);
    inc(m.prefixCacheHits, now.prefixCacheHits - prev.prefixCacheHits);
    inc(m.numPreemptions, now.numPreemptions - prev.numPreemptions);
    inc(m.promptTokens, now.promptTokens - prev.promptTokens);
    inc(m.generationTokens, now.generationTokens - prev.generationTokens);
    inc(m.promptTokensCached, now.promptTokensCached - prev.promptTokensCached);
    for (const reason of ['stop', 'length', 'abort', 'rejected'] as const) {
      const d = now.requestSuccess[reason] - prev.requestSuccess[reason];
      if (d > 0) m.requestSuccess.inc({ ...l, finished_reason: REASON_LABEL[reason] }, d);
    }
    this.last = now;
  }

  /** A buffer filled: drain them all once the current turn (the step end's writes) is done. */
  private scheduleDrain(): void {
    if (this.drainScheduled !== null) return;
    // Unref'd: a pending drain does not keep the process alive (sync() drains what is left).
    this.drainScheduled = setImmediate(this.drainLater).unref();
  }

  /** Observes every buffered value in its histogram. */
  private drainHistograms(): void {
    if (this.drainScheduled !== null) {
      clearImmediate(this.drainScheduled);
      this.drainScheduled = null;
    }
    const m = this.metrics;
    const l = m.labels;
    this.itl.drain(m.interTokenLatency, l);
    this.iterationTokens.drain(m.iterationTokens, l);
    this.ttft.drain(m.timeToFirstToken, l);
    this.queueTime.drain(m.requestQueueTime, l);
    this.e2e.drain(m.e2eRequestLatency, l);
  }

  /** Records one step's tokens (`vllm:iteration_tokens_total`); the gauges and counters are read from the core at `sync()`. */
  onStep(shape: Readonly<StepShape>): void {
    if (this.iterationTokens.push(shape.prefillTokens + shape.decodeTokens)) this.scheduleDrain();
  }

  /** Records an inter-token gap, model µs. */
  observeItl(us: number): void {
    if (this.itl.push(us / 1e6)) this.scheduleDrain();
  }

  /** Records a finished request's TTFT, E2E and queue time (model clock). */
  onFinished(stats: RequestFinishedStats): void {
    let full = false;
    if (stats.ttftUs >= 0) full = this.ttft.push(stats.ttftUs / 1e6) || full;
    if (stats.queueUs >= 0) full = this.queueTime.push(stats.queueUs / 1e6) || full;
    if (stats.finishReason !== 'rejected') full = this.e2e.push(stats.e2eUs / 1e6) || full;
    if (full) this.scheduleDrain();
  }
}
