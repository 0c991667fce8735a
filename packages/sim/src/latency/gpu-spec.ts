/** GPU facts for the roofline model. */
import { invalidArgument } from '@kvmgr/core';

/** One accelerator. */
export interface GpuSpec {
  readonly name: string;
  /** Memory, bytes. */
  readonly memoryBytes: number;
  /** HBM bandwidth, bytes/s. */
  readonly hbmBytesPerSec: number;
  /** Dense BF16/FP16 peak, FLOP/s. */
  readonly bf16Flops: number;
  /** Dense FP8 peak, FLOP/s. */
  readonly fp8Flops: number;
  /** GPU-to-GPU (NVLink) bandwidth per direction, bytes/s. */
  readonly nvlinkBytesPerSec: number;
  /** Host link (PCIe) bandwidth, bytes/s: CPU-tier offload and reload. */
  readonly pcieBytesPerSec: number;
}

/**
 * Built-in GPUs. H100 numbers from `shared/validation/gpus.json` (NVIDIA datasheet 2430615, via
 * inference-sim/training and inference-sim/inference-sim `hardware_config.json`); A100-80GB from
 * the NVIDIA A100 datasheet.
 */
export const GPU_SPECS: Readonly<Record<string, GpuSpec>> = Object.freeze({
  H100: Object.freeze({
    name: 'H100-80GB-HBM3 (SXM)',
    memoryBytes: 80e9,
    hbmBytesPerSec: 3.35e12,
    bf16Flops: 989.5e12,
    fp8Flops: 1979e12,
    nvlinkBytesPerSec: 900e9 / 2,
    pcieBytesPerSec: 128e9 / 2,
  }),
  'A100-80': Object.freeze({
    name: 'A100-80GB (SXM)',
    memoryBytes: 80e9,
    hbmBytesPerSec: 2.039e12,
    bf16Flops: 312e12,
    fp8Flops: 312e12,
    nvlinkBytesPerSec: 600e9 / 2,
    pcieBytesPerSec: 64e9 / 2,
  }),
});

/**
 * Looks up a GPU: `H100`, `H100-80GB-HBM3 (SXM)`, `A100`, `A100-80`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown name.
 */
export function getGpuSpec(name: string): GpuSpec {
  const g = name.toUpperCase();
  if (g.startsWith('H100')) return GPU_SPECS.H100 as GpuSpec;
  if (g.startsWith('A100')) return GPU_SPECS['A100-80'] as GpuSpec;
  throw invalidArgument('gpu', name, `one of ${Object.keys(GPU_SPECS).join(', ')}`);
}
