// Freeze and thaw hooks for app-consistent recovery points (docs/formats/retention.md,
// "Recovery points"): an operator's commands, e.g. `fsfreeze -f /mnt/data` and
// `fsfreeze -u /mnt/data`, run around the moment a point is taken.
//
// RunHook runs one command with /bin/sh -c in a process group of its own, stdin from
// /dev/null, stdout and stderr captured (the last kOutputTailBytes kept for the error
// message). A hook still running after its timeout gets SIGTERM, and SIGKILL
// kKillGraceMs later, to its whole group.
//
// WithFrozen runs freeze, then (only if freeze succeeded) `take`, then thaw, always: a
// freeze that fails or times out yields no point and a clear error; a thaw that fails is an
// error too (the application may still be frozen: the message says so), but a point taken
// while frozen stands.
//
// Thread-safety: both are plain functions; each call waits for its own children only.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace blockrep {

struct HookResult {
  int exit_code = -1;      // when it exited
  int signal = 0;          // when a signal ended it
  bool timed_out = false;  // killed after its timeout
  std::string output;      // the last kOutputTailBytes of its stdout and stderr
  int elapsed_ms = 0;
};

inline constexpr size_t kOutputTailBytes = 2048;
inline constexpr int kKillGraceMs = 2000;

// OK when the command exited 0. Otherwise the Status says which hook (`what`, e.g. "freeze
// hook of vm1"), the command, how it ended and the tail of its output; *result (if given)
// has the details either way.
Status RunHook(const std::string& what, const std::string& command, int timeout_ms,
               HookResult* result = nullptr);

struct FreezeThaw {
  std::string freeze;  // empty: no hook (nothing to freeze)
  std::string thaw;
  int timeout_ms = 60000;
};

// take() runs only between a successful freeze and the thaw. Returns the first failure:
// freeze (take and the point skipped), take, or thaw.
Status WithFrozen(const std::string& disk, const FreezeThaw& hooks, const std::function<Status()>& take);

}  // namespace blockrep
