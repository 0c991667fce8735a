/**
 * Request order of a cluster run: multi-turn session links, the arrival order of the requests
 * that arrive at their timestamp, the final per-request states, and the router's block ratio.
 */
import { invalidArgument } from '@kvmgr/core';
import type { SimRequest } from '../traces/types.js';
import type { RequestState } from './request-state.js';

/**
 * Engine blocks per router block: the trace's hash block over the engine block when every
 * request with hash ids has the same, coarser, divisible hash block; 1 otherwise.
 */
export function routerKeyRatio(requests: readonly SimRequest[], blockSize: number): number {
  let h = 0;
  for (const r of requests) {
    if (r.hashIds === undefined) continue;
    const t = r.hashBlockTokens ?? 512;
    if (h === 0) h = t;
    else if (h !== t) return 1;
  }
  return h > blockSize && h % blockSize === 0 ? h / blockSize : 1;
}

/**
 * Multi-turn links of a request list: the follow-up of each request (-1 = none) and which
 * requests are follow-ups (they arrive when the previous answer is read, not at their timestamp).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a `previousTurn` that is not an earlier index.
 */
export function sessionLinks(reqs: readonly SimRequest[]): { readonly nextTurn: Int32Array; readonly isFollowUp: Uint8Array } {
  const n = reqs.length;
  const nextTurn = new Int32Array(n).fill(-1);
  const isFollowUp = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = reqs[i]?.previousTurn;
    if (p !== undefined && p >= 0) {
      if (!(p < i)) throw invalidArgument(`requests[${i}].previousTurn`, p, `an index of an earlier request (< ${i})`);
      nextTurn[p] = i;
      isFollowUp[i] = 1;
    }
  }
  return { nextTurn, isFollowUp };
}

/** Indices of the requests that arrive at their timestamp (not follow-ups), by time then index. */
export function arrivalOrder(reqs: readonly SimRequest[], isFollowUp: Uint8Array): number[] {
  const order: number[] = [];
  for (let i = 0; i < reqs.length; i++) if (isFollowUp[i] === 0) order.push(i);
  order.sort((a, b) => (reqs[a] as SimRequest).arrivalUs - (reqs[b] as SimRequest).arrivalUs || a - b);
  return order;
}

/**
 * The states of a finished run, in request order; appends a violation for each request that never
 * arrived or neither finished nor was rejected.
 */
export function collectStates(reqs: readonly SimRequest[], states: readonly (RequestState | undefined)[], violations: string[]): RequestState[] {
  const out: RequestState[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const r = states[i];
    if (r === undefined) {
      violations.push(`request ${reqs[i]?.requestId} never arrived`);
      continue;
    }
    if (r.finishUs < 0 && r.rejectedReason === undefined) violations.push(`request ${r.id} neither finished nor rejected`);
    out.push(r);
  }
  return out;
}
