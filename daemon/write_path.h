// WritePath: the one place through which every change to a protected disk passes.
//
// Every NBD write, write-zeroes and trim (and, from the FUSE front door, every write,
// fallocate and fsync) becomes a call here; nothing else writes the backing disk. That is
// what lets the journal intercept all changes: it slots in as a second submission beside
// the backing write, and the caller's completion waits for both. Reads pass through too, so
// that one object answers for the disk's contents.
//
// All backing I/O goes through the caller's io_uring (see nbd::Backend). FUA writes use
// RWF_DSYNC; FUA trims and zeroes, and flushes, use fdatasync (IORING_FSYNC_DATASYNC).
// Because all connections share the backing fd and the page cache, a flush covers every
// write completed on any connection (NBD_FLAG_CAN_MULTI_CONN).
//
// Thread-safety: safe for concurrent calls from several workers, each with its own ring.
#pragma once

#include "daemon/backing_disk.h"
#include "nbd/backend.h"

namespace blockrep {

class WritePath final : public nbd::Backend {
 public:
  // Bytes of zeroes written per step when the file system cannot zero a range in place.
  static constexpr uint32_t kZeroChunkBytes = 1u << 20;

  // disk must outlive this.
  explicit WritePath(BackingDisk& disk) : disk_(disk) {}

  uint64_t size_bytes() const override { return disk_.size_bytes(); }
  nbd::BackendCapabilities capabilities() const override;

  void Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf,
            nbd::BackendDone* done) override;
  void Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf, bool fua,
             nbd::BackendDone* done) override;
  void WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                   bool fast_only, bool fua, nbd::BackendDone* done) override;
  void Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua,
            nbd::BackendDone* done) override;
  void Flush(IoRing& ring, nbd::BackendDone* done) override;
  Status BlockStatus(uint64_t offset, uint64_t length, uint32_t max_extents,
                     std::vector<nbd::Extent>* extents) override;

  BackingDisk& disk() { return disk_; }

 private:
  class DiskOp;
  BackingDisk& disk_;
};

}  // namespace blockrep
