// Status and Result<T>: operating errors as values (house style, after leveldb's Status).
//
// A Status is either OK or carries a code and a message naming what failed and where, e.g.
// Status::IoError("disk0 read at 4096: Input/output error"). Result<T> holds a T or a
// non-OK Status. Neither throws. Both are cheap to move; an OK Status allocates nothing.
#pragma once

#include <cassert>
#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace blockrep {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad user or peer input
    kNotFound,
    kIoError,          // a system call failed
    kCorruption,       // data read back does not verify
    kProtocolError,    // a peer broke the protocol
    kUnsupported,
    kShutdown,         // the component is stopping
    kPermissionDenied, // authentication or authorization refused (a wrong certificate)
    kAborted,          // abandoned on purpose, to be started again at once
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  // IoError from a negative errno value (as io_uring returns) or a positive errno.
  static Status FromErrno(int err, const std::string& context);
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status ProtocolError(std::string msg) { return Status(Code::kProtocolError, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(Code::kUnsupported, std::move(msg)); }
  static Status Shutdown(std::string msg) { return Status(Code::kShutdown, std::move(msg)); }
  static Status PermissionDenied(std::string msg) { return Status(Code::kPermissionDenied, std::move(msg)); }
  static Status Aborted(std::string msg) { return Status(Code::kAborted, std::move(msg)); }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  const std::string& message() const;
  // "I/O error: disk0 read at 4096: Input/output error"
  std::string ToString() const;
  // The same code with another message (a failure explained further). REQUIRES: !ok().
  Status WithMessage(std::string msg) const { return Status(code(), std::move(msg)); }

  Status(const Status& other) : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}
  Status& operator=(const Status& other) {
    state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

 private:
  struct State {
    Code code;
    std::string message;
  };
  Status(Code code, std::string msg) : state_(std::make_unique<State>(State{code, std::move(msg)})) {}
  std::unique_ptr<State> state_;
};

// Result<T>: a value or an error. REQUIRES: the Status given is not OK.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace blockrep

// Propagates a non-OK Status out of the calling function.
#define BLOCKREP_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::blockrep::Status _st = (expr);            \
    if (!_st.ok()) return _st;                  \
  } while (0)
