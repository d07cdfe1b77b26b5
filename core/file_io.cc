#include "core/file_io.h"

namespace blockrep {
namespace {

class DirectFileIo final : public FileIo {
 public:
  void Read(IoRing& ring, int fd, void* buf, uint32_t length, uint64_t offset,
            IoCompletion* completion) override {
    io_uring_prep_read(ring.GetSqe(completion), fd, buf, length, offset);
  }
  void Writev(IoRing& ring, int fd, const iovec* iov, int iovcnt, uint64_t offset, int rw_flags,
              IoCompletion* completion) override {
    io_uring_sqe* sqe = ring.GetSqe(completion);
    if (iovcnt == 1) {  // IORING_OP_WRITE skips importing an iovec array
      io_uring_prep_write(sqe, fd, iov[0].iov_base, static_cast<unsigned>(iov[0].iov_len), offset);
    } else {
      io_uring_prep_writev(sqe, fd, iov, static_cast<unsigned>(iovcnt), offset);
    }
    sqe->rw_flags = rw_flags;
  }
  void Fsync(IoRing& ring, int fd, IoCompletion* completion) override {
    io_uring_prep_fsync(ring.GetSqe(completion), fd, IORING_FSYNC_DATASYNC);
  }
  void Fallocate(IoRing& ring, int fd, int mode, uint64_t offset, uint64_t length,
                 IoCompletion* completion) override {
    io_uring_prep_fallocate(ring.GetSqe(completion), fd, mode, static_cast<off_t>(offset),
                            static_cast<off_t>(length));
  }
};

}  // namespace

FileIo& FileIo::Direct() {
  static DirectFileIo direct;
  return direct;
}

}  // namespace blockrep
