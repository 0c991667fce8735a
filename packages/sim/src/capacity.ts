/**
 * KV cache capacity of an instance, as vLLM sizes it: GPU memory × utilization − weights −
 * activation reserve, divided by the bytes of one block on one tensor-parallel rank.
 */
import { GiB, invalidArgument } from '@kvmgr/core';
import type { GpuSpec } from './latency/gpu-spec.js';
import { type ModelSpec, totalLayerParams } from './latency/model-spec.js';

/** Bytes vLLM keeps for activations and CUDA graphs per GPU (fitted on the validation runs: 1.2-2.1 GB). */
export const ACTIVATION_RESERVE_BYTES = 1.7e9;

/** Weight bytes of a model (all ranks). */
export function weightBytes(m: ModelSpec): number {
  return totalLayerParams(m) * m.weightBytes + 2 * m.vocab * m.hidden * 2;
}

/** Bytes of one KV block on one TP rank (KV heads split across ranks, replicated when TP > KV heads). */
export function kvBytesPerBlockPerRank(m: ModelSpec, blockSize: number, tp: number): number {
  const headsPerRank = Math.max(1, Math.ceil(m.numKvHeads / tp));
  return 2 * m.numLayers * headsPerRank * m.headDim * m.kvBytes * blockSize;
}

/**
 * GPU KV blocks per instance.
 * @param model - architecture.
 * @param gpu - GPU spec (its memory in bytes; 80 GB cards expose 80 GiB).
 * @param tp - tensor-parallel size.
 * @param blockSize - tokens per block.
 * @param gpuMemoryUtilization - fraction of memory the engine may use. @default 0.9
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the weights do not fit.
 */
export function gpuKvBlocks(model: ModelSpec, gpu: GpuSpec, tp: number, blockSize: number, gpuMemoryUtilization = 0.9): number {
  const perGpu = Math.round(gpu.memoryBytes / 1e9) * GiB * gpuMemoryUtilization;
  const free = perGpu - weightBytes(model) / tp - ACTIVATION_RESERVE_BYTES;
  const blocks = Math.floor(free / kvBytesPerBlockPerRank(model, blockSize, tp));
  if (!(blocks > 0)) throw invalidArgument('model', model.name, `a model whose weights fit on ${tp} × ${gpu.name}`);
  return blocks;
}

/** CPU-tier blocks for `gib` GiB of host memory per rank. */
export function cpuKvBlocks(model: ModelSpec, tp: number, blockSize: number, gib: number): number {
  return Math.floor((gib * GiB) / kvBytesPerBlockPerRank(model, blockSize, tp));
}
