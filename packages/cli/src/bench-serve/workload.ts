/**
 * What `kvmgr bench serve` sends: requests with a send time, a prompt built on demand, an exact
 * output length, and the stage they belong to. Traces (Mooncake, Azure, length-only CSV) become
 * one open-loop stage; an inference-perf config becomes its stages.
 *
 * Mooncake prompts: each 512-token `hash_id` becomes a fixed block of token ids drawn from a
 * PRNG seeded by (seed, hash id), so two requests that share hash ids share exactly those
 * tokens on the wire, and the engine's prefix cache sees the trace's prefix sharing.
 */
import { createRng } from '@kvmgr/core';
import { type SimRequest, type Trace, blockTokens, tracePromptTokens } from '@kvmgr/sim';
import type { BenchApi } from './client.js';

/** One request of a benchmark. */
export interface BenchRequest {
  /** Unique id, sent as `x-request-id`. */
  readonly id: string;
  /** Index into {@link Workload.stages}. */
  readonly stage: number;
  /** Send time, s after the stage starts, in the workload's clock (before `--rate-scale` and `--time-scale`). */
  readonly atS: number;
  /** Prompt tokens (the length of {@link BenchRequest.prompt}'s result). */
  readonly promptTokens: number;
  /** Output tokens to generate (sent as `max_tokens` and `min_tokens`, with `ignore_eos`). */
  readonly outputTokens: number;
  /** Builds the prompt: token ids, or text for datasets of text (on demand: a whole trace's prompts would not fit in memory). */
  prompt(): readonly number[] | string;
}

/** One load stage. */
export interface BenchStage {
  /** Requested arrival rate, requests/s in the workload's clock (inference-perf's `requested_rate`). */
  readonly rate: number;
  /** Closed loop: this many requests in flight, arrivals ignored. */
  readonly concurrency?: number;
}

/** A workload ready to send. */
export interface Workload {
  /** Label for reports (file name, `bundled Mooncake conversation sample`, …). */
  readonly name: string;
  /** Requests in send order within each stage; stages in order. */
  readonly requests: readonly BenchRequest[];
  readonly stages: readonly BenchStage[];
  /** Pause between stages, s (inference-perf's `load.interval`). @default 0 */
  readonly stageIntervalS?: number;
  /** Per-request SLOs from the workload (inference-perf `api.headers`), ms; flags win. */
  readonly sloTtftMs?: number;
  readonly sloTpotMs?: number;
  /** API to send to (inference-perf `api.type`); `--api` wins. @default 'completion' */
  readonly api?: BenchApi;
  /** Stream responses (inference-perf `api.streaming`); `--no-stream` wins. @default true */
  readonly stream?: boolean;
  /** The inference-perf config this workload came from, echoed into `config.yaml`. */
  readonly inferencePerfConfig?: Record<string, unknown>;
}

// the trace → token-id construction lives in @kvmgr/sim (shared with the engine server's fidelity bench)
export { blockTokens, tracePromptTokens };

/** A trace as one open-loop stage: send times are the trace's arrivals, relative to the first. */
export function traceWorkload(trace: Trace, name: string, seed: number): Workload {
  const reqs = trace.requests;
  const t0 = reqs.length > 0 ? (reqs[0] as SimRequest).arrivalUs : 0;
  const requests: BenchRequest[] = reqs.map((r, i) => ({
    id: `req-${i}`,
    stage: 0,
    atS: (r.arrivalUs - t0) / 1e6,
    promptTokens: r.promptTokens,
    outputTokens: Math.max(1, r.outputTokens),
    prompt: () => tracePromptTokens(r, seed, i),
  }));
  const spanS = requests.length > 1 ? (requests[requests.length - 1] as BenchRequest).atS : 0;
  return { name, requests, stages: [{ rate: spanS > 0 ? requests.length / spanS : requests.length }] };
}

/**
 * Replaces the send times by Poisson arrivals at `rate` requests/s (seeded), or puts every
 * request at 0 for a closed loop.
 */
export function withArrivals(w: Workload, arrivals: { readonly rate: number; readonly seed: number } | { readonly concurrency: number }): Workload {
  if ('concurrency' in arrivals) {
    return { ...w, requests: w.requests.map((r) => ({ ...r, atS: 0 })), stages: w.stages.map(() => ({ rate: 0, concurrency: arrivals.concurrency })) };
  }
  const rng = createRng(arrivals.seed);
  const next = new Map<number, number>();
  const requests = w.requests.map((r) => {
    const t = (next.get(r.stage) ?? 0) + rng.exponential(1 / arrivals.rate);
    next.set(r.stage, t);
    return { ...r, atS: t };
  });
  return { ...w, requests, stages: w.stages.map(() => ({ rate: arrivals.rate })) };
}

/** The first `limit` requests (all stages counted together); stages left empty are dropped. */
export function limitWorkload(w: Workload, limit: number | undefined): Workload {
  if (limit === undefined || limit >= w.requests.length) return w;
  const requests = w.requests.slice(0, limit);
  const used = new Set(requests.map((r) => r.stage));
  return { ...w, requests, stages: w.stages.filter((_s, i) => used.has(i)) };
}
