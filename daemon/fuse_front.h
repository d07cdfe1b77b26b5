// FuseFront: the FUSE front door. Serves every protected disk as the regular file DIR/NAME
// (mode 0600, the disk's size) for hosts without a kernel NBD client: loop-mount it
// (`losetup --find --show DIR/NAME`) and put a file system on the loop device.
//
// Every read, write, fsync/fdatasync and fallocate goes to the disk's nbd::Backend (the
// WritePath), exactly as NBD requests do, so FUSE changes are journaled the same way and NBD
// and FUSE clients of one disk see one coherent disk (files are opened with direct_io: the
// kernel keeps no page cache of its own for them).
//   fallocate PUNCH_HOLE|KEEP_SIZE -> Backend::Trim
//   fallocate ZERO_RANGE[|KEEP_SIZE] -> Backend::WriteZeroes (may_trim = false)
//   fsync, fdatasync, flush-on-close -> Backend::Flush
//   write with O_SYNC/O_DSYNC (open flag or RWF_DSYNC) -> Backend::Write with fua
//   anything else (truncate or O_TRUNC to another size, chmod/chown, create, unlink, rename,
//   other fallocate modes) -> EPERM or EOPNOTSUPP: the disk's size is fixed and the directory
//   holds exactly the disks.
// The file behaves like a block device at its end: reads stop there (0 bytes at or past it), a
// write that starts at or past it fails with ENOSPC, one that crosses it is cut short.
//
// Threads: `threads` workers of our own (not libfuse's loop; fuse_front.cc says why). Each
// owns an IoRing (the Backend's calls need one per calling thread), takes one request at a
// time from /dev/fuse and drives its ring until that request's Backend call completes.
//
// Lifetime: Start() mounts and returns once the mount is live; Stop() (or the destructor)
// unmounts and joins, after answering every request a worker has taken. The backends must
// outlive it. Start and Stop are called from one thread (main's).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "nbd/backend.h"

namespace blockrep {

class FuseFront {
 public:
  struct File {
    std::string name;         // file name under the mount directory (a valid disk name)
    nbd::Backend* backend;    // not owned
  };

  // Mounts a FUSE file system on dir. dir must exist and be an empty directory, or a stale
  // FUSE mount left by a killed daemon (its "Transport endpoint is not connected" is
  // detected and the mount detached first). The checks are PrepareMountDir's
  // (fuse_mount_dir.h), and so are their errors, each naming dir.
  static Result<std::unique_ptr<FuseFront>> Start(const std::string& dir, std::vector<File> files,
                                                  int threads);
  // Unmounts (lazily if a loop device still holds a file open; that is logged, and the loop
  // device's I/O fails from then on) and joins. Idempotent.
  void Stop();
  ~FuseFront();

  FuseFront(const FuseFront&) = delete;
  FuseFront& operator=(const FuseFront&) = delete;

 private:
  struct Impl;
  explicit FuseFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blockrep
