/**
 * Per-request rows and run summaries, defined once (DESIGN.md section 7): prefix hit rate
 * (cached prompt tokens / prompt tokens), re-prefill rate (prompt tokens computed again after a
 * preemption or an eviction of a prefix computed before on that instance / all prefill tokens
 * computed), fragmentation and utilization (time-averaged over steps), goodput (requests per
 * second meeting both SLOs), SLO attainment, Jain's index over tenants' VTC service
 * (input ×1 + output ×2).
 */
import type { SloClass } from '@kvmgr/core';
import type { ClusterResult } from '../engine/cluster-types.js';
import type { RequestState } from '../engine/request-state.js';
import { type Distribution, distribution, jainIndex } from './stats.js';

/** Default SLOs applied to requests that carry none. */
export interface SloTargetsMs {
  /** TTFT target, ms. */
  readonly ttftMs?: number;
  /** TPOT target, ms. */
  readonly tpotMs?: number;
}

/** One request's outcome (times in ms from the start of the run). */
export interface RequestRow {
  readonly requestId: string;
  readonly arrivalMs: number;
  /** First token as the client sees it (NaN if rejected). */
  readonly firstTokenMs: number;
  readonly finishMs: number;
  readonly ttftMs: number;
  /** (E2E − TTFT) / (output − 1); 0 for one-token outputs. */
  readonly tpotMs: number;
  readonly e2eMs: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Prompt tokens served from the prefix cache (GPU or CPU tier) at first admission. */
  readonly cachedTokens: number;
  readonly preemptions: number;
  readonly reprefillTokens: number;
  /** Serving (decode) instance id. */
  readonly instance: string;
  /** Prefill instance id for disaggregated requests, '' otherwise. */
  readonly prefillInstance: string;
  readonly sloMet: boolean;
  readonly rejectedReason: string;
  readonly tenant: string;
  readonly sloClass: SloClass | '';
  /**
   * Predicted KV footprint at admission, blocks (scheduler-IR's `predictedFootprintBlocks`: the
   * `admission` pass's p90 footprint with its default margin); -1 when never admitted.
   */
  readonly predictedKvBlocks: number;
  /** Most KV blocks it held at once (prefix hits included); 0 when never admitted. */
  readonly peakKvBlocks: number;
}

/** A run summary. */
export interface RunSummary {
  readonly requests: number;
  readonly finished: number;
  readonly rejected: number;
  readonly rejectedByReason: Readonly<Record<string, number>>;
  /** First arrival to last finish, s. */
  readonly durationS: number;
  readonly ttftMs: Distribution;
  readonly tpotMs: Distribution;
  readonly e2eMs: Distribution;
  /** Mean inter-token latency as the validation data defines it: (mean E2E − mean TTFT) / (mean output − 1), ms. */
  readonly itlMeanMs: number;
  /** Finished requests per second. */
  readonly throughputRps: number;
  readonly outputTokPerSec: number;
  /** Requests per second meeting both SLOs. */
  readonly goodputRps: number;
  /** Fraction of all requests meeting both SLOs (rejected ones fail). */
  readonly sloAttainment: number;
  readonly slo: SloTargetsMs;
  /** Prefix hit rate (tokens). */
  readonly hitRate: number;
  readonly reprefillRate: number;
  readonly preemptions: number;
  /** Time-averaged used token slots / capacity, over busy time, mean over instances. */
  readonly kvUtilization: number;
  /** Time-averaged fragmentation (DESIGN.md §7), mean over instances. */
  readonly fragmentation: number;
  readonly evictedBlocks: number;
  readonly offloadedBlocks: number;
  readonly reloadedBlocks: number;
  /**
   * KV migrations that ended, blocks: hot-spot prefetches taken or evicted, plus P/D transfer
   * blocks (see `MigrationCounters`).
   */
  readonly migratedBlocks: number;
  /**
   * Migration failure rate: failed / ended migrations (prefetched blocks evicted before use or
   * taken before they landed, P/D blocks evicted at the source before the transfer ended); 0 when
   * none ended (see `migratedBlocks`).
   */
  readonly migrationFailureRate: number;
  /** Jain's index over tenants' weight-normalised VTC service. */
  readonly jainIndex: number;
  /** Largest minus smallest tenant service share. */
  readonly maxServiceGap: number;
  /**
   * Predicted vs actual KV per request, over finished LLM requests: mean |predicted − peak| /
   * peak blocks (MAPE, a fraction); NaN when none.
   */
  readonly kvPredictionMape: number;
  /** Fraction of finished LLM requests whose peak KV blocks exceeded the predicted footprint; NaN when none. */
  readonly kvUnderpredictionRate: number;
  /** The LLM / embedding quota split, when the run had one. */
  readonly quota?: QuotaSummary;
  readonly perInstance: readonly InstanceSummary[];
}

/** What a run's LLM / embedding quota split did (`ReplayOptions.quota`). */
export interface QuotaSummary {
  /** Rebalancing rounds (per instance). */
  readonly rounds: number;
  /** Instance-rounds in which the quotas moved. */
  readonly shifts: number;
  /** Σ |embedding quota change|, blocks. */
  readonly shiftedBlocks: number;
  /** Highest embedding quota / GPU blocks over instances and rounds (a fraction). */
  readonly embeddingQuotaPeak: number;
  /** Embedding quota / GPU blocks at the last round, mean over instances (a fraction). */
  readonly embeddingQuotaFinal: number;
  /** Instance-rounds with a kind holding more than its quota or quotas over the pool (0 on a healthy run). */
  readonly overCommitted: number;
}

/** Per-instance numbers. */
export interface InstanceSummary {
  readonly id: string;
  readonly role: string;
  readonly finished: number;
  readonly steps: number;
  /** Busy time / run duration. */
  readonly busyFraction: number;
  readonly hitRate: number;
  readonly preemptions: number;
  readonly kvUtilization: number;
  readonly fragmentation: number;
  /** Steps that ran the scheduler pipeline (the rest were pure-decode steps). */
  readonly plannedSteps: number;
}

/**
 * Builds per-request rows (client view: each output token is delivered `outputTokenUs` later,
 * BLIS's α2 convention, cumulatively; and, with `deliveryLagSteps` k > 0, the first and last
 * token k of the request's own mean decode intervals late: the latency model's
 * `deliveryLagSteps`).
 */
export function buildRows(result: ClusterResult, slo: SloTargetsMs, outputTokenUs: number, deliveryLagSteps = 0): RequestRow[] {
  const rows: RequestRow[] = [];
  for (const r of result.states) rows.push(rowOf(r, result, slo, outputTokenUs, deliveryLagSteps));
  return rows;
}

function rowOf(r: RequestState, res: ClusterResult, slo: SloTargetsMs, a2: number, lagSteps: number): RequestRow {
  const arrivalMs = r.arrivalUs / 1000;
  const rejected = r.finishUs < 0;
  const out = r.outputTokens;
  const lagUs = lagSteps > 0 && !rejected && out > 1 ? (lagSteps * (r.finishUs - r.firstTokenUs)) / (out - 1) : 0;
  const first = rejected ? Number.NaN : (r.firstTokenUs + (out > 0 ? a2 : 0) + lagUs) / 1000;
  const fin = rejected ? Number.NaN : (r.finishUs + a2 * out + lagUs) / 1000;
  const ttft = first - arrivalMs;
  const e2e = fin - arrivalMs;
  const tpot = out > 1 ? (e2e - ttft) / (out - 1) : 0;
  const ttftT = r.req.slo?.ttftMs ?? slo.ttftMs;
  const tpotT = r.req.slo?.tpotMs ?? slo.tpotMs;
  const met = !rejected && (ttftT === undefined || ttft <= ttftT) && (tpotT === undefined || tpot <= tpotT) && (r.req.slo?.e2eMs === undefined || e2e <= r.req.slo.e2eMs);
  return {
    requestId: r.id,
    arrivalMs,
    firstTokenMs: first,
    finishMs: fin,
    ttftMs: ttft,
    tpotMs: tpot,
    e2eMs: e2e,
    promptTokens: r.promptTokens,
    outputTokens: rejected ? r.generatedTokens : out,
    cachedTokens: Math.max(0, r.cachedTokens),
    preemptions: r.preemptions,
    reprefillTokens: r.reprefillTokens,
    instance: r.instance >= 0 ? (res.instances[r.instance]?.id ?? '') : '',
    prefillInstance: r.prefillInstance >= 0 ? (res.instances[r.prefillInstance]?.id ?? '') : '',
    sloMet: met,
    rejectedReason: r.rejectedReason ?? '',
    tenant: r.req.tenant ?? '',
    sloClass: r.req.sloClass ?? '',
    predictedKvBlocks: r.predictedKvBlocks,
    peakKvBlocks: r.peakKvBlocks,
  };
}

/**
 * Summarises a run.
 * @param result - the cluster result.
 * @param rows - rows from {@link buildRows}.
 * @param slo - the run's default SLOs (reported back).
 */
export function summarize(result: ClusterResult, rows: readonly RequestRow[], slo: SloTargetsMs): RunSummary {
  const ok = rows.filter((r) => r.rejectedReason === '');
  const rejectedByReason: Record<string, number> = {};
  for (const r of rows) if (r.rejectedReason !== '') rejectedByReason[r.rejectedReason] = (rejectedByReason[r.rejectedReason] ?? 0) + 1;
  let t0 = Number.POSITIVE_INFINITY;
  let t1 = 0;
  let outTok = 0;
  let met = 0;
  let prompt = 0;
  let cached = 0;
  for (const r of rows) t0 = Math.min(t0, r.arrivalMs);
  for (const r of ok) {
    t1 = Math.max(t1, r.finishMs);
    outTok += r.outputTokens;
    if (r.sloMet) met++;
    prompt += r.promptTokens;
    cached += r.cachedTokens;
  }
  const durationS = ok.length > 0 ? Math.max(1e-9, (t1 - t0) / 1000) : 0;
  const ttft = distribution(ok.map((r) => r.ttftMs));
  const e2e = distribution(ok.map((r) => r.e2eMs));
  const multi = ok.filter((r) => r.outputTokens > 1);
  const tpot = distribution(multi.map((r) => r.tpotMs));
  const meanOut = ok.length > 0 ? outTok / ok.length : 0;
  let reprefill = 0;
  let prefillComputed = 0;
  for (const s of result.states) {
    reprefill += s.reprefillTokens;
    prefillComputed += s.prefillComputed;
  }
  // Tenants: VTC service (input ×1 + output ×2), equal weights.
  const service = new Map<string, number>();
  for (const r of ok) service.set(r.tenant, (service.get(r.tenant) ?? 0) + r.promptTokens + 2 * r.outputTokens);
  const sv = [...service.values()];
  const total = sv.reduce((a, b) => a + b, 0);
  const shares = sv.map((v) => (total > 0 ? v / total : 0));
  const perInstance: InstanceSummary[] = result.instances.map((inst) => {
    const c = inst.counters;
    const busy = c.busyUs;
    return {
      id: inst.id,
      role: inst.role,
      finished: c.finished,
      steps: c.steps,
      busyFraction: durationS > 0 ? busy / 1e6 / durationS : 0,
      hitRate: c.promptTokens > 0 ? c.cachedTokens / c.promptTokens : 0,
      preemptions: c.preemptions,
      kvUtilization: busy > 0 ? c.usedSlotUs / busy : 0,
      fragmentation: busy > 0 ? c.fragSlotUs / busy : 0,
      plannedSteps: c.plannedSteps,
    };
  });
  // predicted vs actual KV: finished LLM requests (an embedding's footprint is its prompt, known)
  let apeSum = 0;
  let under = 0;
  let nPred = 0;
  for (const r of result.states) {
    if (r.embed || r.finishUs < 0 || r.predictedKvBlocks < 0 || r.peakKvBlocks <= 0) continue;
    nPred++;
    apeSum += Math.abs(r.predictedKvBlocks - r.peakKvBlocks) / r.peakKvBlocks;
    if (r.peakKvBlocks > r.predictedKvBlocks) under++;
  }
  const mean = (f: (i: InstanceSummary) => number): number =>
    perInstance.length > 0 ? perInstance.reduce((a, i) => a + f(i), 0) / perInstance.length : 0;
  let evicted = 0;
  let offloaded = 0;
  let reloaded = 0;
  let preemptions = 0;
  let migrated = 0;
  let migrationFailed = 0;
  for (const inst of result.instances) {
    const m = inst.migrations;
    migrated += m.prefetchHitBlocks + m.prefetchLateBlocks + m.prefetchEvictedBlocks + m.pdTransferBlocks;
    migrationFailed += m.prefetchLateBlocks + m.prefetchEvictedBlocks + m.pdFailedBlocks;
    evicted += inst.kv.counters.evictedBlocks;
    offloaded += inst.kv.counters.offloadedBlocks;
    reloaded += inst.kv.counters.reloadedBlocks;
    preemptions += inst.counters.preemptions;
  }
  return {
    requests: rows.length,
    finished: ok.length,
    rejected: rows.length - ok.length,
    rejectedByReason,
    durationS,
    ttftMs: ttft,
    tpotMs: tpot,
    e2eMs: e2e,
    itlMeanMs: meanOut > 1 ? (e2e.mean - ttft.mean) / (meanOut - 1) : 0,
    throughputRps: durationS > 0 ? ok.length / durationS : 0,
    outputTokPerSec: durationS > 0 ? outTok / durationS : 0,
    goodputRps: durationS > 0 ? met / durationS : 0,
    sloAttainment: rows.length > 0 ? met / rows.length : 0,
    slo,
    hitRate: prompt > 0 ? cached / prompt : 0,
    reprefillRate: prefillComputed > 0 ? reprefill / prefillComputed : 0,
    preemptions,
    kvUtilization: mean((i) => i.kvUtilization),
    fragmentation: mean((i) => i.fragmentation),
    evictedBlocks: evicted,
    offloadedBlocks: offloaded,
    reloadedBlocks: reloaded,
    migratedBlocks: migrated,
    migrationFailureRate: migrated > 0 ? migrationFailed / migrated : 0,
    jainIndex: jainIndex(shares),
    maxServiceGap: shares.length > 1 ? Math.max(...shares) - Math.min(...shares) : 0,
    kvPredictionMape: nPred > 0 ? apeSum / nPred : Number.NaN,
    kvUnderpredictionRate: nPred > 0 ? under / nPred : Number.NaN,
    ...(result.quota === undefined ? {} : { quota: quotaSummary(result) }),
    perInstance,
  };
}

function quotaSummary(result: ClusterResult): QuotaSummary {
  const q = result.quota as NonNullable<ClusterResult['quota']>;
  let peak = 0;
  const last = new Map<number, number>();
  for (const s of q.timeline) {
    const f = s.totalBlocks > 0 ? s.embeddingQuota / s.totalBlocks : 0;
    if (f > peak) peak = f;
    last.set(s.instance, f);
  }
  const finals = [...last.values()];
  return {
    rounds: q.rounds,
    shifts: q.shifts,
    shiftedBlocks: q.shiftedBlocks,
    embeddingQuotaPeak: peak,
    embeddingQuotaFinal: finals.length > 0 ? finals.reduce((a, b) => a + b, 0) / finals.length : 0,
    overCommitted: q.overCommitted,
  };
}
