// BackingDisk: the file or block device that holds a protected disk's data on this host.
//
// Opened read-write and locked (flock LOCK_EX) so two daemons never serve one disk. The size
// is fixed at open. Positional I/O on the fd is safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/unique_fd.h"
#include "nbd/backend.h"

namespace blockrep {

class BackingDisk {
 public:
  // How long Open waits for a lock that is still held (see backing_disk.cc), and how often it
  // tries.
  static constexpr int kLockWaitMs = 2000;
  static constexpr int kLockRetryMs = 20;

  static Result<BackingDisk> Open(const std::string& name, const std::string& path);

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  uint64_t size_bytes() const { return size_bytes_; }
  bool is_block_device() const { return is_block_device_; }

  // base:allocation extents from the filesystem's extent map (SEEK_DATA/SEEK_HOLE). A block
  // device, or a file system without SEEK_DATA, reports everything as data.
  Status Extents(uint64_t offset, uint64_t length, uint32_t max_extents,
                 std::vector<nbd::Extent>* out) const;

  // fdatasync: used at shutdown; the NBD path flushes through io_uring.
  Status Sync() const;

 private:
  BackingDisk() = default;
  std::string name_;
  std::string path_;
  UniqueFd fd_;
  uint64_t size_bytes_ = 0;
  bool is_block_device_ = false;
};

}  // namespace blockrep
