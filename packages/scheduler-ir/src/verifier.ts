/**
 * The plan verifier: invariants every plan must keep, checked after each pass when the pass
 * manager is asked to (and usable by engines and the simulator on any plan).
 */
import type { SchedRequest, SchedState, StepPlan } from './ir.js';
import { blocksFor } from './step-ir.js';

/** Names of the invariants. */
export type InvariantName =
  | 'token-budget'
  | 'max-seqs'
  | 'memory-gpu'
  | 'memory-cpu'
  | 'admit-and-reject'
  | 'duplicate'
  | 'unknown-request'
  | 'ref-counts';

/** A broken invariant. */
export interface Violation {
  readonly invariant: InvariantName;
  readonly message: string;
  readonly requestId?: string;
}

/**
 * Checks `plan` against `state`:
 * - `token-budget`: scheduled tokens ≤ budget; `max-seqs`: live running + admitted ≤ maxSeqs;
 * - `memory-gpu` / `memory-cpu`: allocations, reloads and offloads fit the free blocks per tier;
 * - `admit-and-reject`: no request both admitted (or scheduled) and rejected/deferred, nor
 *   scheduled and preempted; `duplicate`: one op of a kind per request, unique ids in the state;
 * - `unknown-request`: ops name requests of the right queue;
 * - `ref-counts`: freed/offloaded/reloaded blocks equal blocks held, new blocks ≥ 0 and enough for
 *   the computed tokens, evicted prefix blocks ≤ evictable, chunks within the remaining tokens.
 * @returns the first violation, or null.
 */
export function verifyPlan(state: SchedState, plan: StepPlan): Violation | null {
  const waiting = new Map<string, SchedRequest>();
  const running = new Map<string, SchedRequest>();
  for (const r of state.waiting) {
    if (waiting.has(r.id)) return { invariant: 'duplicate', message: `request ${r.id} appears twice in waiting`, requestId: r.id };
    waiting.set(r.id, r);
  }
  for (const r of state.running) {
    if (running.has(r.id) || waiting.has(r.id)) return { invariant: 'duplicate', message: `request ${r.id} appears twice in the state`, requestId: r.id };
    running.set(r.id, r);
  }
  const bs = state.kv.blockSize;
  const seen = new Set<string>();
  const admitted = new Set<string>();
  const scheduled = new Set<string>();
  const dropped = new Map<string, string>();
  const preempted = new Set<string>();
  let gpu = state.kv.freeBlocks.gpu;
  let cpu = state.kv.freeBlocks.cpu;
  let tokens = 0;
  let evicted = 0;
  for (const op of plan.ops) {
    if (op.op === 'evict-prefix') {
      evicted += op.blocks;
      gpu += op.blocks;
      if (op.blocks < 0 || evicted > state.kv.evictablePrefixBlocks) {
        return { invariant: 'ref-counts', message: `evicts ${evicted} prefix blocks, only ${state.kv.evictablePrefixBlocks} evictable` };
      }
      continue;
    }
    const id = op.requestId;
    const key = `${op.op}\u0000${id}`;
    if (seen.has(key)) return { invariant: 'duplicate', message: `two ${op.op} ops for request ${id}`, requestId: id };
    seen.add(key);
    switch (op.op) {
      case 'preempt': {
        const r = running.get(id);
        if (!r) return { invariant: 'unknown-request', message: `preempt of ${id}, which is not running`, requestId: id };
        if (scheduled.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} is both scheduled and preempted`, requestId: id };
        if (op.freedBlocks !== r.blocksHeld) return { invariant: 'ref-counts', message: `preempt of ${id} frees ${op.freedBlocks} blocks, it holds ${r.blocksHeld}`, requestId: id };
        preempted.add(id);
        gpu += op.freedBlocks;
        break;
      }
      case 'offload': {
        const r = running.get(id);
        if (!r || !preempted.has(id)) return { invariant: 'unknown-request', message: `offload of ${id}, which is not a preempted running request`, requestId: id };
        if (op.blocks !== r.blocksHeld) return { invariant: 'ref-counts', message: `offload of ${id} moves ${op.blocks} blocks, it holds ${r.blocksHeld}`, requestId: id };
        cpu -= op.blocks;
        if (cpu < 0) return { invariant: 'memory-cpu', message: `offload of ${id} needs ${op.blocks} CPU blocks, ${cpu + op.blocks} free`, requestId: id };
        break;
      }
      case 'reject':
      case 'defer': {
        if (!waiting.has(id)) return { invariant: 'unknown-request', message: `${op.op} of ${id}, which is not waiting`, requestId: id };
        if (admitted.has(id) || dropped.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} is both ${op.op}ed and ${dropped.get(id) ?? 'admitted'}`, requestId: id };
        dropped.set(id, op.op);
        break;
      }
      case 'reload': {
        const r = waiting.get(id);
        if (r?.status !== 'swapped') return { invariant: 'unknown-request', message: `reload of ${id}, which is not swapped`, requestId: id };
        if (op.blocks !== r.blocksHeld) return { invariant: 'ref-counts', message: `reload of ${id} moves ${op.blocks} blocks, it holds ${r.blocksHeld}`, requestId: id };
        gpu -= op.blocks;
        cpu += op.blocks;
        if (gpu < 0) return { invariant: 'memory-gpu', message: `reload of ${id} needs ${op.blocks} GPU blocks, ${gpu + op.blocks} free`, requestId: id };
        break;
      }
      case 'admit': {
        if (!waiting.has(id)) return { invariant: 'unknown-request', message: `admit of ${id}, which is not waiting`, requestId: id };
        if (dropped.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} is both admitted and ${dropped.get(id)}ed`, requestId: id };
        admitted.add(id);
        break;
      }
      case 'prefill':
      case 'decode': {
        const r = running.get(id) ?? waiting.get(id);
        if (!r) return { invariant: 'unknown-request', message: `${op.op} of unknown request ${id}`, requestId: id };
        if (scheduled.has(id)) return { invariant: 'duplicate', message: `request ${id} scheduled twice`, requestId: id };
        if (preempted.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} is both scheduled and preempted`, requestId: id };
        if (waiting.has(id) && !admitted.has(id)) return { invariant: 'admit-and-reject', message: `waiting request ${id} scheduled without admit`, requestId: id };
        if (dropped.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} is both scheduled and ${dropped.get(id)}ed`, requestId: id };
        scheduled.add(id);
        const start = op.op === 'prefill' ? op.startToken : r.computedTokens;
        const cached = op.op === 'prefill' ? op.cachedTokens : 0;
        if (op.tokens <= 0 || start + op.tokens > r.promptTokens + r.generatedTokens) {
          return { invariant: 'ref-counts', message: `${op.op} of ${id} computes tokens ${start}..${start + op.tokens}, it has ${r.promptTokens + r.generatedTokens}`, requestId: id };
        }
        if (op.newBlocks < 0 || r.blocksHeld + cached / bs + op.newBlocks < blocksFor(start + op.tokens, bs)) {
          return { invariant: 'ref-counts', message: `${op.op} of ${id} gets ${op.newBlocks} new blocks, too few for ${start + op.tokens} tokens`, requestId: id };
        }
        tokens += op.tokens;
        gpu -= op.newBlocks;
        if (gpu < 0) return { invariant: 'memory-gpu', message: `${op.op} of ${id} needs ${op.newBlocks} GPU blocks, ${gpu + op.newBlocks} free`, requestId: id };
        break;
      }
    }
  }
  if (tokens > state.budgets.tokenBudget) return { invariant: 'token-budget', message: `plan schedules ${tokens} tokens, budget ${state.budgets.tokenBudget}` };
  const live = state.running.length - preempted.size + admitted.size;
  if (admitted.size > 0 && live > state.budgets.maxSeqs) return { invariant: 'max-seqs', message: `plan runs ${live} sequences, max ${state.budgets.maxSeqs}` };
  for (const id of admitted) if (!scheduled.has(id)) return { invariant: 'admit-and-reject', message: `request ${id} admitted but not scheduled`, requestId: id };
  return null;
}
