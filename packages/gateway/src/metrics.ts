/**
 * The gateway's Prometheus metrics (prom-client, a registry per gateway). Where a Gateway API
 * Inference Extension (GIE) endpoint-picker metric means the same thing its name is used
 * (`inference_model_request_total`, `inference_extension_scheduler_e2e_duration_seconds`,
 * `inference_pool_average_kv_cache_utilization`, …); the rest are `kvmgr_gateway_*`.
 *
 * @see kubernetes-sigs/gateway-api-inference-extension: site-src/guides/metrics-and-observability.md
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the gauges read at scrape time. */
export interface GatewayMetricsSource {
  readonly poolName: string;
  /** Per endpoint: name, healthy, KV utilization 0..1, waiting. */
  endpoints(): readonly { name: string; healthy: boolean; kvUtilization: number; waiting: number; eventLagS: number }[];
  indexBlocks(): number;
  queueDepth(): number;
  /** Cumulative KV-event counters summed over endpoints. */
  eventCounters(): { gaps: number; replays: number; replayFailures: number; restarts: number; lost: number; malformed: number; delivered: number };
}

/** Handles of the gateway's metric families. */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'model_name' | 'target_model_name'>;
  readonly requestErrors: Counter<'model_name' | 'target_model_name' | 'error_code'>;
  readonly decisions: Counter<'endpoint' | 'reason'>;
  readonly decisionScore: Histogram<'endpoint'>;
  readonly decisionSeconds: Histogram<string>;
  readonly admission: Counter<'decision'>;
  readonly rejections: Counter<'reason'>;
  readonly retries: Counter<string>;
  readonly upstreamFailures: Counter<'endpoint' | 'phase'>;
  readonly promptTokens: Counter<string>;
  readonly cachedTokens: Counter<string>;
  readonly eventLag: Histogram<string>;
}

/**
 * Creates the families in a new registry.
 *
 * @param src - read when `/metrics` is scraped (pool gauges, index size, event counters).
 */
export function createGatewayMetrics(src: GatewayMetricsSource): GatewayMetrics {
  const registry = new Registry();
  const registers = [registry];
  const pool = { name: src.poolName };
  const deltas = new Map<string, number>();
  const counterFrom = (name: string, help: string, key: keyof ReturnType<GatewayMetricsSource['eventCounters']>) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        const now = src.eventCounters()[key];
        const d = now - (deltas.get(key) ?? 0);
        if (d > 0) this.inc(d);
        deltas.set(key, Math.max(now, deltas.get(key) ?? 0));
      },
    });
  counterFrom('kvmgr_gateway_kv_event_gaps_total', 'Sequence gaps seen in KV-event streams.', 'gaps');
  counterFrom('kvmgr_gateway_kv_event_replays_total', 'Replays requested from KV-event publishers (gap repair, late join).', 'replays');
  counterFrom('kvmgr_gateway_kv_event_replay_failures_total', 'Replays that failed or timed out.', 'replayFailures');
  counterFrom('kvmgr_gateway_kv_event_restarts_total', 'KV-event publisher restarts detected (index reset for that endpoint).', 'restarts');
  counterFrom('kvmgr_gateway_kv_event_lost_batches_total', 'KV-event batches lost for good.', 'lost');
  counterFrom('kvmgr_gateway_kv_event_malformed_total', 'Malformed KV-event frames skipped.', 'malformed');
  counterFrom('kvmgr_gateway_kv_event_batches_total', 'KV-event batches applied to the block index.', 'delivered');
  new Gauge({
    name: 'inference_pool_average_kv_cache_utilization',
    help: 'Average KV cache utilization (0..1) of the healthy endpoints of the pool.',
    labelNames: ['name'],
    registers,
    collect() {
      const es = src.endpoints().filter((e) => e.healthy);
      this.set(pool, es.length === 0 ? 0 : es.reduce((a, e) => a + e.kvUtilization, 0) / es.length);
    },
  });
  new Gauge({
    name: 'inference_pool_average_queue_size',
    help: 'Average number of requests waiting in the healthy endpoints of the pool.',
    labelNames: ['name'],
    registers,
    collect() {
      const es = src.endpoints().filter((e) => e.healthy);
      this.set(pool, es.length === 0 ? 0 : es.reduce((a, e) => a + e.waiting, 0) / es.length);
    },
  });
  new Gauge({
    name: 'inference_pool_ready_pods',
    help: 'Endpoints of the pool taking traffic.',
    labelNames: ['name'],
    registers,
    collect() {
      this.set(pool, src.endpoints().filter((e) => e.healthy).length);
    },
  });
  new Gauge({
    name: 'kvmgr_gateway_endpoint_healthy',
    help: '1 while an endpoint takes traffic, 0 while it is out.',
    labelNames: ['endpoint'],
    registers,
    collect() {
      this.reset();
      for (const e of src.endpoints()) this.set({ endpoint: e.name }, e.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'kvmgr_gateway_kv_event_last_lag_seconds',
    help: 'Lag of the last KV-event batch per endpoint (receive time - batch timestamp), seconds.',
    labelNames: ['endpoint'],
    registers,
    collect() {
      this.reset();
      for (const e of src.endpoints()) this.set({ endpoint: e.name }, e.eventLagS);
    },
  });
  new Gauge({
    name: 'kvmgr_gateway_index_blocks',
    help: 'Block keys in the gateway block index.',
    registers,
    collect() {
      this.set(src.indexBlocks());
    },
  });
  new Gauge({
    name: 'kvmgr_gateway_admission_queue_depth',
    help: 'Requests deferred by admission, waiting for KV to free.',
    registers,
    collect() {
      this.set(src.queueDepth());
    },
  });
  return {
    registry,
    requests: new Counter({ name: 'inference_model_request_total', help: 'Requests received, by model.', labelNames: ['model_name', 'target_model_name'], registers }),
    requestErrors: new Counter({
      name: 'inference_model_request_error_total',
      help: 'Requests that ended in an error, by model and error code.',
      labelNames: ['model_name', 'target_model_name', 'error_code'],
      registers,
    }),
    decisions: new Counter({ name: 'kvmgr_gateway_routing_decisions_total', help: 'Routing decisions by chosen endpoint and reason.', labelNames: ['endpoint', 'reason'], registers }),
    decisionScore: new Histogram({
      name: 'kvmgr_gateway_routing_score',
      help: 'Weighted total score of the chosen endpoint.',
      labelNames: ['endpoint'],
      buckets: [0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10],
      registers,
    }),
    decisionSeconds: new Histogram({
      name: 'inference_extension_scheduler_e2e_duration_seconds',
      help: 'Time of one routing decision (tokenisation excluded), seconds.',
      buckets: [0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01],
      registers,
    }),
    admission: new Counter({ name: 'kvmgr_gateway_admission_decisions_total', help: 'Admission outcomes: admit, defer (placed after waiting), reject, abandoned (the client went away while deferred).', labelNames: ['decision'], registers }),
    rejections: new Counter({ name: 'kvmgr_gateway_rejections_total', help: 'Requests rejected, by reason.', labelNames: ['reason'], registers }),
    retries: new Counter({ name: 'kvmgr_gateway_upstream_retries_total', help: 'Requests sent to another endpoint after a failure before the first byte.', registers }),
    upstreamFailures: new Counter({
      name: 'kvmgr_gateway_upstream_failures_total',
      help: 'Upstream failures by endpoint and phase (connect, stream).',
      labelNames: ['endpoint', 'phase'],
      registers,
    }),
    promptTokens: new Counter({ name: 'kvmgr_gateway_prompt_tokens_total', help: 'Prompt tokens reported in upstream usage.', registers }),
    cachedTokens: new Counter({ name: 'kvmgr_gateway_cached_prompt_tokens_total', help: 'Prompt tokens served from the engines prefix caches (usage.prompt_tokens_details.cached_tokens).', registers }),
    eventLag: new Histogram({
      name: 'kvmgr_gateway_kv_event_lag_seconds',
      help: 'KV-event lag: receive time - batch timestamp, seconds.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
  };
}
