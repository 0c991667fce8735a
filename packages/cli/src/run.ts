/**
 * The shared layer of replay, ab and sweep: merges defaults, a `--config` file and flags;
 * loads the trace (format from its extension and header); runs one simulated replay and keeps
 * the simulator's own summary and request rows in a {@link RunResult}.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { KvmgrError } from '@kvmgr/core';
import { createRouter } from '@kvmgr/router';
import { PassManager, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import { type ReplayResult, type RequestRow, type RunSummary, type SimRouter, type Trace, type TraceSpec, getEngineProfile, loadTraceSpec, runReplay } from '@kvmgr/sim';
import type { EngineProfile } from '@kvmgr/core';
import { type RunConfig, loadRunConfig } from './config.js';
import { parseDurationMs } from './parse.js';
import {
  type EngineOverrides,
  applyOverrides,
  checkBlockSize,
  checkMemory,
  checkTp,
  decodeCeilingTokPerSec,
  meanContextTokens,
  note,
  offeredTokPerSec,
  pipelineClampWarnings,
  requireRequests,
  saturationWarning,
  traceRatePerSec,
} from './preflight.js';
import { BUNDLED_TRACE, DEFAULTS } from './defaults.js';
import type { Progress } from './progress.js';

/** Cluster-wide time series of a run, one point per bucket ({@link timeseries}). */
export interface RunTimeseries {
  /** Bucket start, s. */
  readonly tSec: readonly number[];
  /** Output tokens per second in the bucket. */
  readonly throughputTokPerS: readonly number[];
  /** Mean GPU KV utilization over instances in the bucket, 0..1. */
  readonly kvUtilization: readonly number[];
  /** Prefix hit rate of requests arriving in the bucket, 0..1 (NaN where none arrive). */
  readonly hitRate: readonly number[];
}

/**
 * One run as the CLI reports it: the simulator's own `RunSummary` and `RequestRow`s (never a
 * copy of their fields), with what the CLI adds: the label, what ran, the bucketed time series
 * and the wall time.
 */
export interface RunResult {
  readonly label: string;
  readonly profile: string;
  /** Canonical scheduler pipeline that ran. */
  readonly pipeline: string;
  readonly router: string;
  /** The simulator's summary (DESIGN.md section 7 definitions). */
  readonly summary: RunSummary;
  /** The simulator's per-request rows (times NaN and `rejectedReason` set for rejected requests). */
  readonly requests: readonly RequestRow[];
  readonly timeseries: RunTimeseries;
  /** Wall-clock seconds of `runReplay` (and of keeping its result), s. */
  readonly wallS: number;
}

/** Options after defaults, config file and flags are merged. */
export interface ResolvedRunOptions {
  readonly trace: string;
  readonly traceLabel: string;
  readonly lenient: boolean;
  readonly limit: number | undefined;
  readonly model: string;
  readonly gpu: string;
  readonly tp: number;
  readonly instances: number;
  readonly rateScale: number;
  readonly sloTtftMs: number;
  readonly sloTpotMs: number;
  readonly seed: number;
  /** `--prefix-index`; undefined = the engine's default (`radix`). */
  readonly prefixIndex: 'hash-map' | 'radix' | undefined;
  readonly progress: boolean;
  /** Absolute arrival rate, requests/s (`--request-rate`), instead of `rateScale`. */
  readonly requestRate: number | undefined;
  /** Engine limits from the command line (`--max-num-batched-tokens`, …), applied to every profile. */
  readonly engine: EngineOverrides;
  /** The config file's values (for command-specific keys). */
  readonly config: RunConfig;
}

/** Flags common to replay/ab/sweep as commander hands them over. */
export interface RunFlags {
  trace?: string;
  lenient?: boolean;
  limit?: number;
  model?: string;
  gpu?: string;
  tp?: number;
  instances?: number;
  rateScale?: number;
  sloTtft?: string;
  sloTpot?: string;
  seed?: number;
  prefixIndex?: 'hash-map' | 'radix';
  config?: string;
  progress?: boolean;
  requestRate?: number;
  maxNumBatchedTokens?: number;
  maxNumSeqs?: number;
  gpuMemoryUtilization?: number;
  blockSize?: number;
}

/**
 * Merges defaults ← config file ← flags and validates the result.
 * @throws KvmgrError `KVMGR_NOT_FOUND` for a missing trace or config, `KVMGR_BAD_CONFIG`,
 *   `KVMGR_INVALID_ARGUMENT` for SLOs without units.
 */
export function resolveRunOptions(flags: RunFlags): ResolvedRunOptions {
  const config = flags.config ? loadRunConfig(flags.config) : {};
  const trace = flags.trace ?? config.trace ?? BUNDLED_TRACE;
  if (!existsSync(trace)) throw new KvmgrError('KVMGR_NOT_FOUND', `--trace ${trace}: no such file`);
  const sloTtft = flags.sloTtft ?? config.sloTtft ?? DEFAULTS.sloTtft;
  const sloTpot = flags.sloTpot ?? config.sloTpot ?? DEFAULTS.sloTpot;
  const requestRate = flags.requestRate ?? config.requestRate;
  const rateScale = flags.rateScale ?? config.rateScale;
  if (requestRate !== undefined && rateScale !== undefined) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--request-rate ${requestRate}: expected either --request-rate (requests/s) or --rate-scale (× the trace's rate), not both`);
  }
  const engine: EngineOverrides = {
    maxNumBatchedTokens: flags.maxNumBatchedTokens ?? config.maxNumBatchedTokens,
    maxNumSeqs: flags.maxNumSeqs ?? config.maxNumSeqs,
    gpuMemoryUtilization: flags.gpuMemoryUtilization ?? config.gpuMemoryUtilization,
    blockSize: flags.blockSize ?? config.blockSize,
  };
  checkBlockSize(engine.blockSize);
  const model = flags.model ?? config.model ?? DEFAULTS.model;
  const tp = flags.tp ?? config.tp ?? DEFAULTS.tp;
  checkTp(model, tp);
  return {
    trace,
    traceLabel: trace === BUNDLED_TRACE ? 'bundled Mooncake conversation sample' : basename(trace),
    lenient: flags.lenient ?? config.lenient ?? false,
    limit: flags.limit ?? config.limit,
    model,
    gpu: flags.gpu ?? config.gpu ?? DEFAULTS.gpu,
    tp,
    instances: flags.instances ?? config.instances ?? DEFAULTS.instances,
    rateScale: rateScale ?? DEFAULTS.rateScale,
    sloTtftMs: parseDurationMs('--slo-ttft', sloTtft),
    sloTpotMs: parseDurationMs('--slo-tpot', sloTpot),
    seed: flags.seed ?? config.seed ?? DEFAULTS.seed,
    prefixIndex: flags.prefixIndex ?? config.prefixIndex,
    progress: flags.progress !== false,
    requestRate,
    engine,
    config,
  };
}

/** First line of a file, reading only its first bytes. */
function firstLine(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('utf8', 0, n).split(/\r?\n/)[0] ?? '';
  } finally {
    closeSync(fd);
  }
}

/**
 * Names the trace's loader from its extension and header: `.jsonl` → Mooncake; `.csv` with a
 * `TIMESTAMP` header → Azure; `.csv` with `num_prefill_tokens` → length-only, with Poisson
 * arrivals at 1 request/s (scale with `--rate-scale`). The spec is plain data, so sweeps hand it
 * to worker threads.
 * @throws KvmgrError `KVMGR_BAD_TRACE` for an unknown CSV header; `KVMGR_INVALID_ARGUMENT` for an
 *   unknown extension.
 */
export function traceSpec(opts: ResolvedRunOptions): TraceSpec {
  const options = { lenient: opts.lenient, ...(opts.limit === undefined ? {} : { limit: opts.limit }) };
  if (opts.trace.endsWith('.jsonl')) return { kind: 'mooncake', path: opts.trace, options };
  if (opts.trace.endsWith('.csv')) {
    const head = firstLine(opts.trace);
    if (head.startsWith('TIMESTAMP')) return { kind: 'azure', path: opts.trace, options };
    if (head.includes('num_prefill_tokens')) {
      return { kind: 'length-csv', path: opts.trace, options: { ...options, arrivals: { kind: 'poisson', ratePerSec: opts.requestRate ?? 1 }, seed: opts.seed } };
    }
    throw new KvmgrError('KVMGR_BAD_TRACE', `${opts.trace}:1: unknown CSV header ${JSON.stringify(head)}; expected TIMESTAMP,ContextTokens,GeneratedTokens or num_prefill_tokens,num_decode_tokens,…`);
  }
  throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--trace ${opts.trace}: expected a .jsonl (Mooncake) or .csv (Azure, length-only) file`);
}

/**
 * Loads the trace named by {@link traceSpec}.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason; `KVMGR_INVALID_ARGUMENT`
 *   for an unknown format.
 */
export function loadTrace(opts: ResolvedRunOptions): Trace {
  return loadTraceSpec(traceSpec(opts));
}

/** The profile a variant runs: the named one with the command line's engine limits applied. */
export function profileFor(opts: ResolvedRunOptions, name: string): EngineProfile {
  return applyOverrides(getEngineProfile(name), opts.engine);
}

/**
 * Everything checked before a simulation starts, after the variants are validated: the cluster
 * fits in memory, the trace has requests, and the arrival rate is what the user asked for (a
 * length-only CSV's synthetic arrivals are said on stderr; a rate past saturation is warned).
 * @param profiles - profile names of the runs.
 * @param concurrent - runs in memory at once (sweep workers).
 * @param rates - extra rate multipliers of a sweep (default: one run at the resolved rate).
 * @returns the trace and the options with the rate scale `--request-rate` implies.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (memory), `KVMGR_BAD_TRACE` (no requests).
 */
export function prepareRun(opts: ResolvedRunOptions, profiles: readonly string[], concurrent = 1, rates: readonly number[] = [1]): { trace: Trace; opts: ResolvedRunOptions } {
  const resolved = [...new Set(profiles)].map((p) => profileFor(opts, p));
  checkMemory(opts, resolved, concurrent);
  const spec = traceSpec(opts);
  const trace = loadTraceSpec(spec);
  requireRequests(trace.requests.length, opts.trace, trace.skippedRows);
  let rateScale = opts.rateScale;
  if (spec.kind === 'length-csv') {
    const r = opts.requestRate ?? 1;
    note(
      `${opts.traceLabel} has no timestamps: arrivals are Poisson at ${r} request${r === 1 ? '' : 's'}/s${opts.requestRate === undefined ? ' (the default; set --request-rate)' : ''}${rateScale === 1 ? '' : ` × --rate-scale ${rateScale}`}, seed ${opts.seed}`,
    );
  } else if (opts.requestRate !== undefined) {
    const native = traceRatePerSec(trace);
    if (native === undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--request-rate ${opts.requestRate}: expected a trace whose requests arrive at different times, but all of ${opts.traceLabel}'s arrive at once`);
    rateScale = opts.requestRate / native;
  }
  const out = { ...opts, rateScale };
  // A sweep crosses saturation on purpose: warn only when even its lowest rate is past it.
  const sweep = rates.length > 1 || rates[0] !== 1;
  const lowest = Math.min(...rates);
  const ctx = meanContextTokens(trace);
  const ceiling = Math.min(...resolved.map((p) => decodeCeilingTokPerSec(opts.model, opts.gpu, opts.tp, opts.instances, p, ctx)));
  const [flag, shown] = sweep
    ? ['--rates', `${rates.join(',')} (even the lowest, ×${lowest}${rateScale === 1 ? '' : ` × ${rateScale}`})`]
    : opts.requestRate !== undefined
      ? ['--request-rate', String(opts.requestRate)]
      : ['--rate-scale', String(rateScale)];
  saturationWarning(flag, shown, offeredTokPerSec(trace, lowest * rateScale), ceiling);
  return { trace, opts: out };
}

/** What varies between the runs of one command. */
export interface RunVariant {
  readonly label: string;
  readonly profile: string;
  readonly pipeline?: string | undefined;
  readonly router?: string | undefined;
  readonly rateScale?: number;
  /** A router object used instead of `router` (e.g. `kvmgr live`'s replay of a live run's routing). */
  readonly simRouter?: SimRouter;
}

/**
 * Checks a variant before any simulation runs: the profile exists, the pipeline parses and names
 * known passes, the router config is valid. Cheap, so a typo fails in milliseconds, not after the
 * baseline run.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (profile), `KVMGR_BAD_PIPELINE`, `KVMGR_BAD_CONFIG`.
 */
export function validateVariant(variant: RunVariant, opts?: ResolvedRunOptions): void {
  const profile = opts === undefined ? getEngineProfile(variant.profile) : profileFor(opts, variant.profile);
  const pipeline = variant.pipeline ?? profile.scheduler;
  withContext(`pipeline of ${variant.label}`, () => {
    new PassManager({ pipeline, registry: createDefaultRegistry(), requirePlan: true });
  });
  withContext(`router of ${variant.label}`, () => createRouter(variant.router ?? profile.router));
  pipelineClampWarnings(variant.pipeline, profile, variant.label);
}

/** Re-throws a KvmgrError with `context: ` in front of its message (same code and details). */
function withContext(context: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error && 'code' in e && typeof e.code === 'string') {
      throw new KvmgrError(e.code, `${context}: ${e.message}`, { cause: e, details: (e as KvmgrError).details ?? {} });
    }
    throw e;
  }
}

/** Runs one replay of `trace` and maps it to a {@link RunResult}. */
export function runOnce(opts: ResolvedRunOptions, trace: Trace, variant: RunVariant, progress: Progress): RunResult {
  const started = performance.now();
  progress.start(variant.label, trace.requests.length);
  let res: ReplayResult;
  try {
    res = runReplay({
      trace,
      model: opts.model,
      gpu: opts.gpu,
      tp: opts.tp,
      instances: opts.instances,
      profile: profileFor(opts, variant.profile),
      ...(variant.pipeline ? { pipeline: variant.pipeline } : {}),
      ...(variant.router ? { router: variant.router } : {}),
      ...(variant.simRouter ? { simRouter: variant.simRouter } : {}),
      rateScale: variant.rateScale ?? opts.rateScale,
      slo: { ttftMs: opts.sloTtftMs, tpotMs: opts.sloTpotMs },
      seed: opts.seed,
      ...(opts.prefixIndex === undefined ? {} : { prefixIndex: opts.prefixIndex }),
      onProgress: (p) => progress.update(p.done),
    });
  } finally {
    progress.stop();
  }
  if (res.violations.length > 0) {
    throw new KvmgrError('KVMGR_VERIFY_FAILED', `simulation of ${variant.label} broke conservation: ${res.violations.slice(0, 3).join('; ')}`);
  }
  return toRunResult(variant.label, res, (performance.now() - started) / 1000);
}

/** Points per time-series chart: the simulator samples every second; coarser buckets read better. */
const TARGET_POINTS = 120;

/**
 * The cluster's time series in buckets of whole seconds (about {@link TARGET_POINTS} of them).
 * Throughput and KV utilization come from the per-instance samples (summed, resp. averaged, over
 * instances, then averaged over the bucket's sample times). The hit rate is token-weighted like
 * the summary's: cached prompt tokens / prompt tokens of the finished requests arriving in the
 * bucket, over all instances (NaN where none arrive), so its prompt-weighted mean is the table's
 * hit rate. A last bucket the run does not fill (fewer sample times than a full one) is dropped:
 * it would read as a fall at the end.
 */
export function timeseries(res: Pick<ReplayResult, 'timeseries' | 'requests'>, sampleIntervalMs = 1000): RunTimeseries {
  let maxMs = 0;
  for (const s of res.timeseries) if (s.tMs > maxMs) maxMs = s.tMs;
  const bucketMs = Math.max(1000, Math.ceil(maxMs / TARGET_POINTS / 1000) * 1000);
  // Per bucket: sum over instances at each sample time, then mean over the bucket's sample times.
  const buckets = new Map<number, { tok: number; kv: number; kvN: number; times: Set<number> }>();
  for (const s of res.timeseries) {
    const k = Math.floor(s.tMs / bucketMs) * bucketMs;
    let b = buckets.get(k);
    if (!b) {
      b = { tok: 0, kv: 0, kvN: 0, times: new Set() };
      buckets.set(k, b);
    }
    b.times.add(s.tMs);
    b.tok += s.outputTokPerSec;
    b.kv += s.kvUtilGpu;
    b.kvN++;
  }
  const hits = new Map<number, { cached: number; prompt: number }>();
  for (const r of res.requests) {
    if (r.rejectedReason) continue;
    const k = Math.floor(r.arrivalMs / bucketMs) * bucketMs;
    const h = hits.get(k) ?? { cached: 0, prompt: 0 };
    h.cached += r.cachedTokens;
    h.prompt += r.promptTokens;
    hits.set(k, h);
  }
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  const full = Math.max(1, Math.round(bucketMs / sampleIntervalMs));
  const last = keys[keys.length - 1];
  if (keys.length > 1 && last !== undefined && (buckets.get(last)?.times.size ?? 0) < full) keys.pop();
  const tSec: number[] = [];
  const throughputTokPerS: number[] = [];
  const kvUtilization: number[] = [];
  const hitRate: number[] = [];
  for (const k of keys) {
    const b = buckets.get(k) as { tok: number; kv: number; kvN: number; times: Set<number> };
    const h = hits.get(k);
    tSec.push(k / 1000);
    throughputTokPerS.push(b.tok / b.times.size);
    kvUtilization.push(b.kv / b.kvN);
    hitRate.push(h !== undefined && h.prompt > 0 ? h.cached / h.prompt : Number.NaN);
  }
  return { tSec, throughputTokPerS, kvUtilization, hitRate };
}

/** The simulator's result as a {@link RunResult}: its summary and rows as they are, plus the time series. */
export function toRunResult(label: string, res: ReplayResult, wallS: number): RunResult {
  return {
    label,
    profile: res.config.profile,
    pipeline: res.config.scheduler,
    router: res.config.router,
    wallS,
    summary: res.summary,
    requests: res.requests,
    timeseries: timeseries(res),
  };
}
