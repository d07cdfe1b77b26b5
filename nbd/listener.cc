#include "nbd/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "core/unix_socket.h"

namespace blockrep::nbd {
namespace {

Result<Listener> ListenUnix(const std::string& spec, const std::string& path) {
  auto sock = ListenUnixSocket(path, kListenBacklog, "--nbd " + spec);
  if (!sock.ok()) return sock.status();
  return Listener{spec, std::move(sock->fd), path};
}

Result<Listener> ListenTcp(const std::string& spec, const std::string& hostport) {
  std::string host, port;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos || close + 1 >= hostport.size() || hostport[close + 1] != ':') {
      return Status::InvalidArgument("--nbd " + spec + ": expected tcp:[IPV6]:PORT");
    }
    host = hostport.substr(1, close - 1);
    port = hostport.substr(close + 2);
  } else {
    size_t colon = hostport.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("--nbd " + spec + ": expected tcp:HOST:PORT");
    }
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("--nbd " + spec + ": port '" + port + "' is not a number");
  }
  // getaddrinfo takes "99999" and truncates it to a 16-bit port: check the range first.
  if (port.size() > 5 || std::stoul(port) > 65535) {
    return Status::InvalidArgument("--nbd " + spec + ": port " + port +
                                   " is out of range (0 to 65535)");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::InvalidArgument("--nbd " + spec + ": " + ::gai_strerror(rc));
  }
  Status last = Status::InvalidArgument("--nbd " + spec + ": no usable address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno(errno, "--nbd " + spec + ": socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Status::FromErrno(errno, "--nbd " + spec + ": bind");
      continue;
    }
    if (::listen(fd.get(), kListenBacklog) != 0) {
      last = Status::FromErrno(errno, "--nbd " + spec + ": listen");
      continue;
    }
    ::freeaddrinfo(res);
    return Listener{spec, std::move(fd), ""};
  }
  ::freeaddrinfo(res);
  return last;
}

}  // namespace

Result<Listener> Listen(const std::string& spec) {
  if (spec.rfind("unix:", 0) == 0) return ListenUnix(spec, spec.substr(5));
  if (spec.rfind("tcp:", 0) == 0) return ListenTcp(spec, spec.substr(4));
  return Status::InvalidArgument("--nbd " + spec + ": expected unix:PATH or tcp:HOST:PORT");
}

}  // namespace blockrep::nbd
