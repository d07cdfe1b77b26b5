// Listening unix stream sockets as both daemons create them (the NBD front door's unix:PATH,
// the control socket): mode 0600 from the moment the file exists, a stale socket file left by
// a dead process replaced, a live socket or any other file at the path refused.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

struct UnixListenSocket {
  UniqueFd fd;
  // The identity of the socket file bound, so that its owner removes it only while it is
  // still that file (RemoveUnixSocketIfSame), never a successor's.
  dev_t dev = 0;
  ino_t ino = 0;
};

// Binds and listens on `path` (at most 107 bytes: sun_path). A socket file nobody accepts on
// is unlinked first; one somebody accepts on, or a file of another type, is an error. Error
// messages start with `what` ("--nbd unix:/run/x.sock", "control socket") and name the path.
// The socket is created under umask 0177, which is process-wide: call it while no other
// thread creates files (daemons do it at startup).
Result<UnixListenSocket> ListenUnixSocket(const std::string& path, int backlog,
                                          const std::string& what);

// Unlinks `path` if it is still the socket file with this identity; a file that replaced it
// (another server took over a path it found stale) is left alone.
void RemoveUnixSocketIfSame(const std::string& path, dev_t dev, ino_t ino);

}  // namespace blockrep
