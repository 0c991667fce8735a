// Gather scattered KV blocks into one contiguous transfer buffer, and scatter them back: one
// large DMA over PCIe/NVLink instead of one cudaMemcpyAsync per block when offloading or
// reloading many non-adjacent blocks (as vLLM's swap_blocks / LMCache's paged-copy kernels).
//
// Compiled to a fatbin by `pnpm --filter @kvmgr/native run build:kernels` when nvcc is present;
// the addon keeps no link-time CUDA dependency: a loader would cuModuleLoadData() the fatbin
// through the same dlopen'ed driver. Kernel names are extern "C" so they resolve unmangled.
//
// Layout: block id b of a slab starts at slab + b * bytesPerBlock. Grid: (x = CTAs per block,
// y = blocks in the batch); each CTA copies a strided share of one block, 16 bytes per thread
// per step when every address is 16-byte aligned, bytewise otherwise.
#include <stdint.h>

namespace {

__device__ __forceinline__ void CopyBlock(char* __restrict__ dst, const char* __restrict__ src, uint64_t bytes) {
  const uint64_t tid = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const bool aligned = ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | bytes) & 15u) == 0;
  if (aligned) {
    const uint64_t n = bytes / 16;
    int4* d = reinterpret_cast<int4*>(dst);
    const int4* s = reinterpret_cast<const int4*>(src);
    for (uint64_t i = tid; i < n; i += stride) d[i] = s[i];
  } else {
    for (uint64_t i = tid; i < bytes; i += stride) dst[i] = src[i];
  }
}

}  // namespace

// staging[i] = slab[ids[i]] for i < n (staging holds n blocks back to back).
extern "C" __global__ void kvmgr_gather_blocks(const char* __restrict__ slab, char* __restrict__ staging,
                                               const uint32_t* __restrict__ ids, uint32_t n, uint64_t bytesPerBlock) {
  const uint32_t i = blockIdx.y;
  if (i >= n) return;
  CopyBlock(staging + static_cast<uint64_t>(i) * bytesPerBlock, slab + static_cast<uint64_t>(ids[i]) * bytesPerBlock, bytesPerBlock);
}

// slab[ids[i]] = staging[i] for i < n. Destination ids must be distinct.
extern "C" __global__ void kvmgr_scatter_blocks(const char* __restrict__ staging, char* __restrict__ slab,
                                                const uint32_t* __restrict__ ids, uint32_t n, uint64_t bytesPerBlock) {
  const uint32_t i = blockIdx.y;
  if (i >= n) return;
  CopyBlock(slab + static_cast<uint64_t>(ids[i]) * bytesPerBlock, staging + static_cast<uint64_t>(i) * bytesPerBlock, bytesPerBlock);
}

// slab[dst[i]] = slab[src[i]] within one device slab (compaction without a host round trip).
// Sources and destinations must be disjoint sets, as in kv-pool's compaction plans.
extern "C" __global__ void kvmgr_move_blocks(char* __restrict__ slab, const uint32_t* __restrict__ src,
                                             const uint32_t* __restrict__ dst, uint32_t n, uint64_t bytesPerBlock) {
  const uint32_t i = blockIdx.y;
  if (i >= n) return;
  CopyBlock(slab + static_cast<uint64_t>(dst[i]) * bytesPerBlock, slab + static_cast<uint64_t>(src[i]) * bytesPerBlock, bytesPerBlock);
}
