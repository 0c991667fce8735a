// Module entry: the Arena class, runtime probing and build facts.
#include <napi.h>

#include <string>
#include <vector>

#include "arena.h"
#include "runtime.h"

namespace kvmgr {
namespace {

// probe(kind, libraries: string[]) → { available, reason, library, deviceCount }
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  std::vector<std::string> libs;
  if (info[1].IsArray()) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (v.IsString()) libs.push_back(v.As<Napi::String>().Utf8Value());
    }
  }
  DeviceRuntime* rt = nullptr;
  Status s = OpenRuntime(kind, libs, &rt);
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", s.ok());
  o.Set("reason", s.ok() ? std::string("") : s.message);
  o.Set("library", rt != nullptr ? rt->Library() : std::string(""));
  o.Set("deviceCount", rt != nullptr ? rt->DeviceCount() : 0);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function arena = Arena::Define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(arena)));
  exports.Set("Arena", arena);
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
#if defined(__linux__)
  exports.Set("platform", "linux");
#elif defined(__APPLE__)
  exports.Set("platform", "darwin");
#else
  exports.Set("platform", "other");
#endif
  return exports;
}

}  // namespace
}  // namespace kvmgr

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return kvmgr::Init(env, exports); }

NODE_API_MODULE(kvmgr_native, InitModule)
