/** GPU facts for the roofline model and the KV capacity model. */
import { invalidArgument } from '@kvmgr/core';

/** One accelerator. */
export interface GpuSpec {
  readonly name: string;
  /** Memory, bytes (datasheet GB; the capacity model reads `round(GB)` as GiB, as vLLM sees 80 GB cards). */
  readonly memoryBytes: number;
  /** HBM (or GDDR) bandwidth, bytes/s. */
  readonly hbmBytesPerSec: number;
  /** Dense BF16/FP16 tensor peak (no structured sparsity), FLOP/s. */
  readonly bf16Flops: number;
  /** Dense FP8 tensor peak, FLOP/s (the BF16 peak on GPUs without FP8 tensor cores). */
  readonly fp8Flops: number;
  /** GPU-to-GPU bandwidth per direction, bytes/s (NVLink; PCIe for cards without NVLink). */
  readonly nvlinkBytesPerSec: number;
  /** Host link (PCIe) bandwidth per direction, bytes/s: CPU-tier offload and reload. */
  readonly pcieBytesPerSec: number;
}

/**
 * Built-in GPUs, from NVIDIA's datasheets (dense figures: the datasheets' "with sparsity" numbers
 * halved; link figures are the datasheets' bidirectional totals, halved per direction):
 * - H100 SXM 80GB: NVIDIA H100 Tensor Core GPU datasheet (2430615, Jul 2023), also
 *   `shared/validation/gpus.json` (inference-sim/training `datasheets/h100-sxm.json`):
 *   3.35 TB/s HBM3, BF16 1,979 / FP8 3,958 TFLOPS sparse, NVLink 900 GB/s, PCIe Gen5 128 GB/s.
 * - H200 SXM 141GB: NVIDIA H200 Tensor Core GPU datasheet (Nov 2024): 4.8 TB/s HBM3e, same
 *   tensor peaks as H100 SXM, NVLink 900 GB/s, PCIe Gen5 128 GB/s.
 * - A100 SXM 80GB / 40GB: NVIDIA A100 Tensor Core GPU datasheet (1170120, Jun 2021): 2,039 GB/s
 *   HBM2e (80GB) / 1,555 GB/s HBM2 (40GB), BF16 312 TFLOPS dense, no FP8, NVLink 600 GB/s,
 *   PCIe Gen4 64 GB/s.
 * - L40S 48GB: NVIDIA L40S datasheet (2023): 864 GB/s GDDR6, BF16 362.05 / FP8 733 TFLOPS
 *   dense (733 / 1,466 sparse), no NVLink (TP over PCIe Gen4 x16, 64 GB/s).
 * - L4 24GB: NVIDIA L4 Tensor Core GPU datasheet (2023): 300 GB/s GDDR6, BF16 121 / FP8 242.5
 *   TFLOPS dense (242 / 485 sparse), no NVLink, PCIe Gen4 x16 64 GB/s.
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
  H200: Object.freeze({
    name: 'H200-141GB-HBM3e (SXM)',
    memoryBytes: 141e9,
    hbmBytesPerSec: 4.8e12,
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
  'A100-40': Object.freeze({
    name: 'A100-40GB (SXM)',
    memoryBytes: 40e9,
    hbmBytesPerSec: 1.555e12,
    bf16Flops: 312e12,
    fp8Flops: 312e12,
    nvlinkBytesPerSec: 600e9 / 2,
    pcieBytesPerSec: 64e9 / 2,
  }),
  L40S: Object.freeze({
    name: 'L40S-48GB',
    memoryBytes: 48e9,
    hbmBytesPerSec: 864e9,
    bf16Flops: 362.05e12,
    fp8Flops: 733e12,
    nvlinkBytesPerSec: 64e9 / 2,
    pcieBytesPerSec: 64e9 / 2,
  }),
  L4: Object.freeze({
    name: 'L4-24GB',
    memoryBytes: 24e9,
    hbmBytesPerSec: 300e9,
    bf16Flops: 121e12,
    fp8Flops: 242.5e12,
    nvlinkBytesPerSec: 64e9 / 2,
    pcieBytesPerSec: 64e9 / 2,
  }),
});

/**
 * The key of {@link GPU_SPECS} a GPU name means, or undefined: `H100`, `H100-80GB-HBM3 (SXM)`,
 * `H200`, `A100` / `A100-80` / `A100-80GB` (80 GB), `A100-40GB`, `L40S` / `L40S-48GB`, `L4`.
 */
export function gpuKey(name: string): string | undefined {
  const g = name.toUpperCase().replace(/^NVIDIA[- ]/, '');
  if (g.startsWith('H100')) return 'H100';
  if (g.startsWith('H200')) return 'H200';
  if (g.startsWith('A100')) return /(^|[^0-9])40/.test(g.slice(4)) ? 'A100-40' : 'A100-80';
  if (g.startsWith('L40S')) return 'L40S';
  if (/^L4($|[^0-9])/.test(g)) return 'L4';
  return undefined;
}

/**
 * Looks up a GPU by any name {@link gpuKey} understands.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown name, listing the known ones.
 */
export function getGpuSpec(name: string): GpuSpec {
  const k = gpuKey(name);
  if (k === undefined) throw invalidArgument('gpu', name, `one of ${Object.keys(GPU_SPECS).join(', ')}`);
  return GPU_SPECS[k] as GpuSpec;
}
