// The JS class `Arena`: one slab, block reads/writes, zero-copy host views, batched copies.
#pragma once
#include <napi.h>

#include <memory>

#include "slab.h"

namespace kvmgr {

class Arena : public Napi::ObjectWrap<Arena> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Arena(const Napi::CallbackInfo& info);
  std::shared_ptr<Slab> slab() const { return slab_; }
  void Finalize(Napi::Env env) override;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value CopyTo(const Napi::CallbackInfo& info);
  Napi::Value CopyToSync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);

  std::shared_ptr<Slab> slab_;
  void Unaccount(Napi::Env env);

  int64_t accounted_ = 0;  // bytes reported to V8 as external memory (GC pressure)
  Napi::Reference<Napi::ArrayBuffer> view_;  // weak: the cached host view, detached on close()
};

// Throws a JS Error whose `code` property carries the status code.
[[noreturn]] void ThrowStatus(Napi::Env env, const Status& s);
Napi::Error StatusError(Napi::Env env, const Status& s);

}  // namespace kvmgr
