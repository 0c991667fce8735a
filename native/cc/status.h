// Error codes shared by the C++ side. The TS wrapper turns them into KvmgrError; C++ never
// aborts the process on bad input: every failure is a Status carried back to JavaScript.
#pragma once
#include <string>

namespace kvmgr {

struct Status {
  // Empty code: success. Otherwise a stable KvmgrError code such as KVMGR_INVALID_ARGUMENT.
  std::string code;
  std::string message;
  bool ok() const { return code.empty(); }
  static Status Ok() { return Status{}; }
  static Status Error(const char* c, std::string m) { return Status{c, std::move(m)}; }
};

}  // namespace kvmgr
