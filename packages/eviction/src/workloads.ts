/**
 * Seeded generators of block traces with different reuse structure: the workload shapes of the
 * eviction test bench (`runEvictionSuite`, `kvmgr eviction eval --suite`). Each returns
 * requests in arrival order, in the same form as {@link readBlockTrace}: a prompt is a list of
 * block ids (u32), prefix-shared content has the same ids, and the last block of a prompt is
 * partial (a continuation of the prompt sees it full, under a new id), as in Mooncake traces.
 */
import { type Rng, createRng, invalidArgument, requireOneOf } from '@kvmgr/core';
import type { BlockTraceRequest } from './block-trace.js';

/** Names of the generated shapes, see {@link generateBlockWorkload}. */
export const WORKLOAD_SHAPES = ['agentic', 'rag-zipf', 'long-doc-qa', 'scan-batch', 'phase-shift'] as const;
/** A generated workload shape. */
export type WorkloadShape = (typeof WORKLOAD_SHAPES)[number];

/** Options of {@link generateBlockWorkload}. */
export interface BlockWorkloadOptions {
  /** Seed of the generator (same seed, same trace). @default 1 */
  readonly seed?: number;
  /** Scale of the trace: requests are multiplied by it (block references ≈ 250k × scale). @default 1 */
  readonly scale?: number;
}

/** One-line description of each shape (printed by the suite). */
export const WORKLOAD_DESCRIPTIONS: Readonly<Record<WorkloadShape, string>> = {
  agentic: 'multi-turn agentic sessions: 12 agent system prompts, 5-40 turns each growing by 1-6 blocks of tool output, 1 s + Exp(6 s) between turns, ~100 sessions live',
  'rag-zipf': 'shared system prompt + one of 6,000 RAG documents (4-16 blocks, Zipf 0.9) + a unique query',
  'long-doc-qa': 'long one-off documents (40-250 blocks); 30% get 1-4 follow-up questions minutes later',
  'scan-batch': 'a batch job looping twice over 2,000 unique 20-60 block prompts, interleaved with a hot chat set (400 prefixes, Zipf 1.0)',
  'phase-shift': 'rag-zipf for the first half, then agentic sessions (new content) for the second',
};

class Ids {
  private next: number;
  constructor(base: number) {
    this.next = base;
  }
  take(n: number): number[] {
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.next++ >>> 0;
    return out;
  }
}

/** A Zipf(α) sampler over ranks 0..n-1 by inverse CDF (binary search over the prefix sums). */
function zipf(rng: Rng, n: number, alpha: number): () => number {
  const cdf = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    s += 1 / (i + 1) ** alpha;
    cdf[i] = s;
  }
  return () => {
    const u = rng.next() * s;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function sortByArrival(rs: BlockTraceRequest[]): BlockTraceRequest[] {
  return rs.map((r, i) => ({ r, i })).sort((a, b) => a.r.timestampMs - b.r.timestampMs || a.i - b.i).map((x) => x.r);
}

function agentic(rng: Rng, ids: Ids, sessions: number, startMs: number, spanMs: number): BlockTraceRequest[] {
  const agents = Array.from({ length: 12 }, () => ids.take(rng.int(4, 10)));
  const out: BlockTraceRequest[] = [];
  for (let s = 0; s < sessions; s++) {
    const sys = agents[Math.min(agents.length - 1, Math.floor(agents.length * rng.next() ** 2))] as number[];
    let full = [...sys, ...ids.take(rng.int(1, 5))];
    let t = startMs + rng.next() * spanMs;
    const turns = rng.int(5, 40);
    for (let k = 0; k < turns; k++) {
      out.push({ timestampMs: Math.round(t), blocks: [...full, ...ids.take(1)], outputTokens: rng.int(20, 400) });
      // the partial block is now full (new content), plus the model's output and the tool result
      full = [...full, ...ids.take(rng.int(1, 6))];
      t += 1000 + rng.exponential(6000);
    }
  }
  return out;
}

function ragZipf(rng: Rng, ids: Ids, requests: number, startMs: number, spanMs: number): BlockTraceRequest[] {
  const sys = ids.take(8);
  const docs = Array.from({ length: 6000 }, () => ids.take(rng.int(4, 16)));
  const pick = zipf(rng, docs.length, 0.9);
  const out: BlockTraceRequest[] = [];
  for (let i = 0; i < requests; i++) {
    out.push({ timestampMs: Math.round(startMs + (spanMs * i) / requests), blocks: [...sys, ...(docs[pick()] as number[]), ...ids.take(rng.int(1, 2))] });
  }
  return out;
}

function longDocQa(rng: Rng, ids: Ids, docs: number, spanMs: number): BlockTraceRequest[] {
  const sys = ids.take(2);
  const out: BlockTraceRequest[] = [];
  for (let d = 0; d < docs; d++) {
    const doc = ids.take(rng.int(40, 250));
    let t = rng.next() * spanMs;
    const asks = rng.next() < 0.3 ? rng.int(2, 5) : 1;
    for (let k = 0; k < asks; k++) {
      out.push({ timestampMs: Math.round(t), blocks: [...sys, ...doc, ...ids.take(1)] });
      t += 10_000 + rng.exponential(120_000);
    }
  }
  return out;
}

function scanBatch(rng: Rng, ids: Ids, requests: number, spanMs: number): BlockTraceRequest[] {
  const sys = ids.take(6);
  const hot = Array.from({ length: 400 }, () => ids.take(rng.int(6, 14)));
  const pick = zipf(rng, hot.length, 1.0);
  const dataset = Array.from({ length: 2000 }, () => ids.take(rng.int(20, 60)));
  const out: BlockTraceRequest[] = [];
  let cursor = 0;
  for (let i = 0; i < requests; i++) {
    const t = Math.round((spanMs * i) / requests);
    if (i % 2 === 0) {
      out.push({ timestampMs: t, blocks: dataset[cursor++ % dataset.length] as number[] });
    } else out.push({ timestampMs: t, blocks: [...sys, ...(hot[pick()] as number[]), ...ids.take(1)] });
  }
  return out;
}

/**
 * Generates one workload shape (see {@link WORKLOAD_DESCRIPTIONS}) as a block trace: each about
 * 250k block references (× `scale`), seeded, deterministic.
 * @param shape - one of {@link WORKLOAD_SHAPES}.
 * @param options - see {@link BlockWorkloadOptions}.
 * @returns requests in arrival order (stable sort by `timestampMs`, ms).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown shape, a non-integer seed or a
 *   scale that is not a positive number.
 */
export function generateBlockWorkload(shape: string, options: BlockWorkloadOptions = {}): BlockTraceRequest[] {
  const s = requireOneOf('shape', shape, WORKLOAD_SHAPES);
  const seed = options.seed ?? 1;
  const scale = options.scale ?? 1;
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale)) throw invalidArgument('options.scale', scale, 'a finite number > 0');
  if (!Number.isSafeInteger(seed)) throw invalidArgument('options.seed', seed, 'a safe integer');
  const rng = createRng(seed);
  const n = (x: number): number => Math.max(1, Math.round(x * scale));
  const ids = new Ids(1);
  const hour = 3_600_000;
  switch (s) {
    case 'agentic':
      return sortByArrival(agentic(rng, ids, n(250), 0, hour / 12));
    case 'rag-zipf':
      return ragZipf(rng, ids, n(12_000), 0, hour);
    case 'long-doc-qa':
      return sortByArrival(longDocQa(rng, ids, n(1_400), hour));
    case 'scan-batch':
      return scanBatch(rng, ids, n(8_000), hour);
    case 'phase-shift':
      return sortByArrival([...ragZipf(rng, ids, n(6_000), 0, hour / 2), ...agentic(rng, ids, n(125), hour / 2, hour / 24)]);
  }
}
