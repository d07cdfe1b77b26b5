#include "daemon/write_path.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>

#include <cerrno>

#include "core/check.h"

namespace blockrep {
namespace {
// Shared source of zeroes for the fallback path; never written.
alignas(4096) const uint8_t kZeroes[WritePath::kZeroChunkBytes] = {};

bool FallocateUnsupported(int err) {
  return err == -EOPNOTSUPP || err == -EINVAL || err == -ENODEV || err == -ENOTTY;
}
}  // namespace

// One backing operation, driven step by step through the ring: short transfers resume
// where they stopped, -EAGAIN/-EINTR retry, and a FUA trim or zero ends with fdatasync.
class WritePath::DiskOp final : public IoCompletion {
 public:
  enum class Step { kRead, kWrite, kFallocate, kWriteZeroes, kSync };

  DiskOp(WritePath& wp, IoRing& ring, nbd::BackendDone* done, Step step, uint64_t offset,
         uint64_t length)
      : wp_(wp), ring_(ring), done_(done), step_(step), offset_(offset), length_(length) {}

  uint8_t* read_buf = nullptr;
  const uint8_t* write_buf = nullptr;
  bool fua = false;            // write: RWF_DSYNC; trim/zero: fdatasync afterwards
  bool is_trim = false;        // fallocate failures are ignored: trim is advisory
  bool fast_only = false;      // never fall back to writing zeroes
  int fallocate_mode = 0;

  void Submit() {
    const int fd = wp_.disk_.fd();
    io_uring_sqe* sqe = ring_.GetSqe(this);
    switch (step_) {
      case Step::kRead:
        io_uring_prep_read(sqe, fd, read_buf + done_bytes_,
                           static_cast<unsigned>(length_ - done_bytes_), offset_ + done_bytes_);
        break;
      case Step::kWrite:
        io_uring_prep_write(sqe, fd, write_buf + done_bytes_,
                            static_cast<unsigned>(length_ - done_bytes_), offset_ + done_bytes_);
        if (fua) sqe->rw_flags = RWF_DSYNC;
        break;
      case Step::kFallocate:
        io_uring_prep_fallocate(sqe, fd, fallocate_mode, static_cast<off_t>(offset_),
                                static_cast<off_t>(length_));
        break;
      case Step::kWriteZeroes: {
        uint64_t left = length_ - done_bytes_;
        unsigned n = static_cast<unsigned>(left < kZeroChunkBytes ? left : kZeroChunkBytes);
        io_uring_prep_write(sqe, fd, kZeroes, n, offset_ + done_bytes_);
        break;
      }
      case Step::kSync:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
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
        if (res == 0) return fua ? Then(Step::kSync) : Finish(0);
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
    nbd::BackendDone* done = done_;
    delete this;
    done->OnDone(err);
  }

  WritePath& wp_;
  IoRing& ring_;
  nbd::BackendDone* done_;
  Step step_;
  uint64_t offset_;
  uint64_t length_;
  uint64_t done_bytes_ = 0;
};

nbd::BackendCapabilities WritePath::capabilities() const {
  nbd::BackendCapabilities caps;
  caps.read_only = false;
  caps.can_trim = true;
  caps.can_zero = true;
  caps.can_fast_zero = true;
  caps.can_multi_conn = true;
  return caps;
}

void WritePath::Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf,
                     nbd::BackendDone* done) {
  auto* op = new DiskOp(*this, ring, done, DiskOp::Step::kRead, offset, length);
  op->read_buf = buf;
  op->Submit();
}

void WritePath::Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf,
                      bool fua, nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  auto* op = new DiskOp(*this, ring, done, DiskOp::Step::kWrite, offset, length);
  op->write_buf = buf;
  op->fua = fua;
  op->Submit();
}

void WritePath::WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                            bool fast_only, bool fua, nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  auto* op = new DiskOp(*this, ring, done, DiskOp::Step::kFallocate, offset, length);
  op->fua = fua;
  op->fast_only = fast_only;
  // A file zeroes in place either way. On a block device only PUNCH_HOLE promises not to
  // fall back to writing zeroes (BLKDEV_ZERO_NOFALLBACK), so a fast zero must use it.
  const bool punch = may_trim || (fast_only && disk_.is_block_device());
  op->fallocate_mode =
      (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
  op->Submit();
}

void WritePath::Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua,
                     nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  auto* op = new DiskOp(*this, ring, done, DiskOp::Step::kFallocate, offset, length);
  op->fua = fua;
  op->is_trim = true;
  op->fallocate_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  op->Submit();
}

void WritePath::Flush(IoRing& ring, nbd::BackendDone* done) {
  auto* op = new DiskOp(*this, ring, done, DiskOp::Step::kSync, 0, 0);
  op->Submit();
}

Status WritePath::BlockStatus(uint64_t offset, uint64_t length, uint32_t max_extents,
                              std::vector<nbd::Extent>* extents) {
  return disk_.Extents(offset, length, max_extents, extents);
}

}  // namespace blockrep
