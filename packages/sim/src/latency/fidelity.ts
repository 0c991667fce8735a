/**
 * Check 1 (fidelity): replays the experiments of a validation folder (`validation-set.ts`) with
 * their model, GPU, TP, DP, engine limits and KV capacity, compares mean TTFT / ITL / E2E with
 * the measurements, and fits and cross-validates the roofline calibration.
 *
 * Replay of one experiment follows `shared/validation/README.md`: vLLM defaults with the
 * experiment's `max_num_batched_tokens` / `max_num_seqs`, `dp` round-robin replicas of `tp` GPUs
 * of type `gpu`, `total_kv_blocks` GPU blocks (derived from GPU memory × utilization − weights −
 * activations when blank, and marked), the CPU tier when offload was on; inference-perf's
 * shared-prefix load regenerated per stage (10 × 10 prompts, exact output length).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvmgrError, createRng } from '@kvmgr/core';
import { gpuKvBlocks } from '../capacity.js';
import { VLLM_DEFAULT_PROFILE, type EngineProfile } from '../profiles.js';
import { runReplay } from '../replay.js';
import type { SimRequest } from '../traces/types.js';
import { sharedPrefixStage } from '../workload/shared-prefix.js';
import { getGpuSpec } from './gpu-spec.js';
import { type ModelSpec, getModelSpec, parseHfConfig } from './model-spec.js';
import type { RooflineCalibration } from './roofline.js';
import { selectLatencyModel } from './select.js';
import type { LatencyErrors, LatencyModel } from './types.js';
import type { LatencyTriple, ValidationExperiment, ValidationSet } from './validation-set.js';

/** One replayed experiment. */
export interface FidelityRow {
  readonly experiment: string;
  readonly model: string;
  /** GPU as the CSV names it. */
  readonly gpu: string;
  readonly tp: number;
  readonly dp: number;
  readonly recommended: boolean;
  /** Latency model name (`roofline:…`, `blis:…`); empty when the experiment could not run. */
  readonly latency: string;
  /** GPU KV blocks per replica used. */
  readonly kvBlocks: number;
  /** True when `total_kv_blocks` was blank and the count was derived from the memory model. */
  readonly kvBlocksDerived: boolean;
  readonly measured: LatencyTriple;
  readonly sim: LatencyTriple;
  /** (sim − measured) / measured. */
  readonly err: LatencyTriple;
  /** Mean prompt tokens replayed. */
  readonly promptTokens: number;
  readonly requests: number;
  readonly wallMs: number;
  /** Why the experiment could not be replayed (unknown GPU, missing config); absent when it ran. */
  readonly error?: string;
}

/** Options of {@link runFidelity}. */
export interface FidelityOptions {
  /** Latency backend. @default 'auto' */
  readonly latency?: 'auto' | 'roofline' | 'blis';
  /** Roofline calibration overrides (used by `roofline` and by `auto` when it picks the roofline). */
  readonly calibration?: Partial<RooflineCalibration>;
  /** Only experiments for which this returns true. */
  readonly include?: (e: ValidationExperiment) => boolean;
  /** Called after each experiment (progress). */
  readonly onRow?: (row: FidelityRow) => void;
}

function loadModel(set: ValidationSet, e: ValidationExperiment): ModelSpec {
  if (e.modelConfig !== '') {
    const path = join(set.dir, e.modelConfig);
    try {
      return parseHfConfig(e.model, JSON.parse(readFileSync(path, 'utf8')));
    } catch (err) {
      throw new KvmgrError('KVMGR_NOT_FOUND', `${e.name}: cannot read model config ${path} (${(err as Error).message})`, { cause: err });
    }
  }
  return getModelSpec(e.model);
}

/** Prompt tokens replayed: the measured mean, else 1.05 × (system + question) (README rule). */
function promptTokensOf(e: ValidationExperiment): number {
  return Math.round(e.promptLenMeanTokens ?? 1.05 * (e.systemPromptLen + e.questionLen));
}

/** What one experiment needs besides the latency model. */
interface Prepared {
  readonly model: ModelSpec;
  readonly gpu: ReturnType<typeof getGpuSpec>;
  readonly kvBlocks: number;
  readonly derived: boolean;
}

function prepare(set: ValidationSet, e: ValidationExperiment): Prepared {
  const model = loadModel(set, e);
  const gpu = getGpuSpec(e.gpu);
  const derived = e.totalKvBlocks === undefined || !(e.totalKvBlocks > 0);
  const kvBlocks = derived ? gpuKvBlocks(model, gpu, e.tp, e.blockSize, e.gpuMemoryUtilization) : (e.totalKvBlocks as number);
  return { model, gpu, kvBlocks, derived };
}

/**
 * Replays one experiment with a given latency model.
 * @returns simulated whole-run means (ms) and the request count.
 */
export function replayExperiment(e: ValidationExperiment, p: Prepared, latency: LatencyModel): { sim: LatencyTriple; requests: number } {
  const promptTokens = promptTokensOf(e);
  const shape = { systemTokens: Math.round(e.systemPromptLen * 1.05), promptTokens, outputTokens: e.outputLen, groups: 10, promptsPerGroup: 10, seed: 1 };
  const profile: EngineProfile = {
    ...VLLM_DEFAULT_PROFILE,
    name: `vllm-${e.vllmVersion || 'unknown'}`,
    description: 'vLLM defaults with the experiment limits',
    tokenBudget: e.maxNumBatchedTokens,
    maxSeqs: e.maxNumSeqs,
    blockSize: e.blockSize,
  };
  const cpuBlocks = e.cpuOffload ? e.cpuKvBlocks : 0;
  const rng = createRng(7);
  const run = (reqs: SimRequest[]) =>
    runReplay({ trace: reqs, model: p.model, gpu: p.gpu, tp: e.tp, instances: e.dp, profile, latency, gpuBlocks: p.kvBlocks, cpuBlocks, seed: 0, slo: {} });
  let all: SimRequest[] = [];
  let start = 0;
  let res: ReturnType<typeof run> | undefined;
  // Stage k+1 starts after stage k drained (inference-perf waits for it), so each stage is
  // simulated with everything before it.
  for (let s = 0; s < e.stages.length; s++) {
    all = all.concat(sharedPrefixStage(e.stages[s] as (typeof e.stages)[number], start, shape, `s${s}-`, rng));
    res = run(all);
    let end = 0;
    for (const r of res.requests) if (r.finishMs > end) end = r.finishMs;
    start = end * 1000 + 1e6;
  }
  if (res === undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `${e.name}: no load stages`);
  const ok = res.requests.filter((x) => x.rejectedReason === '');
  const mean = (f: (x: (typeof ok)[number]) => number): number => ok.reduce((a, x) => a + f(x), 0) / ok.length;
  const ttft = mean((x) => x.ttftMs);
  const e2e = mean((x) => x.e2eMs);
  return { sim: { ttft, itl: e.outputLen > 1 ? (e2e - ttft) / (e.outputLen - 1) : 0, e2e }, requests: res.requests.length };
}

const relErr = (sim: number, meas: number): number => (sim - meas) / meas;

function rowOf(e: ValidationExperiment, p: Prepared | undefined, latency: string, sim: LatencyTriple, requests: number, wallMs: number, error?: string): FidelityRow {
  return {
    experiment: e.name,
    model: e.model,
    gpu: e.gpu,
    tp: e.tp,
    dp: e.dp,
    recommended: e.recommended,
    latency,
    kvBlocks: p?.kvBlocks ?? 0,
    kvBlocksDerived: p?.derived ?? e.totalKvBlocks === undefined,
    measured: e.measured,
    sim,
    err: { ttft: relErr(sim.ttft, e.measured.ttft), itl: relErr(sim.itl, e.measured.itl), e2e: relErr(sim.e2e, e.measured.e2e) },
    promptTokens: promptTokensOf(e),
    requests,
    wallMs,
    ...(error === undefined ? {} : { error }),
  };
}

const NAN3: LatencyTriple = { ttft: Number.NaN, itl: Number.NaN, e2e: Number.NaN };

/**
 * Replays the experiments of a validation set.
 *
 * @param set - from `loadValidationSet`.
 * @param options - latency backend, calibration, filter; see {@link FidelityOptions}.
 * @returns one row per experiment, in file order. An experiment that cannot be replayed (unknown
 *   GPU, unreadable model config, weights that do not fit) gets a row with `error` and NaN
 *   errors instead of stopping the run.
 */
export function runFidelity(set: ValidationSet, options: FidelityOptions = {}): FidelityRow[] {
  const out: FidelityRow[] = [];
  for (const e of set.experiments) {
    if (options.include !== undefined && !options.include(e)) continue;
    const t0 = performance.now();
    let row: FidelityRow;
    let p: Prepared | undefined;
    try {
      p = prepare(set, e);
      const latency = selectLatencyModel(options.latency ?? 'auto', p.model, p.gpu, e.tp, options.calibration === undefined ? {} : { calibration: options.calibration }).latency;
      const r = replayExperiment(e, p, latency);
      row = rowOf(e, p, latency.name, r.sim, r.requests, Math.round(performance.now() - t0));
    } catch (err) {
      row = rowOf(e, p, '', NAN3, 0, Math.round(performance.now() - t0), (err as Error).message);
    }
    out.push(row);
    options.onRow?.(row);
  }
  return out;
}

/** Median of finite numbers (NaN for none). */
export function median(xs: readonly number[]): number {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  const n = a.length;
  if (n === 0) return Number.NaN;
  return n % 2 ? (a[(n - 1) / 2] as number) : ((a[n / 2 - 1] as number) + (a[n / 2] as number)) / 2;
}

/**
 * Median |error| of TTFT, ITL and E2E over the recommended rows that ran.
 * @returns fractions (0.05 = 5%) and the number of rows they are over.
 */
export function medianAbsErrors(rows: readonly FidelityRow[]): LatencyErrors & { readonly n: number } {
  const rec = rows.filter((r) => r.recommended && r.error === undefined);
  return {
    ttft: median(rec.map((r) => Math.abs(r.err.ttft))),
    itl: median(rec.map((r) => Math.abs(r.err.itl))),
    e2e: median(rec.map((r) => Math.abs(r.err.e2e))),
    n: rec.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Calibration: coordinate descent over the step parameters, each candidate scored by replaying
// the fold; the TTFT-only parts (API/tokenizer delay q0 + q1·prompt, delivery lag k steps) shift
// every request of an experiment equally, so they are fitted in closed form on the replay
// without them: TTFT = core TTFT + q0 + q1·P + k·ITL, E2E likewise, ITL unchanged.

type MutableCal = { -readonly [K in keyof RooflineCalibration]: RooflineCalibration[K] };

/**
 * The prior the cross-validation starts from: round numbers chosen before looking at the data
 * (typical MFU / bandwidth efficiency of vLLM on H100, 1 ms engine overhead), not a fit.
 */
export const CV_START_CALIBRATION: RooflineCalibration = Object.freeze({
  mfu: 0.5,
  attnMfu: 0.5,
  bwEfficiency: 0.8,
  stepOverheadUs: 1000,
  perSeqOverheadUs: 0,
  allReduceLatencyUs: 20,
  queueingUs: 10000,
  queueingPerInputTokenUs: 0,
  outputTokenUs: 0,
  deliveryLagSteps: 0,
});

const STEP_PARAMS: ReadonlyArray<readonly [keyof RooflineCalibration, number, number, number]> = [
  // [name, step, min, max]
  ['mfu', 0.1, 0.1, 1],
  ['bwEfficiency', 0.05, 0.5, 1],
  ['stepOverheadUs', 400, 0, 10000],
  ['perSeqOverheadUs', 10, 0, 200],
  ['allReduceLatencyUs', 10, 0, 200],
  ['attnMfu', 0.1, 0.1, 1],
];

const ADDITIVE_PARAMS: ReadonlyArray<readonly [keyof RooflineCalibration, number, number, number]> = [
  ['queueingUs', 4000, 0, 60000],
  ['queueingPerInputTokenUs', 8, 0, 100],
  ['deliveryLagSteps', 0.5, 0, 3],
];

/** Options of {@link fitRooflineCalibration}. */
export interface FitOptions {
  /** Starting point. @default CV_START_CALIBRATION */
  readonly start?: RooflineCalibration;
  /** Coordinate-descent rounds over the step parameters (step sizes shrink each round). @default 2 */
  readonly rounds?: number;
  /** Progress callback per improvement. */
  readonly onImprove?: (score: number, cal: RooflineCalibration) => void;
}

/** |error| above which an experiment stops pulling the fit (an outlier the model cannot explain). */
const FIT_ERROR_CLIP = 0.25;

/**
 * Objective: mean over the fold of min(|E2E|, 0.25) + min(|ITL|, 0.25) + ½ min(|TTFT|, 0.25).
 * A clipped mean, not the median: with 8–9 experiments per fold a median objective fits the
 * middle four or five and ignores the rest (held-out ITL 5.8% vs 4.5%); the clip keeps the
 * outliers the model cannot explain (Scout reasoning-lite TTFT, an overloaded stage) from
 * dragging every other experiment.
 */
function objective(errs: readonly LatencyTriple[]): number {
  const m = (f: (x: LatencyTriple) => number) => errs.reduce((a, x) => a + Math.min(FIT_ERROR_CLIP, Math.abs(f(x))), 0) / errs.length;
  return m((x) => x.e2e) + m((x) => x.itl) + 0.5 * m((x) => x.ttft);
}

interface Core {
  readonly e: ValidationExperiment;
  readonly core: LatencyTriple;
}

function withAdditive(c: Core, cal: RooflineCalibration): LatencyTriple {
  const shiftMs = (cal.queueingUs + cal.queueingPerInputTokenUs * promptTokensOf(c.e)) / 1000 + cal.deliveryLagSteps * c.core.itl;
  return { ttft: c.core.ttft + shiftMs, itl: c.core.itl, e2e: c.core.e2e + shiftMs };
}

function additiveErrors(cores: readonly Core[], cal: RooflineCalibration): LatencyTriple[] {
  return cores.map((c) => {
    const s = withAdditive(c, cal);
    const m = c.e.measured;
    return { ttft: relErr(s.ttft, m.ttft), itl: relErr(s.itl, m.itl), e2e: relErr(s.e2e, m.e2e) };
  });
}

function fitAdditive(cores: readonly Core[], start: RooflineCalibration): { cal: RooflineCalibration; score: number } {
  let best: MutableCal = { ...start };
  let bestScore = objective(additiveErrors(cores, best));
  for (let round = 0; round < 8; round++) {
    let improved = true;
    while (improved) {
      improved = false;
      for (const [k, step, lo, hi] of ADDITIVE_PARAMS) {
        for (const dir of [1, -1]) {
          const c: MutableCal = { ...best };
          c[k] = Number(Math.min(hi, Math.max(lo, best[k] + (dir * step) / 2 ** round)).toFixed(6));
          if (c[k] === best[k]) continue;
          const s = objective(additiveErrors(cores, c));
          if (s < bestScore - 1e-12) {
            best = c;
            bestScore = s;
            improved = true;
          }
        }
      }
    }
  }
  return { cal: best, score: bestScore };
}

function coreRun(set: ValidationSet, experiments: readonly ValidationExperiment[], cal: RooflineCalibration): Core[] {
  const core = { ...cal, queueingUs: 0, queueingPerInputTokenUs: 0, deliveryLagSteps: 0, outputTokenUs: 0 };
  return experiments.map((e) => {
    const p = prepare(set, e);
    const latency = selectLatencyModel('roofline', p.model, p.gpu, e.tp, { calibration: core }).latency;
    return { e, core: replayExperiment(e, p, latency).sim };
  });
}

/**
 * Fits the roofline calibration on some experiments only.
 *
 * @param set - the validation set (for model configs).
 * @param experiments - the experiments to fit on; nothing else is replayed.
 * @returns the calibration, its objective (clipped mean |E2E| + |ITL| + ½ |TTFT|, see `objective`) and
 *   the number of replays of the fold it took.
 */
export function fitRooflineCalibration(
  set: ValidationSet,
  experiments: readonly ValidationExperiment[],
  options: FitOptions = {},
): { calibration: RooflineCalibration; score: number; evaluations: number } {
  let evaluations = 0;
  const evalStep = (cal: RooflineCalibration) => {
    evaluations++;
    return fitAdditive(coreRun(set, experiments, cal), cal);
  };
  let { cal: best, score: bestScore } = evalStep(options.start ?? CV_START_CALIBRATION);
  options.onImprove?.(bestScore, best);
  const rounds = options.rounds ?? 2;
  for (let round = 0; round < rounds; round++) {
    for (const [k, step, lo, hi] of STEP_PARAMS) {
      for (const dir of [1, -1]) {
        const c: MutableCal = { ...best };
        c[k] = Number(Math.min(hi, Math.max(lo, best[k] + (dir * step) / (round + 1))).toFixed(6));
        if (c[k] === best[k]) continue;
        const r = evalStep(c);
        if (r.score < bestScore) {
          best = r.cal;
          bestScore = r.score;
          options.onImprove?.(bestScore, best);
          break;
        }
      }
    }
  }
  return { calibration: best, score: bestScore, evaluations };
}

/**
 * Deterministic two-fold split of the recommended experiments that can run: sorted by model,
 * then name, and dealt alternately, so each model's runs fall in both folds where it has two.
 */
export function splitFolds(experiments: readonly ValidationExperiment[]): [ValidationExperiment[], ValidationExperiment[]] {
  const rec = experiments
    .filter((e) => e.recommended)
    .slice()
    .sort((a, b) => (a.model === b.model ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.model < b.model ? -1 : 1));
  const folds: [ValidationExperiment[], ValidationExperiment[]] = [[], []];
  for (const [i, e] of rec.entries()) folds[i % 2]?.push(e);
  return folds;
}

/** Result of {@link crossValidateRoofline}. */
export interface CrossValidation {
  readonly folds: ReadonlyArray<{
    /** Experiments the calibration was fitted on. */
    readonly fit: readonly string[];
    /** Held-out experiments it was tested on. */
    readonly test: readonly string[];
    readonly calibration: RooflineCalibration;
    readonly inSample: LatencyErrors & { readonly n: number };
    readonly heldOut: LatencyErrors & { readonly n: number };
    readonly rows: readonly FidelityRow[];
  }>;
  /** Medians over every recommended experiment, each predicted by the fold that did not see it. */
  readonly heldOut: LatencyErrors & { readonly n: number };
}

/**
 * Two-fold cross-validation of the roofline calibration: fit on one fold (from
 * {@link CV_START_CALIBRATION}), replay the other with the fitted calibration, and swap.
 *
 * @param set - validation set; experiments that cannot run (unknown GPU, …) are left out.
 * @param options - fit options (rounds, start) and a progress callback.
 */
export function crossValidateRoofline(set: ValidationSet, options: FitOptions & { readonly onFold?: (fold: number) => void } = {}): CrossValidation {
  const runnable = set.experiments.filter((e) => {
    try {
      prepare(set, e);
      return Number.isFinite(e.measured.ttft) && Number.isFinite(e.measured.itl) && Number.isFinite(e.measured.e2e);
    } catch {
      return false;
    }
  });
  const [a, b] = splitFolds(runnable);
  const folds = [0, 1].map((f) => {
    options.onFold?.(f);
    const fit = f === 0 ? a : b;
    const test = f === 0 ? b : a;
    const { calibration } = fitRooflineCalibration(set, fit, options);
    const fitNames = new Set(fit.map((e) => e.name));
    const testNames = new Set(test.map((e) => e.name));
    const inRows = runFidelity(set, { latency: 'roofline', calibration, include: (e) => fitNames.has(e.name) });
    const rows = runFidelity(set, { latency: 'roofline', calibration, include: (e) => testNames.has(e.name) });
    return { fit: fit.map((e) => e.name), test: test.map((e) => e.name), calibration, inSample: medianAbsErrors(inRows), heldOut: medianAbsErrors(rows), rows };
  });
  return { folds, heldOut: medianAbsErrors(folds.flatMap((f) => f.rows)) };
}

