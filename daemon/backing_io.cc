#include "daemon/backing_io.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include <cerrno>

#include "core/check.h"

namespace blockrep {
namespace {
// Shared source of zeroes for the fallback path; never written.
alignas(4096) const uint8_t kZeroes[BackingIo::kZeroChunkBytes] = {};

bool FallocateUnsupported(int err) {
  return err == -EOPNOTSUPP || err == -EINVAL || err == -ENODEV || err == -ENOTTY;
}
}  // namespace

class BackingIo::Op final : public IoCompletion {
 public:
  enum class Step { kRead, kWrite, kFallocate, kWriteZeroes, kSync };

  Op(BackingIo& b, IoRing& ring, Done done, Step step, uint64_t offset, uint64_t length)
      : b_(b), ring_(ring), done_(done), step_(step), offset_(offset), length_(length) {}

  uint8_t* read_buf = nullptr;
  const uint8_t* write_buf = nullptr;
  bool fua = false;            // write: RWF_DSYNC; trim/zero: fdatasync afterwards
  bool is_trim = false;        // fallocate failures are ignored: trim is advisory
  bool* trim_performed = nullptr;
  bool fast_only = false;      // never fall back to writing zeroes
  int fallocate_mode = 0;

  void Submit() {
    const int fd = b_.disk_.fd();
    switch (step_) {
      case Step::kRead:
        b_.io_.Read(ring_, fd, read_buf + done_bytes_, static_cast<uint32_t>(length_ - done_bytes_),
                    offset_ + done_bytes_, this);
        break;
      case Step::kWrite:
        iov_ = {const_cast<uint8_t*>(write_buf) + done_bytes_, length_ - done_bytes_};
        b_.io_.Writev(ring_, fd, &iov_, 1, offset_ + done_bytes_, fua ? RWF_DSYNC : 0, this);
        break;
      case Step::kFallocate:
        b_.io_.Fallocate(ring_, fd, fallocate_mode, offset_, length_, this);
        break;
      case Step::kWriteZeroes: {
        const uint64_t left = length_ - done_bytes_;
        iov_ = {const_cast<uint8_t*>(kZeroes), left < kZeroChunkBytes ? left : kZeroChunkBytes};
        b_.io_.Writev(ring_, fd, &iov_, 1, offset_ + done_bytes_, 0, this);
        break;
      }
      case Step::kSync:
        b_.io_.Fsync(ring_, fd, this);
        break;
    }
  }

  void OnIoComplete(int32_t res) override {
    if (res == -EAGAIN || res == -EINTR) return Submit();
    switch (step_) {
      case Step::kRead:
      case Step::kWrite:
      case Step::kWriteZeroes:
        if (res < 0) return Finish(res);
        // A zero-byte transfer inside the disk means it shrank under us: not retryable.
        if (res == 0) return Finish(-EIO);
        done_bytes_ += static_cast<uint64_t>(res);
        if (done_bytes_ < length_) return Submit();
        if (step_ == Step::kWriteZeroes && fua) return Then(Step::kSync);
        return Finish(0);
      case Step::kFallocate:
        if (res == 0) {
          if (trim_performed != nullptr) *trim_performed = true;
          return fua ? Then(Step::kSync) : Finish(0);
        }
        if (is_trim && FallocateUnsupported(res)) return Finish(0);
        if (FallocateUnsupported(res)) {
          if (fast_only) return Finish(-ENOTSUP);
          return Then(Step::kWriteZeroes);
        }
        return Finish(res);
      case Step::kSync:
        return Finish(res < 0 ? res : 0);
    }
  }

 private:
  void Then(Step next) {
    step_ = next;
    done_bytes_ = 0;
    Submit();
  }
  void Finish(int err) {
    Done done = done_;
    delete this;
    done(err);
  }

  BackingIo& b_;
  IoRing& ring_;
  Done done_;
  Step step_;
  uint64_t offset_;
  uint64_t length_;
  uint64_t done_bytes_ = 0;
  iovec iov_{};
};

void BackingIo::Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf, Done done) {
  auto* op = new Op(*this, ring, done, Op::Step::kRead, offset, length);
  op->read_buf = buf;
  op->Submit();
}

void BackingIo::Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf,
                      bool fua, Done done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  auto* op = new Op(*this, ring, done, Op::Step::kWrite, offset, length);
  op->write_buf = buf;
  op->fua = fua;
  op->Submit();
}

void BackingIo::WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                            bool fast_only, bool fua, Done done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  auto* op = new Op(*this, ring, done, Op::Step::kFallocate, offset, length);
  op->fua = fua;
  op->fast_only = fast_only;
  // A file zeroes in place either way. On a block device only PUNCH_HOLE promises not to
  // fall back to writing zeroes (BLKDEV_ZERO_NOFALLBACK), so a fast zero must use it.
  const bool punch = may_trim || (fast_only && disk_.is_block_device());
  op->fallocate_mode = (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
  op->Submit();
}

void BackingIo::Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua, Done done,
                     bool* performed) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  if (performed != nullptr) *performed = false;
  auto* op = new Op(*this, ring, done, Op::Step::kFallocate, offset, length);
  op->fua = fua;
  op->is_trim = true;
  op->trim_performed = performed;
  op->fallocate_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  op->Submit();
}

void BackingIo::Sync(IoRing& ring, Done done) {
  (new Op(*this, ring, done, Op::Step::kSync, 0, 0))->Submit();
}

}  // namespace blockrep
