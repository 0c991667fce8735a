/**
 * Test oracle (not shipped): vLLM v1's scheduling policy written out by hand as a
 * {@link StepPlanner}, independent of scheduler-IR, so the `vllm-default` pipeline can be checked
 * against it. Running requests first in running requests first in
 * admission order (decode 1 token, or the next prefill chunk), preempting the most recently
 * admitted running request when blocks run out; then, only if nothing was preempted, waiting
 * requests in FCFS order with chunked prefill until the token budget, `max_num_seqs` or the
 * free blocks run out (head-of-line blocking, as vLLM).
 *
 * Token model (vLLM's): a request has `promptTokens + generatedTokens` known tokens, of which
 * `computedTokens` have KV; a step computes up to all pending ones, and a step that computes the
 * last pending token samples one new token.
 *
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py (`Scheduler.schedule`)
 */
import type { PreemptionMode } from '@kvmgr/core';
import type { PlanOp, SchedRequest, SchedState, StepPlan, StepPlanner } from '../../src/index.js';

/** Options of {@link createFcfsPlanner}. */
export interface FcfsPlannerOptions {
  /** How running requests are preempted. @default 'recompute' */
  readonly preemption?: PreemptionMode;
  /** Name reported by the planner. @default 'builtin-fcfs' */
  readonly name?: string;
}

/** Tokens a request still has to compute before it samples its next token. */
export function pendingTokens(r: SchedRequest): number {
  return r.promptTokens + r.generatedTokens - r.computedTokens;
}

/**
 * Creates the built-in vLLM-default planner.
 * @param options - preemption mode.
 * @returns a {@link StepPlanner}.
 */
export function createFcfsPlanner(options: FcfsPlannerOptions = {}): StepPlanner {
  const mode: PreemptionMode = options.preemption ?? 'recompute';
  return {
    name: options.name ?? 'builtin-fcfs',
    plan(state: SchedState): StepPlan {
      const bs = state.kv.blockSize;
      const ops: PlanOp[] = [];
      const work: PlanOp[] = [];
      let budget = state.budgets.tokenBudget;
      let free = state.kv.freeBlocks.gpu;
      let prefillTokens = 0;
      let decodeTokens = 0;
      let newBlocksTotal = 0;
      let preemptions = 0;
      const running = state.running;
      let end = running.length;
      let seqs = 0;
      for (let i = 0; i < end && budget > 0; i++) {
        const r = running[i] as SchedRequest;
        const pending = pendingTokens(r);
        if (pending <= 0) continue;
        const n = Math.min(pending, budget);
        const need = Math.max(0, Math.ceil((r.computedTokens + n) / bs) - r.blocksHeld);
        let selfPreempted = false;
        while (need > free) {
          const victim = running[end - 1] as SchedRequest;
          end--;
          ops.push({ op: 'preempt', requestId: victim.id, mode, freedBlocks: victim.blocksHeld });
          preemptions++;
          free += victim.blocksHeld;
          if (victim === r) {
            selfPreempted = true;
            break;
          }
        }
        if (selfPreempted) break;
        free -= need;
        budget -= n;
        newBlocksTotal += need;
        seqs++;
        if (r.computedTokens >= r.promptTokens && n === 1) {
          decodeTokens += 1;
          work.push({ op: 'decode', requestId: r.id, tokens: 1, newBlocks: need });
        } else {
          prefillTokens += n;
          work.push({ op: 'prefill', requestId: r.id, tokens: n, startToken: r.computedTokens, cachedTokens: 0, newBlocks: need });
        }
      }
      if (preemptions === 0) {
        let numRunning = end;
        for (const r of state.waiting) {
          if (budget <= 0 || numRunning >= state.budgets.maxSeqs) break;
          if (Math.ceil((r.promptTokens + 1) / bs) > state.kv.totalBlocks.gpu) {
            ops.push({ op: 'reject', requestId: r.id, reason: 'exceeds-capacity' });
            continue;
          }
          let need: number;
          let start: number;
          let cached = 0;
          if (r.status === 'swapped') {
            start = r.computedTokens;
            need = r.blocksHeld;
          } else {
            cached = r.computedTokens === 0 ? r.cachedPrefixTokens : 0;
            start = Math.max(r.computedTokens, cached);
            need = 0;
          }
          const pending = r.promptTokens + r.generatedTokens - start;
          const n = Math.min(pending, budget);
          need += Math.max(0, Math.ceil((start + n) / bs) - (r.status === 'swapped' ? r.blocksHeld : Math.floor(cached / bs)));
          if (need > free) break;
          free -= need;
          budget -= n;
          newBlocksTotal += need;
          numRunning++;
          seqs++;
          ops.push({ op: 'admit', requestId: r.id, reserveBlocks: 0 });
          if (n === 1 && start >= r.promptTokens) {
            decodeTokens += 1;
            work.push({ op: 'decode', requestId: r.id, tokens: 1, newBlocks: need });
          } else {
            prefillTokens += n;
            work.push({ op: 'prefill', requestId: r.id, tokens: n, startToken: start, cachedTokens: cached, newBlocks: need });
          }
        }
      }
      for (const w of work) ops.push(w);
      const scheduled = prefillTokens + decodeTokens;
      return {
        ops,
        scheduledTokens: scheduled,
        prefillTokens,
        decodeTokens,
        scheduledSeqs: seqs,
        newBlocks: newBlocksTotal,
        freeBlocksAfter: free,
        preemptions,
        batchingEfficiency: scheduled / state.budgets.tokenBudget,
      };
    },
  };
}
