// The FUSE front door's mount directory (contract in fuse_mount_dir.h).
#include "daemon/fuse_mount_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/log.h"

extern char** environ;

namespace blockrep {

std::string UnescapeMountField(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<MountEntry> FindMount(const std::string& abs_path) {
  std::ifstream in("/proc/self/mountinfo");
  std::optional<MountEntry> found;
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    std::vector<std::string> f;
    size_t pos = 0;
    while (pos < line.size()) {
      size_t sp = line.find(' ', pos);
      if (sp == std::string::npos) sp = line.size();
      f.push_back(line.substr(pos, sp - pos));
      pos = sp + 1;
    }
    if (f.size() < 5 || UnescapeMountField(f[4]) != abs_path) continue;
    auto dash = std::find(f.begin() + 5, f.end(), "-");
    if (dash == f.end() || f.end() - dash < 3) continue;
    found = MountEntry{*(dash + 1), UnescapeMountField(*(dash + 2))};
  }
  return found;
}

bool RunCommand(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Result<std::string> AbsoluteDir(const std::string& dir) {
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) != nullptr) return std::string(resolved);
  const int err = errno;
  if (err == ENOENT) return Status::NotFound("directory " + dir + " does not exist");
  if (err != ENOTCONN) return Status::FromErrno(err, "resolving " + dir);
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const size_t slash = d.rfind('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : d.substr(0, slash);
  const std::string base = slash == std::string::npos ? d : d.substr(slash + 1);
  if (base.empty() || base == "." || base == ".." ||
      ::realpath(parent.c_str(), resolved) == nullptr) {
    return Status::FromErrno(ENOTCONN, "resolving " + dir);
  }
  std::string abs = resolved;
  return abs == "/" ? "/" + base : abs + "/" + base;
}

Status DetachStaleMount(const std::string& dir, const std::string& abs_dir) {
  std::optional<MountEntry> m = FindMount(abs_dir);
  if (!m) {
    return Status::IoError("stat " + dir +
                           ": Transport endpoint is not connected, but it is no mount point (a "
                           "stale FUSE mount above it?)");
  }
  if (m->fstype != kFuseFsType) {
    return Status::InvalidArgument("directory " + dir + " is a stale " + m->fstype +
                                   " mount that is not blockrep's; unmount it first");
  }
  if (::umount2(abs_dir.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
    const int err = errno;
    // Without CAP_SYS_ADMIN, fusermount3 (setuid root) may detach the mount of its owner.
    if (!RunCommand({"fusermount3", "-u", "-z", "--", abs_dir})) {
      return Status::FromErrno(
          err, "detaching the stale FUSE mount on " + dir + " (fusermount3 -u -z failed too)");
    }
  }
  LOG_WARN(
      "--fuse %s: was a stale FUSE mount (Transport endpoint is not connected) left by a "
      "blockrep-source that died; detached it",
      dir.c_str());
  return Status::Ok();
}

Result<std::string> PrepareMountDir(const std::string& dir) {
  auto abs = AbsoluteDir(dir);
  if (!abs.ok()) return abs.status();
  // AT_STATX_FORCE_SYNC: the kernel keeps a FUSE root's attributes for their timeout even
  // after its daemon died, so a plain stat can succeed on a stale mount; a forced one asks the
  // (dead) daemon and fails with ENOTCONN.
  struct statx stx;
  if (::statx(AT_FDCWD, abs->c_str(), AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) != 0) {
    const int err = errno;
    if (err != ENOTCONN) return Status::FromErrno(err, "stat " + dir);
    BLOCKREP_RETURN_IF_ERROR(DetachStaleMount(dir, *abs));
    if (::statx(AT_FDCWD, abs->c_str(), AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) != 0) {
      return Status::FromErrno(errno, "stat " + dir + " after detaching its stale mount");
    }
  }
  if (!S_ISDIR(stx.stx_mode)) return Status::InvalidArgument(dir + " is not a directory");
  if (std::optional<MountEntry> m = FindMount(*abs)) {
    return Status::InvalidArgument("directory " + dir + " is already a mount point (" + m->fstype +
                                   " " + m->source + "); --fuse needs an empty directory");
  }
  DIR* d = ::opendir(abs->c_str());
  if (d == nullptr) return Status::FromErrno(errno, "opendir " + dir);
  std::string entry;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      entry = e->d_name;
      break;
    }
  }
  ::closedir(d);
  if (!entry.empty()) {
    return Status::InvalidArgument("directory " + dir + " is not empty (it holds '" + entry +
                                   "'); --fuse needs an empty directory");
  }
  return abs;
}

std::vector<std::string> LoopDevicesOf(const std::string& path) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob("/sys/block/loop*/loop/backing_file", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::ifstream in(g.gl_pathv[i]);
      std::string backing;
      std::getline(in, backing);
      if (backing != path) continue;
      std::string p = g.gl_pathv[i];  // /sys/block/loopN/loop/backing_file
      p = p.substr(std::strlen("/sys/block/"));
      out.push_back("/dev/" + p.substr(0, p.find('/')));
    }
  }
  ::globfree(&g);
  return out;
}

}  // namespace blockrep
