/**
 * Check 2 of the kv-pool issue: replays the lengths of a real trace through a paged pool and a
 * buddy pool and reports time-averaged fragmentation and utilization (DESIGN.md §7).
 *
 * Model: arrivals as recorded; each request holds prompt + output tokens (allocated at
 * admission, freed at completion) for a duration from a step model (one prefill step, then one
 * decode step per output token):
 *   durationUs = β0 + β1·prompt + output·(β0 + β2)
 * with BLIS's fitted coefficients for Llama-3.1-8B on A100-80 TP1 (vLLM 0.8.4): β0 = 16441.5,
 * β1 = 47.8374, β2 = 18.2056 (`../shared/traces/anchors/blis_blackbox_coefficients.csv`).
 * Admission is FCFS with head-of-line blocking. The pool capacity is set from the offered load:
 * capacity = Σ(blocks × 16 × duration) / (span × load).
 */
import { readFileSync } from 'node:fs';
import { createKVCacheSpec, parseAzureRows } from '@kvmgr/core';
import { BlockPool } from '../src/block-pool.js';
import { type BlockRun, BuddyAllocator } from '../src/buddy-allocator.js';
import { FragmentationSampler, unusableFreeTokens } from '../src/fragmentation.js';

/** One request of the replay. */
export interface ReplayRequest {
  readonly arrivalUs: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
}

/** Step-model coefficients, µs. */
export const STEP_MODEL = Object.freeze({ beta0: 16441.5, beta1: 47.8374, beta2: 18.2056 });

/** Duration of a request under the step model, µs. */
export function durationUs(r: ReplayRequest): number {
  return STEP_MODEL.beta0 + STEP_MODEL.beta1 * r.promptTokens + r.outputTokens * (STEP_MODEL.beta0 + STEP_MODEL.beta2);
}

/**
 * Reads an Azure LLM inference trace (TIMESTAMP, ContextTokens, GeneratedTokens) through core's
 * `parseAzureRows`; arrivals are µs relative to the first row.
 * @param limit - first N rows only.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming the file and line of a bad row (`path:line: reason`).
 */
export function loadAzureTrace(path: string, limit = Number.POSITIVE_INFINITY): ReplayRequest[] {
  const { rows } = parseAzureRows(readFileSync(path, 'utf8'), path, { limit });
  const t0 = rows[0]?.timestampUs ?? 0;
  return rows.map((r) => ({ arrivalUs: r.timestampUs - t0, promptTokens: r.contextTokens, outputTokens: r.generatedTokens }));
}

/** Options of {@link replayLengths}. */
export interface ReplayOptions {
  readonly allocator: 'paged' | 'buddy' | 'buddy+compact';
  /** Offered load: Σ allocated token-slot·µs / (capacity × arrival span). */
  readonly load: number;
  /** @default 16 */
  readonly blockSize?: number;
}

/** Results of one replay. */
export interface ReplayResult {
  readonly allocator: string;
  readonly load: number;
  readonly capacityBlocks: number;
  readonly requests: number;
  readonly fragmentation: number;
  readonly internalFragmentation: number;
  readonly externalFragmentation: number;
  readonly utilization: number;
  readonly allocatedFraction: number;
  readonly meanWaitMs: number;
  readonly compactions: number;
  readonly movedBlocks: number;
}

/** Pool capacity in blocks for an offered load (at least the largest request). */
export function capacityForLoad(reqs: readonly ReplayRequest[], load: number, blockSize = 16): number {
  let slotUs = 0;
  let maxBlocks = 0;
  let end = 0;
  for (const r of reqs) {
    const b = Math.ceil((r.promptTokens + r.outputTokens) / blockSize);
    slotUs += b * blockSize * durationUs(r);
    maxBlocks = Math.max(maxBlocks, b);
    end = Math.max(end, r.arrivalUs);
  }
  const span = Math.max(1, end - (reqs[0]?.arrivalUs ?? 0));
  return Math.max(maxBlocks, Math.ceil(slotUs / span / load / blockSize));
}

/** A binary min-heap of (time, id). */
class Heap {
  private t: number[] = [];
  private id: number[] = [];
  get size(): number {
    return this.t.length;
  }
  peekTime(): number {
    return this.t[0] ?? Number.POSITIVE_INFINITY;
  }
  push(time: number, id: number): void {
    let i = this.t.length;
    this.t.push(time);
    this.id.push(id);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p]! <= time) break;
      this.t[i] = this.t[p]!;
      this.id[i] = this.id[p]!;
      i = p;
    }
    this.t[i] = time;
    this.id[i] = id;
  }
  pop(): number {
    const top = this.id[0]!;
    const lt = this.t.pop()!;
    const lid = this.id.pop()!;
    const n = this.t.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && this.t[l + 1]! < this.t[l]! ? l + 1 : l;
        if (this.t[c]! >= lt) break;
        this.t[i] = this.t[c]!;
        this.id[i] = this.id[c]!;
        i = c;
      }
      this.t[i] = lt;
      this.id[i] = lid;
    }
    return top;
  }
}

/**
 * Replays request lengths through a paged pool or a buddy pool (optionally compacting when the
 * head request is blocked by layout only) and integrates fragmentation and utilization.
 */
export function replayLengths(reqs: readonly ReplayRequest[], options: ReplayOptions): ReplayResult {
  const blockSize = options.blockSize ?? 16;
  const capacityBlocks = capacityForLoad(reqs, options.load, blockSize);
  const spec = createKVCacheSpec({ numLayers: 32, numKvHeads: 8, headDim: 128, blockSize });
  const paged = options.allocator === 'paged' ? new BlockPool({ spec, numBlocks: capacityBlocks }) : null;
  const buddy = options.allocator === 'paged' ? null : new BuddyAllocator({ numBlocks: capacityBlocks });
  const compact = options.allocator === 'buddy+compact';
  const sampler = new FragmentationSampler({ capacityTokens: capacityBlocks * blockSize, startUs: reqs[0]?.arrivalUs ?? 0 });
  const held: (number[] | BlockRun[] | undefined)[] = new Array(reqs.length);
  const need = reqs.map((r) => Math.ceil((r.promptTokens + r.outputTokens) / blockSize));
  const departures = new Heap();
  const queue: number[] = [];
  let qHead = 0;
  let next = 0;
  let used = 0;
  let allocated = 0;
  let waitSum = 0;
  let compactions = 0;
  let movedBlocks = 0;
  let now = reqs[0]?.arrivalUs ?? 0;
  const free = () => (paged ? paged.numFreeBlocks : buddy!.numFreeBlocks);
  const fits = (n: number) => (paged ? n <= paged.numFreeBlocks : buddy!.canAllocate(n));
  while (next < reqs.length || departures.size > 0 || qHead < queue.length) {
    const ta = next < reqs.length ? reqs[next]!.arrivalUs : Number.POSITIVE_INFINITY;
    now = Math.min(ta, departures.peekTime());
    while (departures.size > 0 && departures.peekTime() <= now) {
      const i = departures.pop();
      const h = held[i]!;
      if (paged) paged.free(h as number[]);
      else buddy!.freeRuns(h as BlockRun[]);
      held[i] = undefined;
      used -= reqs[i]!.promptTokens + reqs[i]!.outputTokens;
      allocated -= need[i]! * blockSize;
    }
    while (next < reqs.length && reqs[next]!.arrivalUs <= now) queue.push(next++);
    while (qHead < queue.length) {
      const i = queue[qHead]!;
      const n = need[i]!;
      if (!fits(n)) {
        if (!(compact && n <= free())) break;
        const plan = buddy!.planCompaction();
        buddy!.applyCompaction(plan);
        compactions++;
        movedBlocks += plan.moves.length;
        // remap the runs of running requests (block tables)
        const map = new Map(plan.moves.map((m) => [m.from, m.to]));
        for (let j = 0; j < held.length; j++) {
          const h = held[j] as BlockRun[] | undefined;
          if (h) held[j] = h.map((r) => ({ start: map.get(r.start) ?? r.start, order: r.order }));
        }
        if (!fits(n)) break;
      }
      held[i] = paged ? paged.allocate(n) : buddy!.allocateRuns(n);
      qHead++;
      used += reqs[i]!.promptTokens + reqs[i]!.outputTokens;
      allocated += n * blockSize;
      waitSum += now - reqs[i]!.arrivalUs;
      departures.push(now + durationUs(reqs[i]!), i);
    }
    const head = qHead < queue.length ? need[queue[qHead]!]! : 0;
    sampler.record(now, { usedTokens: used, allocatedTokens: allocated, unusableFreeTokens: unusableFreeTokens(free(), head, head === 0 || fits(head), blockSize) });
  }
  const r = sampler.report(now);
  return {
    allocator: options.allocator,
    load: options.load,
    capacityBlocks,
    requests: reqs.length,
    fragmentation: r.fragmentation,
    internalFragmentation: r.internalFragmentation,
    externalFragmentation: r.externalFragmentation,
    utilization: r.utilization,
    allocatedFraction: r.allocatedFraction,
    meanWaitMs: waitSum / Math.max(1, reqs.length) / 1000,
    compactions,
    movedBlocks,
  };
}
