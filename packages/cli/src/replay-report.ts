/**
 * Turns two runs (baseline and candidate) into what `kvmgr replay` prints and writes: the
 * side-by-side table, `report.json`, `requests.csv` and the `report.html` chart spec.
 */
import { type RequestRow, type RunSummary, describeLatency, getGpuSpec, getModelSpec, selectLatencyModel } from '@kvmgr/sim';
import type { ChartSeries, HtmlReport } from './report-html.js';
import type { RunResult } from './run.js';
import { fmtDelta, fmtNum, fmtPointsDelta, formatTable } from './table.js';

/** How the replay was set up, echoed in every output. */
export interface ReplaySetup {
  readonly trace: string;
  readonly model: string;
  readonly gpu: string;
  readonly instances: number;
  readonly rateScale: number;
  readonly sloTtftMs: number;
  readonly sloTpotMs: number;
  readonly seed: number;
  /** Which latency model priced the steps and its validated error ({@link latencyLine}). */
  readonly latency?: string;
}

/**
 * One line naming the latency model `runReplay`'s `auto` picks for this model/GPU/TP and the
 * evidence behind it (validated error, or what is extrapolated).
 */
export function latencyLine(model: string, gpu: string, tp: number): string {
  return describeLatency(selectLatencyModel('auto', getModelSpec(model), getGpuSpec(gpu), tp));
}

interface Row {
  readonly label: string;
  readonly get: (s: RunSummary) => number;
  readonly digits: number;
  /** true when larger is better (for the "better" column). */
  readonly higherIsBetter: boolean;
  /** A percentage: its change is given in points, not relative. */
  readonly percent?: boolean;
}

const ROWS: readonly Row[] = [
  { label: 'prefix hit rate (%)', get: (s) => s.hitRate * 100, digits: 1, higherIsBetter: true, percent: true },
  { label: 'TTFT p50 (ms)', get: (s) => s.ttftMs.p50, digits: 1, higherIsBetter: false },
  { label: 'TTFT p99 (ms)', get: (s) => s.ttftMs.p99, digits: 1, higherIsBetter: false },
  { label: 'TPOT p50 (ms)', get: (s) => s.tpotMs.p50, digits: 2, higherIsBetter: false },
  { label: 'TPOT p99 (ms)', get: (s) => s.tpotMs.p99, digits: 2, higherIsBetter: false },
  { label: 'E2E p50 (ms)', get: (s) => s.e2eMs.p50, digits: 1, higherIsBetter: false },
  { label: 'E2E p99 (ms)', get: (s) => s.e2eMs.p99, digits: 1, higherIsBetter: false },
  { label: 'throughput (req/s)', get: (s) => s.throughputRps, digits: 3, higherIsBetter: true },
  { label: 'throughput (output tok/s)', get: (s) => s.outputTokPerSec, digits: 1, higherIsBetter: true },
  { label: 'goodput (req/s)', get: (s) => s.goodputRps, digits: 3, higherIsBetter: true },
  { label: 'SLO attainment (%)', get: (s) => s.sloAttainment * 100, digits: 1, higherIsBetter: true, percent: true },
  { label: 'preemptions', get: (s) => s.preemptions, digits: 0, higherIsBetter: false },
  { label: 're-prefill rate (%)', get: (s) => s.reprefillRate * 100, digits: 2, higherIsBetter: false, percent: true },
  { label: 'KV utilization (%)', get: (s) => s.kvUtilization * 100, digits: 1, higherIsBetter: true, percent: true },
  { label: 'rejected requests', get: (s) => s.rejected, digits: 0, higherIsBetter: false },
];

/** The side-by-side table (baseline, candidate, change). */
export function comparisonRows(a: RunResult, b: RunResult): string[][] {
  return ROWS.map((r) => {
    const va = r.get(a.summary);
    const vb = r.get(b.summary);
    return [r.label, fmtNum(va, r.digits), fmtNum(vb, r.digits), r.percent ? fmtPointsDelta(va, vb, r.digits) : fmtDelta(va, vb)];
  });
}

/** The terminal text of a replay: setup, table, and a one-line verdict on goodput and TTFT p99. */
export function formatComparison(setup: ReplaySetup, a: RunResult, b: RunResult): string {
  const header = ['metric', a.label, b.label, 'change'];
  const lines = [
    `trace ${setup.trace} | ${a.summary.requests} requests | ${setup.instances} × ${setup.model} on ${setup.gpu} | rate ×${setup.rateScale} | SLO TTFT ${setup.sloTtftMs} ms, TPOT ${setup.sloTpotMs} ms | seed ${setup.seed}`,
    ...(setup.latency === undefined ? [] : [`latency model: ${setup.latency}`]),
    '',
    formatTable(header, comparisonRows(a, b)),
    '',
    verdict(a, b),
  ];
  return lines.join('\n');
}

function ratio(a: number, b: number): string {
  if (!(a > 0)) return b > 0 ? 'from 0' : 'n/a';
  return `${(b / a).toFixed(2)}×`;
}

/** Below this SLO attainment on both sides, a goodput ratio compares noise. */
const NO_GOODPUT_ATTAINMENT = 0.01;
/** Below this SLO attainment on both sides, the cluster is past saturation: say so. */
const SATURATED_ATTAINMENT = 0.5;

/**
 * One line: goodput ratio and TTFT p99 change of the candidate against the baseline; when both
 * sides meet under 1% of their SLOs there is no goodput to compare and the line says that instead,
 * and when both meet under half, a second line warns that the rate is past saturation.
 */
export function verdict(a: RunResult, b: RunResult): string {
  const att = Math.max(a.summary.sloAttainment, b.summary.sloAttainment);
  if (att < NO_GOODPUT_ATTAINMENT) {
    return `${b.label} vs ${a.label}: both meet under 1% of their SLOs (${fmtNum(a.summary.sloAttainment * 100, 2)}% and ${fmtNum(b.summary.sloAttainment * 100, 2)}%), so there is no goodput to compare; the rate is far past saturation — lower --rate-scale or loosen --slo-ttft / --slo-tpot`;
  }
  const warn =
    att < SATURATED_ATTAINMENT
      ? `\nwarning: both sides meet under ${SATURATED_ATTAINMENT * 100}% of their SLOs (${fmtNum(a.summary.sloAttainment * 100, 1)}% and ${fmtNum(b.summary.sloAttainment * 100, 1)}%): the cluster is past saturation at this rate (kvmgr sweep finds the knee)`
      : '';
  return `${b.label} vs ${a.label}: goodput ${ratio(a.summary.goodputRps, b.summary.goodputRps)} (${fmtNum(a.summary.goodputRps, 3)} → ${fmtNum(b.summary.goodputRps, 3)} req/s), TTFT p99 ${fmtDelta(a.summary.ttftMs.p99, b.summary.ttftMs.p99)} (${fmtNum(a.summary.ttftMs.p99, 0)} → ${fmtNum(b.summary.ttftMs.p99, 0)} ms), hit rate ${fmtNum(a.summary.hitRate * 100, 1)}% → ${fmtNum(b.summary.hitRate * 100, 1)}%${warn}`;
}

const CSV_COLUMNS = [
  'run',
  'request_id',
  'instance',
  'arrival_ms',
  'first_token_ms',
  'finish_ms',
  'prompt_tokens',
  'output_tokens',
  'cached_tokens',
  'ttft_ms',
  'tpot_ms',
  'e2e_ms',
  'preemptions',
  'reprefill_tokens',
  'slo_met',
  'rejected_reason',
  'predicted_kv_blocks',
  'peak_kv_blocks',
] as const;

/** A CSV cell: numbers to 3 decimals (integers as they are); a rejected request's NaN times are empty. */
function csvCell(v: string | number | boolean | undefined): string {
  if (v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3);
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** `requests.csv`: one line per request per run. */
export function requestsCsv(runs: readonly RunResult[]): string {
  const out: string[] = [CSV_COLUMNS.join(',')];
  for (const run of runs) {
    for (const r of run.requests) {
      out.push(
        [
          run.label,
          r.requestId,
          r.instance,
          r.arrivalMs,
          r.firstTokenMs,
          r.finishMs,
          r.promptTokens,
          r.outputTokens,
          r.cachedTokens,
          r.ttftMs,
          r.tpotMs,
          r.e2eMs,
          r.preemptions,
          r.reprefillTokens,
          r.sloMet,
          r.rejectedReason,
          r.predictedKvBlocks,
          r.peakKvBlocks,
        ]
          .map(csvCell)
          .join(','),
      );
    }
  }
  return `${out.join('\n')}\n`;
}

/** Empirical CDF as at most `maxPoints` `[value, fraction]` points. */
export function cdfPoints(values: readonly number[], maxPoints = 200): Array<[number, number]> {
  const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (v.length === 0) return [];
  const pts: Array<[number, number]> = [];
  const step = Math.max(1, Math.floor(v.length / maxPoints));
  for (let i = 0; i < v.length; i += step) pts.push([v[i] as number, (i + 1) / v.length]);
  pts.push([v[v.length - 1] as number, 1]);
  return pts;
}

function series(runs: readonly RunResult[], pick: (r: RunResult) => Array<[number, number]>): ChartSeries[] {
  return runs.map((r) => ({ name: r.label, points: pick(r) }));
}

function values(rows: readonly RequestRow[], key: 'ttftMs' | 'tpotMs'): number[] {
  const out: number[] = [];
  for (const r of rows) if (!r.rejectedReason) out.push(r[key]);
  return out;
}

/** Values a log axis can show (> 0); a request with one output token has no TPOT to plot. */
function positive(v: readonly number[]): number[] {
  return v.filter((x) => x > 0);
}

/** A vertical dashed line at an SLO across a CDF (fraction 0 to 1). */
export function sloLine(metric: string, ms: number): ChartSeries {
  return { name: `${metric} SLO ${ms} ms`, points: [[ms, 0], [ms, 1]], dashed: true, color: '#222222' };
}

/** The HTML report: the table, then TTFT/TPOT CDFs, throughput, KV utilization and hit rate over time. */
export function replayHtml(setup: ReplaySetup, a: RunResult, b: RunResult): HtmlReport {
  const runs = [a, b];
  const over = (pick: (r: RunResult) => readonly number[], scale = 1) =>
    series(runs, (r) => r.timeseries.tSec.map((t, i) => [t, (pick(r)[i] ?? 0) * scale] as [number, number]));
  return {
    title: `kvmgr replay: ${b.label} vs ${a.label}`,
    subtitle: [
      `trace: ${setup.trace} (${a.summary.requests} requests), ${setup.instances} × ${setup.model} on ${setup.gpu}, rate ×${setup.rateScale}, seed ${setup.seed}`,
      `SLOs: TTFT ≤ ${setup.sloTtftMs} ms and TPOT ≤ ${setup.sloTpotMs} ms. ${verdict(a, b)}`,
      ...(setup.latency === undefined ? [] : [`Latency model: ${setup.latency}`]),
    ],
    tables: [{ title: 'Side by side', header: ['metric', a.label, b.label, 'change'], rows: comparisonRows(a, b) }],
    charts: [
      {
        id: 'ttft-cdf',
        title: 'TTFT CDF (dashed: the SLO)',
        xLabel: 'TTFT (ms, log scale)',
        yLabel: 'fraction of requests',
        step: true,
        logX: true,
        series: [...series(runs, (r) => cdfPoints(positive(values(r.requests, 'ttftMs')))), sloLine('TTFT', setup.sloTtftMs)],
      },
      {
        id: 'tpot-cdf',
        title: 'TPOT CDF (dashed: the SLO)',
        xLabel: 'TPOT (ms, log scale)',
        yLabel: 'fraction of requests',
        step: true,
        logX: true,
        series: [...series(runs, (r) => cdfPoints(positive(values(r.requests, 'tpotMs')))), sloLine('TPOT', setup.sloTpotMs)],
      },
      { id: 'throughput', title: 'Throughput over time', xLabel: 'time (s)', yLabel: 'output tokens/s', series: over((r) => r.timeseries.throughputTokPerS) },
      { id: 'kv-utilization', title: 'KV utilization over time', xLabel: 'time (s)', yLabel: 'GPU KV used (%)', series: over((r) => r.timeseries.kvUtilization, 100) },
      { id: 'hit-rate', title: 'Prefix hit rate over time (cached / prompt tokens of the requests arriving)', xLabel: 'time (s)', yLabel: 'hit rate (%)', series: over((r) => r.timeseries.hitRate, 100) },
    ],
  };
}

/**
 * `report.json` (version 2): setup, both runs with the simulator's own `RunSummary` (version 1
 * carried a flattened copy of it), the goodput/TTFT verdict, wall times.
 */
export function replayJson(setup: ReplaySetup, a: RunResult, b: RunResult): string {
  const run = (r: RunResult) => ({ label: r.label, profile: r.profile, pipeline: r.pipeline, router: r.router, wallS: r.wallS, summary: r.summary, timeseries: r.timeseries });
  return `${JSON.stringify(
    {
      kind: 'kvmgr.replay',
      version: 2,
      setup,
      baseline: run(a),
      candidate: run(b),
      comparison: {
        goodputRatio: a.summary.goodputRps > 0 ? b.summary.goodputRps / a.summary.goodputRps : null,
        ttftP99Change: a.summary.ttftMs.p99 > 0 ? (b.summary.ttftMs.p99 - a.summary.ttftMs.p99) / a.summary.ttftMs.p99 : null,
        hitRateDelta: b.summary.hitRate - a.summary.hitRate,
      },
    },
    null,
    2,
  )}\n`;
}
