#include "core/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace blockrep {

Result<UnixListenSocket> ListenUnixSocket(const std::string& path, int backlog,
                                          const std::string& what) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    std::string msg =
        what + ": socket path must be 1 to " + std::to_string(sizeof(addr.sun_path) - 1) + " bytes";
    if (!path.empty()) msg += " (" + path + " is " + std::to_string(path.size()) + ")";
    return Status::InvalidArgument(msg);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::InvalidArgument(what + ": " + path + " exists and is not a socket");
    }
    // A socket file: in use if something accepts on it, stale otherwise.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.valid() &&
        ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      return Status::InvalidArgument(what + ": " + path + " is in use by another server");
    }
    ::unlink(path.c_str());
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, what + ": socket(AF_UNIX)");
  // Create the socket file 0600 from the start: no window in which others can connect.
  mode_t old_umask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old_umask);
  if (rc != 0) return Status::FromErrno(bind_errno, what + ": bind " + path);

  // From here on the file is ours: a failure removes it rather than leave a stale socket.
  auto fail = [&](const char* op) {
    Status st = Status::FromErrno(errno, what + ": " + op + " " + path);
    ::unlink(path.c_str());
    return st;
  };
  if (::chmod(path.c_str(), 0600) != 0) return fail("chmod");
  if (::lstat(path.c_str(), &st) != 0) return fail("stat");
  if (::listen(fd.get(), backlog) != 0) return fail("listen");
  return UnixListenSocket{std::move(fd), st.st_dev, st.st_ino};
}

void RemoveUnixSocketIfSame(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
    ::unlink(path.c_str());
  }
}

}  // namespace blockrep
