/**
 * From records to numbers, defined once: per-request latencies (TTFT, TPOT = (E2E − TTFT) /
 * (out − 1), normalized TPOT = E2E / out, ITL), SLO verdicts, and the three summaries
 * `bench serve` writes — inference-perf's lifecycle metrics (its exact keys and percentile
 * names, seconds), `vllm bench serve`'s result JSON (ms), and kvmgr's own summary for tables.
 */
import { percentileSorted } from '@kvmgr/sim';
import type { BenchRecord } from './client.js';

/** inference-perf's default `report.request_lifecycle.percentiles`. */
export const PERCENTILES = [0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9] as const;

/** inference-perf's name of a percentile: `median` for 50, else `p` + the number (`p0.1`, `p99.9`). */
export function percentileName(p: number): string {
  return p === 50 ? 'median' : `p${p}`;
}

/** A distribution as inference-perf writes it: `mean, min, p0.1 … median … p99.9, max`; null when empty. */
export function summarize(values: readonly number[]): Record<string, number> | null {
  if (values.length === 0) return null;
  const a = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of a) sum += v;
  const out: Record<string, number> = { mean: sum / a.length, min: a[0] as number };
  for (const p of PERCENTILES) out[percentileName(p)] = percentileSorted(a, p);
  out['max'] = a[a.length - 1] as number;
  return out;
}

/** SLOs in seconds (model time). */
export interface SloS {
  readonly ttftS: number;
  readonly tpotS: number;
}

/** One request's derived latencies, s. */
export interface Derived {
  readonly record: BenchRecord;
  readonly ok: boolean;
  readonly e2eS: number;
  /** undefined when no token arrived. */
  readonly ttftS?: number;
  /** undefined when fewer than 2 output tokens. */
  readonly tpotS?: number;
  /** E2E / out; 0 when out = 0 (as inference-perf). */
  readonly ntpotS: number;
  readonly itlS: readonly number[];
  readonly sloMet: boolean;
}

/**
 * Derives a record's latencies and its SLO verdict: a failure never meets it; an undefined TPOT
 * (one output token) counts as met, as inference-perf; a request that was not streamed has no
 * TTFT or TPOT and is judged on neither (it meets the SLOs by succeeding).
 */
export function derive(r: BenchRecord, slo: SloS): Derived {
  const ok = r.error === null;
  const e2eS = r.endS - r.startS;
  const first = r.chunkTimesS[0];
  const ttftS = first === undefined ? undefined : first - r.startS;
  const out = r.outputTokens;
  const tpotS = ttftS !== undefined && out > 1 ? (e2eS - ttftS) / (out - 1) : undefined;
  const itlS: number[] = [];
  for (let i = 1; i < r.chunkTimesS.length; i++) itlS.push((r.chunkTimesS[i] as number) - (r.chunkTimesS[i - 1] as number));
  const sloMet = ok && (ttftS === undefined || ttftS <= slo.ttftS) && (tpotS === undefined || tpotS <= slo.tpotS);
  return { record: r, ok, e2eS, ...(ttftS === undefined ? {} : { ttftS }), ...(tpotS === undefined ? {} : { tpotS }), ntpotS: out > 0 ? e2eS / out : 0, itlS, sloMet };
}

function span(ds: readonly Derived[]): number {
  if (ds.length === 0) return 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const d of ds) {
    lo = Math.min(lo, d.record.startS);
    hi = Math.max(hi, d.record.endS);
  }
  return hi - lo;
}

function defined(values: ReadonlyArray<number | undefined>): number[] {
  return values.filter((v): v is number => v !== undefined);
}

/** Stage facts for a stage file's `load_summary`. */
export interface StageLoad {
  readonly requestedRate: number;
  readonly concurrency?: number;
}

/**
 * inference-perf's `summary_lifecycle_metrics.json` (no `stage`) or `stage_N_lifecycle_metrics.json`
 * content: `load_summary`, `successes` (with `slo_metrics` — the SLO headers are always sent),
 * `failures`.
 */
export function lifecycleMetrics(ds: readonly Derived[], slo: SloS, stage?: StageLoad): Record<string, unknown> {
  const ok = ds.filter((d) => d.ok);
  const failed = ds.filter((d) => !d.ok);
  const total = span(ds);
  const starts = ds.map((d) => d.record.startS);
  const sendDuration = starts.length > 0 ? Math.max(...starts) - Math.min(...starts) : 0;
  const loadSummary: Record<string, unknown> = { count: ds.length, schedule_delay: summarize(ds.map((d) => d.record.startS - d.record.scheduledS)) };
  if (stage !== undefined) {
    loadSummary['send_duration'] = sendDuration;
    loadSummary['requested_rate'] = stage.requestedRate;
    loadSummary['achieved_rate'] = sendDuration > 0 ? ds.length / sendDuration : 0;
    if (stage.concurrency !== undefined) loadSummary['concurrency'] = stage.concurrency;
  }
  const sum = (f: (d: Derived) => number) => ok.reduce((s, d) => s + f(d), 0);
  const perSec = (x: number) => (total > 0 ? x / total : 0);
  const inTok = sum((d) => d.record.promptTokens);
  const outTok = sum((d) => d.record.outputTokens);
  const ttftMet = ok.filter((d) => d.ttftS === undefined || d.ttftS <= slo.ttftS).length;
  const tpotMet = ok.filter((d) => d.tpotS === undefined || d.tpotS <= slo.tpotS).length;
  const good = ok.filter((d) => d.sloMet);
  const att = (met: number) => (ok.length > 0 ? (met / ok.length) * 100 : 0);
  return {
    load_summary: loadSummary,
    successes: {
      count: ok.length,
      latency: {
        request_latency: summarize(ok.map((d) => d.e2eS)),
        normalized_time_per_output_token: summarize(ok.map((d) => d.ntpotS)),
        time_per_output_token: summarize(defined(ok.map((d) => d.tpotS))),
        time_to_first_token: summarize(defined(ok.map((d) => d.ttftS))),
        inter_token_latency: summarize(ok.flatMap((d) => d.itlS)),
      },
      throughput: {
        input_tokens_per_sec: perSec(inTok),
        output_tokens_per_sec: perSec(outTok),
        total_tokens_per_sec: perSec(inTok + outTok),
        requests_per_sec: perSec(ok.length),
      },
      prompt_len: summarize(ok.map((d) => d.record.promptTokens)),
      output_len: summarize(ok.map((d) => d.record.outputTokens)),
      slo_metrics: {
        ttft_slo: { attainment_pct: att(ttftMet), requests_met: ttftMet, requests_failed: ok.length - ttftMet, total_requests: ok.length, slo: slo.ttftS },
        tpot_slo: { attainment_pct: att(tpotMet), requests_met: tpotMet, requests_failed: ok.length - tpotMet, total_requests: ok.length, slo: slo.tpotS },
        combined_slo: {
          attainment_pct: att(good.length),
          requests_met: good.length,
          requests_failed: ok.length - good.length,
          total_requests: ok.length,
          ttft_slo: slo.ttftS,
          tpot_slo: slo.tpotS,
          // inference-perf (reportgen, slo_metrics): prompt + output tokens of the requests meeting both SLOs over the successes' span
          goodput_rate: span(ok) > 0 ? good.reduce((s, d) => s + d.record.promptTokens + d.record.outputTokens, 0) / span(ok) : 0,
        },
      },
    },
    failures: {
      count: failed.length,
      request_latency: summarize(failed.map((d) => d.e2eS)),
      prompt_len: summarize(failed.map((d) => d.record.promptTokens)),
    },
  };
}

/**
 * inference-perf's `per_request_lifecycle_metrics.json`: `{start_time, end_time, request,
 * response, info: {input_tokens, output_tokens, output_token_times, extra_info, lora_adapter},
 * error}` per request; `extra_info` carries what kvmgr adds (id, stage, scheduled time,
 * cached tokens, the derived latencies and the SLO verdict).
 */
export function perRequestMetrics(ds: readonly Derived[]): unknown[] {
  return [...ds]
    .sort((a, b) => a.record.startS - b.record.startS)
    .map((d) => ({
      start_time: d.record.startS,
      end_time: d.record.endS,
      request: d.record.request,
      response: d.record.text,
      info: {
        input_tokens: d.record.promptTokens,
        output_tokens: d.record.outputTokens,
        output_token_times: d.record.chunkTimesS,
        extra_info: {
          request_id: d.record.id,
          stage_id: d.record.stage,
          scheduled_time: d.record.scheduledS,
          cached_tokens: d.record.cachedTokens,
          time_to_first_token: d.ttftS ?? null,
          time_per_output_token: d.tpotS ?? null,
          normalized_time_per_output_token: d.ntpotS,
          request_latency: d.e2eS,
          slo_met: d.sloMet,
        },
        lora_adapter: null,
      },
      error: d.record.error,
    }));
}

function msStats(name: string, valuesS: readonly number[], percentiles: readonly number[]): Record<string, number> {
  const a = Float64Array.from(valuesS.map((v) => v * 1000)).sort();
  let sum = 0;
  for (const v of a) sum += v;
  const mean = a.length > 0 ? sum / a.length : 0;
  let sq = 0;
  for (const v of a) sq += (v - mean) ** 2;
  const out: Record<string, number> = {
    [`mean_${name}_ms`]: mean,
    [`median_${name}_ms`]: a.length > 0 ? percentileSorted(a, 50) : 0,
    [`std_${name}_ms`]: a.length > 0 ? Math.sqrt(sq / a.length) : 0,
  };
  for (const p of percentiles) out[`p${p}_${name}_ms`] = a.length > 0 ? percentileSorted(a, p) : 0;
  return out;
}

/** Setup echoed into `vllm bench serve`'s result. */
export interface VllmSetup {
  readonly model: string;
  readonly requestRate: number | 'inf';
  readonly maxConcurrency: number | null;
  readonly durationS: number;
}

/**
 * `vllm bench serve`'s result JSON (`--save-result`, `--metric-percentiles 90,95,99`,
 * `--goodput ttft:<ms> tpot:<ms>`): `request_throughput`, `request_goodput`,
 * `{mean,median,std,p90,p95,p99}_{ttft,tpot,itl,e2el}_ms`, and the per-request lists.
 */
export function vllmBenchJson(ds: readonly Derived[], slo: SloS, setup: VllmSetup): Record<string, unknown> {
  const ok = ds.filter((d) => d.ok);
  const dur = setup.durationS;
  const rate = (x: number) => (dur > 0 ? x / dur : 0);
  const totalIn = ok.reduce((s, d) => s + d.record.promptTokens, 0);
  const totalOut = ok.reduce((s, d) => s + d.record.outputTokens, 0);
  // Peak output tokens per 1 s bucket and peak concurrent requests, as vLLM counts them.
  const t0 = ds.length > 0 ? Math.min(...ds.map((d) => d.record.startS)) : 0;
  const tokens = new Map<number, number>();
  const conc = new Map<number, number>();
  for (const d of ok) {
    for (const t of d.record.chunkTimesS) tokens.set(Math.floor(t - t0), (tokens.get(Math.floor(t - t0)) ?? 0) + 1);
    for (let b = Math.floor(d.record.startS - t0); b <= Math.floor(d.record.endS - t0); b++) conc.set(b, (conc.get(b) ?? 0) + 1);
  }
  const pct = [90, 95, 99];
  return {
    date: new Date().toISOString().replace(/[-:]/g, '').slice(0, 15).replace('T', '-'),
    backend: 'openai',
    endpoint_type: 'openai',
    label: null,
    model_id: setup.model,
    tokenizer_id: setup.model,
    num_prompts: ds.length,
    request_rate: setup.requestRate,
    burstiness: 1.0,
    max_concurrency: setup.maxConcurrency,
    duration: dur,
    completed: ok.length,
    failed: ds.length - ok.length,
    total_input_tokens: totalIn,
    total_output_tokens: totalOut,
    request_throughput: rate(ok.length),
    request_goodput: rate(ok.filter((d) => d.sloMet).length),
    output_throughput: rate(totalOut),
    total_token_throughput: rate(totalIn + totalOut),
    input_lens: ds.map((d) => d.record.promptTokens),
    output_lens: ds.map((d) => (d.ok ? d.record.outputTokens : 0)),
    ttfts: ds.map((d) => (d.ok ? (d.ttftS ?? 0) : 0)),
    itls: ds.map((d) => (d.ok ? d.itlS : [])),
    generated_texts: ds.map((d) => d.record.text),
    errors: ds.map((d) => (d.record.error === null ? '' : `${d.record.error.error_type}: ${d.record.error.error_msg}`)),
    max_output_tokens_per_s: Math.max(0, ...tokens.values()),
    max_concurrent_requests: Math.max(0, ...conc.values()),
    goodput: { ttft: slo.ttftS * 1000, tpot: slo.tpotS * 1000 },
    ...msStats('ttft', defined(ok.map((d) => d.ttftS)), pct),
    ...msStats('tpot', defined(ok.map((d) => d.tpotS)), pct),
    ...msStats('itl', ok.flatMap((d) => d.itlS), pct),
    ...msStats('e2el', ok.map((d) => d.e2eS), pct),
  };
}

/** kvmgr's summary of one run (what tables print; definitions: DESIGN.md §7). Times in ms. */
export interface BenchSummary {
  readonly requests: number;
  readonly completed: number;
  readonly failed: number;
  /** Failures by `error_type`. */
  readonly failureReasons: Readonly<Record<string, number>>;
  /** First send to last end, s. */
  readonly durationS: number;
  /** Cached prompt tokens / prompt tokens over completed requests (0 when the server reports no cached tokens). */
  readonly hitRate: number;
  /** Completed requests whose server reported `cached_tokens`. */
  readonly cachedReported: number;
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  readonly tpotP50Ms: number;
  readonly tpotP99Ms: number;
  readonly e2eP50Ms: number;
  readonly e2eP99Ms: number;
  readonly throughputReqPerS: number;
  readonly outputTokPerS: number;
  /** Requests per second meeting both SLOs. */
  readonly goodputReqPerS: number;
  /** Fraction of all requests sent meeting both SLOs (failures count as misses). */
  readonly sloAttainment: number;
}

function pMs(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  return percentileSorted(Float64Array.from(values).sort(), p) * 1000;
}

/** The summary of one run. */
export function benchSummary(ds: readonly Derived[]): BenchSummary {
  const ok = ds.filter((d) => d.ok);
  const dur = span(ds);
  const reasons: Record<string, number> = {};
  for (const d of ds) if (d.record.error) reasons[d.record.error.error_type] = (reasons[d.record.error.error_type] ?? 0) + 1;
  let cached = 0;
  let prompt = 0;
  let reported = 0;
  for (const d of ok) {
    prompt += d.record.promptTokens;
    if (d.record.cachedTokens !== null) {
      cached += d.record.cachedTokens;
      reported++;
    }
  }
  const ttft = defined(ok.map((d) => d.ttftS));
  const tpot = defined(ok.map((d) => d.tpotS));
  const e2e = ok.map((d) => d.e2eS);
  const good = ds.filter((d) => d.sloMet).length;
  return {
    requests: ds.length,
    completed: ok.length,
    failed: ds.length - ok.length,
    failureReasons: reasons,
    durationS: dur,
    hitRate: prompt > 0 ? cached / prompt : 0,
    cachedReported: reported,
    ttftP50Ms: pMs(ttft, 50),
    ttftP99Ms: pMs(ttft, 99),
    tpotP50Ms: pMs(tpot, 50),
    tpotP99Ms: pMs(tpot, 99),
    e2eP50Ms: pMs(e2e, 50),
    e2eP99Ms: pMs(e2e, 99),
    throughputReqPerS: dur > 0 ? ok.length / dur : 0,
    outputTokPerS: dur > 0 ? ok.reduce((s, d) => s + d.record.outputTokens, 0) / dur : 0,
    goodputReqPerS: dur > 0 ? good / dur : 0,
    sloAttainment: ds.length > 0 ? good / ds.length : 0,
  };
}
