#include "runtime.h"

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#ifndef _WIN32
#include <dlfcn.h>
#else
#include <windows.h>
#endif

namespace kvmgr {

namespace {

// ---- dynamic loading -------------------------------------------------------------------------

void* OpenLibrary(const std::string& path, std::string* error) {
#ifndef _WIN32
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    *error = e != nullptr ? e : ("cannot open " + path);
  }
  return h;
#else
  HMODULE h = LoadLibraryA(path.c_str());
  if (h == nullptr) *error = "cannot open " + path;
  return reinterpret_cast<void*>(h);
#endif
}

void* Symbol(void* lib, const char* name) {
#ifndef _WIN32
  return dlsym(lib, name);
#else
  return reinterpret_cast<void*>(GetProcAddress(reinterpret_cast<HMODULE>(lib), name));
#endif
}

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn* fn, std::string* missing) {
  void* s = Symbol(lib, name);
  if (s == nullptr) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  *fn = reinterpret_cast<Fn>(s);
  return true;
}

// ---- CUDA runtime and HIP share one shape ----------------------------------------------------
// cudaError_t / hipError_t are C enums (int); streams and events are opaque pointers.

struct CudaLikeApi {
  int (*getDeviceCount)(int*) = nullptr;
  int (*setDevice)(int) = nullptr;
  int (*malloc)(void**, size_t) = nullptr;
  int (*free)(void*) = nullptr;
  int (*hostAlloc)(void**, size_t, unsigned int) = nullptr;
  int (*freeHost)(void*) = nullptr;
  int (*memcpyAsync)(void*, const void*, size_t, int, void*) = nullptr;
  int (*streamCreate)(void**) = nullptr;
  int (*streamSynchronize)(void*) = nullptr;
  int (*eventCreate)(void**) = nullptr;
  int (*eventRecord)(void*, void*) = nullptr;
  int (*eventSynchronize)(void*) = nullptr;
  int (*eventDestroy)(void*) = nullptr;
  const char* (*getErrorString)(int) = nullptr;
};

class CudaLikeRuntime final : public DeviceRuntime {
 public:
  // `kind`: "cuda" (cuda* symbols) or "rocm" (hip* symbols, hipHostMalloc/hipHostFree).
  CudaLikeRuntime(std::string kind, std::string library, CudaLikeApi api)
      : kind_(std::move(kind)), api_(api) {
    library_ = std::move(library);
  }

  const char* Kind() const override { return kind_.c_str(); }

  Status Init() {
    int n = 0;
    int rc = api_.getDeviceCount(&n);
    if (rc != 0) return Fail("KVMGR_UNAVAILABLE", kind_ == "cuda" ? "cudaGetDeviceCount" : "hipGetDeviceCount", rc);
    if (n <= 0) return Status::Error("KVMGR_UNAVAILABLE", "no " + kind_ + " device found by " + library_);
    deviceCount_ = n;
    return Status::Ok();
  }

  Status Malloc(int device, size_t bytes, void** out) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    int rc = api_.malloc(out, bytes);
    if (rc != 0) {
      *out = nullptr;
      return Fail("KVMGR_OUT_OF_MEMORY", Name("Malloc"), rc);
    }
    return Status::Ok();
  }

  Status Free(int device, void* p) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    int rc = api_.free(p);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_NATIVE", Name("Free"), rc);
  }

  Status HostAlloc(int device, size_t bytes, void** out) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    // cudaHostAllocPortable / hipHostMallocPortable = 1: pinned for every device.
    int rc = api_.hostAlloc(out, bytes, 1u);
    if (rc != 0) {
      *out = nullptr;
      return Fail("KVMGR_OUT_OF_MEMORY", kind_ == "cuda" ? "cudaHostAlloc" : "hipHostMalloc", rc);
    }
    return Status::Ok();
  }

  Status HostFree(void* p) override {
    int rc = api_.freeHost(p);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_NATIVE", kind_ == "cuda" ? "cudaFreeHost" : "hipHostFree", rc);
  }

  Status CopyBatch(int device, CopyKind kind, const std::vector<CopySegment>& segs, bool) override {
    // CUDA and HIP accept pageable host memory in *MemcpyAsync (they stage it themselves).
    Status s = Select(device);
    if (!s.ok()) return s;
    void* stream = nullptr;
    s = StreamFor(device, &stream);
    if (!s.ok()) return s;
    for (const CopySegment& seg : segs) {
      int rc = api_.memcpyAsync(seg.dst, seg.src, seg.bytes, static_cast<int>(kind), stream);
      if (rc != 0) {
        // Drain what was queued so no copy lands after we report failure.
        api_.streamSynchronize(stream);
        return Fail("KVMGR_NATIVE", Name("MemcpyAsync"), rc);
      }
    }
    void* event = nullptr;
    int rc = api_.eventCreate(&event);
    if (rc != 0) {
      api_.streamSynchronize(stream);
      return Fail("KVMGR_NATIVE", Name("EventCreate"), rc);
    }
    rc = api_.eventRecord(event, stream);
    if (rc == 0) rc = api_.eventSynchronize(event);
    int rcDestroy = api_.eventDestroy(event);
    if (rc != 0) {
      api_.streamSynchronize(stream);
      return Fail("KVMGR_NATIVE", Name("EventSynchronize"), rc);
    }
    if (rcDestroy != 0) return Fail("KVMGR_NATIVE", Name("EventDestroy"), rcDestroy);
    return Status::Ok();
  }

 private:
  std::string Name(const char* suffix) const { return (kind_ == "cuda" ? "cuda" : "hip") + std::string(suffix); }

  Status Fail(const char* code, const std::string& fn, int rc) const {
    const char* msg = api_.getErrorString != nullptr ? api_.getErrorString(rc) : nullptr;
    return Status::Error(code, fn + " failed with error " + std::to_string(rc) + (msg != nullptr ? std::string(" (") + msg + ")" : ""));
  }

  Status Select(int device) {
    if (device < 0 || device >= deviceCount_) {
      return Status::Error("KVMGR_INVALID_ARGUMENT", kind_ + " device must be in [0, " + std::to_string(deviceCount_) +
                                                         "), got " + std::to_string(device));
    }
    int rc = api_.setDevice(device);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_UNAVAILABLE", Name("SetDevice"), rc);
  }

  // One stream per device, created on first use and kept for the life of the process.
  Status StreamFor(int device, void** out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(device);
    if (it != streams_.end()) {
      *out = it->second;
      return Status::Ok();
    }
    void* s = nullptr;
    int rc = api_.streamCreate(&s);
    if (rc != 0) return Fail("KVMGR_NATIVE", Name("StreamCreate"), rc);
    streams_[device] = s;
    *out = s;
    return Status::Ok();
  }

  std::string kind_;
  CudaLikeApi api_;
  std::mutex mu_;
  std::map<int, void*> streams_;
};

// ---- Ascend CL ---------------------------------------------------------------------------------
// aclError is int; aclrtMemcpyAsync takes the destination capacity; aclrtMalloc takes a policy.

struct AclApi {
  int (*init)(const char*) = nullptr;
  int (*getDeviceCount)(unsigned int*) = nullptr;
  int (*setDevice)(int) = nullptr;
  int (*malloc)(void**, size_t, int) = nullptr;
  int (*free)(void*) = nullptr;
  int (*mallocHost)(void**, size_t) = nullptr;
  int (*freeHost)(void*) = nullptr;
  int (*memcpyAsync)(void*, size_t, const void*, size_t, int, void*) = nullptr;
  int (*memcpy)(void*, size_t, const void*, size_t, int) = nullptr;
  int (*createStream)(void**) = nullptr;
  int (*synchronizeStream)(void*) = nullptr;
  int (*createEvent)(void**) = nullptr;
  int (*recordEvent)(void*, void*) = nullptr;
  int (*synchronizeEvent)(void*) = nullptr;
  int (*destroyEvent)(void*) = nullptr;
  const char* (*getRecentErrMsg)() = nullptr;
};

class AclRuntime final : public DeviceRuntime {
 public:
  AclRuntime(std::string library, AclApi api) : api_(api) { library_ = std::move(library); }
  const char* Kind() const override { return "ascend"; }

  Status Init() {
    int rc = api_.init(nullptr);
    constexpr int kAclErrorRepeatInitialize = 100002;
    if (rc != 0 && rc != kAclErrorRepeatInitialize) return Fail("KVMGR_UNAVAILABLE", "aclInit", rc);
    unsigned int n = 0;
    rc = api_.getDeviceCount(&n);
    if (rc != 0) return Fail("KVMGR_UNAVAILABLE", "aclrtGetDeviceCount", rc);
    if (n == 0) return Status::Error("KVMGR_UNAVAILABLE", "no ascend device found by " + library_);
    deviceCount_ = static_cast<int>(n);
    return Status::Ok();
  }

  Status Malloc(int device, size_t bytes, void** out) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    constexpr int kAclMemMallocHugeFirst = 0;
    int rc = api_.malloc(out, bytes, kAclMemMallocHugeFirst);
    if (rc != 0) {
      *out = nullptr;
      return Fail("KVMGR_OUT_OF_MEMORY", "aclrtMalloc", rc);
    }
    return Status::Ok();
  }

  Status Free(int device, void* p) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    int rc = api_.free(p);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_NATIVE", "aclrtFree", rc);
  }

  Status HostAlloc(int device, size_t bytes, void** out) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    int rc = api_.mallocHost(out, bytes);
    if (rc != 0) {
      *out = nullptr;
      return Fail("KVMGR_OUT_OF_MEMORY", "aclrtMallocHost", rc);
    }
    return Status::Ok();
  }

  Status HostFree(void* p) override {
    int rc = api_.freeHost(p);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_NATIVE", "aclrtFreeHost", rc);
  }

  Status CopyBatch(int device, CopyKind kind, const std::vector<CopySegment>& segs, bool hostPinned) override {
    Status s = Select(device);
    if (!s.ok()) return s;
    if (!hostPinned && (kind == CopyKind::kHostToDevice || kind == CopyKind::kDeviceToHost)) {
      // aclrtMemcpyAsync needs host memory from aclrtMallocHost; pageable memory takes the
      // synchronous aclrtMemcpy (we are on a worker thread or copying a few bytes anyway).
      for (const CopySegment& seg : segs) {
        int rc = api_.memcpy(seg.dst, seg.bytes, seg.src, seg.bytes, static_cast<int>(kind));
        if (rc != 0) return Fail("KVMGR_NATIVE", "aclrtMemcpy", rc);
      }
      return Status::Ok();
    }
    void* stream = nullptr;
    s = StreamFor(device, &stream);
    if (!s.ok()) return s;
    for (const CopySegment& seg : segs) {
      int rc = api_.memcpyAsync(seg.dst, seg.bytes, seg.src, seg.bytes, static_cast<int>(kind), stream);
      if (rc != 0) {
        api_.synchronizeStream(stream);
        return Fail("KVMGR_NATIVE", "aclrtMemcpyAsync", rc);
      }
    }
    void* event = nullptr;
    int rc = api_.createEvent(&event);
    if (rc != 0) {
      api_.synchronizeStream(stream);
      return Fail("KVMGR_NATIVE", "aclrtCreateEvent", rc);
    }
    rc = api_.recordEvent(event, stream);
    if (rc == 0) rc = api_.synchronizeEvent(event);
    int rcDestroy = api_.destroyEvent(event);
    if (rc != 0) {
      api_.synchronizeStream(stream);
      return Fail("KVMGR_NATIVE", "aclrtSynchronizeEvent", rc);
    }
    if (rcDestroy != 0) return Fail("KVMGR_NATIVE", "aclrtDestroyEvent", rcDestroy);
    return Status::Ok();
  }

 private:
  Status Fail(const char* code, const char* fn, int rc) const {
    const char* msg = api_.getRecentErrMsg != nullptr ? api_.getRecentErrMsg() : nullptr;
    return Status::Error(code, std::string(fn) + " failed with error " + std::to_string(rc) +
                                   (msg != nullptr && *msg != '\0' ? std::string(" (") + msg + ")" : ""));
  }

  Status Select(int device) {
    if (device < 0 || device >= deviceCount_) {
      return Status::Error("KVMGR_INVALID_ARGUMENT",
                           "ascend device must be in [0, " + std::to_string(deviceCount_) + "), got " + std::to_string(device));
    }
    int rc = api_.setDevice(device);
    return rc == 0 ? Status::Ok() : Fail("KVMGR_UNAVAILABLE", "aclrtSetDevice", rc);
  }

  Status StreamFor(int device, void** out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(device);
    if (it != streams_.end()) {
      *out = it->second;
      return Status::Ok();
    }
    void* s = nullptr;
    int rc = api_.createStream(&s);
    if (rc != 0) return Fail("KVMGR_NATIVE", "aclrtCreateStream", rc);
    streams_[device] = s;
    *out = s;
    return Status::Ok();
  }

  AclApi api_;
  std::mutex mu_;
  std::map<int, void*> streams_;
};

Status LoadCudaLike(const std::string& kind, void* lib, const std::string& path, std::unique_ptr<DeviceRuntime>* out) {
  const bool cuda = kind == "cuda";
  CudaLikeApi api;
  std::string missing;
  Resolve(lib, cuda ? "cudaGetDeviceCount" : "hipGetDeviceCount", &api.getDeviceCount, &missing);
  Resolve(lib, cuda ? "cudaSetDevice" : "hipSetDevice", &api.setDevice, &missing);
  Resolve(lib, cuda ? "cudaMalloc" : "hipMalloc", &api.malloc, &missing);
  Resolve(lib, cuda ? "cudaFree" : "hipFree", &api.free, &missing);
  Resolve(lib, cuda ? "cudaHostAlloc" : "hipHostMalloc", &api.hostAlloc, &missing);
  Resolve(lib, cuda ? "cudaFreeHost" : "hipHostFree", &api.freeHost, &missing);
  Resolve(lib, cuda ? "cudaMemcpyAsync" : "hipMemcpyAsync", &api.memcpyAsync, &missing);
  Resolve(lib, cuda ? "cudaStreamCreate" : "hipStreamCreate", &api.streamCreate, &missing);
  Resolve(lib, cuda ? "cudaStreamSynchronize" : "hipStreamSynchronize", &api.streamSynchronize, &missing);
  Resolve(lib, cuda ? "cudaEventCreate" : "hipEventCreate", &api.eventCreate, &missing);
  Resolve(lib, cuda ? "cudaEventRecord" : "hipEventRecord", &api.eventRecord, &missing);
  Resolve(lib, cuda ? "cudaEventSynchronize" : "hipEventSynchronize", &api.eventSynchronize, &missing);
  Resolve(lib, cuda ? "cudaEventDestroy" : "hipEventDestroy", &api.eventDestroy, &missing);
  Resolve(lib, cuda ? "cudaGetErrorString" : "hipGetErrorString", &api.getErrorString, &missing);
  if (!missing.empty()) return Status::Error("KVMGR_UNAVAILABLE", path + " lacks " + missing);
  auto rt = std::make_unique<CudaLikeRuntime>(kind, path, api);
  Status s = rt->Init();
  if (!s.ok()) return s;
  *out = std::move(rt);
  return Status::Ok();
}

Status LoadAcl(void* lib, const std::string& path, std::unique_ptr<DeviceRuntime>* out) {
  AclApi api;
  std::string missing;
  Resolve(lib, "aclInit", &api.init, &missing);
  Resolve(lib, "aclrtGetDeviceCount", &api.getDeviceCount, &missing);
  Resolve(lib, "aclrtSetDevice", &api.setDevice, &missing);
  Resolve(lib, "aclrtMalloc", &api.malloc, &missing);
  Resolve(lib, "aclrtFree", &api.free, &missing);
  Resolve(lib, "aclrtMallocHost", &api.mallocHost, &missing);
  Resolve(lib, "aclrtFreeHost", &api.freeHost, &missing);
  Resolve(lib, "aclrtMemcpyAsync", &api.memcpyAsync, &missing);
  Resolve(lib, "aclrtMemcpy", &api.memcpy, &missing);
  Resolve(lib, "aclrtCreateStream", &api.createStream, &missing);
  Resolve(lib, "aclrtSynchronizeStream", &api.synchronizeStream, &missing);
  Resolve(lib, "aclrtCreateEvent", &api.createEvent, &missing);
  Resolve(lib, "aclrtRecordEvent", &api.recordEvent, &missing);
  Resolve(lib, "aclrtSynchronizeEvent", &api.synchronizeEvent, &missing);
  Resolve(lib, "aclrtDestroyEvent", &api.destroyEvent, &missing);
  // Optional: older CANN releases lack it; messages then carry only the code.
  std::string optionalMissing;
  Resolve(lib, "aclGetRecentErrMsg", &api.getRecentErrMsg, &optionalMissing);
  if (!missing.empty()) return Status::Error("KVMGR_UNAVAILABLE", path + " lacks " + missing);
  auto rt = std::make_unique<AclRuntime>(path, api);
  Status s = rt->Init();
  if (!s.ok()) return s;
  *out = std::move(rt);
  return Status::Ok();
}

std::mutex gMu;
std::map<std::pair<std::string, std::string>, std::unique_ptr<DeviceRuntime>> gRuntimes;

}  // namespace

Status OpenRuntime(const std::string& kind, const std::vector<std::string>& candidates, DeviceRuntime** out) {
  *out = nullptr;
  if (kind != "cuda" && kind != "rocm" && kind != "ascend") {
    return Status::Error("KVMGR_INVALID_ARGUMENT", "runtime kind must be cuda, rocm or ascend, got " + kind);
  }
  if (candidates.empty()) return Status::Error("KVMGR_UNAVAILABLE", "no library candidates for " + kind);
  std::lock_guard<std::mutex> lock(gMu);
  std::string reasons;
  for (const std::string& path : candidates) {
    auto key = std::make_pair(kind, path);
    auto it = gRuntimes.find(key);
    if (it != gRuntimes.end()) {
      *out = it->second.get();
      return Status::Ok();
    }
    std::string err;
    void* lib = OpenLibrary(path, &err);
    if (lib == nullptr) {
      if (!reasons.empty()) reasons += "; ";
      reasons += err;
      continue;
    }
    std::unique_ptr<DeviceRuntime> rt;
    Status s = kind == "ascend" ? LoadAcl(lib, path, &rt) : LoadCudaLike(kind, lib, path, &rt);
    if (!s.ok()) {
      // The library loaded but is unusable here (no device, missing symbol): report that, it is
      // more useful than "not found" for the remaining candidates.
      return s;
    }
    *out = rt.get();
    gRuntimes[key] = std::move(rt);
    return Status::Ok();
  }
  return Status::Error("KVMGR_UNAVAILABLE", kind + " runtime not found: " + reasons);
}

}  // namespace kvmgr
