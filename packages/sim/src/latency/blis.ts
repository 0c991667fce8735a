/**
 * BLIS's black-box α/β latency model, fitted to real vLLM.
 *
 * step µs = β0 + β1 · (uncached prefill tokens in the step) + β2 · (decode tokens in the step);
 * queueing µs = α0 + α1 · input tokens; α2 µs per output token of client-side processing.
 *
 * @see https://github.com/inference-sim/inference-sim (sim/latency: BlackboxLatencyModel)
 */
import { KvmgrError, invalidArgument } from '@kvmgr/core';
import { BLIS_ROWS } from './blis-rows.js';
import { BLIS_VALIDATIONS, blisValidationKey } from './evidence.js';
import { gpuKey } from './gpu-spec.js';
import type { LatencyEvidence, LatencyModel, StepWork } from './types.js';

/** Provenance of a row (upstream `defaults.yaml`) and its measured errors here, if any. */
export function blisEvidence(row: BlisRow): LatencyEvidence {
  const version = row.vllmVersion.replace(/^v/, '');
  return {
    fittedOn: {
      vllmVersion: version,
      models: [row.model],
      gpus: [row.gpu],
      tp: [row.tp],
      source: 'inference-sim/inference-sim defaults.yaml (BLIS black-box fit)',
    },
    validations: BLIS_VALIDATIONS[blisValidationKey(row.model, row.gpu, row.tp, row.vllmVersion)] ?? [],
  };
}

/** One BLIS coefficient row. */
export interface BlisRow {
  /** HuggingFace model id, lower case as upstream writes it. */
  readonly model: string;
  /** `H100` or `A100-80`. */
  readonly gpu: string;
  /** Tensor-parallel size. */
  readonly tp: number;
  /** vLLM version the row was fitted on, e.g. `v0.11.0`. */
  readonly vllmVersion: string;
  /** [α0 µs, α1 µs/input token, α2 µs/output token]. */
  readonly alpha: readonly [number, number, number];
  /** [β0 µs/step, β1 µs/uncached prefill token, β2 µs/decode token]. */
  readonly beta: readonly [number, number, number];
  /** True for rows upstream replaced by a newer fit. */
  readonly superseded?: boolean;
}

function normGpu(gpu: string): string {
  return gpuKey(gpu) ?? gpu.toUpperCase();
}

/** Orders vLLM versions: `v0.8.4` → 8004, `0.15.1` → 15001. */
export function versionKey(v: string): number {
  const parts = v.replace(/^v/, '').split('.').map((x) => Number.parseInt(x, 10) || 0);
  return (parts[0] ?? 0) * 1e6 + (parts[1] ?? 0) * 1e3 + (parts[2] ?? 0);
}

/**
 * Finds the BLIS row for a model/GPU/TP: the newest non-superseded vLLM version, case-insensitive
 * model match (a bare name such as `Llama-3.1-8B-Instruct` also matches `meta-llama/…`).
 *
 * @param model - HuggingFace id or its last component.
 * @param gpu - `H100`, `H100-80GB-HBM3 (SXM)`, `A100-80`, …
 * @param tp - tensor-parallel size.
 * @param vllmVersion - pin a version (`v0.8.4`); newest by default.
 * @returns the row, or undefined when BLIS has none.
 */
export function findBlisRow(model: string, gpu: string, tp: number, vllmVersion?: string): BlisRow | undefined {
  const m = model.toLowerCase();
  const g = normGpu(gpu);
  let best: BlisRow | undefined;
  for (const row of BLIS_ROWS) {
    const rm = row.model.toLowerCase();
    const nameMatch = rm === m || rm.endsWith(`/${m}`) || m.endsWith(`/${rm.split('/')[1] ?? rm}`);
    if (!nameMatch || row.gpu !== g || row.tp !== tp) continue;
    if (vllmVersion !== undefined) {
      if (row.vllmVersion === vllmVersion) return row;
      continue;
    }
    if (row.superseded) continue;
    if (best === undefined || versionKey(row.vllmVersion) > versionKey(best.vllmVersion)) best = row;
  }
  return best;
}

/**
 * Creates a BLIS latency model from a row (or from model/GPU/TP looked up in the shipped rows).
 *
 * @param row - a {@link BlisRow}, or `{ model, gpu, tp, vllmVersion? }` to look up.
 * @returns a {@link LatencyModel} of kind `blis`; `floorStepTimeUs` is 0 (no physics here).
 * @throws KvmgrError `KVMGR_NOT_FOUND` when no row matches; `KVMGR_INVALID_ARGUMENT` on negative
 *   or non-finite coefficients.
 */
export function createBlisModel(
  row: BlisRow | { model: string; gpu: string; tp: number; vllmVersion?: string },
): LatencyModel {
  let r: BlisRow;
  if ('alpha' in row) r = row;
  else {
    const found = findBlisRow(row.model, row.gpu, row.tp, row.vllmVersion);
    if (found === undefined) {
      throw new KvmgrError(
        'KVMGR_NOT_FOUND',
        `no BLIS coefficient row for model ${JSON.stringify(row.model)} on ${row.gpu} TP${row.tp}; use the roofline model`,
        { details: { model: row.model, gpu: row.gpu, tp: row.tp } },
      );
    }
    r = found;
  }
  for (const [i, v] of [...r.alpha, ...r.beta].entries()) {
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(`blis coefficient ${i < 3 ? `alpha${i}` : `beta${i - 3}`}`, v, 'a finite number >= 0');
  }
  const [a0, a1, a2] = r.alpha;
  const [b0, b1, b2] = r.beta;
  return {
    name: `blis:${r.model}/${r.gpu}/tp${r.tp}/${r.vllmVersion}`,
    kind: 'blis',
    outputTokenUs: a2,
    evidence: blisEvidence(r),
    stepTimeUs(w: StepWork): number {
      return Math.max(1, b0 + b1 * w.prefillTokens + b2 * w.decodeTokens);
    },
    queueingUs(inputTokens: number): number {
      return a0 + a1 * inputTokens;
    },
    floorStepTimeUs(): number {
      return 0;
    },
  };
}
