/**
 * Chooses the latency backend by evidence. Ranks (best first):
 *
 * 3. measured here: compared with real runs of this model on this GPU class and vLLM version
 *    (ties between two such candidates go to the lower error score);
 * 2. a BLIS row fitted on this model/GPU/TP at the target vLLM version (not measured here);
 * 2. the roofline calibrated and cross-validated on this GPU class at the target vLLM version
 *    (other models; the architecture is extrapolated);
 * 1. a BLIS row for this model/GPU/TP fitted on another vLLM version (newest first);
 * 0. the roofline on a GPU it was never validated on (datasheet numbers only).
 *
 * So a row from a distant vLLM version never wins over a roofline validated at the target
 * version, and a row does win where the roofline has no evidence for the GPU.
 */
import { BLIS_ROWS } from './blis-rows.js';
import { type BlisRow, createBlisModel, findBlisRow, versionKey } from './blis.js';
import { VALIDATED_VLLM_VERSION } from './evidence.js';
import { type GpuSpec, gpuKey } from './gpu-spec.js';
import type { ModelSpec } from './model-spec.js';
import { type RooflineCalibration, createRooflineModel } from './roofline.js';
import type { LatencyEvidence, LatencyModel, LatencyValidation } from './types.js';

/** One candidate `auto` looked at. */
export interface LatencyCandidate {
  readonly model: LatencyModel;
  /** 0–3, see the module comment. */
  readonly rank: number;
  /** The validation that matched this model, GPU and version (rank 3). */
  readonly match: LatencyValidation | undefined;
  /** Why it got its rank, one phrase. */
  readonly why: string;
}

/** What {@link selectLatencyModel} returns. */
export interface LatencySelection {
  readonly latency: LatencyModel;
  /** One sentence: the evidence the choice rests on. */
  readonly reason: string;
  /** Every candidate with its rank (the chosen one first). */
  readonly candidates: readonly LatencyCandidate[];
}

/** Options of {@link selectLatencyModel}. */
export interface SelectLatencyOptions {
  /** Roofline calibration overrides (an overridden calibration carries no evidence). */
  readonly calibration?: Partial<RooflineCalibration>;
  /** vLLM version to aim at. @default VALIDATED_VLLM_VERSION ('0.15.1') */
  readonly vllmVersion?: string;
}

const sameVersion = (a: string, b: string): boolean => versionKey(a) === versionKey(b);

function modelMatches(names: readonly string[], model: string): boolean {
  const m = model.toLowerCase();
  const last = m.slice(m.lastIndexOf('/') + 1);
  return names.some((n) => {
    const l = n.toLowerCase();
    return l === m || l.slice(l.lastIndexOf('/') + 1) === last;
  });
}

/** Error score used to break ties between measured candidates: |E2E| + |ITL| + ½|TTFT|. */
export function errorScore(v: LatencyValidation): number {
  return v.medianAbsError.e2e + v.medianAbsError.itl + 0.5 * v.medianAbsError.ttft;
}

function exactValidation(ev: LatencyEvidence | undefined, model: string, gpu: string, tp: number, version: string): LatencyValidation | undefined {
  let best: LatencyValidation | undefined;
  for (const v of ev?.validations ?? []) {
    if (v.gpus.includes(gpu) && sameVersion(v.vllmVersion, version) && v.models.length === 1 && v.tp.includes(tp) && modelMatches(v.models, model)) {
      if (best === undefined || (v.heldOut && !best.heldOut)) best = v;
    }
  }
  return best;
}

function gpuValidation(ev: LatencyEvidence | undefined, gpu: string, version: string): LatencyValidation | undefined {
  let best: LatencyValidation | undefined;
  for (const v of ev?.validations ?? []) {
    if (v.gpus.includes(gpu) && sameVersion(v.vllmVersion, version) && (best === undefined || v.experiments > best.experiments)) best = v;
  }
  return best;
}

/** Formats median errors: `TTFT 8.1%, ITL 3.2%, E2E 3.0%`. */
export function formatErrors(v: LatencyValidation): string {
  const p = (x: number): string => `${(x * 100).toFixed(1)}%`;
  return `TTFT ${p(v.medianAbsError.ttft)}, ITL ${p(v.medianAbsError.itl)}, E2E ${p(v.medianAbsError.e2e)}`;
}

function rooflineCandidate(model: ModelSpec, gpu: GpuSpec, tp: number, key: string, version: string, calibration?: Partial<RooflineCalibration>): LatencyCandidate {
  const latency = createRooflineModel({ model, gpu, tp, ...(calibration === undefined ? {} : { calibration }) });
  const ev = latency.evidence;
  const exact = exactValidation(ev, model.name, key, tp, version);
  if (exact !== undefined) {
    return { model: latency, rank: 3, match: exact, why: `roofline measured on ${model.name}/${key}/tp${tp} vLLM ${version} (${exact.experiments} experiments, ${exact.heldOut ? 'held-out' : 'in-sample'} median error ${formatErrors(exact)})` };
  }
  const g = gpuValidation(ev, key, version);
  if (g !== undefined) {
    return {
      model: latency,
      rank: 2,
      match: g,
      why: `roofline calibrated on vLLM ${version} ${key} (${g.experiments} experiments, ${g.heldOut ? 'held-out' : 'in-sample'} median error ${formatErrors(g)}); ${model.name} itself is extrapolated`,
    };
  }
  return {
    model: latency,
    rank: 0,
    match: undefined,
    why: ev === undefined ? 'roofline with a custom calibration (no validation)' : `roofline never validated on ${key} (datasheet numbers only)`,
  };
}

function blisCandidate(row: BlisRow, model: ModelSpec, key: string, version: string): LatencyCandidate {
  const latency = createBlisModel(row);
  const exact = exactValidation(latency.evidence, model.name, key, row.tp, version);
  const rowVersion = row.vllmVersion.replace(/^v/, '');
  if (exact !== undefined) return { model: latency, rank: 3, match: exact, why: `BLIS row (vLLM ${rowVersion}) measured on vLLM ${version} (${formatErrors(exact)})` };
  if (sameVersion(rowVersion, version)) return { model: latency, rank: 2, match: undefined, why: `BLIS row fitted on vLLM ${rowVersion} (not measured here)` };
  return { model: latency, rank: 1, match: undefined, why: `BLIS row fitted on vLLM ${rowVersion}, never validated on ${version}` };
}

/**
 * Resolves `auto` / `blis` / `roofline` to a latency model and says why.
 *
 * @param choice - `auto` ranks the candidates by evidence (module comment); `blis` takes the
 *   newest non-superseded row; `roofline` the roofline.
 * @param model - architecture (its `name` is matched against BLIS rows and validations).
 * @param gpu - GPU spec.
 * @param tp - tensor-parallel size.
 * @returns the model, the reason, and every candidate considered.
 * @throws KvmgrError `KVMGR_NOT_FOUND` for `blis` without a row.
 */
export function selectLatencyModel(
  choice: 'auto' | 'blis' | 'roofline',
  model: ModelSpec,
  gpu: GpuSpec,
  tp: number,
  options: SelectLatencyOptions = {},
): LatencySelection {
  const key = gpuKey(gpu.name) ?? gpu.name;
  const version = options.vllmVersion ?? VALIDATED_VLLM_VERSION;
  if (choice === 'blis') {
    const latency = createBlisModel({ model: model.name, gpu: gpu.name, tp });
    return { latency, reason: 'BLIS row (asked for with latency: blis)', candidates: [] };
  }
  const roof = rooflineCandidate(model, gpu, tp, key, version, options.calibration);
  if (choice === 'roofline') return { latency: roof.model, reason: `${roof.why} (asked for with latency: roofline)`, candidates: [roof] };
  const rows: LatencyCandidate[] = [];
  for (const row of BLIS_ROWS) {
    if (row.superseded) continue;
    const found = findBlisRow(model.name, gpu.name, tp, row.vllmVersion);
    if (found === row) rows.push(blisCandidate(row, model, key, version));
  }
  const all = [roof, ...rows];
  const better = (a: LatencyCandidate, b: LatencyCandidate): boolean => {
    if (a.rank !== b.rank) return a.rank > b.rank;
    if (a.rank === 3 && a.match !== undefined && b.match !== undefined) return errorScore(a.match) < errorScore(b.match);
    if (a.model.kind === 'blis' && b.model.kind === 'blis') {
      return versionKey(a.model.evidence?.fittedOn.vllmVersion ?? '0') > versionKey(b.model.evidence?.fittedOn.vllmVersion ?? '0');
    }
    return false;
  };
  let best = roof;
  for (const c of rows) if (better(c, best)) best = c;
  const others = all.filter((c) => c !== best);
  const passed = others.length > 0 ? `; over ${others.map((c) => c.why).join('; ')}` : '';
  return { latency: best.model, reason: `${best.why}${passed}`, candidates: [best, ...others] };
}

/**
 * One line for reports: which model priced the steps and its validated error.
 * @example `roofline:…/tp1 — calibrated on vLLM 0.15.1 H100 (17 experiments, held-out median error TTFT 8%, ITL 3%, E2E 3%)`
 */
export function describeLatency(sel: LatencySelection): string {
  const best = sel.candidates[0];
  return `${sel.latency.name} — ${best?.why ?? sel.reason}`;
}
