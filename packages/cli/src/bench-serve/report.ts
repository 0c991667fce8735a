/**
 * What `bench serve` writes and prints: inference-perf's files (`summary_lifecycle_metrics.json`,
 * `stage_N_lifecycle_metrics.json`, `per_request_lifecycle_metrics.json`, `config.yaml`),
 * optionally `vllm bench serve`'s result JSON, and `report.html` (CDFs, throughput and latency
 * over time, for one run or several side by side).
 */
import { stringify as toYaml } from 'yaml';
import { cdfPoints } from '../replay-report.js';
import type { ChartSeries, ChartSpec, HtmlReport, TableSpec } from '../report-html.js';
import { fmtDelta, fmtNum, formatTable } from '../table.js';
import { type BenchSummary, type Derived, type SloS, lifecycleMetrics, perRequestMetrics } from './metrics.js';
import type { Workload } from './workload.js';

/** One measured run, as reports read it. */
export interface BenchRun {
  readonly label: string;
  readonly derived: readonly Derived[];
  readonly summary: BenchSummary;
}

/** How a run was set up (echoed into `config.yaml` and the report). */
export interface BenchSetup {
  /** API the requests went to. */
  readonly api: 'completion' | 'chat';
  /** Whether responses were streamed. */
  readonly stream: boolean;
  readonly target: string;
  readonly model: string;
  readonly workload: Workload;
  readonly rateScale: number;
  readonly timeScale: number;
  readonly rate?: number;
  readonly concurrency?: number;
  readonly slo: SloS;
  readonly seed: number;
  readonly out: string;
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** inference-perf's config.yaml for this run: the given config when there was one, else an equivalent description. */
export function configYaml(s: BenchSetup): string {
  const headers = { 'x-slo-ttft-ms': String(s.slo.ttftS * 1000), 'x-slo-tpot-ms': String(s.slo.tpotS * 1000) };
  const given = s.workload.inferencePerfConfig;
  const base: Record<string, unknown> = given
    ? { ...given }
    : {
        data: { type: 'trace', path: s.workload.name, input_distribution: null, output_distribution: null, shared_prefix: null },
        load: {
          type: s.concurrency !== undefined ? 'concurrent' : s.rate !== undefined ? 'poisson' : 'trace_replay',
          interval: s.workload.stageIntervalS ?? 0,
          stages: s.workload.stages.map((st) => (st.concurrency !== undefined ? { num_requests: s.workload.requests.length, concurrency_level: st.concurrency } : { rate: st.rate * s.rateScale })),
        },
      };
  const api = { ...((base['api'] as Record<string, unknown> | undefined) ?? {}) };
  return toYaml({
    ...base,
    api: { ...api, type: s.api, streaming: s.stream, headers: { ...((api['headers'] as Record<string, string> | null | undefined) ?? {}), ...headers } },
    report: { request_lifecycle: { summary: true, per_stage: true, per_request: true } },
    storage: { local_storage: { path: s.out, report_file_prefix: null } },
    server: { type: 'vllm', model_name: s.model, base_url: s.target, ignore_eos: true, api_key: null },
    tokenizer: { pretrained_model_name_or_path: s.model },
  });
}

/** The inference-perf files of one run, name → contents. */
export function inferencePerfFiles(setup: BenchSetup, ds: readonly Derived[]): Record<string, string> {
  const files: Record<string, string> = {
    'summary_lifecycle_metrics.json': json(lifecycleMetrics(ds, setup.slo)),
  };
  setup.workload.stages.forEach((st, i) => {
    const inStage = ds.filter((d) => d.record.stage === i);
    if (inStage.length === 0) return;
    const stage = { requestedRate: st.concurrency !== undefined ? 0 : st.rate * setup.rateScale, ...(st.concurrency === undefined ? {} : { concurrency: st.concurrency }) };
    files[`stage_${i}_lifecycle_metrics.json`] = json(lifecycleMetrics(inStage, setup.slo, stage));
  });
  files['per_request_lifecycle_metrics.json'] = json(perRequestMetrics(ds));
  files['config.yaml'] = configYaml(setup);
  return files;
}

interface Row {
  readonly label: string;
  readonly get: (s: BenchSummary) => number;
  readonly digits: number;
}

const ROWS: readonly Row[] = [
  { label: 'requests completed', get: (s) => s.completed, digits: 0 },
  { label: 'requests failed', get: (s) => s.failed, digits: 0 },
  { label: 'prefix hit rate (%)', get: (s) => s.hitRate * 100, digits: 1 },
  { label: 'TTFT p50 (ms)', get: (s) => s.ttftP50Ms, digits: 1 },
  { label: 'TTFT p99 (ms)', get: (s) => s.ttftP99Ms, digits: 1 },
  { label: 'TPOT p50 (ms)', get: (s) => s.tpotP50Ms, digits: 2 },
  { label: 'TPOT p99 (ms)', get: (s) => s.tpotP99Ms, digits: 2 },
  { label: 'E2E p50 (ms)', get: (s) => s.e2eP50Ms, digits: 1 },
  { label: 'E2E p99 (ms)', get: (s) => s.e2eP99Ms, digits: 1 },
  { label: 'throughput (req/s)', get: (s) => s.throughputReqPerS, digits: 3 },
  { label: 'throughput (output tok/s)', get: (s) => s.outputTokPerS, digits: 1 },
  { label: 'goodput (req/s)', get: (s) => s.goodputReqPerS, digits: 3 },
  { label: 'SLO attainment (%)', get: (s) => s.sloAttainment * 100, digits: 1 },
];

/** The table rows of one or more runs; with two runs, a `change` column (second vs first). */
export function summaryRows(runs: readonly BenchRun[]): string[][] {
  return ROWS.map((r) => {
    const vals = runs.map((x) => r.get(x.summary));
    const cells = [r.label, ...vals.map((v) => fmtNum(v, r.digits))];
    if (runs.length === 2) cells.push(fmtDelta(vals[0], vals[1]));
    return cells;
  });
}

/** The header of {@link summaryRows}. */
export function summaryHeader(runs: readonly BenchRun[]): string[] {
  return ['metric', ...runs.map((r) => r.label), ...(runs.length === 2 ? ['change'] : [])];
}

/** Terminal text of one or more runs. */
export function formatRuns(lines: readonly string[], runs: readonly BenchRun[]): string {
  const failures = runs.flatMap((r) => Object.entries(r.summary.failureReasons).map(([k, n]) => `${r.label}: ${n} × ${k}`));
  return [...lines, '', formatTable(summaryHeader(runs), summaryRows(runs)), ...(failures.length > 0 ? ['', `failures: ${failures.join('; ')}`] : [])].join('\n');
}

function series(runs: readonly BenchRun[], pick: (r: BenchRun) => Array<[number, number]>): ChartSeries[] {
  return runs.map((r) => ({ name: r.label, points: pick(r) }));
}

/** Output tokens per second in 1-s buckets (of the run's clock) from the chunk times. */
export function throughputOverTime(ds: readonly Derived[], bucketS = 1): Array<[number, number]> {
  const t0 = ds.length > 0 ? Math.min(...ds.map((d) => d.record.startS)) : 0;
  const counts = new Map<number, number>();
  for (const d of ds) for (const t of d.record.chunkTimesS) counts.set(Math.floor((t - t0) / bucketS), (counts.get(Math.floor((t - t0) / bucketS)) ?? 0) + 1);
  const last = Math.max(-1, ...counts.keys());
  const out: Array<[number, number]> = [];
  for (let b = 0; b <= last; b++) out.push([b * bucketS, (counts.get(b) ?? 0) / bucketS]);
  return out;
}

function overTime(ds: readonly Derived[], pick: (d: Derived) => number | undefined): Array<[number, number]> {
  const t0 = ds.length > 0 ? Math.min(...ds.map((d) => d.record.startS)) : 0;
  const pts: Array<[number, number]> = [];
  for (const d of [...ds].sort((a, b) => a.record.startS - b.record.startS)) {
    const v = pick(d);
    if (v !== undefined) pts.push([d.record.startS - t0, v]);
  }
  return pts;
}

/** The HTML report of one or more runs on the same workload. */
export function benchHtml(title: string, subtitle: readonly string[], runs: readonly BenchRun[], extraTables: readonly TableSpec[] = []): HtmlReport {
  const ms = (v: number | undefined) => (v === undefined ? undefined : v * 1000);
  const okOf = (r: BenchRun) => r.derived.filter((d) => d.ok);
  const cdf = (pick: (d: Derived) => number | undefined) => (r: BenchRun) => cdfPoints(okOf(r).flatMap((d) => (pick(d) === undefined ? [] : [pick(d) as number])));
  const charts: ChartSpec[] = [
    { id: 'ttft-cdf', title: 'TTFT CDF', xLabel: 'TTFT (ms)', yLabel: 'fraction of requests', step: true, logX: true, series: series(runs, cdf((d) => ms(d.ttftS))) },
    { id: 'tpot-cdf', title: 'TPOT CDF', xLabel: 'TPOT (ms)', yLabel: 'fraction of requests', step: true, series: series(runs, cdf((d) => ms(d.tpotS))) },
    { id: 'e2e-cdf', title: 'E2E latency CDF', xLabel: 'E2E (ms)', yLabel: 'fraction of requests', step: true, logX: true, series: series(runs, cdf((d) => d.e2eS * 1000)) },
    { id: 'throughput', title: 'Throughput over time', xLabel: 'time (s)', yLabel: 'output tokens/s', series: series(runs, (r) => throughputOverTime(r.derived)) },
    { id: 'ttft-over-time', title: 'TTFT over time (by send time)', xLabel: 'time (s)', yLabel: 'TTFT (ms)', symbols: true, series: series(runs, (r) => overTime(okOf(r), (d) => ms(d.ttftS))) },
    { id: 'e2e-over-time', title: 'E2E latency over time (by send time)', xLabel: 'time (s)', yLabel: 'E2E (ms)', symbols: true, series: series(runs, (r) => overTime(okOf(r), (d) => d.e2eS * 1000)) },
  ];
  return { title, subtitle, tables: [{ title: 'Summary', header: summaryHeader(runs), rows: summaryRows(runs) }, ...extraTables], charts };
}
