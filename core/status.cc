#include "core/status.h"

#include <cstring>

namespace blockrep {

Status Status::FromErrno(int err, const std::string& context) {
  if (err < 0) err = -err;
  return Status(Code::kIoError, context + ": " + std::strerror(err));
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  const char* prefix = "";
  switch (state_->code) {
    case Code::kOk: prefix = "OK"; break;
    case Code::kInvalidArgument: prefix = "invalid argument"; break;
    case Code::kNotFound: prefix = "not found"; break;
    case Code::kIoError: prefix = "I/O error"; break;
    case Code::kCorruption: prefix = "corruption"; break;
    case Code::kProtocolError: prefix = "protocol error"; break;
    case Code::kUnsupported: prefix = "unsupported"; break;
    case Code::kShutdown: prefix = "shutting down"; break;
    case Code::kPermissionDenied: prefix = "permission denied"; break;
    case Code::kAborted: prefix = "aborted"; break;
  }
  return std::string(prefix) + ": " + state_->message;
}

}  // namespace blockrep
