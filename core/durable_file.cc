#include "core/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/unique_fd.h"

namespace blockrep {

Status ReadWholeFile(const std::string& path, std::vector<uint8_t>* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return errno == ENOENT ? Status::NotFound(path + " does not exist")
                           : Status::FromErrno(errno, "open " + path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  out->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  BLOCKREP_RETURN_IF_ERROR(PreadFull(fd.get(), out->data(), out->size(), 0, path, &got));
  out->resize(got);
  return Status::Ok();
}

Status PreadFull(int fd, uint8_t* out, size_t n, uint64_t offset, const std::string& what, size_t* got) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, "read " + what + " at " + std::to_string(offset + done));
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  *got = done;
  return Status::Ok();
}

Status PwriteFull(int fd, const uint8_t* data, size_t n, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, "write " + what + " at " + std::to_string(offset + done));
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + dir);
  return Status::Ok();
}

Status WriteFileDurably(const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd.get(), p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, "write " + tmp);
    done += static_cast<size_t>(w);
  }
  if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "fdatasync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + tmp);
  const size_t slash = path.rfind('/');
  return FsyncDir(slash == std::string::npos ? "." : path.substr(0, slash));
}

}  // namespace blockrep
