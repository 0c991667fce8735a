#include "host_memory.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#ifndef _WIN32
#include <sys/mman.h>
#include <unistd.h>
#else
#include <malloc.h>
#endif

namespace kvmgr {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kAlignment = 4096;

size_t RoundUp(size_t v, size_t a) { return (v + a - 1) / a * a; }
}  // namespace

Status AllocateHost(size_t bytes, bool wantHuge, bool lock, HostAllocation* out) {
  *out = HostAllocation{};
  if (bytes == 0) return Status::Error("KVMGR_INVALID_ARGUMENT", "host allocation of 0 bytes");
#ifndef _WIN32
  if (wantHuge && bytes >= kHugePage) {
    // Over-map by one huge page so the slab can start on a 2 MiB boundary, then trim.
    size_t len = RoundUp(bytes, kHugePage) + kHugePage;
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      uintptr_t start = reinterpret_cast<uintptr_t>(m);
      uintptr_t aligned = RoundUp(start, kHugePage);
      size_t head = aligned - start;
      size_t body = RoundUp(bytes, kHugePage);
      size_t tail = len - head - body;
      if (head > 0) munmap(m, head);
      if (tail > 0) munmap(reinterpret_cast<void*>(aligned + body), tail);
      out->base = reinterpret_cast<void*>(aligned);
      out->mapping = out->base;
      out->mappedBytes = body;
      out->bytes = bytes;
#ifdef MADV_HUGEPAGE
      out->hugePages = madvise(out->base, body, MADV_HUGEPAGE) == 0;
#endif
    }
  }
  if (out->base == nullptr) {
    void* p = nullptr;
    int rc = posix_memalign(&p, kAlignment, RoundUp(bytes, kAlignment));
    if (rc != 0 || p == nullptr) {
      return Status::Error("KVMGR_OUT_OF_MEMORY",
                           "host allocation of " + std::to_string(bytes) + " bytes failed: " + std::strerror(rc));
    }
    out->base = p;
    out->mapping = p;
    out->bytes = bytes;
  }
  if (lock) {
    if (mlock(out->base, bytes) != 0) {
      int e = errno;
      FreeHost(out);
      return Status::Error("KVMGR_UNAVAILABLE", "mlock of " + std::to_string(bytes) +
                                                    " bytes failed (raise RLIMIT_MEMLOCK / ulimit -l): " +
                                                    std::strerror(e));
    }
    out->locked = true;
  }
  return Status::Ok();
#else
  void* p = _aligned_malloc(RoundUp(bytes, kAlignment), kAlignment);
  if (p == nullptr) return Status::Error("KVMGR_OUT_OF_MEMORY", "host allocation failed");
  out->base = p;
  out->mapping = p;
  out->bytes = bytes;
  if (lock) {
    _aligned_free(p);
    *out = HostAllocation{};
    return Status::Error("KVMGR_UNAVAILABLE", "locked host memory is not supported on Windows");
  }
  return Status::Ok();
#endif
}

void FreeHost(HostAllocation* a) {
  if (a->mapping == nullptr) return;
#ifndef _WIN32
  if (a->locked) munlock(a->base, a->bytes);
  if (a->mappedBytes > 0) {
    munmap(a->mapping, a->mappedBytes);
  } else {
    std::free(a->mapping);
  }
#else
  _aligned_free(a->mapping);
#endif
  *a = HostAllocation{};
}

}  // namespace kvmgr
