#include "core/faulty_file_io.h"

#include <vector>

namespace blockrep {
namespace {

// Delivers an injected result: the NOP's own result is replaced by `res`.
struct InjectedResult final : IoCompletion {
  IoCompletion* target;
  int32_t res;
  InjectedResult(IoCompletion* t, int32_t r) : target(t), res(r) {}
  void OnIoComplete(int32_t) override {
    IoCompletion* t = target;
    int32_t r = res;
    delete this;
    t->OnIoComplete(r);
  }
};

// A shortened vectored write owns the cut-down iovec array until it completes.
struct ShortWrite final : IoCompletion {
  IoCompletion* target;
  std::vector<iovec> iov;
  explicit ShortWrite(IoCompletion* t) : target(t) {}
  void OnIoComplete(int32_t res) override {
    IoCompletion* t = target;
    delete this;
    t->OnIoComplete(res);
  }
};

uint64_t IovBytes(const iovec* iov, int n) {
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) total += iov[i].iov_len;
  return total;
}

}  // namespace

void FaultyFileIo::SetRule(Rule rule) {
  std::lock_guard<std::mutex> lock(mu_);
  rule_ = std::move(rule);
}

int FaultyFileIo::faults_injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return faults_;
}

Fault FaultyFileIo::Decide(const FileRequest& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Fault f = rule_ ? rule_(r) : Fault::None();
  // A Short that covers the whole transfer, or one on an fsync or fallocate (which have no
  // bytes to cut), changes nothing: the request runs as it is and is not counted as a fault.
  if (f.kind == Fault::Kind::kShort &&
      (r.op == FileOp::kFsync || r.op == FileOp::kFallocate || f.value < 0 ||
       static_cast<uint64_t>(f.value) >= r.length)) {
    f = Fault::None();
  }
  if (f.kind != Fault::Kind::kNone) ++faults_;
  return f;
}

void FaultyFileIo::CompleteWith(IoRing& ring, IoCompletion* completion, int32_t res) {
  io_uring_prep_nop(ring.GetSqe(new InjectedResult(completion, res)));
}

void FaultyFileIo::Read(IoRing& ring, int fd, void* buf, uint32_t length, uint64_t offset,
                        IoCompletion* completion) {
  Fault f = Decide({FileOp::kRead, fd, offset, length});
  if (f.kind == Fault::Kind::kError) return CompleteWith(ring, completion, f.value);
  if (f.kind == Fault::Kind::kShort && static_cast<uint32_t>(f.value) < length) {
    length = static_cast<uint32_t>(f.value);
  }
  inner_.Read(ring, fd, buf, length, offset, completion);
}

void FaultyFileIo::Writev(IoRing& ring, int fd, const iovec* iov, int iovcnt, uint64_t offset,
                          int rw_flags, IoCompletion* completion) {
  const uint64_t total = IovBytes(iov, iovcnt);
  Fault f = Decide({FileOp::kWrite, fd, offset, total});
  if (f.kind == Fault::Kind::kError) return CompleteWith(ring, completion, f.value);
  if (f.kind == Fault::Kind::kShort && static_cast<uint64_t>(f.value) < total) {
    auto* sw = new ShortWrite(completion);
    uint64_t left = static_cast<uint64_t>(f.value);
    for (int i = 0; i < iovcnt && left > 0; ++i) {
      const size_t n = iov[i].iov_len < left ? iov[i].iov_len : static_cast<size_t>(left);
      sw->iov.push_back({iov[i].iov_base, n});
      left -= n;
    }
    if (sw->iov.empty()) {  // a zero-byte "write": report 0 without touching the file
      delete sw;
      return CompleteWith(ring, completion, 0);
    }
    inner_.Writev(ring, fd, sw->iov.data(), static_cast<int>(sw->iov.size()), offset, rw_flags,
                  sw);
    return;
  }
  inner_.Writev(ring, fd, iov, iovcnt, offset, rw_flags, completion);
}

void FaultyFileIo::Fsync(IoRing& ring, int fd, IoCompletion* completion) {
  Fault f = Decide({FileOp::kFsync, fd, 0, 0});
  if (f.kind == Fault::Kind::kError) return CompleteWith(ring, completion, f.value);
  inner_.Fsync(ring, fd, completion);
}

void FaultyFileIo::Fallocate(IoRing& ring, int fd, int mode, uint64_t offset, uint64_t length,
                             IoCompletion* completion) {
  Fault f = Decide({FileOp::kFallocate, fd, offset, length});
  if (f.kind == Fault::Kind::kError) return CompleteWith(ring, completion, f.value);
  inner_.Fallocate(ring, fd, mode, offset, length, completion);
}

}  // namespace blockrep
