// Aligned host allocation: mmap with MADV_HUGEPAGE for large slabs when asked, posix_memalign
// otherwise; optional mlock so the pages stay resident (pinned for DMA by the OS' terms).
#pragma once
#include <cstddef>
#include "status.h"

namespace kvmgr {

struct HostAllocation {
  void* base = nullptr;      // start of the usable slab, aligned to `alignment`
  void* mapping = nullptr;   // what must be handed back (mmap start or malloc pointer)
  size_t mappedBytes = 0;    // mmap length (0 for posix_memalign)
  size_t bytes = 0;          // usable bytes
  bool hugePages = false;    // madvise(MADV_HUGEPAGE) succeeded
  bool locked = false;       // mlock succeeded
};

// Allocates `bytes` (> 0) of host memory. `wantHuge`: try 2 MiB-aligned mmap + MADV_HUGEPAGE
// when bytes >= 2 MiB. `lock`: mlock the range; failure to lock is an error (KVMGR_UNAVAILABLE).
Status AllocateHost(size_t bytes, bool wantHuge, bool lock, HostAllocation* out);
void FreeHost(HostAllocation* a);

}  // namespace kvmgr
