#include "daemon/backing_disk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "nbd/protocol.h"

namespace blockrep {

Result<BackingDisk> BackingDisk::Open(const std::string& name, const std::string& path) {
  const std::string what = "disk " + name + " (" + path + ")";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + what);
  BackingDisk d;
  d.fd_ = UniqueFd(fd);
  d.name_ = name;
  d.path_ = path;
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat " + what);
  if (S_ISREG(st.st_mode)) {
    d.size_bytes_ = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    d.is_block_device_ = true;
    if (::ioctl(fd, BLKGETSIZE64, &d.size_bytes_) != 0) {
      return Status::FromErrno(errno, "BLKGETSIZE64 " + what);
    }
  } else {
    return Status::InvalidArgument(what + " is neither a regular file nor a block device");
  }
  if (d.size_bytes_ == 0) return Status::InvalidArgument(what + " is empty (size 0)");
  // The lock goes with the last reference to the open file, and io_uring's workers can hold
  // one a little after a process (or, in tests, a disk object) let go of the disk: the kernel
  // drops it asynchronously. So a lock still held is tried again for a short while before it
  // counts as another daemon's.
  for (int waited_ms = 0;; waited_ms += kLockRetryMs) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK) return Status::FromErrno(errno, "flock " + what);
    if (waited_ms >= kLockWaitMs) {
      return Status::InvalidArgument(what + " is locked by another process (already served?)");
    }
    ::usleep(kLockRetryMs * 1000);
  }
  return d;
}

Status BackingDisk::Extents(uint64_t offset, uint64_t length, uint32_t max_extents,
                            std::vector<nbd::Extent>* out) const {
  out->clear();
  const uint64_t end = offset + length;
  // An extent's length is 32 bits on the wire; keep each well under that and sector-aligned.
  constexpr uint64_t kMaxExtentBytes = 0xFFFFF000ull;
  auto add = [&](uint64_t len, uint32_t flags) {
    while (len > 0 && out->size() < max_extents) {
      uint64_t piece = len < kMaxExtentBytes ? len : kMaxExtentBytes;
      if (!out->empty() && out->back().flags == flags &&
          out->back().length + piece <= kMaxExtentBytes) {
        out->back().length += piece;
      } else {
        out->push_back({piece, flags});
      }
      len -= piece;
    }
  };
  if (is_block_device_) {
    add(length, 0);
    return Status::Ok();
  }
  uint64_t pos = offset;
  while (pos < end && out->size() < max_extents) {
    off_t data = ::lseek(fd_.get(), static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {  // no data after pos: the rest is a hole
        add(end - pos, nbd::kStateHole | nbd::kStateZero);
        break;
      }
      if (errno == EINVAL || errno == EOPNOTSUPP) {  // no extent map: call it all data
        add(end - pos, 0);
        break;
      }
      return Status::FromErrno(errno, "disk " + name_ + ": SEEK_DATA");
    }
    uint64_t data_start = static_cast<uint64_t>(data);
    if (data_start > pos) {
      add((data_start < end ? data_start : end) - pos, nbd::kStateHole | nbd::kStateZero);
      pos = data_start;
      if (pos >= end) break;
    }
    off_t hole = ::lseek(fd_.get(), static_cast<off_t>(pos), SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(errno, "disk " + name_ + ": SEEK_HOLE");
    uint64_t hole_start = static_cast<uint64_t>(hole);
    if (hole_start > end) hole_start = end;
    if (hole_start <= pos) hole_start = end;  // defensive: never loop without progress
    add(hole_start - pos, 0);
    pos = hole_start;
  }
  if (out->empty()) add(length, 0);
  return Status::Ok();
}

Status BackingDisk::Sync() const {
  if (::fdatasync(fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync disk " + name_);
  return Status::Ok();
}

}  // namespace blockrep
