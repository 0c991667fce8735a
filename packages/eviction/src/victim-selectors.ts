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
 * Complexity: O(n) scoring into a reused typed array, then O(n) per victim for the first 8
 * victims and O(n log n) beyond (a sort of the rest).
 *
 * @see Abhyankar et al., "InferCept: Efficient Intercept Support for Augmented Large Language
 *   Model Inference", ICML 2024 (https://arxiv.org/abs/2402.01869)
 */
export class SloAwareVictimSelector implements VictimSelector {
  readonly name: string = 'slo-aware';
  private readonly o: Required<Omit<SloAwareOptions, 'swapUsPerBlock'>> & { swapUsPerBlock: number | undefined };
  private score = new Float64Array(64);

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

  /** Protection score of a candidate (lower = preempted first). */
  protectionOf(c: VictimCandidate): number {
    const o = this.o;
    const rc = c.recomputeCostUs ?? c.computedTokens * o.recomputeUsPerToken;
    const sw = c.swapCostUs ?? (o.swapUsPerBlock === undefined ? Number.POSITIVE_INFINITY : c.blocks * o.swapUsPerBlock);
    const cost = Math.min(sw, rc);
    let slack = c.sloSlackMs ?? o.defaultSlackMs;
    if (slack > o.slackCapMs) slack = o.slackCapMs;
    let p = o.priorityWeight * (c.priority ?? 0) + (o.costWeightPerMsPerBlock * cost) / 1000 / c.blocks - (o.slackWeightPerS * slack) / 1000;
    if (c.remainingTokens <= o.nearCompletionTokens) p += o.nearCompletionProtection;
    return p;
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
    if (this.score.length < n) this.score = new Float64Array(n * 2);
    const score = this.score;
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
    let available = 0;
    let first = -1;
    let firstScore = Number.POSITIVE_INFINITY;
    // one pass: the same formula as protectionOf, inlined with hoisted options (hot path)
    for (let i = 0; i < n; i++) {
      const c = candidates[i] as VictimCandidate;
      const b = c.blocks;
      if ((b | 0) !== b || b < 0) {
        if (!Number.isSafeInteger(b) || b < 0) throw invalidArgument(`candidates[${i}].blocks`, b, 'a non-negative integer');
      }
      if (b === 0) {
        score[i] = Number.POSITIVE_INFINITY;
        continue;
      }
      available += b;
      const rc = c.recomputeCostUs ?? c.computedTokens * rpt;
      const sc = c.swapCostUs ?? b * spb;
      const cost = Math.min(sc, rc);
      let slack = c.sloSlackMs ?? defSlack;
      if (slack > cap) slack = cap;
      let p = pw * (c.priority ?? 0) + (cw * cost) / b - sw * slack;
      if (c.remainingTokens <= nearTok) p += nearProt;
      score[i] = p;
      if (p < firstScore) {
        firstScore = p;
        first = i;
      }
    }
    const victims: VictimDecision[] = [];
    let freed = 0;
    if (requiredBlocks === 0) return result(victims, 0, 0);
    const take = (i: number): void => {
      const c = candidates[i] as VictimCandidate;
      victims.push({ requestId: c.requestId, mode: this.modeFor(c).mode, freedBlocks: c.blocks });
      freed += c.blocks;
    };
    if (available <= requiredBlocks) {
      // everything goes: order by protection for the caller's benefit
      const order: number[] = [];
      for (let i = 0; i < n; i++) if ((score[i] as number) !== Number.POSITIVE_INFINITY) order.push(i);
      order.sort((x, y) => (score[x] as number) - (score[y] as number) || x - y);
      for (const i of order) take(i);
      return result(victims, freed, requiredBlocks);
    }
    // few victims are the common case: repeated min scans (O(k·n)); past 8, sort the rest
    let scans = 0;
    if (first !== -1) {
      // the scoring pass already found the first victim
      score[first] = Number.POSITIVE_INFINITY;
      take(first);
      scans++;
    }
    while (freed < requiredBlocks && scans < 8) {
      let best = -1;
      let bs = Number.POSITIVE_INFINITY;
      for (let i = 0; i < n; i++) {
        const v = score[i] as number;
        if (v < bs) {
          bs = v;
          best = i;
        }
      }
      if (best === -1) break;
      score[best] = Number.POSITIVE_INFINITY;
      take(best);
      scans++;
    }
    if (freed < requiredBlocks) {
      const order: number[] = [];
      for (let i = 0; i < n; i++) if ((score[i] as number) !== Number.POSITIVE_INFINITY) order.push(i);
      order.sort((x, y) => (score[x] as number) - (score[y] as number) || x - y);
      for (const i of order) {
        if (freed >= requiredBlocks) break;
        take(i);
      }
    }
    return result(victims, freed, requiredBlocks);
  }
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
