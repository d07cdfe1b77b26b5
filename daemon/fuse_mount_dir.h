// The FUSE front door's mount directory (--fuse DIR): checking it before FuseFront mounts on
// it, recognising and detaching a stale FUSE mount left there by a killed blockrep-source, and
// the look-ups FuseFront needs around unmounting (/proc/self/mountinfo, loop devices).
//
// Every error names the directory as the caller gave it (`dir`, not its resolved path), so
// that the message points at what the user typed. None of these functions mounts anything;
// DetachStaleMount is the only one that changes the mount table. All are safe to call from
// any thread (they share no state), but the answers describe the mount table of the moment.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep {

// The fstype /proc/self/mountinfo shows for FuseFront's mounts: "fuse." plus the subtype that
// fuse_front.cc's mount options set (subtype=blockrep). A stale mount of another type is never
// detached.
inline constexpr char kFuseFsType[] = "fuse.blockrep";

// One mount as /proc/self/mountinfo lists it.
struct MountEntry {
  std::string fstype;  // e.g. "fuse.blockrep", "ext4", "proc"
  std::string source;  // the mount source, unescaped (e.g. "blockrep", "/dev/sda1")
};

// Decodes the \ooo octal escapes /proc/self/mountinfo uses for space (\040), tab (\011),
// newline (\012) and backslash (\134) in paths. A backslash not followed by three digits is
// kept as it is.
std::string UnescapeMountField(const std::string& s);

// The topmost mount (the last one listed in /proc/self/mountinfo) whose mount point is exactly
// abs_path, or nothing when abs_path is no mount point (or mountinfo cannot be read).
// REQUIRES: abs_path is absolute with symlinks resolved, as AbsoluteDir returns it; no
// trailing slash except for "/".
std::optional<MountEntry> FindMount(const std::string& abs_path);

// Runs argv (argv[0] searched on PATH, the environment inherited) and waits for it; true when
// it exits with status 0, false when it cannot be started, exits non-zero or is killed.
// REQUIRES: argv is not empty.
bool RunCommand(const std::vector<std::string>& argv);

// dir as an absolute path with symlinks resolved (dir may be relative to the working
// directory). A stale FUSE mount cannot be resolved itself (every look at it fails with
// ENOTCONN), so then only its parent is, and its own name is appended.
// Errors: NotFound "directory DIR does not exist"; IoError "resolving DIR: ..." otherwise.
Result<std::string> AbsoluteDir(const std::string& dir);

// Detaches the stale FUSE mount on abs_dir (AbsoluteDir(dir)) left by a blockrep-source that
// was killed, and logs a warning that it did. Stale means: a look at the directory failed with
// ENOTCONN ("Transport endpoint is not connected"); the caller has seen that. Only a mount of
// type kFuseFsType exactly on abs_dir is detached (lazily: umount2 MNT_DETACH); that needs
// root (CAP_SYS_ADMIN), and without it fusermount3 -u -z is tried, which detaches only mounts
// the calling user owns.
// Errors (each naming dir): IoError when abs_dir is no mount point (the stale mount is above
// it); InvalidArgument when the mount there is of another type (not ours: left alone); IoError
// when both umount2 and fusermount3 fail.
Status DetachStaleMount(const std::string& dir, const std::string& abs_dir);

// Checks that dir can take FuseFront's mount and returns its absolute path (AbsoluteDir): dir
// must be an existing, empty directory that is no mount point. A look at dir that fails with
// ENOTCONN means a stale mount, which is detached first (DetachStaleMount: only if it is
// blockrep's); the directory under it must then pass the same checks. Changes nothing else.
// Errors (each naming dir): NotFound when it does not exist; InvalidArgument when it is not a
// directory, is a live mount point of any type (blockrep's included: another daemon serves
// there), or is not empty (naming one entry it holds); DetachStaleMount's errors for a stale
// mount; IoError when it cannot be looked at or listed.
Result<std::string> PrepareMountDir(const std::string& dir);

// "/dev/loopN" for every loop device whose backing file is path, as /sys/block/loop*/loop/
// backing_file shows it (the kernel's resolved path, so path must be absolute and resolved).
// Empty when none is, or /sys cannot be read.
std::vector<std::string> LoopDevicesOf(const std::string& path);

}  // namespace blockrep
