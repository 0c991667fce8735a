/**
 * `kvmgr bench serve`: a load generator for any OpenAI-compatible endpoint. Resolves the target
 * and the workload, sends it, and writes inference-perf's files (+ `vllm bench serve`'s JSON
 * with `--vllm-json`) and `report.html`; prints a summary table.
 */
import { readFileSync } from 'node:fs';
import { KvmgrError } from '@kvmgr/core';
import { removeOutputs, writeOutputs } from '../output.js';
import { parseDurationMs } from '../parse.js';
import { DEFAULTS } from '../defaults.js';
import { createProgress } from '../progress.js';
import { renderReportHtml } from '../report-html.js';
import { loadTrace, resolveRunOptions } from '../run.js';
import { type BenchApi, networkReason } from './client.js';
import { readInferencePerfConfig } from './inference-perf.js';
import { type SloS, benchSummary, derive, vllmBenchJson } from './metrics.js';
import { type BenchRun, type BenchSetup, benchHtml, formatRuns, inferencePerfFiles } from './report.js';
import { runWorkload } from './runner.js';
import { type Workload, limitWorkload, traceWorkload, withArrivals } from './workload.js';

/** Flags of `kvmgr bench serve` as commander hands them over. */
export interface BenchServeFlags {
  target?: string;
  model?: string;
  trace?: string;
  config?: string;
  lenient?: boolean;
  limit?: number;
  duration?: string;
  rateScale?: number;
  rate?: number;
  concurrency?: number;
  maxConnections?: number;
  timeScale?: number;
  sloTtft?: string;
  sloTpot?: string;
  seed?: number;
  requestTimeout?: string;
  out?: string;
  vllmJson?: boolean;
  progress?: boolean;
  api?: BenchApi;
  /** commander's `--no-stream`: false when given. */
  stream?: boolean;
  promptFormat?: 'tokens' | 'text';
}

/** Default output folder. */
export const DEFAULT_BENCH_OUT = 'kvmgr-bench';

/** Name of the `vllm bench serve` result file written with `--vllm-json`. */
export const VLLM_JSON_FILE = 'vllm_bench_serve.json';

/**
 * Checks a `--target` URL and returns its base (no trailing `/` or `/v1`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for anything but an http(s) URL.
 */
export function normalizeTarget(target: string): string {
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--target: expected an http(s) URL such as http://127.0.0.1:8000, got ${JSON.stringify(target)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--target: expected an http(s) URL, got ${JSON.stringify(target)}`);
  return `${u.origin}${u.pathname}`.replace(/\/+$/, '').replace(/\/v1$/, '');
}

/**
 * Reaches the target once (`GET /v1/models`, 5 s) and names the model: `model` when given, else
 * the first model the target lists.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the target cannot be reached, or lists no
 *   model and none is given.
 */
export async function probeTarget(url: string, model: string | undefined): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--target ${url}: cannot reach it (${networkReason(e)})`, { cause: e });
  }
  type Models = { data?: Array<{ id?: string }> } | null;
  const body: Models = res.ok ? ((await res.json().catch(() => null)) as Models) : null;
  if (!res.ok) await res.body?.cancel();
  if (model !== undefined) return model;
  const id = body?.data?.[0]?.id;
  if (typeof id !== 'string') throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--model: ${url}/v1/models lists no model (HTTP ${res.status}); give --model`);
  return id;
}

/** Everything one measured run needs. */
export interface BenchServeOptions {
  readonly target: string;
  readonly model: string;
  readonly workload: Workload;
  readonly rateScale: number;
  readonly timeScale: number;
  readonly rate?: number;
  readonly concurrency?: number;
  /** Connection cap of the run (see `runWorkload`). @default 1024 */
  readonly maxConnections?: number;
  readonly durationS?: number;
  readonly requestTimeoutS: number;
  readonly slo: SloS;
  readonly seed: number;
  readonly out: string;
  readonly progress: boolean;
  readonly label: string;
  /** Stops the run early (see `runWorkload`). */
  readonly signal?: AbortSignal;
  /** @default the workload's, else 'completion' */
  readonly api?: BenchApi;
  /** @default the workload's, else true */
  readonly stream?: boolean;
  /** @default 'tokens' */
  readonly promptFormat?: 'tokens' | 'text';
}

/** One run's result: the run and the files to write (not yet written). */
export interface BenchServeResult {
  readonly run: BenchRun;
  readonly setup: BenchSetup;
  readonly unsent: number;
  readonly wallS: number;
  readonly vllmJson: Record<string, unknown>;
}

/** Sends the workload and measures it (times in model time when `timeScale` ≠ 1). */
export async function benchServe(o: BenchServeOptions): Promise<BenchServeResult> {
  const headers = { 'x-slo-ttft-ms': String(+((o.slo.ttftS * 1000) / o.timeScale).toFixed(3)), 'x-slo-tpot-ms': String(+((o.slo.tpotS * 1000) / o.timeScale).toFixed(3)) };
  const res = await runWorkload({
    url: o.target,
    model: o.model,
    workload: o.workload,
    rateScale: o.rateScale,
    timeScale: o.timeScale,
    ...(o.concurrency !== undefined ? { maxConcurrency: o.concurrency } : {}),
    ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
    ...(o.durationS !== undefined ? { durationS: o.durationS } : {}),
    requestTimeoutS: o.requestTimeoutS,
    headers,
    progress: createProgress(o.progress && process.stderr.isTTY === true),
    label: o.label,
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    ...(o.api !== undefined ? { api: o.api } : {}),
    ...(o.stream !== undefined ? { stream: o.stream } : {}),
    ...(o.promptFormat !== undefined ? { promptFormat: o.promptFormat } : {}),
  });
  const derived = res.records.map((r) => derive(r, o.slo));
  const summary = benchSummary(derived);
  const setup: BenchSetup = {
    api: o.api ?? o.workload.api ?? 'completion',
    stream: o.stream ?? o.workload.stream ?? true,
    target: o.target,
    model: o.model,
    workload: o.workload,
    rateScale: o.rateScale,
    timeScale: o.timeScale,
    ...(o.rate !== undefined ? { rate: o.rate } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    slo: o.slo,
    seed: o.seed,
    out: o.out,
  };
  const vllmJson = vllmBenchJson(derived, o.slo, {
    model: o.model,
    requestRate: o.rate ?? (o.concurrency !== undefined && o.rate === undefined && o.workload.stages.every((s) => s.concurrency !== undefined) ? 'inf' : (o.workload.stages[0]?.rate ?? 0) * o.rateScale),
    maxConcurrency: o.concurrency ?? null,
    durationS: summary.durationS,
  });
  return { run: { label: o.label, derived, summary }, setup, unsent: res.unsent, wallS: res.wallS, vllmJson };
}

/** The files of one run, name → contents. */
export function benchFiles(r: BenchServeResult, opts: { readonly vllmJson: boolean; readonly html: boolean }): Record<string, string> {
  const files = inferencePerfFiles(r.setup, r.run.derived);
  if (opts.vllmJson) files[VLLM_JSON_FILE] = `${JSON.stringify(r.vllmJson, null, 2)}\n`;
  if (opts.html) files['report.html'] = renderReportHtml(benchHtml(`kvmgr bench serve: ${r.setup.model} at ${r.setup.target}`, setupLines(r.setup, r.run.summary.requests), [r.run]));
  return files;
}

/** Lines describing a run's setup. */
export function setupLines(s: BenchSetup, requests: number): string[] {
  const load = s.concurrency !== undefined && s.rate === undefined ? `concurrency ${s.concurrency}` : s.rate !== undefined ? `Poisson ${s.rate} req/s${s.concurrency !== undefined ? `, at most ${s.concurrency} in flight` : ''}` : `trace arrivals ×${s.rateScale}`;
  return [
    `target ${s.target} | model ${s.model} | workload ${s.workload.name} | ${requests} requests | ${load}${s.timeScale !== 1 ? ` | time scale ${s.timeScale} (times in model time)` : ''}`,
    `SLO TTFT ${s.slo.ttftS * 1000} ms, TPOT ${s.slo.tpotS * 1000} ms | seed ${s.seed}`,
  ];
}

/**
 * Builds the workload of a command line: `--config` (inference-perf YAML) or `--trace` (default:
 * the bundled Mooncake sample), `--limit`, then `--rate` / `--concurrency` arrivals.
 * @throws KvmgrError `KVMGR_NOT_FOUND`, `KVMGR_BAD_TRACE`, `KVMGR_BAD_CONFIG`, `KVMGR_INVALID_ARGUMENT`.
 */
export function buildWorkload(f: BenchServeFlags): { workload: Workload; baseUrl?: string; modelName?: string } {
  const seed = f.seed ?? DEFAULTS.seed;
  if (f.config !== undefined && f.trace !== undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', '--config and --trace: give one workload, not both');
  let workload: Workload;
  let extra: { baseUrl?: string; modelName?: string } = {};
  if (f.config !== undefined) {
    let text: string;
    try {
      text = readFileSync(f.config, 'utf8');
    } catch (e) {
      throw new KvmgrError('KVMGR_NOT_FOUND', `--config ${f.config}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    const r = readInferencePerfConfig(text, f.config, seed);
    workload = limitWorkload(r.workload, f.limit);
    extra = { ...(r.baseUrl ? { baseUrl: r.baseUrl } : {}), ...(r.modelName ? { modelName: r.modelName } : {}) };
  } else {
    const opts = resolveRunOptions({ ...(f.trace !== undefined ? { trace: f.trace } : {}), ...(f.limit !== undefined ? { limit: f.limit } : {}), lenient: f.lenient ?? false, seed });
    const trace = loadTrace(opts);
    if (trace.skippedRows > 0) process.stderr.write(`kvmgr: skipped ${trace.skippedRows} malformed rows (--lenient); first: ${trace.skippedReasons[0] ?? ''}\n`);
    workload = traceWorkload(trace, opts.traceLabel, seed);
  }
  if (f.rate !== undefined) workload = withArrivals(workload, { rate: f.rate, seed });
  else if (f.concurrency !== undefined) workload = withArrivals(workload, { concurrency: f.concurrency });
  if (workload.requests.length === 0) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', 'the workload has no request');
  return { workload, ...extra };
}

/** SLOs of a command line: flags, else the workload's, else replay's defaults. */
export function resolveSlo(f: { sloTtft?: string; sloTpot?: string }, w?: Workload): SloS {
  const ttftMs = f.sloTtft !== undefined ? parseDurationMs('--slo-ttft', f.sloTtft) : (w?.sloTtftMs ?? parseDurationMs('--slo-ttft', DEFAULTS.sloTtft));
  const tpotMs = f.sloTpot !== undefined ? parseDurationMs('--slo-tpot', f.sloTpot) : (w?.sloTpotMs ?? parseDurationMs('--slo-tpot', DEFAULTS.sloTpot));
  return { ttftS: ttftMs / 1000, tpotS: tpotMs / 1000 };
}

/** Files `bench serve` may write (removed before a run so stale ones never pass for this run's). */
function staleNames(stages: number): string[] {
  return ['summary_lifecycle_metrics.json', 'per_request_lifecycle_metrics.json', 'config.yaml', 'report.html', VLLM_JSON_FILE, ...Array.from({ length: stages }, (_, i) => `stage_${i}_lifecycle_metrics.json`)];
}

/** Runs `kvmgr bench serve`. */
export async function runBenchServeCommand(f: BenchServeFlags, io: { out: (t: string) => void } = { out: (t) => process.stdout.write(t) }): Promise<void> {
  const { workload, baseUrl, modelName } = buildWorkload(f);
  const targetText = f.target ?? baseUrl;
  if (targetText === undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', '--target: required (the OpenAI-compatible server, e.g. http://127.0.0.1:8000), unless --config names server.base_url');
  const target = normalizeTarget(targetText);
  const slo = resolveSlo(f, workload);
  const durationS = f.duration !== undefined ? parseDurationMs('--duration', f.duration) / 1000 : undefined;
  const requestTimeoutS = f.requestTimeout !== undefined ? parseDurationMs('--request-timeout', f.requestTimeout) / 1000 : 600;
  const model = await probeTarget(target, f.model ?? modelName);
  const out = f.out ?? DEFAULT_BENCH_OUT;
  removeOutputs(out, staleNames(Math.max(workload.stages.length, 1)));
  const r = await benchServe({
    target,
    model,
    workload,
    rateScale: f.rateScale ?? 1,
    timeScale: f.timeScale ?? 1,
    ...(f.rate !== undefined ? { rate: f.rate } : {}),
    ...(f.concurrency !== undefined ? { concurrency: f.concurrency } : {}),
    ...(f.maxConnections !== undefined ? { maxConnections: f.maxConnections } : {}),
    ...(durationS !== undefined ? { durationS } : {}),
    requestTimeoutS,
    slo,
    seed: f.seed ?? DEFAULTS.seed,
    out,
    progress: f.progress !== false,
    label: 'bench serve',
    ...(f.api !== undefined ? { api: f.api } : {}),
    // commander sets stream: true by default; only an explicit --no-stream overrides the config
    ...(f.stream === false ? { stream: false } : {}),
    ...(f.promptFormat !== undefined ? { promptFormat: f.promptFormat } : {}),
  });
  const written = writeOutputs(out, benchFiles(r, { vllmJson: f.vllmJson === true, html: true }));
  io.out(`${formatRuns(setupLines(r.setup, r.run.summary.requests), [r.run])}\n`);
  if (r.unsent > 0) io.out(`${r.unsent} requests not sent (--duration reached)\n`);
  io.out(`\nwrote ${written.join(', ')} (${r.wallS.toFixed(1)} s)\n`);
}
