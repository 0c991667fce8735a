/**
 * What `kvmgr bench serve` sends: requests with a send time, a prompt built on demand, an exact
 * output length, and the stage they belong to. Traces (Mooncake, Azure, length-only CSV) become
 * one open-loop stage; an inference-perf config becomes its stages.
 *
 * Mooncake prompts: each 512-token `hash_id` becomes a fixed block of token ids drawn from a
 * PRNG seeded by (seed, hash id), so two requests that share hash ids share exactly those
 * tokens on the wire, and the engine's prefix cache sees the trace's prefix sharing.
 */
import { type Rng, createRng } from '@kvmgr/core';
import type { SimRequest, Trace } from '@kvmgr/sim';
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

/** Tokens per Mooncake hash block. */
export const MOONCAKE_BLOCK = 512;

/** Token ids are drawn from Llama 3's ordinary range, clear of the low ids and of the special tokens at ≥ 128000. */
const TOKEN_MIN = 1000;
const TOKEN_MAX = 127_999;

/** A PRNG for (seed, key): distinct keys below 2^32 give distinct streams for one seed. */
export function keyedRng(seed: number, key: number): Rng {
  return createRng((Math.imul(seed >>> 0, 0x9e3779b1) + key) >>> 0);
}

/**
 * The token ids of one block: `length` ids from the PRNG of (seed, key).
 * @param seed - workload seed.
 * @param key - block identity (a Mooncake hash id, or a group/prompt number).
 * @param length - tokens.
 */
export function blockTokens(seed: number, key: number, length: number): number[] {
  const rng = keyedRng(seed, key);
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = rng.int(TOKEN_MIN, TOKEN_MAX);
  return out;
}

/**
 * The prompt of a trace request: its hash ids' blocks, concatenated and cut to the prompt length.
 * Without hash ids, the request gets tokens unique to it (keyed by `fallbackKey`).
 */
export function tracePromptTokens(req: SimRequest, seed: number, fallbackKey: number): number[] {
  const ids = req.hashIds;
  const h = req.hashBlockTokens ?? MOONCAKE_BLOCK;
  if (ids === undefined || ids.length === 0) return blockTokens(seed ^ 0x5bd1e995, fallbackKey, req.promptTokens);
  const out: number[] = [];
  for (let b = 0; b < ids.length && out.length < req.promptTokens; b++) {
    const block = blockTokens(seed, ids[b] as number, Math.min(h, req.promptTokens - out.length));
    for (const t of block) out.push(t);
  }
  // hash ids that cover fewer tokens than the prompt: unique padding
  if (out.length < req.promptTokens) for (const t of blockTokens(seed ^ 0x5bd1e995, fallbackKey, req.promptTokens - out.length)) out.push(t);
  return out;
}

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
