/**
 * Materialization: turns the attributes set by policy passes into scheduled tokens, block
 * allocations, preemptions and admissions, following vLLM v1's step loop: running requests
 * first (decodes and unfinished chunked prefills) within the token budget, preempting victims
 * when blocks run short; then waiting requests in order while budget, sequences and blocks last.
 *
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py (`Scheduler.schedule`)
 */
import type { VictimCandidate } from '@kvmgr/core';
import type { SchedRequest } from './ir.js';
import type { SchedAnalyses } from './pass.js';
import {
  DECISION_DEFER,
  DECISION_NONE,
  DECISION_REJECT,
  PREEMPT_NONE,
  PREEMPT_RECOMPUTE,
  PREEMPT_SWAP,
  type StepIR,
  blocksFor,
} from './step-ir.js';

/** Counters of one materialization (added to the calling pass's statistics). */
export interface MaterializeCounts {
  preempted: number;
  admitted: number;
  evictedPrefixBlocks: number;
  stalled: number;
}

function preemptRunning(ir: StepIR, v: number, selectorMode: 'recompute' | 'swap' | undefined): void {
  const r = ir.state.running[v]!;
  if ((ir.rTokens[v] as number) > 0) {
    ir.tokensLeft += ir.rTokens[v] as number;
    ir.freeGpu += ir.rNewBlocks[v] as number;
    ir.rTokens[v] = 0;
    ir.rNewBlocks[v] = 0;
  }
  let mode = ir.preemption.mode === 'auto' ? (selectorMode ?? 'auto') : ir.preemption.mode;
  if (mode === 'auto') mode = r.computedTokens >= ir.preemption.swapMinTokens && ir.freeCpu >= r.blocksHeld ? 'swap' : 'recompute';
  if (mode === 'swap' && ir.freeCpu < r.blocksHeld) mode = 'recompute';
  if (mode === 'swap') ir.freeCpu -= r.blocksHeld;
  ir.rPreempt[v] = mode === 'swap' ? PREEMPT_SWAP : PREEMPT_RECOMPUTE;
  ir.freeGpu += r.blocksHeld;
  ir.preemptions++;
}

/**
 * A running request's slack against its SLO, ms, for victim selection: before its first token,
 * the time left to its TTFT deadline; after, how far ahead of the TPOT pace it is
 * (`firstToken + tpot × generated − now`). Empty when the request has no such target.
 */
function sloSlack(r: SchedRequest, nowUs: number): { sloSlackMs?: number } {
  if (r.generatedTokens === 0) return r.ttftMs === undefined ? {} : { sloSlackMs: (r.arrivalUs - nowUs) / 1000 + r.ttftMs };
  const ft = r.firstTokenUs;
  if (r.tpotMs === undefined || ft === undefined || ft < 0) return {};
  return { sloSlackMs: (ft - nowUs) / 1000 + r.tpotMs * r.generatedTokens };
}

/** Picks the next victim among live running requests (may be `self`); -1 when none. */
function pickVictim(ir: StepIR, self: number, required: number, analyses: SchedAnalyses): { v: number; mode?: 'recompute' | 'swap' } {
  const running = ir.state.running;
  const rule = ir.preemption.victim;
  const selector = analyses.victimSelector;
  if (rule === 'selector' && selector) {
    const cands: VictimCandidate[] = [];
    const idx: number[] = [];
    for (let i = 0; i < ir.nR; i++) {
      if (i === self || ir.rPreempt[i] !== PREEMPT_NONE) continue;
      const r = running[i]!;
      idx.push(i);
      cands.push({
        requestId: r.id,
        blocks: r.blocksHeld,
        promptTokens: r.promptTokens,
        computedTokens: r.computedTokens,
        generatedTokens: r.generatedTokens,
        remainingTokens: r.predictedRemainingTokens ?? Math.max(0, r.maxTokens - r.generatedTokens),
        admittedUs: r.admittedUs,
        priority: r.priority,
        ...sloSlack(r, ir.state.nowUs),
      });
    }
    const sel = cands.length > 0 ? selector.selectVictims(cands, required, ir.state.nowUs) : undefined;
    const first = sel?.victims[0];
    if (!first) return { v: self };
    const k = cands.findIndex((c) => c.requestId === first.requestId);
    return k < 0 ? { v: self } : { v: idx[k] as number, mode: first.mode };
  }
  let best = -1;
  for (let i = 0; i < ir.nR; i++) {
    if (ir.rPreempt[i] !== PREEMPT_NONE) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const a = running[i]!;
    const b = running[best]!;
    let better: boolean;
    if (rule === 'fewest-generated') {
      // SGLang retracts requests with the fewest output tokens, longest prompts first
      better = a.generatedTokens < b.generatedTokens || (a.generatedTokens === b.generatedTokens && a.promptTokens > b.promptTokens);
    } else if (rule === 'lowest-priority') {
      better = a.priority < b.priority || (a.priority === b.priority && a.admittedUs >= b.admittedUs);
    } else {
      // vLLM pops the tail of `running` (the most recently admitted); later index wins ties
      better = a.admittedUs >= b.admittedUs;
    }
    if (better) best = i;
  }
  return { v: best };
}

/**
 * Frees `blocks` GPU blocks: evictable prefix blocks first, then (for a running request `self`
 * ≥ 0) preemption victims. Returns false when it could not (or `self` itself was preempted).
 */
function makeRoom(ir: StepIR, blocks: number, self: number, analyses: SchedAnalyses): boolean {
  while (ir.freeGpu < blocks) {
    if (ir.evictable > 0) {
      const take = Math.min(ir.evictable, blocks - ir.freeGpu);
      ir.evictable -= take;
      ir.evicted += take;
      ir.freeGpu += take;
      continue;
    }
    if (self < 0 || ir.preemption.mode === 'none') return false;
    const { v, mode } = pickVictim(ir, self, blocks - ir.freeGpu, analyses);
    if (v < 0) return false;
    preemptRunning(ir, v, mode);
    if (v === self) return false;
  }
  return true;
}

/**
 * Preempts the lowest-priority live running request below `priority` (recompute) and takes its
 * predicted footprint off the admission projection; false when none.
 */
function preemptLowerPriority(ir: StepIR, priority: number): boolean {
  let best = -1;
  for (let i = 0; i < ir.nR; i++) {
    if (ir.rPreempt[i] !== PREEMPT_NONE) continue;
    const r = ir.state.running[i]!;
    if (r.priority >= priority) continue;
    if (best < 0 || r.priority < ir.state.running[best]!.priority) best = i;
  }
  if (best < 0) return false;
  preemptRunning(ir, best, 'recompute');
  const adm = ir.admission;
  if (adm !== null) adm.projectedBlocks -= adm.runningFootprint[best] ?? 0;
  return true;
}

/**
 * Schedules the step (see the module summary). Idempotent per step: a second call is a no-op.
 * @returns counts for statistics.
 */
export function materialize(ir: StepIR, analyses: SchedAnalyses): MaterializeCounts {
  const counts: MaterializeCounts = { preempted: 0, admitted: 0, evictedPrefixBlocks: 0, stalled: 0 };
  if (ir.materialized) return counts;
  ir.materialized = true;
  const s = ir.state;
  const bs = s.kv.blockSize;
  const phase = ir.phase;
  ir.tokensLeft = ir.tokenBudget;

  // 1. running requests
  const order = ir.rKeyCount === 0 ? null : ir.runningOrder();
  for (let k = 0; k < ir.nR; k++) {
    if (ir.tokensLeft <= 0) break;
    const i = order === null ? k : (order[k] as number);
    if (ir.rPreempt[i] !== PREEMPT_NONE) continue;
    const r = s.running[i]!;
    const need = r.promptTokens + r.generatedTokens - r.computedTokens;
    if (need <= 0) continue;
    const prefilling = r.computedTokens < r.promptTokens;
    if ((phase === 'prefill' && !prefilling) || (phase === 'decode' && prefilling)) continue;
    let n = Math.min(need , ir.tokensLeft);
    if (prefilling && ir.longPrefillTokens > 0 && n > ir.longPrefillTokens) n = ir.longPrefillTokens;
    if (!ir.chunking && prefilling && n < need) continue;
    const blocks = Math.max(0, blocksFor(r.computedTokens + n, bs) - r.blocksHeld);
    if (!makeRoom(ir, blocks, i, analyses)) {
      counts.stalled++;
      continue;
    }
    ir.rTokens[i] = n;
    ir.rNewBlocks[i] = blocks;
    ir.freeGpu -= blocks;
    ir.tokensLeft -= n;
    ir.schedOrder[ir.nSched++] = i;
  }
  let live = ir.nR - ir.preemptions;

  // 2. waiting requests (vLLM admits none in a step that preempted)
  if (ir.preemptions === 0 || ir.admitAfterPreempt) {
    const adm = ir.admission;
    const nW = ir.nW;
    // lazy order: a binary heap over the pushed keys, so only the popped prefix is sorted
    const packed = ir.wKeyCount === 1 ? buildPackedHeap(ir) : null;
    const heap = packed === null && ir.wKeyCount > 0 ? buildHeap(ir) : null;
    let heapSize = nW;
    let seq = 0;
    let deferred = 0;
    while (seq < nW) {
      let w: number;
      if (packed !== null) {
        w = (packed[0] as number) % nW;
        heapSize--;
        packed[0] = packed[heapSize] as number;
        siftDownPacked(packed, 0, heapSize);
      } else if (heap === null) w = seq;
      else {
        w = heap[0] as number;
        heapSize--;
        heap[0] = heap[heapSize] as number;
        siftDown(ir, heap, 0, heapSize);
      }
      seq++;
      if (ir.wDecision[w] !== DECISION_NONE) continue;
      if (live >= ir.maxSeqs || ir.tokensLeft <= 0) break;
      const r = s.waiting[w]!;
      const swapped = r.status === 'swapped';
      let start: number;
      let cached = 0;
      let held = r.blocksHeld;
      if (swapped || r.computedTokens > 0) start = r.computedTokens;
      else {
        // the last prompt token is always computed, never served from cache (vLLM)
        const cb = Math.max(0, Math.min(Math.floor(r.cachedPrefixTokens / bs), Math.floor((r.promptTokens - 1) / bs)));
        cached = cb * bs;
        start = cached;
        held += cb;
      }
      const need = r.promptTokens + r.generatedTokens - start;
      if (need <= 0) continue;
      const prefilling = start < r.promptTokens;
      if (phase === 'decode' && prefilling && !swapped) {
        ir.decide(w, DECISION_DEFER, 'pd-needs-prefill');
        continue;
      }
      let n = Math.min(need , ir.tokensLeft);
      if (prefilling && ir.longPrefillTokens > 0 && n > ir.longPrefillTokens) n = ir.longPrefillTokens;
      if (!ir.chunking && n < need) continue;
      let added = 0;
      if (adm !== null) {
        const fp = adm.footprint(w);
        ir.wFootprint[w] = fp;
        if (fp < 0) {
          ir.decide(w, DECISION_REJECT, 'exceeds-capacity');
          continue;
        }
        added = Math.max(0, fp - held);
        while (adm.projectedBlocks + added > adm.limitBlocks) {
          if (adm.preemptForPriority && preemptLowerPriority(ir, r.priority)) {
            live--;
            continue;
          }
          break;
        }
        if (adm.projectedBlocks + added > adm.limitBlocks) {
          ir.decide(w, DECISION_DEFER, 'predicted-footprint');
          // backfill looks a bounded window past the first deferral, never past a starved
          // request, and not at all when no request could fit
          if (adm.backfill && deferred++ < adm.backfillWindow && adm.projectedBlocks < adm.limitBlocks && s.nowUs - r.arrivalUs < adm.starvationUs) continue;
          break;
        }
      }
      const reserve = ir.wReserve[w] as number;
      const target = Math.max(blocksFor(start + n, bs), reserve);
      const newBlocks = Math.max(0, target - held);
      const reload = swapped ? r.blocksHeld : 0;
      let fits = makeRoom(ir, newBlocks + reload, -1, analyses);
      while (!fits && adm !== null && adm.preemptForPriority && preemptLowerPriority(ir, r.priority)) {
        live--;
        fits = makeRoom(ir, newBlocks + reload, -1, analyses);
      }
      if (!fits) {
        ir.decide(w, DECISION_DEFER, 'no-free-blocks');
        break;
      }
      ir.wTokens[w] = n;
      ir.wNewBlocks[w] = newBlocks;
      ir.wStart[w] = start;
      ir.wCached[w] = cached;
      ir.freeGpu -= newBlocks + reload;
      ir.freeCpu += reload;
      ir.tokensLeft -= n;
      if (adm !== null) adm.projectedBlocks += added;
      live++;
      counts.admitted++;
      ir.schedOrder[ir.nSched++] = ~w;
    }
  }
  counts.preempted = ir.preemptions;
  counts.evictedPrefixBlocks = ir.evicted;
  return counts;
}

let heapBuf = new Int32Array(1024);

function siftDown(ir: StepIR, h: Int32Array, i: number, n: number): void {
  const x = h[i] as number;
  if (ir.wKeyCount === 1) {
    // one key: compare inline (the common case), index breaks ties
    const k = ir.wKeys[0] as Float64Array;
    const kx = k[x] as number;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let hc = h[c] as number;
      let kc = k[hc] as number;
      const r = c + 1;
      if (r < n) {
        const hr = h[r] as number;
        const kr = k[hr] as number;
        if (kr < kc || (kr === kc && hr < hc)) {
          c = r;
          hc = hr;
          kc = kr;
        }
      }
      if (!(kc < kx || (kc === kx && hc < x))) break;
      h[i] = hc;
      i = c;
    }
    h[i] = x;
    return;
  }
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    const r = c + 1;
    if (r < n && ir.waitingBefore(h[r] as number, h[c] as number)) c = r;
    if (!ir.waitingBefore(h[c] as number, x)) break;
    h[i] = h[c] as number;
    i = c;
  }
  h[i] = x;
}

function buildHeap(ir: StepIR): Int32Array {
  const n = ir.nW;
  if (heapBuf.length < n) heapBuf = new Int32Array(Math.max(n, heapBuf.length * 2));
  const h = heapBuf;
  for (let i = 0; i < n; i++) h[i] = i;
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(ir, h, i, n);
  return h;
}

let packedBuf = new Float64Array(1024);

function siftDownPacked(h: Float64Array, i: number, n: number): void {
  const x = h[i] as number;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    let hc = h[c] as number;
    const r = c + 1;
    if (r < n && (h[r] as number) < hc) {
      c = r;
      hc = h[r] as number;
    }
    if (!(hc < x)) break;
    h[i] = hc;
    i = c;
  }
  h[i] = x;
}

/**
 * With one integer key, packs `(key - min) * n + index` into one exact double, so the heap
 * compares plain numbers (ties still break by index). Null when the keys do not fit.
 */
function buildPackedHeap(ir: StepIR): Float64Array | null {
  const n = ir.nW;
  const k = ir.wKeys[0] as Float64Array;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = k[i] as number;
    if (!Number.isInteger(v)) return null;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if ((max - min + 1) * n > Number.MAX_SAFE_INTEGER) return null;
  if (packedBuf.length < n) packedBuf = new Float64Array(Math.max(n, packedBuf.length * 2));
  const h = packedBuf;
  for (let i = 0; i < n; i++) h[i] = ((k[i] as number) - min) * n + i;
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDownPacked(h, i, n);
  return h;
}
