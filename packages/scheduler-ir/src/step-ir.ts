/**
 * `StepIR`: the `sched.step` op under construction. It holds the input state (read-only), the
 * attributes that policy passes set (order keys, admission, reservation, preemption, phase),
 * and per-request working arrays that the materializing pass (`chunked-prefill`) fills.
 * One instance is reused across steps, so a step allocates little beyond its plan.
 */
import type { PreemptionMode } from '@kvmgr/core';
import type { DeferReason, PlanOp, RejectReason, SchedState, StepPlan, StepRole } from './ir.js';

/** No decision yet. */
export const DECISION_NONE = 0;
/** Deferred (reason in `wReason`). */
export const DECISION_DEFER = 1;
/** Rejected (reason in `wReason`). */
export const DECISION_REJECT = 2;

/** How a request's slot is preempted: 0 = not preempted. */
export const PREEMPT_NONE = 0;
/** Preempted by recompute: blocks freed, KV recomputed on readmission. */
export const PREEMPT_RECOMPUTE = 1;
/** Preempted by swap: blocks moved to the CPU tier and reloaded on readmission. */
export const PREEMPT_SWAP = 2;

/** Built-in victim orders. */
export type VictimRule = 'newest' | 'fewest-generated' | 'lowest-priority' | 'selector';

/** Preemption attribute (set by `memory-aware-preemption`; vLLM's rule when unset). */
export interface PreemptionAttr {
  mode: PreemptionMode | 'auto' | 'none';
  victim: VictimRule;
  /** `auto` swaps a victim with at least this many computed tokens when the CPU tier has room. */
  swapMinTokens: number;
}

/** Admission attribute (set by `admission`). */
export interface AdmissionAttr {
  /** Predicted total GPU blocks may not exceed this. */
  limitBlocks: number;
  /** Predicted peak blocks of what is running (updated as requests are admitted). */
  projectedBlocks: number;
  /** Keep looking past a deferred request (unless it is starved). */
  backfill: boolean;
  /** Max waiting requests examined past the first deferral. */
  backfillWindow: number;
  /** A request waiting longer than this (µs) is never skipped. */
  starvationUs: number;
  /** Preempt lower-priority running requests for a higher-priority waiting one. */
  preemptForPriority: boolean;
  /** Predicted footprint of each running request, blocks (index = position in `running`). */
  runningFootprint: Float64Array;
  /**
   * Predicted footprint of waiting request `w`, blocks (called only for requests the step
   * reaches); -1 = can never fit (rejected `exceeds-capacity`).
   */
  footprint: (w: number) => number;
}

/** vLLM's rule, used when no preemption pass ran: recompute the most recently admitted. */
const VLLM_PREEMPTION: PreemptionAttr = Object.freeze({ mode: 'recompute', victim: 'newest', swapMinTokens: 1024 });

const EMPTY_STATE: SchedState = {
  nowUs: 0,
  waiting: [],
  running: [],
  kv: { blockSize: 16, freeBlocks: { gpu: 0, cpu: 0, disk: 0 }, totalBlocks: { gpu: 0, cpu: 0, disk: 0 }, evictablePrefixBlocks: 0 },
  budgets: { tokenBudget: 8192, maxSeqs: 1024 },
};

/** Blocks needed for `tokens` tokens. */
export function blocksFor(tokens: number, blockSize: number): number {
  return tokens <= 0 ? 0 : Math.ceil(tokens / blockSize);
}

function grow<T extends Int32Array | Float64Array | Uint8Array>(a: T, n: number, make: (n: number) => T): T {
  return a.length >= n ? a : make(Math.max(n, a.length * 2, 16));
}

/** The step op under construction. Fields are public so passes can read and write them. */
export class StepIR {
  state: SchedState = EMPTY_STATE;
  nW = 0;
  nR = 0;
  // waiting-side working arrays (index = position in state.waiting)
  wDecision = new Uint8Array(16);
  wReason: (DeferReason | RejectReason | undefined)[] = [];
  wTokens = new Int32Array(16);
  wNewBlocks = new Int32Array(16);
  wStart = new Int32Array(16);
  wCached = new Int32Array(16);
  /** Blocks to reserve for the request's lifetime at admission (0 = grow on demand). */
  wReserve = new Int32Array(16);
  /** Predicted footprint in blocks (admission); -1 when not computed. */
  wFootprint = new Float64Array(16);
  // running-side working arrays (index = position in state.running)
  rTokens = new Int32Array(16);
  rNewBlocks = new Int32Array(16);
  rPreempt = new Uint8Array(16);
  /** Order keys pushed by ordering passes; the last pushed is the primary key (stable sorts). */
  wKeys: Float64Array[] = [];
  wKeyCount = 0;
  rKeys: Float64Array[] = [];
  rKeyCount = 0;
  /** Scheduled entries in schedule order: running index `i` as `i`, waiting index `w` as `~w`. */
  schedOrder = new Int32Array(16);
  nSched = 0;
  // attributes
  tokenBudget = 8192;
  maxSeqs = 1024;
  chunking = true;
  /** Max prefill tokens of one request per step (vLLM `long_prefill_token_threshold`); 0 = none. */
  longPrefillTokens = 0;
  preemption: PreemptionAttr = VLLM_PREEMPTION;
  admission: AdmissionAttr | null = null;
  /** Schedule waiting requests even in a step that preempted (vLLM does not). */
  admitAfterPreempt = false;
  phase: StepRole = 'both';
  // accounting
  freeGpu = 0;
  freeCpu = 0;
  evictable = 0;
  evicted = 0;
  tokensLeft = 0;
  preemptions = 0;
  materialized = false;

  /**
   * Prepares for a new step over `state` (arrays reused, grown when needed).
   * @param state - the step's input; not modified.
   */
  reset(state: SchedState): void {
    this.state = state;
    const nW = state.waiting.length;
    const nR = state.running.length;
    this.nW = nW;
    this.nR = nR;
    this.wDecision = grow(this.wDecision, nW, (n) => new Uint8Array(n));
    this.wTokens = grow(this.wTokens, nW, (n) => new Int32Array(n));
    this.wNewBlocks = grow(this.wNewBlocks, nW, (n) => new Int32Array(n));
    this.wStart = grow(this.wStart, nW, (n) => new Int32Array(n));
    this.wCached = grow(this.wCached, nW, (n) => new Int32Array(n));
    this.wReserve = grow(this.wReserve, nW, (n) => new Int32Array(n));
    this.wFootprint = grow(this.wFootprint, nW, (n) => new Float64Array(n));
    this.rTokens = grow(this.rTokens, nR, (n) => new Int32Array(n));
    this.rNewBlocks = grow(this.rNewBlocks, nR, (n) => new Int32Array(n));
    this.rPreempt = grow(this.rPreempt, nR, (n) => new Uint8Array(n));
    this.schedOrder = grow(this.schedOrder, nW + nR, (n) => new Int32Array(n));
    this.wDecision.fill(0, 0, nW);
    this.wTokens.fill(0, 0, nW);
    this.wNewBlocks.fill(0, 0, nW);
    this.wReserve.fill(0, 0, nW);
    this.wFootprint.fill(-1, 0, nW);
    this.rTokens.fill(0, 0, nR);
    this.rNewBlocks.fill(0, 0, nR);
    this.rPreempt.fill(0, 0, nR);
    if (this.wReason.length > 0) this.wReason.length = 0;
    this.wKeyCount = 0;
    this.rKeyCount = 0;
    this.nSched = 0;
    this.tokenBudget = state.budgets.tokenBudget;
    this.maxSeqs = state.budgets.maxSeqs;
    this.chunking = true;
    this.longPrefillTokens = 0;
    this.preemption = VLLM_PREEMPTION;
    this.admission = null;
    this.admitAfterPreempt = false;
    this.phase = state.role ?? 'both';
    this.freeGpu = state.kv.freeBlocks.gpu;
    this.freeCpu = state.kv.freeBlocks.cpu;
    this.evictable = state.kv.evictablePrefixBlocks;
    this.evicted = 0;
    this.tokensLeft = this.tokenBudget;
    this.preemptions = 0;
    this.materialized = false;
  }

  /** Marks waiting request `w` deferred or rejected, with a reason. */
  decide(w: number, decision: typeof DECISION_DEFER | typeof DECISION_REJECT, reason: DeferReason | RejectReason): void {
    this.wDecision[w] = decision;
    this.wReason[w] = reason;
  }

  /** Pushes a new primary order key for the waiting queue; fill `key[w]` (ascending = earlier). */
  pushWaitingKey(): Float64Array {
    if (this.wKeyCount === this.wKeys.length) this.wKeys.push(new Float64Array(Math.max(16, this.nW)));
    let k = this.wKeys[this.wKeyCount] as Float64Array;
    if (k.length < this.nW) this.wKeys[this.wKeyCount] = k = new Float64Array(Math.max(this.nW, k.length * 2));
    this.wKeyCount++;
    return k;
  }

  /** Pushes a new primary order key for the running queue; fill `key[i]` (ascending = earlier). */
  pushRunningKey(): Float64Array {
    if (this.rKeyCount === this.rKeys.length) this.rKeys.push(new Float64Array(Math.max(16, this.nR)));
    let k = this.rKeys[this.rKeyCount] as Float64Array;
    if (k.length < this.nR) this.rKeys[this.rKeyCount] = k = new Float64Array(Math.max(this.nR, k.length * 2));
    this.rKeyCount++;
    return k;
  }

  /** True when waiting `a` orders before `b` under the pushed keys (index breaks ties). */
  waitingBefore(a: number, b: number): boolean {
    for (let k = this.wKeyCount - 1; k >= 0; k--) {
      const keys = this.wKeys[k] as Float64Array;
      const ka = keys[a] as number;
      const kb = keys[b] as number;
      if (ka < kb) return true;
      if (ka > kb) return false;
    }
    return a < b;
  }

  private runningBefore(a: number, b: number): boolean {
    for (let k = this.rKeyCount - 1; k >= 0; k--) {
      const keys = this.rKeys[k] as Float64Array;
      const ka = keys[a] as number;
      const kb = keys[b] as number;
      if (ka < kb) return true;
      if (ka > kb) return false;
    }
    return a < b;
  }

  /** The full waiting order (sorts; for printing and tests — scheduling pops lazily). */
  waitingOrder(): number[] {
    const idx = Array.from({ length: this.nW }, (_, i) => i);
    return idx.sort((a, b) => (this.waitingBefore(a, b) ? -1 : this.waitingBefore(b, a) ? 1 : 0));
  }

  /** The running order. */
  runningOrder(): number[] {
    const idx = Array.from({ length: this.nR }, (_, i) => i);
    if (this.rKeyCount === 0) return idx;
    return idx.sort((a, b) => (this.runningBefore(a, b) ? -1 : this.runningBefore(b, a) ? 1 : 0));
  }

  /**
   * Emits the plan from the working arrays. Ops: evict-prefix, preempt (+offload), reject,
   * defer, then for each scheduled request in schedule order: reload?, admit?, prefill|decode.
   */
  toPlan(): StepPlan {
    const s = this.state;
    const ops: PlanOp[] = [];
    if (this.evicted > 0) ops.push({ op: 'evict-prefix', blocks: this.evicted });
    let preemptions = 0;
    let freed = 0;
    for (let i = 0; i < this.nR; i++) {
      const p = this.rPreempt[i] as number;
      if (p === PREEMPT_NONE) continue;
      const r = s.running[i]!;
      preemptions++;
      freed += r.blocksHeld;
      ops.push({ op: 'preempt', requestId: r.id, mode: p === PREEMPT_SWAP ? 'swap' : 'recompute', freedBlocks: r.blocksHeld });
      if (p === PREEMPT_SWAP) ops.push({ op: 'offload', requestId: r.id, blocks: r.blocksHeld, from: 'gpu', to: 'cpu' });
    }
    for (let w = 0; w < this.nW; w++) {
      const d = this.wDecision[w];
      if (d === DECISION_REJECT) ops.push({ op: 'reject', requestId: s.waiting[w]!.id, reason: this.wReason[w] as RejectReason });
      else if (d === DECISION_DEFER) ops.push({ op: 'defer', requestId: s.waiting[w]!.id, reason: this.wReason[w] as DeferReason });
    }
    let prefillTokens = 0;
    let decodeTokens = 0;
    let seqs = 0;
    let newBlocks = 0;
    let reloaded = 0;
    for (let k = 0; k < this.nSched; k++) {
      const e = this.schedOrder[k] as number;
      if (e >= 0) {
        const n = this.rTokens[e] as number;
        if (n === 0 || this.rPreempt[e] !== PREEMPT_NONE) continue;
        const r = s.running[e]!;
        const nb = this.rNewBlocks[e] as number;
        seqs++;
        newBlocks += nb;
        if (r.computedTokens >= r.promptTokens) {
          decodeTokens += n;
          ops.push({ op: 'decode', requestId: r.id, tokens: n, newBlocks: nb });
        } else {
          prefillTokens += n;
          ops.push({ op: 'prefill', requestId: r.id, tokens: n, startToken: r.computedTokens, cachedTokens: 0, newBlocks: nb });
        }
      } else {
        const w = ~e;
        const n = this.wTokens[w] as number;
        if (n === 0) continue;
        const r = s.waiting[w]!;
        const nb = this.wNewBlocks[w] as number;
        const start = this.wStart[w] as number;
        seqs++;
        newBlocks += nb;
        if (r.status === 'swapped') {
          reloaded += r.blocksHeld;
          ops.push({ op: 'reload', requestId: r.id, blocks: r.blocksHeld, from: 'cpu', to: 'gpu' });
        }
        ops.push({ op: 'admit', requestId: r.id, reserveBlocks: this.wReserve[w] as number });
        if (start >= r.promptTokens) {
          decodeTokens += n;
          ops.push({ op: 'decode', requestId: r.id, tokens: n, newBlocks: nb });
        } else {
          prefillTokens += n;
          ops.push({ op: 'prefill', requestId: r.id, tokens: n, startToken: start, cachedTokens: this.wCached[w] as number, newBlocks: nb });
        }
      }
    }
    const scheduledTokens = prefillTokens + decodeTokens;
    return {
      ops,
      scheduledTokens,
      prefillTokens,
      decodeTokens,
      scheduledSeqs: seqs,
      newBlocks,
      freeBlocksAfter: s.kv.freeBlocks.gpu + this.evicted + freed - newBlocks - reloaded,
      preemptions,
      batchingEfficiency: this.tokenBudget > 0 ? scheduledTokens / this.tokenBudget : 0,
    };
  }
}
