// Listener: a listening socket made from an address spec.
//   unix:PATH            Unix stream socket, mode 0600 (the disk is as sensitive as its file).
//                        A stale socket file from a dead process is replaced; a live one, or
//                        any other file at PATH, is an error.
//   tcp:HOST:PORT        TCP; HOST may be a name, an IPv4 address or [IPv6].
#pragma once

#include <string>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep::nbd {

struct Listener {
  std::string spec;
  UniqueFd fd;
  std::string unix_path;  // removed when the server stops; empty for TCP
};

// Connection backlog: enough for a burst of clients (fio jobs, nbdcopy connections).
inline constexpr int kListenBacklog = 128;

Result<Listener> Listen(const std::string& spec);

}  // namespace blockrep::nbd
