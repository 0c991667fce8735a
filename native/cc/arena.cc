#include "arena.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace kvmgr {

Napi::Error StatusError(Napi::Env env, const Status& s) {
  Napi::Error e = Napi::Error::New(env, s.message);
  e.Set("code", Napi::String::New(env, s.code));
  return e;
}

void ThrowStatus(Napi::Env env, const Status& s) { throw StatusError(env, s); }

namespace {

Status Invalid(std::string m) { return Status::Error("KVMGR_INVALID_ARGUMENT", std::move(m)); }

// A non-negative integer below 2^53 from a JS number.
bool ToSize(const Napi::Value& v, size_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
  *out = static_cast<size_t>(d);
  return true;
}

std::vector<std::string> StringList(const Napi::Value& v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (e.IsString()) out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Status RequireOpen(const Slab& s, const char* what) {
  if (s.closed) return Status::Error("KVMGR_INVALID_STATE", std::string(what) + ": arena is closed");
  return Status::Ok();
}

Status CheckBlock(const Slab& s, size_t id) {
  if (id >= s.numBlocks) {
    return Invalid("block id must be an integer in [0, " + std::to_string(s.numBlocks) + "), got " + std::to_string(id));
  }
  return Status::Ok();
}

// A copy batch resolved to raw segments, ready to run off the main thread.
struct CopyPlan {
  std::shared_ptr<Slab> from;
  std::shared_ptr<Slab> to;
  DeviceRuntime* runtime = nullptr;  // null: plain memcpy
  int device = 0;
  CopyKind kind = CopyKind::kHostToHost;
  bool hostPinned = false;  // the host side was allocated by `runtime` (pinned)
  std::vector<CopySegment> segments;
};

Status Execute(const CopyPlan& plan) {
  if (plan.runtime == nullptr) {
    for (const CopySegment& seg : plan.segments) std::memcpy(seg.dst, seg.src, seg.bytes);
    return Status::Ok();
  }
  if (plan.segments.empty()) return Status::Ok();
  return plan.runtime->CopyBatch(plan.device, plan.kind, plan.segments, plan.hostPinned);
}

// Validates a batch and turns it into segments; runs of consecutive ids become one segment.
// The TS layer has already routed batches whose destinations overlap their sources (same slab)
// through a staging buffer, so segments never overlap here; a == b within one slab is skipped.
Status Plan(const std::shared_ptr<Slab>& from, const std::shared_ptr<Slab>& to, const Napi::Value& srcV,
            const Napi::Value& dstV, CopyPlan* plan) {
  Status s = RequireOpen(*from, "copyBlocks (source)");
  if (!s.ok()) return s;
  s = RequireOpen(*to, "copyBlocks (target)");
  if (!s.ok()) return s;
  if (!srcV.IsTypedArray() || srcV.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      !dstV.IsTypedArray() || dstV.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    return Invalid("copy batch ids must be Uint32Arrays");
  }
  Napi::Uint32Array src = srcV.As<Napi::Uint32Array>();
  Napi::Uint32Array dst = dstV.As<Napi::Uint32Array>();
  if (src.ElementLength() != dst.ElementLength()) {
    return Invalid("copy batch src and dst must have the same length, got " + std::to_string(src.ElementLength()) +
                   " and " + std::to_string(dst.ElementLength()));
  }
  if (from->bytesPerBlock != to->bytesPerBlock) {
    return Invalid("bytesPerBlock of source and target must match, got " + std::to_string(from->bytesPerBlock) +
                   " and " + std::to_string(to->bytesPerBlock));
  }
  if (from->onDevice || to->onDevice) {
    const Slab& dev = from->onDevice ? *from : *to;
    if (from->onDevice && to->onDevice && from->runtime != to->runtime) {
      return Status::Error("KVMGR_UNAVAILABLE", "cannot copy between " + from->backend + " and " + to->backend +
                                                    " device arenas; stage through a host arena");
    }
    plan->runtime = dev.runtime;
    plan->device = dev.device;
    plan->kind = from->onDevice && to->onDevice ? CopyKind::kDeviceToDevice
                 : from->onDevice            ? CopyKind::kDeviceToHost
                                             : CopyKind::kHostToDevice;
    const Slab& hostSide = from->onDevice ? *to : *from;
    plan->hostPinned = !hostSide.onDevice && hostSide.runtime == dev.runtime;
  }
  plan->from = from;
  plan->to = to;
  const size_t n = src.ElementLength();
  const size_t bpb = from->bytesPerBlock;
  const bool same = from.get() == to.get();
  plan->segments.reserve(n);
  for (size_t i = 0; i < n; i++) {
    size_t a = src[i];
    size_t b = dst[i];
    if (a >= from->numBlocks) {
      return Invalid("src[" + std::to_string(i) + "] must be a block id in [0, " + std::to_string(from->numBlocks) +
                     "), got " + std::to_string(a));
    }
    if (b >= to->numBlocks) {
      return Invalid("dst[" + std::to_string(i) + "] must be a block id in [0, " + std::to_string(to->numBlocks) +
                     "), got " + std::to_string(b));
    }
    if (same && a == b) continue;
    char* d = to->Block(b);
    const char* sp = from->Block(a);
    if (!plan->segments.empty()) {
      CopySegment& last = plan->segments.back();
      if (static_cast<const char*>(last.src) + last.bytes == sp && static_cast<char*>(last.dst) + last.bytes == d) {
        last.bytes += bpb;
        continue;
      }
    }
    plan->segments.push_back(CopySegment{d, sp, bpb});
  }
  return Status::Ok();
}

void Finish(const CopyPlan& plan) {
  for (Slab* s : {plan.from.get(), plan.to.get()}) {
    s->inflight--;
    if (s->closed && s->inflight == 0) s->Release();
  }
}

class CopyWorker final : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, CopyPlan plan)
      : Napi::AsyncWorker(env, "kvmgr.copyBlocks"), plan_(std::move(plan)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { status_ = kvmgr::Execute(plan_); }
  void OnOK() override {
    Finish(plan_);
    if (status_.ok()) {
      deferred_.Resolve(Env().Undefined());
    } else {
      deferred_.Reject(StatusError(Env(), status_).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Finish(plan_);
    deferred_.Reject(e.Value());
  }

 private:
  CopyPlan plan_;
  Status status_;
  Napi::Promise::Deferred deferred_;
};

void FinalizeView(Napi::Env, void*, std::shared_ptr<Slab>* hint) { delete hint; }

}  // namespace

Napi::Function Arena::Define(Napi::Env env) {
  return DefineClass(env, "Arena",
                     {
                         InstanceMethod<&Arena::Info>("info"),
                         InstanceMethod<&Arena::Buffer>("buffer"),
                         InstanceMethod<&Arena::Write>("write"),
                         InstanceMethod<&Arena::Read>("read"),
                         InstanceMethod<&Arena::CopyTo>("copyTo"),
                         InstanceMethod<&Arena::CopyToSync>("copyToSync"),
                         InstanceMethod<&Arena::Close>("close"),
                         InstanceAccessor<&Arena::Closed>("closed"),
                     });
}

// new Arena({ backend, numBlocks, bytesPerBlock, location, device, hugePages, lock, libraries })
Arena::Arena(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Arena>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowStatus(env, Invalid("Arena options must be an object"));
  Napi::Object o = info[0].As<Napi::Object>();
  auto slab = std::make_shared<Slab>();
  Napi::Value backendV = o.Get("backend");
  slab->backend = backendV.IsString() ? backendV.As<Napi::String>().Utf8Value() : "";
  if (!ToSize(o.Get("numBlocks"), &slab->numBlocks) || slab->numBlocks == 0) {
    ThrowStatus(env, Invalid("numBlocks must be a positive integer"));
  }
  if (!ToSize(o.Get("bytesPerBlock"), &slab->bytesPerBlock) || slab->bytesPerBlock == 0) {
    ThrowStatus(env, Invalid("bytesPerBlock must be a positive integer"));
  }
  if (slab->numBlocks > SIZE_MAX / slab->bytesPerBlock) ThrowStatus(env, Invalid("numBlocks × bytesPerBlock overflows"));
  slab->bytes = slab->numBlocks * slab->bytesPerBlock;
  size_t device = 0;
  Napi::Value deviceV = o.Get("device");
  if (!deviceV.IsUndefined() && (!ToSize(deviceV, &device) || device > 1024)) {
    ThrowStatus(env, Invalid("device must be a small non-negative integer"));
  }
  slab->device = static_cast<int>(device);
  Napi::Value locV = o.Get("location");
  std::string location = locV.IsString() ? locV.As<Napi::String>().Utf8Value() : "host";
  if (location != "host" && location != "device") ThrowStatus(env, Invalid("location must be host or device, got " + location));

  if (slab->backend == "host") {
    if (location != "host") ThrowStatus(env, Invalid("the host backend has no device memory"));
    bool huge = o.Get("hugePages").ToBoolean();
    bool lock = o.Get("lock").ToBoolean();
    Status s = AllocateHost(slab->bytes, huge, lock, &slab->host);
    if (!s.ok()) ThrowStatus(env, s);
    slab->base = slab->host.base;
  } else if (slab->backend == "cuda" || slab->backend == "rocm" || slab->backend == "ascend") {
    DeviceRuntime* rt = nullptr;
    Status s = OpenRuntime(slab->backend, StringList(o.Get("libraries")), &rt);
    if (!s.ok()) ThrowStatus(env, s);
    slab->runtime = rt;
    slab->onDevice = location == "device";
    void* p = nullptr;
    s = slab->onDevice ? rt->Malloc(slab->device, slab->bytes, &p) : rt->HostAlloc(slab->device, slab->bytes, &p);
    if (!s.ok()) ThrowStatus(env, s);
    slab->base = p;
  } else {
    ThrowStatus(env, Invalid("backend must be host, cuda, rocm or ascend, got " + slab->backend));
  }
  slab_ = std::move(slab);
  // Tell V8 how much memory this small JS object holds, so dropped arenas are collected soon.
  accounted_ = static_cast<int64_t>(slab_->bytes);
  Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
}

void Arena::Unaccount(Napi::Env env) {
  if (accounted_ == 0) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
  accounted_ = 0;
}

void Arena::Finalize(Napi::Env env) { Unaccount(env); }

Napi::Value Arena::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("backend", slab_->backend);
  o.Set("location", slab_->onDevice ? "device" : "host");
  o.Set("device", slab_->device);
  o.Set("numBlocks", static_cast<double>(slab_->numBlocks));
  o.Set("bytesPerBlock", static_cast<double>(slab_->bytesPerBlock));
  o.Set("hugePages", slab_->host.hugePages);
  o.Set("locked", slab_->host.locked || (slab_->runtime != nullptr && !slab_->onDevice));
  o.Set("library", slab_->runtime != nullptr ? slab_->runtime->Library() : "");
  return o;
}

Napi::Value Arena::Buffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status s = RequireOpen(*slab_, "buffer");
  if (!s.ok()) ThrowStatus(env, s);
  if (slab_->onDevice) {
    ThrowStatus(env, Status::Error("KVMGR_INVALID_STATE", slab_->backend + " device memory cannot be viewed from the CPU; use read()"));
  }
  if (!view_.IsEmpty()) {
    Napi::ArrayBuffer cached = view_.Value();
    if (!cached.IsEmpty() && !cached.IsDetached()) return cached;
  }
  auto* hint = new std::shared_ptr<Slab>(slab_);
  Napi::ArrayBuffer ab;
  try {
    ab = Napi::ArrayBuffer::New(env, slab_->base, slab_->bytes, FinalizeView, hint);
  } catch (const Napi::Error& e) {
    delete hint;
    ThrowStatus(env, Status::Error("KVMGR_UNAVAILABLE", "external ArrayBuffers are not allowed here: " + e.Message()));
  }
  view_ = Napi::Weak(ab);
  return ab;
}

// The checked arguments of write/read: `(blockId, bytes: Uint8Array, byteOffset?)`.
struct BlockAccess {
  char* at;  // first byte of the range inside the slab
  Napi::Uint8Array bytes;
};

// Validates the arguments of `op` ("write" or "read"); `bufName` names the buffer argument in
// errors. Throws a KVMGR_* error for a closed arena, a bad id, buffer or offset, or a range past
// the end of the block.
static BlockAccess CheckBlockAccess(const Napi::CallbackInfo& info, Slab& slab, const char* op, const char* bufName) {
  Napi::Env env = info.Env();
  Status s = RequireOpen(slab, op);
  if (!s.ok()) ThrowStatus(env, s);
  size_t id = 0;
  size_t offset = 0;
  if (!ToSize(info[0], &id)) ThrowStatus(env, Invalid("block id must be a non-negative integer"));
  s = CheckBlock(slab, id);
  if (!s.ok()) ThrowStatus(env, s);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowStatus(env, Invalid(std::string(bufName) + " must be a Uint8Array"));
  }
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  if (info.Length() > 2 && !info[2].IsUndefined() && !ToSize(info[2], &offset)) {
    ThrowStatus(env, Invalid("byteOffset must be a non-negative integer"));
  }
  if (offset > slab.bytesPerBlock || bytes.ByteLength() > slab.bytesPerBlock - offset) {
    ThrowStatus(env, Invalid(std::string(op) + " of " + std::to_string(bytes.ByteLength()) + " bytes at offset " + std::to_string(offset) +
                             " exceeds bytesPerBlock " + std::to_string(slab.bytesPerBlock)));
  }
  return BlockAccess{slab.Block(id) + offset, bytes};
}

// write(blockId, bytes: Uint8Array, byteOffset)
Napi::Value Arena::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BlockAccess a = CheckBlockAccess(info, *slab_, "write", "data");
  if (a.bytes.ByteLength() == 0) return env.Undefined();
  if (!slab_->onDevice) {
    std::memcpy(a.at, a.bytes.Data(), a.bytes.ByteLength());
  } else {
    Status s = slab_->runtime->CopyBatch(slab_->device, CopyKind::kHostToDevice, {CopySegment{a.at, a.bytes.Data(), a.bytes.ByteLength()}}, false);
    if (!s.ok()) ThrowStatus(env, s);
  }
  return env.Undefined();
}

// read(blockId, into: Uint8Array, byteOffset)
Napi::Value Arena::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BlockAccess a = CheckBlockAccess(info, *slab_, "read", "into");
  if (a.bytes.ByteLength() == 0) return env.Undefined();
  if (!slab_->onDevice) {
    std::memcpy(a.bytes.Data(), a.at, a.bytes.ByteLength());
  } else {
    Status s = slab_->runtime->CopyBatch(slab_->device, CopyKind::kDeviceToHost, {CopySegment{a.bytes.Data(), a.at, a.bytes.ByteLength()}}, false);
    if (!s.ok()) ThrowStatus(env, s);
  }
  return env.Undefined();
}

static std::shared_ptr<Slab> TargetSlab(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) ThrowStatus(env, Invalid("copy target must be a native arena"));
  Napi::Object o = v.As<Napi::Object>();
  // InstanceOf against the class constructor stored at module init.
  Napi::FunctionReference* ctor = env.GetInstanceData<Napi::FunctionReference>();
  if (ctor == nullptr || !o.InstanceOf(ctor->Value())) ThrowStatus(env, Invalid("copy target must be a native arena"));
  return Arena::Unwrap(o)->slab();
}

// copyTo(target, src: Uint32Array, dst: Uint32Array) → Promise<void>
Napi::Value Arena::CopyTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Slab> to = TargetSlab(env, info[0]);
  CopyPlan plan;
  Status s = Plan(slab_, to, info[1], info[2], &plan);
  if (!s.ok()) ThrowStatus(env, s);
  plan.from->inflight++;
  plan.to->inflight++;
  auto* worker = new CopyWorker(env, std::move(plan));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// copyToSync(target, src, dst): the same batch on the calling thread (for small batches and
// benchmarks, where a thread-pool hop costs more than the copy).
Napi::Value Arena::CopyToSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Slab> to = TargetSlab(env, info[0]);
  CopyPlan plan;
  Status s = Plan(slab_, to, info[1], info[2], &plan);
  if (!s.ok()) ThrowStatus(env, s);
  s = Execute(plan);
  if (!s.ok()) ThrowStatus(env, s);
  return env.Undefined();
}

Napi::Value Arena::Close(const Napi::CallbackInfo& info) {
  if (slab_->closed) return info.Env().Undefined();
  slab_->closed = true;
  if (!view_.IsEmpty()) {
    Napi::ArrayBuffer ab = view_.Value();
    // Detach the view so JS can never touch freed memory through it.
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    view_.Reset();
  }
  if (slab_->inflight == 0) slab_->Release();
  Unaccount(info.Env());
  return info.Env().Undefined();
}

Napi::Value Arena::Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), slab_->closed); }

}  // namespace kvmgr
