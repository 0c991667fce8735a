/**
 * Feeds an {@link EngineCore}'s counters into vLLM's metric families (`createVllmMetricsRegistry`):
 * gauges are set from the core, counters advance by the core's delta since the last sync, and the
 * latency histograms observe each finished request. Latencies are on the model's clock (the
 * modelled GPU's seconds, i.e. wall seconds × `timeScale`), as a real engine would report them.
 */
import { type VllmMetrics, createVllmMetricsRegistry, setVllmCacheConfig } from '@kvmgr/adapter-vllm';
import type { EngineCore, EngineMetrics, FinishReason, RequestFinishedStats, StepShape } from '@kvmgr/engine';

/** vLLM's `finished_reason` label of a core finish reason (vLLM has no `rejected`: it counts as `abort`). */
const REASON_LABEL: Readonly<Record<FinishReason, string>> = { stop: 'stop', length: 'length', abort: 'abort', rejected: 'abort' };

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

  /** Sets the gauges from the core and advances the counters by what the core counted since the last call. */
  sync(): void {
    const m = this.metrics;
    const l = m.labels;
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

  /** Records one step's tokens (`vllm:iteration_tokens_total`) and syncs. */
  onStep(shape: Readonly<StepShape>): void {
    this.metrics.iterationTokens.observe(this.metrics.labels, shape.prefillTokens + shape.decodeTokens);
    this.sync();
  }

  /** Records an inter-token gap, model µs. */
  observeItl(us: number): void {
    this.metrics.interTokenLatency.observe(this.metrics.labels, us / 1e6);
  }

  /** Records a finished request's TTFT, E2E and queue time (model clock). */
  onFinished(stats: RequestFinishedStats): void {
    const m = this.metrics;
    if (stats.ttftUs >= 0) m.timeToFirstToken.observe(m.labels, stats.ttftUs / 1e6);
    if (stats.queueUs >= 0) m.requestQueueTime.observe(m.labels, stats.queueUs / 1e6);
    if (stats.finishReason !== 'rejected') m.e2eRequestLatency.observe(m.labels, stats.e2eUs / 1e6);
  }
}
