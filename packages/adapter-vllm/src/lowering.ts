/**
 * vLLM's schedule lowering: a scheduler-IR plan → vLLM v1's `SchedulerOutput` shape (camel-cased,
 * with token and block counts instead of ids), so a kvmgr plan can be compared with, or handed
 * to, what vLLM's own scheduler would emit for the same step.
 *
 * @see vllm-project/vllm:vllm/v1/core/sched/output.py
 */
import type { Lowering, SchedRequest } from '@kvmgr/scheduler-ir';

/** A request scheduled for the first time (vLLM `NewRequestData`). */
export interface VllmNewRequestData {
  readonly reqId: string;
  readonly promptTokenCount: number;
  /** Tokens computed before this step (prefix-cache hits included). */
  readonly numComputedTokens: number;
  /** Blocks allocated this step. */
  readonly numNewBlocks: number;
}

/** Requests scheduled before, or resumed (vLLM `CachedRequestData`), as parallel arrays. */
export interface VllmCachedRequestData {
  readonly reqIds: string[];
  readonly resumedFromPreemption: boolean[];
  readonly numComputedTokens: number[];
  readonly numNewBlocks: number[];
}

/** vLLM v1 `SchedulerOutput`, camel-cased, with counts instead of token/block ids. */
export interface VllmSchedulerOutput {
  readonly scheduledNewReqs: VllmNewRequestData[];
  readonly scheduledCachedReqs: VllmCachedRequestData;
  /** Request id → tokens scheduled this step. */
  readonly numScheduledTokens: Record<string, number>;
  readonly totalNumScheduledTokens: number;
  readonly preemptedReqIds: string[];
  /** kvmgr extension: requests rejected this step (vLLM would fail them at the API). */
  readonly rejectedReqIds: string[];
}

/**
 * The vLLM v1 lowering. `lower(state, plan)` walks `plan.ops` in order: `prefill`/`decode` of a
 * request admitted this step (and not resumed) → `scheduledNewReqs`; every other scheduled request
 * → `scheduledCachedReqs` (`resumedFromPreemption` when a preempted or swapped request is
 * re-admitted); `preempt` → `preemptedReqIds`; `reject` → `rejectedReqIds`. Every request an op
 * names must be in `state.waiting` or `state.running`.
 */
export const vllmLowering: Lowering<VllmSchedulerOutput> = {
  name: 'vllm',
  lower(state, plan) {
    const byId = new Map<string, SchedRequest>();
    for (const r of state.waiting) byId.set(r.id, r);
    for (const r of state.running) byId.set(r.id, r);
    const out = {
      scheduledNewReqs: [] as VllmNewRequestData[],
      scheduledCachedReqs: { reqIds: [], resumedFromPreemption: [], numComputedTokens: [], numNewBlocks: [] } as VllmCachedRequestData,
      numScheduledTokens: {} as Record<string, number>,
      totalNumScheduledTokens: 0,
      preemptedReqIds: [] as string[],
      rejectedReqIds: [] as string[],
    };
    const admitted = new Set<string>();
    for (const op of plan.ops) {
      if (op.op === 'admit') admitted.add(op.requestId);
      else if (op.op === 'preempt') out.preemptedReqIds.push(op.requestId);
      else if (op.op === 'reject') out.rejectedReqIds.push(op.requestId);
      else if (op.op === 'prefill' || op.op === 'decode') {
        const r = byId.get(op.requestId)!;
        const computed = op.op === 'prefill' ? op.startToken : r.computedTokens;
        out.numScheduledTokens[op.requestId] = op.tokens;
        out.totalNumScheduledTokens += op.tokens;
        const resumed = r.status === 'preempted' || r.status === 'swapped';
        if (admitted.has(op.requestId) && !resumed) {
          out.scheduledNewReqs.push({ reqId: r.id, promptTokenCount: r.promptTokens, numComputedTokens: computed, numNewBlocks: op.newBlocks });
        } else {
          const c = out.scheduledCachedReqs;
          c.reqIds.push(r.id);
          c.resumedFromPreemption.push(resumed && admitted.has(op.requestId));
          c.numComputedTokens.push(computed);
          c.numNewBlocks.push(op.newBlocks);
        }
      }
    }
    return out;
  },
};
