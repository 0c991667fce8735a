/**
 * `kvmgr experiment run FILE.yaml`: the cross product workloads × setups × configurations × seeds
 * of an experiment file, run in the simulator's worker pool (`runSweep`), then aggregated over
 * seeds (mean, 95% t-interval), with a verdict per hypothesis and a value per target.
 *
 * Outputs in `--out` (default `kvmgr-experiment/<name>`): `cells.jsonl` (one line per finished
 * cell, appended as cells finish: an interrupted run resumes from it, re-running only the cells
 * whose job is not there), `results.json` (deterministic: no wall times, so two runs of the same
 * file and seeds are byte-identical) and `report.html` (tables and plots).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { KvmgrError, parseYamlText } from '@kvmgr/core';
import { type InstanceSample, type RequestRow, type RunSummary, type SweepJob, type SweepResult, getEngineProfile, percentileSorted, runSweep } from '@kvmgr/sim';
import { writeOutputs } from '../output.js';
import { checkOutDir, note, sweepThreads } from '../preflight.js';
import { createProgress } from '../progress.js';
import { type ChartSpec, type TableSpec, renderReportHtml } from '../report-html.js';
import { formatTable } from '../table.js';
import { type CellRef, type Experiment, type WorkloadEntry, loadExperiment, quotaOptions } from './schema.js';
import { type MeanCi, type PairedVerdict, judgePaired, meanCi } from './stats.js';

/** Flags of `kvmgr experiment run`. */
export interface ExperimentFlags {
  /** Overrides the file's `seeds`. */
  seeds?: number;
  workers?: number;
  forceWorkers?: boolean;
  out?: string;
  progress?: boolean;
}

/** One cell of the cross product. */
export interface Cell {
  readonly workload: string;
  readonly setup: string;
  readonly configuration: string;
  readonly seed: number;
}

/** A finished cell: its job key and its metric values. */
export interface CellResult extends Cell {
  /** Hash of the simulator job (trace + replay options): a changed file re-runs only changed cells. */
  readonly key: string;
  readonly metrics: Readonly<Record<string, number>>;
}

/** Aggregate of one metric of one (workload, setup, configuration) over seeds. */
export interface Aggregate extends MeanCi {
  readonly workload: string;
  readonly setup: string;
  readonly configuration: string;
  readonly metric: string;
}

/** A judged hypothesis. */
export interface HypothesisResult extends PairedVerdict {
  readonly id: string;
  readonly statement: string;
  readonly metric: string;
  readonly expect: 'higher' | 'lower';
  readonly treatment: string;
  readonly baseline: string;
}

/** A checked target. */
export interface TargetResult extends MeanCi {
  readonly id: string;
  readonly statement: string;
  readonly metric: string;
  readonly cell: string;
  readonly op: '<=' | '>=';
  readonly value: number;
  readonly met: boolean;
}

/** The goodput knee of one configuration on a rate-swept workload (means over seeds). */
export interface KneeResult {
  readonly workload: string;
  readonly setup: string;
  readonly configuration: string;
  /** Highest rate multiplier with SLO attainment ≥ the target; null when none reaches it. */
  readonly kneeRate: number | null;
  /** Goodput at the knee, req/s (0 without a knee). */
  readonly kneeGoodputRps: number;
  /** Highest goodput over the swept rates, req/s, and the rate it was reached at. */
  readonly peakGoodputRps: number;
  readonly peakRate: number;
  /** Knee goodput and peak goodput divided by the baseline configuration's (same workload and setup); null without a baseline or when it is 0. */
  readonly kneeGoodputVsBaseline: number | null;
  readonly peakGoodputVsBaseline: number | null;
  /** Knee goodput and peak goodput as a share of the ceiling configuration's; null without a ceiling or when it is 0. */
  readonly kneeGoodputVsCeiling: number | null;
  readonly peakGoodputVsCeiling: number | null;
}

/** `results.json`. */
export interface ExperimentResults {
  readonly experiment: string;
  readonly title: string;
  readonly seeds: number;
  readonly metrics: readonly string[];
  readonly cells: readonly CellResult[];
  readonly aggregates: readonly Aggregate[];
  readonly hypotheses: readonly HypothesisResult[];
  readonly targets: readonly TargetResult[];
  readonly knees: readonly KneeResult[];
}

/** Workload YAML of a workload entry with its seed shifted by `seed` (so each seed draws a new workload). */
function workloadYaml(x: Experiment, w: WorkloadEntry, seed: number): string {
  const fromFile = (file: string) => parseYamlText(readFileSync(file, 'utf8'), file) as Record<string, unknown>;
  const spec = (w.workload ?? fromFile(resolve(x.baseDir, w.file as string))) as Record<string, unknown>;
  const base = typeof spec['seed'] === 'number' ? (spec['seed'] as number) : 0;
  return JSON.stringify({ name: w.name, ...spec, seed: base + seed });
}

/** The simulator job of a cell. */
export function jobOf(x: Experiment, cell: Cell): SweepJob {
  const w = x.workloads.find((v) => v.name === cell.workload) as WorkloadEntry;
  const s = x.setups.find((v) => v.name === cell.setup) as Experiment['setups'][number];
  const c = x.configurations.find((v) => v.name === cell.configuration) as Experiment['configurations'][number];
  const trace: SweepJob['trace'] =
    w.trace !== undefined
      ? { kind: w.trace.kind, path: resolve(x.baseDir, w.trace.path), ...(w.trace.limit === undefined ? {} : { options: { limit: w.trace.limit } }) }
      : { kind: 'workload', yaml: workloadYaml(x, w, cell.seed) };
  const profile = getEngineProfile(c.profile);
  const gpuBlocks = c.gpu_blocks ?? s.gpu_blocks;
  return {
    id: `${cell.workload}/${cell.setup}/${cell.configuration}/seed${cell.seed}`,
    trace,
    includeRequests: x.metrics.some((m) => m.includes('@')),
    includeTimeseries: x.metrics.includes('throughput_cv'),
    replay: {
      model: s.model ?? x.model,
      gpu: s.gpu ?? x.gpu,
      ...(s.tp === undefined ? {} : { tp: s.tp }),
      instances: typeof s.instances === 'number' ? s.instances : s.instances.map((v) => (typeof v === 'string' ? v : v.gpu === undefined ? { role: v.role } : { role: v.role, gpu: v.gpu })),
      ...(s.pairing === 'capability' ? { pdPairing: 'capability' as const } : {}),
      ...(s.prefetch === true ? { prefetch: true } : {}),
      profile,
      ...(c.router === undefined ? {} : { router: c.router }),
      ...(c.pipeline === undefined ? {} : { pipeline: c.pipeline }),
      ...(c.eviction === undefined ? {} : { eviction: c.eviction }),
      // kv_backend: both values run the same engine core (the cell key stays that of `kvmgr`)
      ...(gpuBlocks === undefined ? {} : { gpuBlocks }),
      ...(s.cpu_blocks === undefined ? {} : { cpuBlocks: s.cpu_blocks }),
      ...(c.quota === undefined ? {} : { quota: quotaOptions(c.quota) }),
      rateScale: w.rate_scale,
      slo: { ttftMs: x.slo.ttft_ms, tpotMs: x.slo.tpot_ms },
      seed: cell.seed,
    },
  };
}

function jobKey(job: SweepJob): string {
  return createHash('sha256')
    // engine: cells logged before the engine core became the default ran on the legacy engine
    .update(JSON.stringify({ trace: job.trace, replay: job.replay, rows: job.includeRequests === true, engine: job.replay.engine ?? 'core-default' }))
    .digest('hex')
    .slice(0, 20);
}

const SUMMARY_METRICS: Readonly<Record<string, (s: RunSummary) => number>> = {
  goodput_rps: (s) => s.goodputRps,
  slo_attainment: (s) => s.sloAttainment,
  throughput_rps: (s) => s.throughputRps,
  output_tok_per_s: (s) => s.outputTokPerSec,
  ttft_p50_ms: (s) => s.ttftMs.p50,
  ttft_p99_ms: (s) => s.ttftMs.p99,
  tpot_p50_ms: (s) => s.tpotMs.p50,
  tpot_p99_ms: (s) => s.tpotMs.p99,
  e2e_p99_ms: (s) => s.e2eMs.p99,
  hit_rate: (s) => s.hitRate,
  preemptions: (s) => s.preemptions,
  rejected: (s) => s.rejected,
  evicted_blocks: (s) => s.evictedBlocks,
  offloaded_blocks: (s) => s.offloadedBlocks,
  reloaded_blocks: (s) => s.reloadedBlocks,
  // undefined (NaN) for a run without migrations: a rate of nothing is no evidence
  migration_failure_rate: (s) => (s.migratedBlocks > 0 ? s.migrationFailureRate : Number.NaN),
  migrated_blocks: (s) => s.migratedBlocks,
  kv_utilization: (s) => s.kvUtilization,
  jain_index: (s) => s.jainIndex,
  kv_prediction_mape: (s) => s.kvPredictionMape,
  kv_underprediction_rate: (s) => s.kvUnderpredictionRate,
  // quota metrics are undefined (NaN) for a configuration without the quota split
  quota_shifts: (s) => s.quota?.shifts ?? Number.NaN,
  quota_shifted_blocks: (s) => s.quota?.shiftedBlocks ?? Number.NaN,
  embedding_quota_peak: (s) => s.quota?.embeddingQuotaPeak ?? Number.NaN,
  quota_overcommitted: (s) => s.quota?.overCommitted ?? Number.NaN,
};

function classMetric(base: string, rows: readonly RequestRow[], durationS: number): number {
  if (rows.length === 0) return Number.NaN;
  const served = rows.filter((r) => r.rejectedReason === '');
  const sorted = (f: (r: RequestRow) => number) =>
    Float64Array.from(served.map(f).filter((v) => Number.isFinite(v))).sort();
  const met = rows.filter((r) => r.sloMet).length;
  switch (base) {
    case 'ttft_p50_ms':
      return percentileSorted(sorted((r) => r.ttftMs), 50);
    case 'ttft_p99_ms':
      return percentileSorted(sorted((r) => r.ttftMs), 99);
    case 'tpot_p99_ms':
      return percentileSorted(sorted((r) => r.tpotMs), 99);
    case 'slo_attainment':
      return met / rows.length;
    case 'goodput_rps':
      return durationS > 0 ? met / durationS : Number.NaN;
    default:
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `metric ${base} cannot be split by SLO class`);
  }
}

/**
 * Throughput fluctuation: coefficient of variation (sd / mean) of the cluster's output tokens/s
 * over the sampling intervals of the run, without the first and last 10% of intervals (ramp-up
 * and drain). NaN with fewer than 3 intervals left.
 */
export function throughputCv(samples: readonly InstanceSample[]): number {
  const byT = new Map<number, number>();
  for (const s of samples) byT.set(s.tMs, (byT.get(s.tMs) ?? 0) + s.outputTokPerSec);
  const series = [...byT.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  const cut = Math.floor(series.length / 10);
  const mid = series.slice(cut, series.length - cut);
  if (mid.length < 3) return Number.NaN;
  const mean = mid.reduce((a, b) => a + b, 0) / mid.length;
  if (!(mean > 0)) return Number.NaN;
  return Math.sqrt(mid.reduce((a, b) => a + (b - mean) ** 2, 0) / (mid.length - 1)) / mean;
}

/** The metric values of one finished job. NaN where a metric is undefined (e.g. no request of a class). */
export function metricsOf(metrics: readonly string[], r: Pick<SweepResult, 'summary' | 'requests' | 'timeseries'>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of metrics) {
    const [base, cls] = m.split('@') as [string, string | undefined];
    if (base === 'throughput_cv') out[m] = throughputCv(r.timeseries ?? []);
    else if (cls === undefined) out[m] = (SUMMARY_METRICS[base] as (s: RunSummary) => number)(r.summary);
    else out[m] = classMetric(base, (r.requests ?? []).filter((row) => row.sloClass === cls), r.summary.durationS);
  }
  return out;
}

/** Every cell of the experiment, in file order (workload, setup, configuration, seed). */
export function cellsOf(x: Experiment, seeds: number): Cell[] {
  const out: Cell[] = [];
  for (const w of x.workloads) for (const s of x.setups) for (const c of x.configurations) for (let seed = 0; seed < seeds; seed++) out.push({ workload: w.name, setup: s.name, configuration: c.name, seed });
  return out;
}

/** Finished cells recorded in `cells.jsonl` (a torn last line of an interrupted run is skipped). */
export function readFinished(path: string): Map<string, CellResult> {
  const done = new Map<string, CellResult>();
  if (!existsSync(path)) return done;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const r = JSON.parse(line) as CellResult;
      if (typeof r.key === 'string' && typeof r.metrics === 'object') done.set(r.key, r);
    } catch {
      // a line cut short by an interrupted write: that cell runs again
    }
  }
  return done;
}

const cellName = (ref: { configuration: string; setup?: string | readonly string[]; workload?: string }): string =>
  [ref.workload, ref.setup === undefined ? undefined : Array.isArray(ref.setup) ? ref.setup.join('+') : ref.setup, ref.configuration].filter((v) => v !== undefined).join('/');

const setupsOf = (x: Experiment, ref: CellRef): string[] => (ref.setup === undefined ? x.setups.map((s) => s.name) : Array.isArray(ref.setup) ? [...ref.setup] : [ref.setup as string]);

/**
 * Aggregates finished cells: means with CIs, hypothesis verdicts, targets.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` when a hypothesis pairs setup lists of different lengths.
 */
export function aggregate(x: Experiment, seeds: number, cells: readonly CellResult[]): ExperimentResults {
  const at = new Map<string, CellResult>();
  for (const c of cells) at.set(`${c.workload}\u0000${c.setup}\u0000${c.configuration}\u0000${c.seed}`, c);
  const value = (w: string, s: string, c: string, seed: number, m: string): number => at.get(`${w}\u0000${s}\u0000${c}\u0000${seed}`)?.metrics[m] ?? Number.NaN;
  const seedList = Array.from({ length: seeds }, (_, i) => i);
  const aggregates: Aggregate[] = [];
  for (const w of x.workloads)
    for (const s of x.setups)
      for (const c of x.configurations)
        for (const m of x.metrics) aggregates.push({ workload: w.name, setup: s.name, configuration: c.name, metric: m, ...meanCi(seedList.map((seed) => value(w.name, s.name, c.name, seed, m))) });
  const hypotheses: HypothesisResult[] = x.hypotheses.map((h, i) => {
    const w = h.treatment.workload ?? h.baseline.workload ?? (x.workloads[0] as WorkloadEntry).name;
    const st = h.treatment.setup === undefined && h.baseline.setup !== undefined ? setupsOf(x, h.baseline) : setupsOf(x, h.treatment);
    const sb = h.baseline.setup === undefined ? st : setupsOf(x, h.baseline);
    if (st.length !== sb.length) throw new KvmgrError('KVMGR_BAD_CONFIG', `${x.file}: hypotheses.${i}: treatment and baseline name ${st.length} and ${sb.length} setups; pairs need the same number`);
    const pairs: [number, number][] = [];
    for (const seed of seedList)
      for (let k = 0; k < st.length; k++)
        pairs.push([value(h.treatment.workload ?? w, st[k] as string, h.treatment.configuration, seed, h.metric), value(h.baseline.workload ?? w, sb[k] as string, h.baseline.configuration, seed, h.metric)]);
    return {
      id: h.id,
      statement: h.statement,
      metric: h.metric,
      expect: h.expect,
      treatment: cellName({ ...h.treatment, workload: h.treatment.workload ?? w, setup: st }),
      baseline: cellName({ ...h.baseline, workload: h.baseline.workload ?? w, setup: sb }),
      ...judgePaired(pairs, h.expect),
    };
  });
  const targets: TargetResult[] = x.targets.map((t) => {
    const w = t.cell.workload ?? (x.workloads[0] as WorkloadEntry).name;
    const vs = seedList.flatMap((seed) => setupsOf(x, t.cell).map((s) => value(w, s, t.cell.configuration, seed, t.metric)));
    const ci = meanCi(vs);
    const met = t.op === '<=' ? ci.mean <= t.value : ci.mean >= t.value;
    return { id: t.id, statement: t.statement, metric: t.metric, cell: cellName({ ...t.cell, workload: w, setup: setupsOf(x, t.cell) }), op: t.op, value: t.value, met, ...ci };
  });
  const order = new Map(cellsOf(x, seeds).map((c, i) => [`${c.workload}\u0000${c.setup}\u0000${c.configuration}\u0000${c.seed}`, i]));
  const sortedCells = [...cells].sort(
    (a, b) => (order.get(`${a.workload}\u0000${a.setup}\u0000${a.configuration}\u0000${a.seed}`) ?? 0) - (order.get(`${b.workload}\u0000${b.setup}\u0000${b.configuration}\u0000${b.seed}`) ?? 0),
  );
  return { experiment: x.name, title: x.title ?? x.name, seeds, metrics: x.metrics, cells: sortedCells, aggregates, hypotheses, targets, knees: kneesOf(x, aggregates) };
}

/** Knees of every rate-swept workload × setup × configuration, from the aggregates. */
export function kneesOf(x: Experiment, aggregates: readonly Aggregate[]): KneeResult[] {
  const target = x.knee?.target ?? 0.9;
  const mean = (w: string, s: string, c: string, m: string): number => aggregates.find((a) => a.workload === w && a.setup === s && a.configuration === c && a.metric === m)?.mean ?? Number.NaN;
  const raw: Omit<KneeResult, 'kneeGoodputVsBaseline' | 'peakGoodputVsBaseline' | 'kneeGoodputVsCeiling' | 'peakGoodputVsCeiling'>[] = [];
  for (const sw of x.sweeps)
    for (const s of x.setups)
      for (const c of x.configurations) {
        let kneeRate: number | null = null;
        let kneeGoodputRps = 0;
        let peakGoodputRps = 0;
        let peakRate = sw.rates[0] as number;
        for (const [i, rate] of sw.rates.entries()) {
          const name = sw.names[i] as string;
          const att = mean(name, s.name, c.name, 'slo_attainment');
          const gp = mean(name, s.name, c.name, 'goodput_rps');
          if (att >= target && (kneeRate === null || rate > kneeRate)) {
            kneeRate = rate;
            kneeGoodputRps = gp;
          }
          if (gp > peakGoodputRps) {
            peakGoodputRps = gp;
            peakRate = rate;
          }
        }
        raw.push({ workload: sw.base, setup: s.name, configuration: c.name, kneeRate, kneeGoodputRps, peakGoodputRps, peakRate });
      }
  const ratio = (a: number, d: number | undefined): number | null => (d === undefined || !(d > 0) ? null : a / d);
  return raw.map((k) => {
    const of = (conf: string | undefined) => (conf === undefined ? undefined : raw.find((v) => v.workload === k.workload && v.setup === k.setup && v.configuration === conf));
    const b = of(x.knee?.baseline);
    const c = of(x.knee?.ceiling);
    return {
      ...k,
      kneeGoodputVsBaseline: ratio(k.kneeGoodputRps, b?.kneeGoodputRps),
      peakGoodputVsBaseline: ratio(k.peakGoodputRps, b?.peakGoodputRps),
      kneeGoodputVsCeiling: ratio(k.kneeGoodputRps, c?.kneeGoodputRps),
      peakGoodputVsCeiling: ratio(k.peakGoodputRps, c?.peakGoodputRps),
    };
  });
}

/** `mean ± half-width` with digits suited to the magnitude. */
export function fmtCi(a: MeanCi): string {
  if (!Number.isFinite(a.mean)) return '—';
  const mag = Math.abs(a.mean);
  const d = mag >= 100 ? 0 : mag >= 10 ? 1 : mag >= 1 ? 2 : 3;
  const half = (a.high - a.low) / 2;
  return half > 0 ? `${a.mean.toFixed(d)} ± ${half.toFixed(d)}` : a.mean.toFixed(d);
}

/** A mean without its interval, in {@link fmtCi}'s digits. */
const fmtValue = (v: number): string => fmtCi({ n: 1, mean: v, sd: 0, low: v, high: v });

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

/** The tables of the results (terminal and HTML share them). */
export function resultTables(r: ExperimentResults): TableSpec[] {
  const tables: TableSpec[] = [];
  const keys = [...new Set(r.aggregates.map((a) => `${a.workload}\u0000${a.setup}\u0000${a.configuration}`))];
  tables.push({
    title: `Means over ${r.seeds} seed${r.seeds === 1 ? '' : 's'} ± 95% CI half-width`,
    header: ['workload', 'setup', 'configuration', ...r.metrics],
    rows: keys.map((k) => {
      const [w, s, c] = k.split('\u0000') as [string, string, string];
      return [w, s, c, ...r.metrics.map((m) => fmtCi(r.aggregates.find((a) => a.workload === w && a.setup === s && a.configuration === c && a.metric === m) as Aggregate))];
    }),
  });
  if (r.hypotheses.length > 0) {
    tables.push({
      title: 'Hypotheses (paired over seeds × setups: mean relative difference treatment vs baseline, 95% CI)',
      header: ['id', 'verdict', 'metric', 'expect', 'treatment', 'baseline', 'treatment mean', 'baseline mean', 'Δ [95% CI]', 'pairs', 'statement'],
      rows: r.hypotheses.map((h) => [
        h.id,
        h.verdict,
        h.metric,
        h.expect,
        h.treatment,
        h.baseline,
        fmtValue(h.treatmentMean),
        fmtValue(h.baselineMean),
        Number.isFinite(h.relDiff.mean) ? `${pct(h.relDiff.mean)} [${pct(h.relDiff.low)}, ${pct(h.relDiff.high)}]` : '—',
        String(h.n),
        h.statement,
      ]),
    });
  }
  if (r.knees.length > 0) {
    const fx = (v: number | null): string => (v === null ? '—' : `${v.toFixed(2)}×`);
    tables.push({
      title: 'Goodput knees (highest rate multiplier with mean SLO attainment ≥ the target; ratios vs the baseline and the ceiling configurations)',
      header: ['workload', 'setup', 'configuration', 'knee rate', 'goodput at knee (req/s)', 'peak goodput (req/s)', 'at rate', 'knee goodput vs baseline', 'peak goodput vs baseline', 'knee goodput / ceiling', 'peak goodput / ceiling'],
      rows: r.knees.map((k) => [
        k.workload,
        k.setup,
        k.configuration,
        k.kneeRate === null ? 'none' : `${k.kneeRate}×`,
        k.kneeGoodputRps.toFixed(3),
        k.peakGoodputRps.toFixed(3),
        `${k.peakRate}×`,
        fx(k.kneeGoodputVsBaseline),
        fx(k.peakGoodputVsBaseline),
        fx(k.kneeGoodputVsCeiling),
        fx(k.peakGoodputVsCeiling),
      ]),
    });
  }
  if (r.targets.length > 0) {
    tables.push({
      title: 'Targets (mean over seeds, 95% CI)',
      header: ['id', 'met', 'metric', 'cell', 'target', 'measured', 'statement'],
      rows: r.targets.map((t) => [t.id, t.met ? 'yes' : 'no', t.metric, t.cell, `${t.op} ${t.value}`, fmtCi(t), t.statement]),
    });
  }
  return tables;
}

const UNITS: Readonly<Record<string, string>> = {
  goodput_rps: 'goodput (req/s)',
  slo_attainment: 'SLO attainment (fraction)',
  throughput_rps: 'throughput (req/s)',
  output_tok_per_s: 'output tokens/s',
  ttft_p50_ms: 'TTFT p50 (ms)',
  ttft_p99_ms: 'TTFT p99 (ms)',
  tpot_p50_ms: 'TPOT p50 (ms)',
  tpot_p99_ms: 'TPOT p99 (ms)',
  e2e_p99_ms: 'E2E p99 (ms)',
  hit_rate: 'prefix hit rate (fraction of prompt tokens)',
  preemptions: 'preemptions (count)',
  rejected: 'rejected requests (count)',
  evicted_blocks: 'evicted blocks (count)',
  offloaded_blocks: 'offloaded blocks (count)',
  reloaded_blocks: 'reloaded blocks (count)',
  migration_failure_rate: 'KV migration failure rate (fraction of migrated blocks)',
  migrated_blocks: 'KV migrations ended (blocks)',
  kv_utilization: 'KV utilization (fraction)',
  jain_index: "Jain's fairness index",
  throughput_cv: 'output-throughput fluctuation (CV over 1 s intervals)',
  kv_prediction_mape: 'predicted vs peak KV blocks per request, MAPE (fraction)',
  kv_underprediction_rate: 'requests whose peak KV exceeded the prediction (fraction)',
  quota_shifts: 'LLM/embedding quota shifts (instance-rounds)',
  quota_shifted_blocks: 'embedding quota moved (blocks)',
  embedding_quota_peak: 'peak embedding quota (fraction of GPU blocks)',
  quota_overcommitted: 'quota over-commits (instance-rounds)',
};

/** Y-axis label of a metric, with its unit. */
export function metricLabel(m: string): string {
  const [base, cls] = m.split('@') as [string, string | undefined];
  const l = UNITS[base] ?? base;
  return cls === undefined ? l : `${l}, ${cls} requests`;
}

/** One chart per workload and metric: x = setup (1…S, in file order), a line per configuration with its CI ends as points. */
export function resultCharts(x: Experiment, r: ExperimentResults): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const setupAxis = `setup (${x.setups.map((s, i) => `${i + 1} = ${s.name}`).join(', ')})`;
  for (const [swi, sw] of x.sweeps.entries()) {
    for (const [si, s] of x.setups.entries()) {
      for (const m of ['goodput_rps', 'slo_attainment']) {
        charts.push({
          id: `sweep${swi}-s${si}-${m.replace('_', '-')}`,
          title: `${sw.base} on ${s.name}: ${metricLabel(m)} against the arrival rate`,
          xLabel: 'arrival rate (× the workload’s rate)',
          yLabel: metricLabel(m),
          symbols: true,
          series: x.configurations.map((c) => ({
            name: c.name,
            points: sw.rates
              .map((rate, i) => [rate, r.aggregates.find((a) => a.workload === sw.names[i] && a.setup === s.name && a.configuration === c.name && a.metric === m)?.mean ?? Number.NaN] as const)
              .filter((p) => Number.isFinite(p[1])),
          })),
        });
      }
    }
  }
  const swept = new Set(x.sweeps.flatMap((sw) => sw.names));
  for (const [wi, w] of x.workloads.entries()) {
    if (swept.has(w.name)) continue;
    for (const [mi, m] of r.metrics.entries()) {
      charts.push({
        id: `w${wi}-m${mi}`,
        title: `${w.name}: ${metricLabel(m)}`,
        xLabel: setupAxis,
        yLabel: metricLabel(m),
        symbols: true,
        integerX: true,
        series: x.configurations.map((c) => ({
          name: c.name,
          points: x.setups
            .map((s, si) => [si + 1, r.aggregates.find((a) => a.workload === w.name && a.setup === s.name && a.configuration === c.name && a.metric === m)?.mean ?? Number.NaN] as const)
            .filter((p) => Number.isFinite(p[1])),
        })),
      });
    }
  }
  return charts;
}

function mdCell(v: string): string {
  return v.replace(/\|/g, '\\|');
}

/** A GitHub-flavoured markdown table. */
export function markdownTable(t: TableSpec): string {
  const head = `| ${t.header.map(mdCell).join(' | ')} |`;
  const rule = `|${t.header.map(() => ' --- |').join('')}`;
  return [head, rule, ...t.rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`)].join('\n');
}

/**
 * `results.md`: the verdicts first (one line each, with the numbers and CI behind it), then the
 * targets and knees, then the table of means. Deterministic (no wall times), so the docs quote it
 * as it is (`scripts/docs-experiments.ts` copies it into docs/experiments).
 */
export function resultsMarkdown(x: Experiment, r: ExperimentResults, command: string): string {
  const lines: string[] = [`Reproduce: \`${command}\` (${r.cells.length} cells: ${x.workloads.length} workload${x.workloads.length === 1 ? '' : 's'} × ${x.setups.length} setups × ${x.configurations.length} configurations × ${r.seeds} seeds).`, ''];
  if (r.hypotheses.length > 0) {
    lines.push('**Verdicts** (paired over seeds × setups; Δ = mean relative difference treatment vs baseline, 95% CI):', '');
    for (const h of r.hypotheses) {
      const ci = Number.isFinite(h.relDiff.mean) ? `Δ ${pct(h.relDiff.mean)} [${pct(h.relDiff.low)}, ${pct(h.relDiff.high)}]` : 'no data';
      lines.push(`- **${h.id}: ${h.verdict}.** ${h.statement}. ${h.metric} ${fmtValue(h.treatmentMean)} (${h.treatment}) vs ${fmtValue(h.baselineMean)} (${h.baseline}), ${ci}, ${h.n} pairs${h.relDiff.n >= 2 && h.relDiff.sd === 0 ? ' (identical across pairs: a zero-width interval)' : ''}.`);
    }
    lines.push('');
  }
  if (r.targets.length > 0) {
    lines.push('**Targets** (mean over seeds, 95% CI):', '');
    for (const t of r.targets) lines.push(`- **${t.id}: ${t.met ? 'met' : 'not met'}.** ${t.statement}: ${t.metric} = ${fmtCi(t)} (${t.cell}; target ${t.op} ${t.value}).`);
    lines.push('');
  }
  for (const t of resultTables(r).filter((tb) => !tb.title.startsWith('Hypotheses') && !tb.title.startsWith('Targets'))) lines.push(`**${t.title}**`, '', markdownTable(t), '');
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Runs `kvmgr experiment run`. */
export async function runExperimentCommand(file: string, flags: ExperimentFlags): Promise<ExperimentResults> {
  const x = loadExperiment(file);
  const seeds = flags.seeds ?? x.seeds;
  const out = flags.out ?? join('kvmgr-experiment', x.name);
  checkOutDir(out);
  const cells = cellsOf(x, seeds);
  const jobs = cells.map((c) => jobOf(x, c));
  const keys = jobs.map(jobKey);
  aggregate(x, seeds, []); // pairing errors before any run
  mkdirSync(resolve(out), { recursive: true });
  const logPath = join(resolve(out), 'cells.jsonl');
  const finished = readFinished(logPath);
  const todo = jobs.map((j, i) => ({ j, i })).filter(({ i }) => !finished.has(keys[i] as string));
  if (finished.size > 0 && todo.length < jobs.length) note(`${out}/cells.jsonl: resuming, ${jobs.length - todo.length} of ${jobs.length} cells already finished`);
  const threads = sweepThreads(flags.workers, Math.max(1, todo.length), flags.forceWorkers === true);
  const progress = createProgress(flags.progress !== false && process.stderr.isTTY === true);
  const started = performance.now();
  progress.start(x.name, jobs.length, 'cells');
  progress.update(jobs.length - todo.length);
  let done = jobs.length - todo.length;
  try {
    await runSweep(
      todo.map((t) => t.j),
      {
        threads,
        onResult: (res, _n) => {
          const t = todo.find((v) => v.j.id === res.id) as { j: SweepJob; i: number };
          if (res.violations.length > 0) note(`${res.id}: conservation violations: ${res.violations.slice(0, 3).join('; ')}`);
          const cell: CellResult = { ...(cells[t.i] as Cell), key: keys[t.i] as string, metrics: metricsOf(x.metrics, res) };
          appendFileSync(logPath, `${JSON.stringify(cell)}\n`);
          finished.set(cell.key, cell);
          progress.update(++done);
        },
      },
    );
  } finally {
    progress.stop();
  }
  const results = aggregate(
    x,
    seeds,
    keys.map((k) => finished.get(k) as CellResult),
  );
  const tables = resultTables(results);
  const html = renderReportHtml({
    title: results.title,
    subtitle: [`experiment file: ${file}`, `${cells.length} cells: ${x.workloads.length} workloads × ${x.setups.length} setups × ${x.configurations.length} configurations × ${seeds} seeds`, `model ${x.model} on ${x.gpu}; SLO TTFT ≤ ${x.slo.ttft_ms} ms, TPOT ≤ ${x.slo.tpot_ms} ms`],
    tables,
    charts: resultCharts(x, results),
  });
  const command = `pnpm kvmgr experiment run ${file}${flags.seeds === undefined ? '' : ` --seeds ${flags.seeds}`}`;
  const written = writeOutputs(out, { 'results.json': `${JSON.stringify(results, null, 1)}\n`, 'results.md': resultsMarkdown(x, results, command), 'report.html': html });
  for (const t of tables) console.log(`\n${t.title}\n${formatTable(t.header, t.rows)}`);
  const wallS = (performance.now() - started) / 1000;
  console.log(`\n${cells.length} cells (${todo.length} run now, ${cells.length - todo.length} resumed) in ${wallS.toFixed(1)} s with ${threads} worker thread${threads === 1 ? '' : 's'}`);
  // The wall time of a run that computed every cell (a resumed run's says nothing about the
  // experiment): kept apart from results.json, which stays byte-identical across runs.
  if (todo.length === cells.length && cells.length > 0) {
    written.push(...writeOutputs(out, { 'timing.json': `${JSON.stringify({ cells: cells.length, wallS: Math.round(wallS * 10) / 10, workerThreads: threads, cpuCores: availableParallelism() }, null, 1)}\n` }));
  }
  console.log(`wrote ${[...written, join(out, 'cells.jsonl')].join(', ')}`);
  return results;
}
