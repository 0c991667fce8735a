// One slab of `numBlocks × bytesPerBlock` bytes on one device (or in host memory), shared by the
// JS arena object, its ArrayBuffer view and any copy in flight: memory goes back when the last
// owner lets go, or at once on close() when no copy is in flight.
#pragma once
#include <atomic>
#include <cstddef>
#include <string>

#include "host_memory.h"
#include "runtime.h"

namespace kvmgr {

struct Slab {
  std::string backend;            // host | cuda | rocm | ascend
  DeviceRuntime* runtime = nullptr;  // null for the host backend
  bool onDevice = false;          // device memory (not addressable from the CPU)
  int device = 0;
  size_t numBlocks = 0;
  size_t bytesPerBlock = 0;
  size_t bytes = 0;
  void* base = nullptr;
  HostAllocation host;            // set when the host backend allocated the slab
  bool closed = false;            // close() was called: no new operation may start
  int inflight = 0;               // copies in flight (main thread only)

  ~Slab() { Release(); }

  // Frees the memory (idempotent). Safe from any thread.
  void Release() {
    if (base == nullptr) return;
    if (runtime == nullptr) {
      FreeHost(&host);
    } else if (onDevice) {
      runtime->Free(device, base);
    } else {
      runtime->HostFree(base);
    }
    base = nullptr;
  }

  char* Block(size_t id) const { return static_cast<char*>(base) + id * bytesPerBlock; }
};

}  // namespace kvmgr
