// FileIo: asynchronous positional file I/O submitted on the calling thread's IoRing. It is
// the seam through which the journal and the backing disk do all their I/O, so that tests
// can put FaultyFileIo (core/faulty_file_io.h) in its place and inject short writes, ENOSPC
// or EIO into the real code paths.
//
// Each call queues one SQE; `completion->OnIoComplete(res)` later runs on the ring's thread
// with the kernel's result (bytes transferred, or -errno). Callers handle short transfers and
// errors. Buffers and iovec arrays must stay valid until the completion runs.
//
// Thread-safety: implementations are stateless or internally locked; any thread may call
// with its own ring.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "core/io_ring.h"

namespace blockrep {

class FileIo {
 public:
  virtual ~FileIo() = default;

  virtual void Read(IoRing& ring, int fd, void* buf, uint32_t length, uint64_t offset,
                    IoCompletion* completion) = 0;
  // rw_flags: 0 or RWF_DSYNC (the write is durable when it completes).
  virtual void Writev(IoRing& ring, int fd, const iovec* iov, int iovcnt, uint64_t offset,
                      int rw_flags, IoCompletion* completion) = 0;
  // fdatasync.
  virtual void Fsync(IoRing& ring, int fd, IoCompletion* completion) = 0;
  virtual void Fallocate(IoRing& ring, int fd, int mode, uint64_t offset, uint64_t length,
                         IoCompletion* completion) = 0;

  // The real thing: straight to io_uring.
  static FileIo& Direct();
};

}  // namespace blockrep
