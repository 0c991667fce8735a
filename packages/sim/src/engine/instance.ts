/**
 * One simulated engine instance: continuous batching, one scheduler-IR plan per step, chunked
 * prefill, prefix caching (the last prompt token is always computed), KV blocks from the pool,
 * preemption by recompute or swap, CPU-tier reload (transfer time = base latency + bytes /
 * bandwidth, added to the step of the whole batch), embedding requests (workspace blocks during
 * prefill, no KV kept) and P/D roles.
 *
 * Work per step is proportional to the batch (plus the waiting requests the planner looks at);
 * there is no per-token work.
 */
import type { BlockId, InstanceRole } from '@kvmgr/core';
import type { LatencyModel, StepWork } from '../latency/types.js';
import { createStepWork } from '../latency/types.js';
import type { KvBackend } from './kv-backend.js';
import type { RequestState } from './request-state.js';
import type { PlanOp, SchedRequest, SchedState, StepPlanner } from './sched-types.js';

/** Engine limits of an instance. */
export interface InstanceLimits {
  /** Max tokens per step (vLLM `max_num_batched_tokens`). */
  readonly tokenBudget: number;
  /** Max running sequences (vLLM `max_num_seqs`). */
  readonly maxSeqs: number;
}

/** Callbacks from an instance to the cluster. */
export interface InstanceHooks {
  onFirstToken(r: RequestState, nowUs: number): void;
  onFinish(r: RequestState, nowUs: number): void;
  /** P/D: a prefill-role instance finished the prompt; the cluster moves the request on. */
  onPrefillDone(r: RequestState, nowUs: number): void;
  onReject(r: RequestState, reason: string, nowUs: number): void;
}

/** Options of {@link EngineInstance}. */
export interface EngineInstanceOptions {
  readonly id: string;
  readonly index: number;
  readonly role: InstanceRole;
  readonly kv: KvBackend;
  readonly latency: LatencyModel;
  readonly planner: StepPlanner;
  readonly limits: InstanceLimits;
  /** Waiting requests whose prefix match is refreshed before planning. @default 128 */
  readonly matchLookahead?: number;
  readonly hooks: InstanceHooks;
}

/** Cumulative counters of an instance (the time series samples differences). */
export interface InstanceCounters {
  steps: number;
  busyUs: number;
  prefillTokens: number;
  decodeTokens: number;
  /** Output tokens sampled. */
  outputTokens: number;
  promptTokens: number;
  cachedTokens: number;
  preemptions: number;
  finished: number;
  rejected: number;
  /** Transfer time charged to steps, µs. */
  transferUs: number;
  /** Σ step duration × used token slots / capacity (utilization integral), µs. */
  usedSlotUs: number;
  /** Σ step duration × (allocated-unused slots + unusable free) / capacity, µs. */
  fragSlotUs: number;
  /** Σ step duration × batch size. */
  batchUs: number;
  /** Plans that went through the planner (not the pure-decode fast path). */
  plannedSteps: number;
}

/** Counters at zero. */
export function newInstanceCounters(): InstanceCounters {
  return {
    steps: 0,
    busyUs: 0,
    prefillTokens: 0,
    decodeTokens: 0,
    outputTokens: 0,
    promptTokens: 0,
    cachedTokens: 0,
    preemptions: 0,
    finished: 0,
    rejected: 0,
    transferUs: 0,
    usedSlotUs: 0,
    fragSlotUs: 0,
    batchUs: 0,
    plannedSteps: 0,
  };
}

const EMPTY_PLAN_OPS: PlanOp[] = [];

/** A simulated engine instance. */
export class EngineInstance {
  readonly id: string;
  readonly index: number;
  readonly role: InstanceRole;
  readonly kv: KvBackend;
  readonly latency: LatencyModel;
  readonly planner: StepPlanner;
  readonly limits: InstanceLimits;
  readonly waiting: RequestState[] = [];
  readonly running: RequestState[] = [];
  readonly counters: InstanceCounters = newInstanceCounters();
  /** True while a step is running. */
  busy = false;
  /** End of the running step, µs. */
  stepEndUs = 0;
  /** Duration of the last step, µs. */
  lastStepUs = 0;
  /** Prompt tokens waiting and not yet computed (router signal). */
  queuedPrefillTokens = 0;
  private readonly byId = new Map<string, RequestState>();
  private readonly work: StepWork = createStepWork();
  private readonly state: SchedState;
  private readonly scheduled: RequestState[] = [];
  private readonly matchOut = new Int32Array(2);
  /** Scratch for the blocks a re-admitted swapped request needs beyond its swapped-in KV. */
  private readonly extraBlocks: BlockId[] = [];
  private readonly lookahead: number;
  private readonly hooks: InstanceHooks;
  private pendingTransferUs = 0;
  private unusableFree = 0;
  /** Bitset of prompt keys ever computed here (re-prefill after eviction), for keys < 2^26. */
  private readonly seen = new Uint8Array(1 << 23);
  private readonly seenBig = new Set<number>();

  constructor(o: EngineInstanceOptions) {
    this.id = o.id;
    this.index = o.index;
    this.role = o.role;
    this.kv = o.kv;
    this.latency = o.latency;
    this.planner = o.planner;
    this.limits = o.limits;
    this.lookahead = o.matchLookahead ?? 128;
    this.hooks = o.hooks;
    this.state = {
      nowUs: 0,
      waiting: this.waiting as SchedRequest[],
      running: this.running as SchedRequest[],
      kv: {
        blockSize: o.kv.blockSize,
        freeBlocks: { gpu: 0, cpu: 0, disk: 0 },
        totalBlocks: { gpu: o.kv.numBlocks, cpu: o.kv.cpuCapacity, disk: 0 },
        evictablePrefixBlocks: 0,
      },
      budgets: { tokenBudget: o.limits.tokenBudget, maxSeqs: o.limits.maxSeqs },
      // Decode instances also prefill the requests the router does not disaggregate (llm-d's
      // decode pods do); only prefill-only instances are restricted.
      role: o.role === 'prefill' ? 'prefill' : 'both',
    };
  }

  /** Requests waiting or running. */
  get load(): number {
    return this.waiting.length + this.running.length;
  }

  /** True when a step could do something. */
  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /**
   * Prompt tokens still to prefill here: waiting requests (all their pending tokens) plus the
   * unfinished prompts of running requests (a router signal; O(1)-bounded for long queues).
   */
  prefillBacklog(): number {
    let t = 0;
    // Long queues (overload) are sampled: the first 256 waiting requests, scaled to the queue.
    const w = this.waiting;
    const nw = Math.min(w.length, 256);
    for (let i = 0; i < nw; i++) {
      const r = w[i] as RequestState;
      t += r.kvTransferred ? 0 : r.promptTokens + r.generatedTokens - r.computedTokens;
    }
    if (w.length > nw) t *= w.length / nw;
    for (const r of this.running) if (r.computedTokens < r.promptTokens) t += r.promptTokens - r.computedTokens;
    return t;
  }

  /** Adds a request to the waiting queue (FCFS by arrival at this instance). */
  enqueue(r: RequestState, nowUs: number): void {
    r.enqueuedUs = nowUs;
    // A disaggregated request keeps its decode instance while it prefills here.
    if (r.prefillInstance !== this.index) r.instance = this.index;
    r.status = r.kvTransferred ? 'swapped' : 'waiting';
    if (r.kvTransferred) {
      r.blocksHeld = Math.ceil(r.computedTokens / this.kv.blockSize);
    }
    this.byId.set(r.id, r);
    this.waiting.push(r);
    if (!r.kvTransferred) this.queuedPrefillTokens += r.promptTokens;
  }

  private seenTest(key: number): boolean {
    return key < 1 << 26 ? ((this.seen[key >>> 3] as number) & (1 << (key & 7))) !== 0 : this.seenBig.has(key);
  }

  private seenSet(key: number): void {
    if (key < 1 << 26) this.seen[key >>> 3] = (this.seen[key >>> 3] as number) | (1 << (key & 7));
    else this.seenBig.add(key);
  }

  private refreshMatches(): void {
    const bs = this.kv.blockSize;
    const kv = this.kv;
    const n = Math.min(this.waiting.length, this.lookahead);
    for (let i = 0; i < n; i++) {
      const r = this.waiting[i] as RequestState;
      if (r.computedTokens !== 0 || r.status === 'swapped' || r.keys.length === 0) {
        r.cachedPrefixTokens = 0;
        continue;
      }
      const limit = Math.min(r.keys.length, Math.floor((r.promptTokens + r.generatedTokens - 1) / bs));
      // A hint for the planner (admission matches exactly): resume from the last match when its
      // last block is still cached, else rescan.
      let g = r.hintBlocks;
      if (g > 0 && !kv.hasCached(r.keys[g - 1] as number)) g = 0;
      if (g === 0) {
        kv.matchPrefix(r.keys, limit, this.matchOut);
        g = this.matchOut[0] as number;
        r.cachedPrefixTokens = (g + (this.matchOut[1] as number)) * bs;
      } else {
        while (g < limit && kv.hasCached(r.keys[g] as number)) g++;
        r.cachedPrefixTokens = g * bs;
      }
      r.hintBlocks = g;
    }
  }

  /**
   * Plans and starts one step at `nowUs`.
   * @returns the step duration, µs, or -1 when nothing could be scheduled.
   */
  startStep(nowUs: number): number {
    const w = this.work;
    w.prefillTokens = 0;
    w.decodeTokens = 0;
    w.numSeqs = 0;
    w.prefillAttnPairs = 0;
    w.decodeContextTokens = 0;
    this.pendingTransferUs = 0;
    this.scheduled.length = 0;
    const kv = this.kv;
    kv.nowUs = nowUs;
    const bs = kv.blockSize;
    let fast = this.waiting.length === 0 && this.running.length <= this.limits.tokenBudget && kv.freeBlocks >= this.running.length;
    if (fast) {
      for (const r of this.running) {
        if (r.computedTokens < r.promptTokens || r.promptTokens + r.generatedTokens - r.computedTokens !== 1) {
          fast = false;
          break;
        }
      }
    }
    if (fast) {
      for (const r of this.running) {
        if (r.computedTokens + 1 > r.blocks.length * bs) kv.allocate(1, r.blocks);
        r.blocksHeld = r.blocks.length;
        r.inflight = 1;
        w.decodeTokens++;
        w.decodeContextTokens += r.computedTokens + 1;
        this.scheduled.push(r);
      }
    } else {
      this.refreshMatches();
      const st = this.state;
      st.nowUs = nowUs;
      st.kv.freeBlocks.gpu = kv.freeBlocks;
      st.kv.freeBlocks.cpu = Math.max(0, kv.cpuCapacity - kv.cpuBlocksUsed);
      this.counters.plannedSteps++;
      const plan = this.planner.plan(st);
      this.applyPlan(plan.ops, nowUs);
    }
    w.numSeqs = this.scheduled.length;
    if (w.numSeqs === 0) {
      this.unusableFree = kv.freeBlocks;
      return -1;
    }
    this.unusableFree = this.waiting.length > 0 ? kv.freeBlocks : 0;
    const dur = this.latency.stepTimeUs(w) + this.pendingTransferUs;
    this.counters.transferUs += this.pendingTransferUs;
    this.busy = true;
    this.stepEndUs = nowUs + dur;
    this.lastStepUs = dur;
    return dur;
  }

  private applyPlan(ops: readonly PlanOp[], nowUs: number): void {
    const kv = this.kv;
    let removedRunning = 0;
    let removedWaiting = 0;
    const preempted: RequestState[] = [];
    const admitted: RequestState[] = [];
    for (const op of ops ?? EMPTY_PLAN_OPS) {
      switch (op.op) {
        case 'preempt': {
          const r = this.byId.get(op.requestId);
          if (r === undefined || r.status !== 'running') break;
          this.preempt(r, op.mode === 'swap' && kv.canSwapOut(r.blocks.length) ? 'swap' : 'recompute', nowUs);
          r.removed = true;
          removedRunning++;
          preempted.push(r);
          break;
        }
        case 'reject': {
          const r = this.byId.get(op.requestId);
          if (r === undefined || r.status === 'running') break;
          r.removed = true;
          removedWaiting++;
          this.queuedPrefillTokens -= r.promptTokens;
          if (r.status === 'swapped') kv.dropSwapped(r.blocksHeld);
          r.blocksHeld = 0;
          this.byId.delete(r.id);
          this.counters.rejected++;
          this.hooks.onReject(r, op.reason, nowUs);
          break;
        }
        case 'prefill':
        case 'decode': {
          const r = this.byId.get(op.requestId);
          if (r === undefined || r.removed) break;
          const end = op.op === 'prefill' ? op.startToken + op.tokens : r.computedTokens + op.tokens;
          if (r.status === 'running') {
            this.scheduleRunning(r, end, nowUs);
          } else if (this.admit(r, end, nowUs)) {
            r.removed = true;
            removedWaiting++;
            admitted.push(r);
          }
          break;
        }
        default:
          // admit (handled with its prefill/decode op), defer, evict-prefix (eviction is lazy,
          // at allocation), offload/reload (the CPU tier reloads at admission).
          break;
      }
    }
    if (removedWaiting > 0) {
      let k = 0;
      while (k < this.waiting.length && (this.waiting[k] as RequestState).removed) k++;
      if (k === removedWaiting) this.waiting.splice(0, k);
      else {
        let j = 0;
        for (const r of this.waiting) if (!r.removed) this.waiting[j++] = r;
        this.waiting.length = j;
      }
    }
    if (removedRunning > 0) {
      let j = 0;
      for (const r of this.running) if (!r.removed) this.running[j++] = r;
      this.running.length = j;
    }
    for (const r of preempted) r.removed = false;
    for (const r of admitted) {
      r.removed = false;
      this.running.push(r);
    }
    if (preempted.length > 0) this.waiting.unshift(...preempted);
  }

  private preempt(r: RequestState, mode: 'recompute' | 'swap', nowUs: number): void {
    r.preemptions++;
    this.counters.preemptions++;
    if (r.inflight > 0) {
      const i = this.scheduled.indexOf(r);
      if (i >= 0) this.scheduled.splice(i, 1);
      r.inflight = 0;
    }
    if (mode === 'swap') {
      const n = r.blocks.length;
      this.pendingTransferUs += this.kv.swapOut(r.blocks, nowUs);
      r.status = 'swapped';
      r.blocksHeld = n;
    } else {
      this.kv.release(r.blocks, nowUs);
      r.status = 'preempted';
      r.computedTokens = 0;
      r.committedBlocks = 0;
      r.blocksHeld = 0;
      this.queuedPrefillTokens += r.promptTokens;
    }
  }

  private scheduleRunning(r: RequestState, end: number, nowUs: number): void {
    const kv = this.kv;
    const bs = kv.blockSize;
    const total = r.promptTokens + r.generatedTokens;
    const n = Math.max(1, Math.min(end, total) - r.computedTokens);
    const need = Math.ceil((r.computedTokens + n) / bs) - r.blocks.length;
    if (need > 0 && !kv.allocate(need, r.blocks)) {
      // The plan over-committed blocks (cached blocks it counted as free were taken by an
      // admission of the same step): preempt this request instead.
      this.preempt(r, 'recompute', nowUs);
      r.removed = true;
      const i = this.running.indexOf(r);
      if (i >= 0) this.running.splice(i, 1);
      r.removed = false;
      this.waiting.unshift(r);
      return;
    }
    this.addWork(r, n);
  }

  private addWork(r: RequestState, n: number): void {
    const w = this.work;
    r.blocksHeld = r.blocks.length;
    r.inflight = n;
    if (n === 1 && r.computedTokens >= r.promptTokens && r.promptTokens + r.generatedTokens - r.computedTokens === 1) {
      w.decodeTokens++;
      w.decodeContextTokens += r.computedTokens + 1;
    } else {
      w.prefillTokens += n;
      w.prefillAttnPairs += n * (r.computedTokens + n / 2);
      if (r.computedTokens < r.maxComputed) r.reprefillTokens += Math.min(n, r.maxComputed - r.computedTokens);
      r.prefillComputed += n;
    }
    this.scheduled.push(r);
  }

  /** Admits a waiting/preempted/swapped request; false (nothing changed) when blocks are short. */
  private admit(r: RequestState, end: number, nowUs: number): boolean {
    const kv = this.kv;
    const bs = kv.blockSize;
    const total = r.promptTokens + r.generatedTokens;
    if (r.status === 'swapped') {
      const n = r.blocksHeld;
      // Blocks for the tokens this step computes beyond the swapped-in KV (the rest of a
      // prefill chunk, or the slot of the next decode token), taken first so that a shortfall
      // leaves the request swapped with nothing changed.
      const extra = Math.max(0, Math.ceil(Math.min(end, total) / bs) - n);
      const more = this.extraBlocks;
      more.length = 0;
      if (extra > 0 && !kv.allocate(extra, more)) return false;
      if (r.kvTransferred) {
        if (!kv.allocate(n, r.blocks)) {
          kv.release(more, nowUs);
          return false;
        }
      } else {
        const us = kv.swapIn(n, r.blocks);
        if (us < 0) {
          kv.release(more, nowUs);
          return false;
        }
        this.pendingTransferUs += us;
      }
      for (const b of more) r.blocks.push(b);
      more.length = 0;
      r.kvTransferred = false;
    } else {
      let g = 0;
      let c = 0;
      if (r.keys.length > 0) {
        const limit = Math.floor((total - 1) / bs);
        kv.matchPrefix(r.keys, limit, this.matchOut);
        g = this.matchOut[0] as number;
        c = this.matchOut[1] as number;
      }
      kv.acquireCached(r.keys, g, r.blocks);
      let reloadUs = 0;
      if (c > 0) {
        reloadUs = kv.reload(r.keys, g, c, r.blocks);
        // No room to reload: compute those blocks instead.
        if (reloadUs < 0) c = 0;
      }
      const cachedTok = (g + c) * bs;
      const needNew = Math.ceil(Math.min(Math.max(end, cachedTok + 1), total) / bs) - r.blocks.length;
      if (needNew > 0 && !kv.allocate(needNew, r.blocks)) {
        kv.release(r.blocks, nowUs);
        return false;
      }
      if (c > 0) {
        this.pendingTransferUs += reloadUs;
        r.reloadedTokens = r.cachedTokens < 0 ? c * bs : r.reloadedTokens;
      }
      r.computedTokens = cachedTok;
      r.committedBlocks = g + c;
      if (r.cachedTokens < 0) {
        r.cachedTokens = cachedTok;
        this.counters.promptTokens += r.promptTokens;
        this.counters.cachedTokens += cachedTok;
      }
      this.queuedPrefillTokens -= r.promptTokens;
    }
    r.status = 'running';
    r.admittedUs = nowUs;
    const n = Math.max(1, Math.min(end, total) - r.computedTokens);
    this.addWork(r, n);
    return true;
  }

  /** Ends the running step at `nowUs`: commits progress, emits tokens, finishes requests. */
  finishStep(nowUs: number): void {
    this.busy = false;
    const kv = this.kv;
    kv.nowUs = nowUs;
    const bs = kv.blockSize;
    const dur = this.lastStepUs;
    const c = this.counters;
    const pathIndex = kv.commitPrefix !== undefined;
    c.steps++;
    c.busyUs += dur;
    c.batchUs += dur * this.scheduled.length;
    c.prefillTokens += this.work.prefillTokens;
    c.decodeTokens += this.work.decodeTokens;
    let removed = 0;
    for (const r of this.scheduled) {
      if (r.inflight === 0) continue;
      const before = r.computedTokens;
      r.computedTokens += r.inflight;
      r.inflight = 0;
      const full = Math.min(Math.floor(r.computedTokens / bs), r.keys.length);
      for (let b = r.committedBlocks; b < full; b++) {
        const key = r.keys[b] as number;
        if (this.seenTest(key)) {
          // Computed here before and lost from the cache (not a concurrent duplicate, not a
          // preemption recompute, which addWork counted already).
          if ((b + 1) * bs > r.maxComputed && b * bs >= before && !kv.hasCached(key)) r.reprefillTokens += bs;
        } else this.seenSet(key);
        if (!pathIndex) kv.commit(key, r.blocks[b] as number);
      }
      if (full > r.committedBlocks) {
        // A path index (radix) caches the whole prefix [0, full) at once.
        if (pathIndex) kv.commitPrefix?.(r.keys, full, r.blocks);
        r.committedBlocks = full;
      }
      if (r.computedTokens > r.maxComputed) r.maxComputed = r.computedTokens;
      if (r.computedTokens < r.promptTokens + r.generatedTokens) continue;
      if (r.embed) {
        r.firstTokenUs = nowUs;
        this.hooks.onFirstToken(r, nowUs);
        this.finish(r, nowUs);
        removed++;
        continue;
      }
      r.generatedTokens++;
      c.outputTokens++;
      if (r.generatedTokens === 1 && r.firstTokenUs < 0) {
        r.firstTokenUs = nowUs;
        this.hooks.onFirstToken(r, nowUs);
      }
      if (r.generatedTokens >= r.outputTokens) {
        this.finish(r, nowUs);
        removed++;
      } else if (r.prefillInstance === this.index && r.instance !== this.index) {
        // P/D: the prompt is done here; the KV moves to the decode instance.
        kv.release(r.blocks, nowUs);
        r.blocksHeld = 0;
        r.removed = true;
        this.byId.delete(r.id);
        this.hooks.onPrefillDone(r, nowUs);
        removed++;
      }
    }
    // Utilization and fragmentation integrals over this step.
    let used = 0;
    let alloc = 0;
    for (const r of this.running) {
      used += r.computedTokens;
      alloc += r.blocks.length;
    }
    const cap = kv.numBlocks * bs;
    c.usedSlotUs += (dur * used) / cap;
    c.fragSlotUs += (dur * (alloc * bs - used + this.unusableFree * bs)) / cap;
    if (removed > 0) {
      let j = 0;
      for (const r of this.running) if (!r.removed) this.running[j++] = r;
      this.running.length = j;
      for (const r of this.scheduled) r.removed = false;
    }
  }

  private finish(r: RequestState, nowUs: number): void {
    this.kv.release(r.blocks, nowUs);
    r.blocksHeld = 0;
    r.finishUs = nowUs;
    r.removed = true;
    this.byId.delete(r.id);
    this.counters.finished++;
    this.hooks.onFinish(r, nowUs);
  }
}
