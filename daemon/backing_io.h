// BackingIo: asynchronous reads and changes of one BackingDisk through a FileIo, each driven
// to completion step by step: short transfers resume where they stopped, -EAGAIN/-EINTR
// retry, zeroing falls back to writing zeroes where the file system cannot zero in place,
// and FUA trims and zeroes end with fdatasync. FUA writes use RWF_DSYNC.
//
// The WritePath calls it for the backing half of every change (after the journal half) and
// for reads. Thread-safety: stateless apart from its references; any thread may call with
// its own ring. Each call eventually runs done(err) exactly once, on that ring's thread,
// with 0 or -errno.
#pragma once

#include <cstdint>
#include <functional>

#include "core/file_io.h"
#include "daemon/backing_disk.h"

namespace blockrep {

class BackingIo {
 public:
  // Bytes of zeroes written per step when the file system cannot zero a range in place.
  static constexpr uint32_t kZeroChunkBytes = 1u << 20;

  // Completion callback: a plain function pointer and context, so no allocation per call.
  struct Done {
    void (*fn)(void* ctx, int err) = nullptr;
    void* ctx = nullptr;
    void operator()(int err) const { fn(ctx, err); }
  };

  BackingIo(BackingDisk& disk, FileIo& io) : disk_(disk), io_(io) {}

  BackingDisk& disk() const { return disk_; }

  void Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf, Done done);
  void Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf, bool fua,
             Done done);
  // may_trim: the range may be deallocated. fast_only: fail with -ENOTSUP rather than write
  // zeroes slowly.
  void WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim, bool fast_only,
                   bool fua, Done done);
  // Punches a hole; on file systems that cannot, succeeds without change (*performed tells
  // which, if not null: a trim that did nothing leaves the old data in place).
  void Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua, Done done,
            bool* performed);
  void Sync(IoRing& ring, Done done);

 private:
  class Op;
  BackingDisk& disk_;
  FileIo& io_;
};

}  // namespace blockrep
