/**
 * Roofline latency model: each part of a step takes max(FLOPs / achievable FLOP/s,
 * bytes / achievable bandwidth), per tensor-parallel rank, plus tensor-parallel all-reduces and
 * a fixed engine overhead per step and per sequence. With every efficiency at 1 and no
 * overheads it is the physical floor of the step.
 *
 * @see https://github.com/inference-sim/inference-sim (docs: roofline latency model)
 * @see Williams, Waterman, Patterson, "Roofline", CACM 2009
 */
import { invalidArgument } from '@kvmgr/core';
import type { GpuSpec } from './gpu-spec.js';
import { type ModelSpec, activeParamsPerToken, kvBytesPerToken, totalLayerParams } from './model-spec.js';
import { ROOFLINE_EVIDENCE } from './evidence.js';
import type { LatencyModel, StepWork } from './types.js';

/** Efficiency factors and overheads of the roofline model. */
export interface RooflineCalibration {
  /** Achieved fraction of peak FLOP/s in GEMMs. @default 0.55 */
  readonly mfu: number;
  /** Achieved fraction of peak FLOP/s in attention. @default 0.55 */
  readonly attnMfu: number;
  /** Achieved fraction of HBM bandwidth. @default 0.85 */
  readonly bwEfficiency: number;
  /** Fixed engine time per step (scheduler, sampling, launch), µs. @default 1400 */
  readonly stepOverheadUs: number;
  /** Engine time per sequence in the batch, µs. @default 0 */
  readonly perSeqOverheadUs: number;
  /** Latency of one all-reduce at TP2 (two all-reduces per layer with TP > 1; × log2(tp)), µs. @default 15 */
  readonly allReduceLatencyUs: number;
  /** Arrival-to-queue delay per request (API server, tokenizer), µs. @default 187.5 */
  readonly queueingUs: number;
  /** Queueing per input token (tokenization), µs. @default 8.6875 */
  readonly queueingPerInputTokenUs: number;
  /** Client-side time per output token, µs. @default 0 */
  readonly outputTokenUs: number;
  /**
   * Decode steps by which the client sees output late (vLLM's async output processing: the
   * first token reaches the client after the step that follows its prefill). @default 1.167968
   */
  readonly deliveryLagSteps: number;
}

/**
 * Default calibration: one set for every model, GPU and TP, fitted by `scripts/calibrate.ts`
 * (coordinate descent, 2 rounds, score 0.122 = mean over experiments of min(|E2E|, 0.25) +
 * min(|ITL|, 0.25) + ½ min(|TTFT|, 0.25)) on the 17 recommended experiments of
 * `shared/validation` (vLLM 0.15.1, H100), with the all-reduce latency growing with log2(tp).
 * TTFT terms: 0.19 ms + 8.7 µs per prompt token of API/tokenizer time before the queue, and
 * output delivered 1.17 decode steps late (async output processing: the first token reaches
 * the client after the decode step that follows its prefill). Held-out error: the two-fold
 * cross-validation of `kvmgr fidelity` (docs/sim.md, `ROOFLINE_EVIDENCE`).
 */
export const DEFAULT_ROOFLINE_CALIBRATION: RooflineCalibration = Object.freeze({
  mfu: 0.55,
  attnMfu: 0.55,
  bwEfficiency: 0.85,
  stepOverheadUs: 1400,
  perSeqOverheadUs: 0,
  allReduceLatencyUs: 15,
  queueingUs: 187.5,
  queueingPerInputTokenUs: 8.6875,
  outputTokenUs: 0,
  deliveryLagSteps: 1.167968,
});

/** The physical floor: every efficiency 1, no overheads. */
export const FLOOR_CALIBRATION: RooflineCalibration = Object.freeze({
  mfu: 1,
  attnMfu: 1,
  bwEfficiency: 1,
  stepOverheadUs: 0,
  perSeqOverheadUs: 0,
  allReduceLatencyUs: 0,
  queueingUs: 0,
  queueingPerInputTokenUs: 0,
  outputTokenUs: 0,
  deliveryLagSteps: 0,
});

function isDefaultCalibration(c: RooflineCalibration): boolean {
  return (Object.keys(DEFAULT_ROOFLINE_CALIBRATION) as (keyof RooflineCalibration)[]).every((k) => c[k] === DEFAULT_ROOFLINE_CALIBRATION[k]);
}

/** Options of {@link createRooflineModel}. */
export interface RooflineOptions {
  readonly model: ModelSpec;
  readonly gpu: GpuSpec;
  /** Tensor-parallel size. @default 1 */
  readonly tp?: number;
  /** Overrides of {@link DEFAULT_ROOFLINE_CALIBRATION}. */
  readonly calibration?: Partial<RooflineCalibration>;
}

function makeStepFn(model: ModelSpec, gpu: GpuSpec, tp: number, c: RooflineCalibration): (w: StepWork) => number {
  const peak = (model.weightBytes === 1 ? gpu.fp8Flops : gpu.bf16Flops) * c.mfu;
  const attnPeak = gpu.bf16Flops * c.attnMfu;
  const bw = gpu.hbmBytesPerSec * c.bwEfficiency;
  const activeFlopsPerToken = (2 * activeParamsPerToken(model)) / tp;
  const lmHeadParams = model.vocab * model.hidden;
  const lmHeadFlopsPerSeq = (2 * lmHeadParams) / tp;
  const mlpBytes = 3 * model.hidden * model.ffn * model.weightBytes;
  const denseBytes =
    model.numExperts > 0
      ? (totalLayerParams(model) - (model.numExperts + model.sharedExperts) * 3 * model.hidden * model.ffn * model.numLayers) * model.weightBytes +
        model.sharedExperts * mlpBytes * model.numLayers
      : totalLayerParams(model) * model.weightBytes;
  const lmHeadBytes = lmHeadParams * 2;
  const kvPerToken = kvBytesPerToken(model) / tp;
  const attnFlopsPerPair = (4 * model.numLayers * model.numHeads * model.headDim) / tp;
  const allReduceBytesPerToken = model.hidden * 2;
  const nvlink = gpu.nvlinkBytesPerSec;
  const commLayers = tp > 1 ? 2 * model.numLayers : 0;
  return (w: StepWork): number => {
    const tokens = w.prefillTokens + w.decodeTokens;
    if (tokens === 0) return 0;
    const seqs = w.numSeqs;
    const linFlops = activeFlopsPerToken * tokens + lmHeadFlopsPerSeq * seqs;
    let weightBytes = denseBytes + lmHeadBytes;
    if (model.numExperts > 0) {
      const touched = Math.min(model.numExperts, tokens * model.expertsPerToken);
      weightBytes += touched * mlpBytes * model.numLayers;
    }
    weightBytes /= tp;
    const linUs = Math.max(linFlops / peak, weightBytes / bw) * 1e6;
    const attnFlops = attnFlopsPerPair * (w.prefillAttnPairs + w.decodeContextTokens);
    const kvBytes = kvPerToken * (w.decodeContextTokens + w.prefillTokens);
    const attnUs = Math.max(attnFlops / attnPeak, kvBytes / bw) * 1e6;
    let commUs = 0;
    if (commLayers > 0) {
      const bytes = ((2 * (tp - 1)) / tp) * tokens * allReduceBytesPerToken;
      // Ring all-reduce: 2(tp − 1)/tp of the bytes over NVLink; its latency grows with log2(tp)
      // (one unit at TP2, two at TP4: NCCL's tree / NVLS algorithms for small messages).
      commUs = commLayers * (c.allReduceLatencyUs * Math.log2(tp) + (bytes / nvlink) * 1e6);
    }
    return linUs + attnUs + commUs + c.stepOverheadUs + c.perSeqOverheadUs * seqs;
  };
}

/**
 * Creates a roofline latency model.
 *
 * @param options - model architecture, GPU, TP and calibration.
 * @returns a {@link LatencyModel} of kind `roofline`; `floorStepTimeUs` uses
 *   {@link FLOOR_CALIBRATION}.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a TP that is not a positive integer or a
 *   calibration value out of range (efficiencies in (0, 1], overheads ≥ 0).
 */
export function createRooflineModel(options: RooflineOptions): LatencyModel {
  const tp = options.tp ?? 1;
  if (!Number.isSafeInteger(tp) || tp < 1) throw invalidArgument('tp', tp, 'a positive integer');
  const c: RooflineCalibration = { ...DEFAULT_ROOFLINE_CALIBRATION, ...options.calibration };
  for (const k of ['mfu', 'attnMfu', 'bwEfficiency'] as const) {
    if (!(c[k] > 0 && c[k] <= 1)) throw invalidArgument(`calibration.${k}`, c[k], 'a number in (0, 1]');
  }
  for (const k of ['stepOverheadUs', 'perSeqOverheadUs', 'allReduceLatencyUs', 'queueingUs', 'queueingPerInputTokenUs', 'outputTokenUs', 'deliveryLagSteps'] as const) {
    if (!(c[k] >= 0 && Number.isFinite(c[k]))) throw invalidArgument(`calibration.${k}`, c[k], 'a finite number >= 0');
  }
  const step = makeStepFn(options.model, options.gpu, tp, c);
  const floor = makeStepFn(options.model, options.gpu, tp, FLOOR_CALIBRATION);
  return {
    name: `roofline:${options.model.name}/${options.gpu.name}/tp${tp}`,
    kind: 'roofline',
    outputTokenUs: c.outputTokenUs,
    deliveryLagSteps: c.deliveryLagSteps,
    // The validation record belongs to the shipped calibration only.
    ...(isDefaultCalibration(c) ? { evidence: ROOFLINE_EVIDENCE } : {}),
    stepTimeUs(w: StepWork): number {
      return Math.max(1, step(w));
    },
    queueingUs(inputTokens: number): number {
      return c.queueingUs + c.queueingPerInputTokenUs * inputTokens;
    },
    floorStepTimeUs: floor,
  };
}
