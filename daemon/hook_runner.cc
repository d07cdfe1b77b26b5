#include "daemon/hook_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/unique_fd.h"

extern char** environ;

namespace blockrep {
namespace {

using Clock = std::chrono::steady_clock;

int MsSince(Clock::time_point t0) {
  return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

void KeepTail(std::string* out, const char* data, size_t n) {
  out->append(data, n);
  if (out->size() > kOutputTailBytes) out->erase(0, out->size() - kOutputTailBytes);
}

std::string Describe(const HookResult& r) {
  if (r.timed_out) return "timed out after " + std::to_string(r.elapsed_ms) + " ms and was killed";
  if (r.signal != 0) return std::string("was killed by signal ") + strsignal(r.signal);
  return "exited with status " + std::to_string(r.exit_code);
}

}  // namespace

Status RunHook(const std::string& what, const std::string& command, int timeout_ms, HookResult* result) {
  HookResult local;
  HookResult& r = result != nullptr ? *result : local;
  r = HookResult();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, what + ": pipe");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills what it started too
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // the daemon blocks signals its hooks must not
  sigset_t deflt;
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGTERM);
  sigaddset(&deflt, SIGINT);
  sigaddset(&deflt, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  const auto t0 = Clock::now();
  const int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::FromErrno(rc, what + ": cannot start /bin/sh");
  write_end.Reset();  // only the child holds the write end now

  // Collect output until the pipe closes (the hook and whatever it started are done) or
  // the time is up.
  bool killed = false;
  bool open = true;
  char buf[4096];
  while (open) {
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      const int left = timeout_ms - MsSince(t0);
      wait_ms = killed ? std::max(0, left + kKillGraceMs) : std::max(0, left);
    }
    pollfd pfd{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (!killed) {
        r.timed_out = true;
        ::kill(-pid, SIGTERM);
        killed = true;
        continue;
      }
      ::kill(-pid, SIGKILL);
      break;  // a grandchild may keep the pipe open: stop reading
    }
    const ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      open = false;
      break;
    }
    KeepTail(&r.output, buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno(errno, what + ": waitpid");
  }
  r.elapsed_ms = MsSince(t0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (!r.timed_out && r.exit_code == 0) return Status::Ok();
  std::string msg = what + " `" + command + "` " + Describe(r);
  std::string tail = r.output;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  if (!tail.empty()) msg += ": " + tail;
  return r.timed_out ? Status::IoError(msg) : Status::Aborted(msg);
}

Status WithFrozen(const std::string& disk, const FreezeThaw& hooks, const std::function<Status()>& take) {
  Status frozen = Status::Ok();
  if (!hooks.freeze.empty()) frozen = RunHook("freeze hook of " + disk, hooks.freeze, hooks.timeout_ms);
  Status taken = frozen.ok() ? take() : Status::Ok();
  // Always thawed, whatever happened: a freeze that failed halfway may have frozen something.
  Status thawed = Status::Ok();
  if (!hooks.thaw.empty()) thawed = RunHook("thaw hook of " + disk, hooks.thaw, hooks.timeout_ms);
  if (!frozen.ok()) {
    std::string msg = frozen.message() + "; no recovery point was taken";
    if (!thawed.ok()) msg += "; and " + thawed.message() + " (the application may still be frozen)";
    return frozen.WithMessage(msg);
  }
  if (!taken.ok()) {
    if (!thawed.ok()) {
      return taken.WithMessage(taken.message() + "; and " + thawed.message() +
                               " (the application may still be frozen)");
    }
    return taken;
  }
  if (!thawed.ok()) {
    return thawed.WithMessage(thawed.message() +
                              " (the application may still be frozen; the recovery point, "
                              "taken while it was frozen, stands)");
  }
  return Status::Ok();
}

}  // namespace blockrep
