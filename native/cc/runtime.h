// Vendor runtimes (CUDA runtime, HIP, Ascend CL) opened at run time with dlopen: no SDK headers
// or libraries are needed to build, and one binary serves every machine. Each runtime resolves
// only the handful of C functions kvmgr needs; their prototypes are declared in runtime.cc.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "status.h"

namespace kvmgr {

// Same numbering in cudaMemcpyKind, hipMemcpyKind and aclrtMemcpyKind.
enum class CopyKind : int { kHostToHost = 0, kHostToDevice = 1, kDeviceToHost = 2, kDeviceToDevice = 3 };

struct CopySegment {
  void* dst;
  const void* src;
  size_t bytes;
};

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  // "cuda", "rocm" or "ascend".
  virtual const char* Kind() const = 0;
  const std::string& Library() const { return library_; }
  int DeviceCount() const { return deviceCount_; }

  virtual Status Malloc(int device, size_t bytes, void** out) = 0;
  virtual Status Free(int device, void* p) = 0;
  // Page-locked host memory registered with the runtime (fast DMA, zero-copy views).
  virtual Status HostAlloc(int device, size_t bytes, void** out) = 0;
  virtual Status HostFree(void* p) = 0;
  // Enqueues every segment on the device's stream, records an event and waits for it. Called
  // from worker threads: selects the device on the calling thread first. `hostPinned`: the host
  // side of an H2D/D2H batch was allocated by this runtime's HostAlloc (Ascend's async copies
  // need that; pageable host memory goes through its synchronous memcpy instead).
  virtual Status CopyBatch(int device, CopyKind kind, const std::vector<CopySegment>& segs, bool hostPinned) = 0;

 protected:
  std::string library_;
  int deviceCount_ = 0;
};

// Opens the runtime `kind` ("cuda" | "rocm" | "ascend") from the first of `candidates` that
// loads and resolves every symbol. Runtimes are cached per (kind, library path) for the life of
// the process (never dlclose'd: slabs may outlive their JS owners). On failure `*out` is null
// and the status says why (missing library, missing symbol, init failure, no device).
Status OpenRuntime(const std::string& kind, const std::vector<std::string>& candidates, DeviceRuntime** out);

}  // namespace kvmgr
