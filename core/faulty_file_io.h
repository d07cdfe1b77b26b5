// FaultyFileIo: a FileIo that passes every request to another FileIo unless a rule says to
// fail it. The error-injecting implementation behind the fault-injection unit tests: the
// code under test runs unchanged, on a real ring and real files, and sees the results a
// failing disk would give.
//
//   FaultyFileIo io(FileIo::Direct());
//   io.SetRule([&](const FileRequest& r) {
//     return r.fd == journal_fd && r.op == FileOp::kWrite ? Fault::Error(-ENOSPC) : Fault::None();
//   });
//
// Fault::Error completes the request with that result without touching the file (through an
// io_uring NOP, so it still arrives asynchronously, on the ring). Fault::Short(n) performs
// only the first n bytes of a write or read for real and reports n.
//
// Thread-safety: SetRule and requests may come from any thread (the rule is called under a
// lock).
#pragma once

#include <functional>
#include <mutex>

#include "core/file_io.h"

namespace blockrep {

enum class FileOp { kRead, kWrite, kFsync, kFallocate };

struct FileRequest {
  FileOp op;
  int fd;
  uint64_t offset;
  uint64_t length;
};

struct Fault {
  enum class Kind { kNone, kError, kShort } kind = Kind::kNone;
  int32_t value = 0;  // kError: -errno; kShort: bytes to transfer
  static Fault None() { return {}; }
  static Fault Error(int32_t neg_errno) { return {Kind::kError, neg_errno}; }
  static Fault Short(int32_t bytes) { return {Kind::kShort, bytes}; }
};

class FaultyFileIo final : public FileIo {
 public:
  using Rule = std::function<Fault(const FileRequest&)>;

  explicit FaultyFileIo(FileIo& inner) : inner_(inner) {}
  void SetRule(Rule rule);
  // Requests the rule failed or shortened so far.
  int faults_injected() const;

  void Read(IoRing& ring, int fd, void* buf, uint32_t length, uint64_t offset,
            IoCompletion* completion) override;
  void Writev(IoRing& ring, int fd, const iovec* iov, int iovcnt, uint64_t offset, int rw_flags,
              IoCompletion* completion) override;
  void Fsync(IoRing& ring, int fd, IoCompletion* completion) override;
  void Fallocate(IoRing& ring, int fd, int mode, uint64_t offset, uint64_t length,
                 IoCompletion* completion) override;

 private:
  Fault Decide(const FileRequest& r);
  void CompleteWith(IoRing& ring, IoCompletion* completion, int32_t res);

  FileIo& inner_;
  mutable std::mutex mu_;
  Rule rule_;           // guarded by mu_
  int faults_ = 0;      // guarded by mu_
};

}  // namespace blockrep
