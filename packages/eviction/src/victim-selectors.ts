/**
 * Request-level victim selection: which running requests to preempt (recompute or swap) when
 * the pool is short of blocks.
 */
import {
  type PreemptionMode,
  type VictimCandidate,
  type VictimDecision,
  type VictimSelection,
  type VictimSelector,
  invalidArgument,
  requireNonNegativeInt,
  requireNonNegativeNumber,
} from '@kvmgr/core';

/** Options of {@link SloAwareVictimSelector}. All weights are per unit named. */
export interface SloAwareOptions {
  /** Protection per unit of priority. @default 1 */
  readonly priorityWeight?: number;
  /** Protection lost per second of SLO slack (more slack = better victim). @default 1 */
  readonly slackWeightPerS?: number;
  /** Slack above this counts as this much, ms (a request far from its SLO is not infinitely safe). @default 10000 */
  readonly slackCapMs?: number;
  /** Slack assumed when a candidate has no `sloSlackMs`, ms. @default 1000 */
  readonly defaultSlackMs?: number;
  /** Protection per ms of preemption cost per freed block. @default 1 */
  readonly costWeightPerMsPerBlock?: number;
  /** A request with at most this many tokens left is near completion. @default 16 */
  readonly nearCompletionTokens?: number;
  /** Protection added to near-completion requests. @default 100 */
  readonly nearCompletionProtection?: number;
  /** Recompute cost estimate when a candidate has no `recomputeCostUs`, µs per computed token. @default 19.8 (BLIS β1, Llama-3.1-8B/H100) */
  readonly recomputeUsPerToken?: number;
  /** Swap cost estimate when a candidate has no `swapCostUs`, µs per block; undefined = swap unavailable then. @default undefined */
  readonly swapUsPerBlock?: number;
}

function result(victims: VictimDecision[], freed: number, required: number): VictimSelection {
  const satisfied = freed >= required;
  return { victims, freedBlocks: freed, satisfied, shortfallBlocks: satisfied ? 0 : required - freed };
}

function check(candidates: readonly VictimCandidate[], requiredBlocks: number, nowUs: number): void {
  if (!Array.isArray(candidates)) throw invalidArgument('candidates', candidates, 'an array of VictimCandidate');
  requireNonNegativeInt('requiredBlocks', requiredBlocks);
  if (!Number.isFinite(nowUs)) throw invalidArgument('nowUs', nowUs, 'a finite number');
}

/**
 * SLO-aware victim selection. Each candidate gets a protection score: priority, plus the
 * cheaper of recompute and swap cost per freed block, plus a bonus when it is near completion,
 * minus its SLO slack (capped). Victims are taken greedily from the lowest protection until
 * `requiredBlocks` are freed. Each victim is preempted by swap when its swap cost is below
 * its recompute cost, else by recompute (InferCept's per-request choice).
 *
 * When the candidates cannot free enough, every candidate that frees blocks is returned with
 * `satisfied: false` and the `shortfallBlocks`; callers usually defer the request instead.
 *
 * Complexity: one O(n) pass keeps the 8 lowest (score, index) pairs aside (an O(8) insertion
 * only when a score beats the current 8th). The cost term is never negative, so the rest of
 * the score is a lower bound: once 8 are kept, a candidate whose bound reaches the 8th score
 * is skipped without reading its cost fields (branch and bound; on random candidates most
 * stop there, about half the time of scoring all). Up to 8 victims cost nothing more; past
 * those, every candidate is scored into a reused typed array, a heap is built in O(n) and
 * popped in O(log n) per victim: O(n + k log n) for k victims. No per-call allocation beyond
 * the result. A candidate whose score is +∞ or NaN (e.g. an infinite or NaN cost) is never
 * picked.
 *
 * @see Abhyankar et al., "InferCept: Efficient Intercept Support for Augmented Large Language
 *   Model Inference", ICML 2024 (https://arxiv.org/abs/2402.01869)
 */
export class SloAwareVictimSelector implements VictimSelector {
  readonly name: string = 'slo-aware';
  private readonly o: Required<Omit<SloAwareOptions, 'swapUsPerBlock'>> & { swapUsPerBlock: number | undefined };
  private score = new Float64Array(64);
  private heap = new Int32Array(64);
  private picked = new Int32Array(64);
  private readonly top = new TopK();

  /**
   * @param options - see {@link SloAwareOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative or non-finite weight.
   */
  constructor(options: SloAwareOptions = {}) {
    const n = (k: keyof SloAwareOptions, d: number): number => requireNonNegativeNumber(`options.${k}`, options[k] ?? d);
    this.o = {
      priorityWeight: n('priorityWeight', 1),
      slackWeightPerS: n('slackWeightPerS', 1),
      slackCapMs: n('slackCapMs', 10000),
      defaultSlackMs: (options.defaultSlackMs ?? 1000) as number,
      costWeightPerMsPerBlock: n('costWeightPerMsPerBlock', 1),
      nearCompletionTokens: n('nearCompletionTokens', 16),
      nearCompletionProtection: n('nearCompletionProtection', 100),
      recomputeUsPerToken: n('recomputeUsPerToken', 19.8),
      swapUsPerBlock: options.swapUsPerBlock === undefined ? undefined : n('swapUsPerBlock', 0),
    };
    if (!Number.isFinite(this.o.defaultSlackMs)) throw invalidArgument('options.defaultSlackMs', options.defaultSlackMs, 'a finite number');
  }

  /** Preemption mode and cost (µs) the selector would use for `c`. */
  modeFor(c: VictimCandidate): { mode: PreemptionMode; costUs: number } {
    const rc = c.recomputeCostUs ?? c.computedTokens * this.o.recomputeUsPerToken;
    const sw = c.swapCostUs ?? (this.o.swapUsPerBlock === undefined ? Number.POSITIVE_INFINITY : c.blocks * this.o.swapUsPerBlock);
    return sw < rc ? { mode: 'swap', costUs: sw } : { mode: 'recompute', costUs: rc };
  }

  /**
   * Protection score of a candidate (lower = preempted first): `(priorityWeight · priority −
   * slackWeightPerS · min(slack, cap) / 1000 + nearCompletionProtection if near completion) +
   * costWeightPerMsPerBlock · cost / 1000 / blocks`, where cost = the cheaper of recompute and
   * swap in µs (a negative cost counts as 0). Evaluated in exactly this order everywhere, so
   * the selection and this method agree to the last bit.
   */
  protectionOf(c: VictimCandidate): number {
    const o = this.o;
    const rc = c.recomputeCostUs ?? c.computedTokens * o.recomputeUsPerToken;
    const sw = c.swapCostUs ?? (o.swapUsPerBlock === undefined ? Number.POSITIVE_INFINITY : c.blocks * o.swapUsPerBlock);
    let cost = Math.min(sw, rc);
    if (cost < 0) cost = 0;
    let slack = c.sloSlackMs ?? o.defaultSlackMs;
    if (slack > o.slackCapMs) slack = o.slackCapMs;
    let base = o.priorityWeight * (c.priority ?? 0) - (o.slackWeightPerS / 1000) * slack;
    if (c.remainingTokens <= o.nearCompletionTokens) base += o.nearCompletionProtection;
    return base + ((o.costWeightPerMsPerBlock / 1000) * cost) / c.blocks;
  }

  /**
   * Picks victims until `requiredBlocks` are freed.
   * @param candidates - running requests that could be preempted.
   * @param requiredBlocks - blocks needed, ≥ 0.
   * @param nowUs - current time, µs.
   * @returns victims in preemption order, freed blocks, `satisfied` and `shortfallBlocks`.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative/non-integer `requiredBlocks`, a
   *   non-finite `nowUs` or a candidate with a negative/non-integer `blocks`.
   */
  selectVictims(candidates: readonly VictimCandidate[], requiredBlocks: number, nowUs: number): VictimSelection {
    check(candidates, requiredBlocks, nowUs);
    const n = candidates.length;
    this.reserve(n);
    const o = this.o;
    const pw = o.priorityWeight;
    const sw = o.slackWeightPerS / 1000;
    const cap = o.slackCapMs;
    const defSlack = o.defaultSlackMs;
    const cw = o.costWeightPerMsPerBlock / 1000;
    const nearTok = o.nearCompletionTokens;
    const nearProt = o.nearCompletionProtection;
    const rpt = o.recomputeUsPerToken;
    const spb = o.swapUsPerBlock === undefined ? Number.POSITIVE_INFINITY : o.swapUsPerBlock;
    const top = this.top;
    top.n = 0;
    let kth = Number.POSITIVE_INFINITY;
    let bad = -1;
    // One pass, the formula of protectionOf inlined with hoisted options (hot path). The cost
    // term is ≥ 0, so `base` bounds the score from below: a candidate whose base already
    // reaches the current 8th-lowest score cannot enter the kept 8 and its cost fields are
    // never read (branch and bound; most candidates stop there).
    for (let i = 0; i < n; i++) {
      const c = candidates[i] as VictimCandidate;
      const b = c.blocks;
      if ((b | 0) !== b || b <= 0) {
        if (b === 0) continue;
        if (!(Number.isSafeInteger(b) && b > 0)) {
          bad = i;
          break;
        }
      }
      let slack = c.sloSlackMs ?? defSlack;
      if (slack > cap) slack = cap;
      let base = pw * (c.priority ?? 0) - sw * slack;
      // the near-completion bonus only raises the bound: test before reading it
      if (base >= kth) continue;
      if (c.remainingTokens <= nearTok) {
        base += nearProt;
        if (base >= kth) continue;
      }
      const rc = c.recomputeCostUs ?? c.computedTokens * rpt;
      const sc = c.swapCostUs ?? b * spb;
      let cost = Math.min(sc, rc);
      if (cost < 0) cost = 0;
      const p = base + (cw * cost) / b;
      if (p < kth) kth = top.offer(p, i, b);
    }
    if (bad !== -1) throw invalidArgument(`candidates[${bad}].blocks`, candidates[bad]?.blocks, 'a non-negative integer');
    const k = this.pick(n, requiredBlocks, candidates);
    const victims: VictimDecision[] = new Array(k);
    const picked = this.picked;
    let freed = 0;
    for (let j = 0; j < k; j++) {
      const i = picked[j] as number;
      const c = candidates[i] as VictimCandidate;
      const b = c.blocks;
      const swap = (c.swapCostUs ?? b * spb) < (c.recomputeCostUs ?? c.computedTokens * rpt);
      victims[j] = { requestId: c.requestId, mode: swap ? 'swap' : 'recompute', freedBlocks: b };
      freed += b;
    }
    return result(victims, freed, requiredBlocks);
  }

  /** Grows the scratch arrays to hold `n` candidates. */
  private reserve(n: number): void {
    if (this.score.length >= n) return;
    const cap = Math.max(64, n * 2);
    this.score = new Float64Array(cap);
    this.heap = new Int32Array(cap);
    this.picked = new Int32Array(cap);
  }

  /**
   * Greedy selection by ascending (score, index) (a score of +∞ or NaN is never picked)
   * into `picked`, until `required` blocks are covered or nothing is left; returns how many
   * were picked. Starts from the scoring pass's {@link TopK}; only past those does it build a
   * heap over the rest.
   */
  private pick(n: number, required: number, candidates: readonly VictimCandidate[]): number {
    const top = this.top;
    if (required === 0 || top.n === 0) return 0;
    const score = this.score;
    const picked = this.picked;
    // the scoring pass kept the lowest TOP_K aside: the common case needs nothing else
    let k = 0;
    let freed = 0;
    for (let j = 0; j < top.n && freed < required; j++) {
      picked[k++] = top.i[j] as number;
      freed += top.b[j] as number;
    }
    // fewer than TOP_K kept means there is nobody else
    if (freed >= required || top.n < TOP_K) return k;
    // more victims: score everyone exactly (the first pass skipped most), drop the ones
    // already picked, heapify the rest (O(n)) and pop in (score, index) order (O(log n) each)
    for (let i = 0; i < n; i++) {
      const c = candidates[i] as VictimCandidate;
      score[i] = c.blocks === 0 ? Number.NaN : this.protectionOf(c);
    }
    for (let j = 0; j < k; j++) score[picked[j] as number] = Number.NaN;
    const heap = this.heap;
    let m = 0;
    for (let i = 0; i < n; i++) if ((score[i] as number) < Number.POSITIVE_INFINITY) heap[m++] = i;
    for (let i = (m >> 1) - 1; i >= 0; i--) siftDown(heap, score, i, m);
    while (m > 0 && freed < required) {
      const top = heap[0] as number;
      picked[k++] = top;
      freed += (candidates[top] as VictimCandidate).blocks;
      heap[0] = heap[--m] as number;
      siftDown(heap, score, 0, m);
    }
    return k;
  }
}

/** Number of lowest-score candidates the scoring pass keeps aside (most calls need 1 or 2). */
const TOP_K = 8;

/**
 * The `TOP_K` smallest (score, index) pairs seen by a scoring pass, sorted ascending; an
 * insertion costs O(TOP_K) and happens only when a score beats the current K-th (about
 * K·ln(n) times in a pass over n candidates in random order).
 */
class TopK {
  readonly s = new Float64Array(TOP_K);
  readonly i = new Int32Array(TOP_K);
  /** Blocks of each kept candidate. */
  readonly b = new Float64Array(TOP_K);
  n = 0;

  /** Inserts (p, i) (caller checked p < the current K-th); returns the new K-th score (+∞ while not full). */
  offer(p: number, i: number, blocks: number): number {
    const s = this.s;
    const idx = this.i;
    const bl = this.b;
    // indexes arrive in increasing order, so an equal score ranks after the ones kept
    let j = this.n < TOP_K ? this.n++ : TOP_K - 1;
    while (j > 0 && (s[j - 1] as number) > p) {
      s[j] = s[j - 1] as number;
      idx[j] = idx[j - 1] as number;
      bl[j] = bl[j - 1] as number;
      j--;
    }
    s[j] = p;
    idx[j] = i;
    bl[j] = blocks;
    return this.n < TOP_K ? Number.POSITIVE_INFINITY : (s[TOP_K - 1] as number);
  }
}

/** Restores the (score, index) min-heap order below position `i` of `heap[0..m)`. */
function siftDown(heap: Int32Array, score: Float64Array, i: number, m: number): void {
  const x = heap[i] as number;
  const sx = score[x] as number;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= m) break;
    let y = heap[c] as number;
    let sy = score[y] as number;
    if (c + 1 < m) {
      const z = heap[c + 1] as number;
      const sz = score[z] as number;
      if (sz < sy || (sz === sy && z < y)) {
        c++;
        y = z;
        sy = sz;
      }
    }
    if (sx < sy || (sx === sy && x < y)) break;
    heap[i] = y;
    i = c;
  }
  heap[i] = x;
}

/** Options of the baseline selectors. */
export interface BaselineSelectorOptions {
  /** Preemption mode every victim gets. @default 'recompute' */
  readonly mode?: PreemptionMode;
}

let primaryBuf = new Float64Array(64);
let secondaryBuf = new Float64Array(64);

/**
 * Greedy selection by ascending (primary, secondary, index): min scans for the first 8
 * victims, a sort of the rest beyond (the common case frees enough with one or two victims).
 */
function orderedSelect(
  candidates: readonly VictimCandidate[],
  requiredBlocks: number,
  nowUs: number,
  primary: (c: VictimCandidate) => number,
  secondary: (c: VictimCandidate) => number,
  mode: PreemptionMode,
): VictimSelection {
  check(candidates, requiredBlocks, nowUs);
  const n = candidates.length;
  if (primaryBuf.length < n) {
    primaryBuf = new Float64Array(n * 2);
    secondaryBuf = new Float64Array(n * 2);
  }
  const p1 = primaryBuf;
  const p2 = secondaryBuf;
  for (let i = 0; i < n; i++) {
    const c = candidates[i] as VictimCandidate;
    const b = c.blocks;
    if (!Number.isSafeInteger(b) || b < 0) throw invalidArgument(`candidates[${i}].blocks`, b, 'a non-negative integer');
    p1[i] = b === 0 ? Number.POSITIVE_INFINITY : primary(c);
    p2[i] = secondary(c);
  }
  const victims: VictimDecision[] = [];
  let freed = 0;
  const take = (i: number): void => {
    const c = candidates[i] as VictimCandidate;
    victims.push({ requestId: c.requestId, mode, freedBlocks: c.blocks });
    freed += c.blocks;
    p1[i] = Number.POSITIVE_INFINITY;
  };
  let scans = 0;
  while (freed < requiredBlocks && scans < 8) {
    let best = -1;
    for (let i = 0; i < n; i++) {
      const v = p1[i] as number;
      if (v === Number.POSITIVE_INFINITY) continue;
      if (best === -1 || v < (p1[best] as number) || (v === p1[best] && (p2[i] as number) < (p2[best] as number))) best = i;
    }
    if (best === -1) break;
    take(best);
    scans++;
  }
  if (freed < requiredBlocks) {
    const order: number[] = [];
    for (let i = 0; i < n; i++) if ((p1[i] as number) !== Number.POSITIVE_INFINITY) order.push(i);
    order.sort((x, y) => (p1[x] as number) - (p1[y] as number) || (p2[x] as number) - (p2[y] as number) || x - y);
    for (const i of order) {
      if (freed >= requiredBlocks) break;
      take(i);
    }
  }
  return result(victims, freed, requiredBlocks);
}

/**
 * vLLM's rule: preempt the most recently admitted request first (ties: earlier in the list),
 * by recompute.
 *
 * Complexity: O(n) per victim for the first 8, O(n log n) beyond.
 *
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py (preempted_req = self.running.pop())
 */
export class VllmVictimSelector implements VictimSelector {
  readonly name: string = 'vllm';
  private readonly mode: PreemptionMode;
  /** @param options - see {@link BaselineSelectorOptions}. */
  constructor(options: BaselineSelectorOptions = {}) {
    this.mode = options.mode ?? 'recompute';
  }
  /**
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad `requiredBlocks`, `nowUs` or candidate blocks.
   */
  selectVictims(candidates: readonly VictimCandidate[], requiredBlocks: number, nowUs: number): VictimSelection {
    return orderedSelect(candidates, requiredBlocks, nowUs, (c) => -c.admittedUs, () => 0, this.mode);
  }
}

/**
 * SGLang's rule: retract the request with the fewest generated tokens first (ties: the longest
 * prompt), by recompute.
 *
 * Complexity: O(n) per victim for the first 8, O(n log n) beyond.
 *
 * @see sgl-project/sglang:python/sglang/srt/managers/schedule_batch.py (retract_decode)
 */
export class SglangVictimSelector implements VictimSelector {
  readonly name: string = 'sglang';
  private readonly mode: PreemptionMode;
  /** @param options - see {@link BaselineSelectorOptions}. */
  constructor(options: BaselineSelectorOptions = {}) {
    this.mode = options.mode ?? 'recompute';
  }
  /**
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad `requiredBlocks`, `nowUs` or candidate blocks.
   */
  selectVictims(candidates: readonly VictimCandidate[], requiredBlocks: number, nowUs: number): VictimSelection {
    return orderedSelect(
      candidates,
      requiredBlocks,
      nowUs,
      (c) => c.generatedTokens,
      (c) => -c.promptTokens,
      this.mode,
    );
  }
}
