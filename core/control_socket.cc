#include "core/control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>

#include "core/check.h"
#include "core/log.h"
#include "core/unix_socket.h"

namespace blockrep {
namespace {

using Json = nlohmann::json;

// Pending connections while the accept thread is busy: a few operators' CLIs at once.
constexpr int kControlBacklog = 16;
// recv() granularity; a request line is assembled from as many reads as it takes.
constexpr size_t kReadChunkBytes = 16 * 1024;
// A response longer than this is refused by ControlCall: the daemon's answers (status of a
// few disks) are kilobytes, and an untrusted length gets a limit, not an allocation.
constexpr size_t kMaxResponseBytes = 16u << 20;
// accept() out of file descriptors (EMFILE) leaves the connection pending and the listen fd
// readable: wait this long before trying again instead of spinning.
constexpr int kAcceptRetryDelayMs = 100;

constexpr char kTooManyConnections[] = "too many control connections";

// One line on the wire. Strings a handler made from non-UTF-8 bytes (a file name) would make
// dump() throw; they are sent with U+FFFD instead.
std::string ToLine(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Json ErrorResponse(const std::string& error) { return Json{{"ok", false}, {"error", error}}; }

// Sends all of data; false if the peer is gone (or the connection was shut down).
bool SendAll(int fd, std::string_view data, int flags = 0) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Parses and validates one request line and runs the handler on it. Never throws.
Json Respond(std::string_view line, const ControlServer::Handler& handler) {
  Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    return ErrorResponse("request is not valid JSON (send one JSON object per line)");
  }
  if (!request.is_object()) return ErrorResponse("request is not a JSON object");
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string()) {
    return ErrorResponse("request has no string \"cmd\"");
  }
  Json response;
  try {
    response = handler(request);
  } catch (const std::exception& e) {
    return ErrorResponse(e.what());
  } catch (...) {
    return ErrorResponse("command " + cmd->get<std::string>() + " failed (unknown exception)");
  }
  if (!response.is_object()) {
    return ErrorResponse("command " + cmd->get<std::string>() +
                         ": internal error: the handler's response is not a JSON object");
  }
  if (!response.contains("ok")) response["ok"] = true;
  return response;
}

// The sockaddr for path, or an error naming it when it does not fit sun_path.
Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("control socket " + path + ": socket path must be 1 to " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& path,
                                                            Handler handler) {
  BLOCKREP_CHECK(handler != nullptr);
  UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd.valid()) return Status::FromErrno(errno, "control socket " + path + ": eventfd");
  auto sock = ListenUnixSocket(path, kControlBacklog, "control socket");
  if (!sock.ok()) return sock.status();

  std::unique_ptr<ControlServer> server(new ControlServer(path, std::move(handler)));
  server->listen_fd_ = std::move(sock->fd);
  server->socket_dev_ = sock->dev;
  server->socket_ino_ = sock->ino;
  server->stop_fd_ = std::move(stop_fd);
  ControlServer* s = server.get();
  server->accept_thread_ = std::thread([s] { s->AcceptLoop(); });
  return server;
}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // Blocked reads (a client idling between requests) return; a running handler finishes,
    // and its response fails to send.
    for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  if (stop_fd_.valid()) {
    uint64_t one = 1;
    ssize_t ignored = ::write(stop_fd_.get(), &one, sizeof(one));
    (void)ignored;
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  // The accept thread is gone: threads_ gets no new entries. A connection thread that ends
  // from now on no longer finds itself in threads_ and leaves its joining to us.
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  // Unlink before closing, so that a server starting meanwhile finds the socket live and
  // refuses instead of replacing a file we then remove.
  if (listen_fd_.valid()) RemoveUnixSocketIfSame(path_, socket_dev_, socket_ino_);
  listen_fd_.Reset();
}

void ControlServer::AcceptLoop() {
  pollfd pfds[2] = {{stop_fd_.get(), POLLIN, 0}, {listen_fd_.get(), POLLIN, 0}};
  int timeout_ms = -1;
  while (true) {
    int rc = ::poll(pfds, 2, timeout_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("control socket %s: poll: %s", path_.c_str(), std::strerror(errno));
      return;
    }
    if (pfds[0].revents != 0) return;  // Stop()
    if (rc == 0) {
      // The delay after EMFILE is over: watch the listen fd again.
      timeout_ms = -1;
      pfds[1].events = POLLIN;
      continue;
    }
    if (pfds[1].revents == 0) continue;
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        LOG_WARN("control socket %s: accept: %s", path_.c_str(), std::strerror(err));
        timeout_ms = kAcceptRetryDelayMs;
        pfds[1].events = 0;  // only the stop fd until the delay is over
      } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
        LOG_WARN("control socket %s: accept: %s", path_.c_str(), std::strerror(err));
      }
      continue;
    }
    UniqueFd conn(fd);
    std::string refusal = kTooManyConnections;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      if (active_ < kMaxConnections) {
        try {
          // Under mu_: the thread cannot end (and look itself up in threads_) before it is
          // there, nor before it is counted.
          threads_.emplace_back([this, fd] { Serve(fd); });
          ++active_;
          conn_fds_.insert(fd);
          conn.Release();
          continue;
        } catch (const std::system_error& e) {  // out of threads (RLIMIT_NPROC, memory)
          refusal = std::string("control server cannot start a thread: ") + e.what();
        }
      }
    }
    LOG_WARN("control socket %s: refusing a connection: %s", path_.c_str(), refusal.c_str());
    // MSG_DONTWAIT: the accept thread never waits for a client; a fresh socket's buffer holds
    // this line anyway.
    SendAll(conn.get(), ToLine(ErrorResponse(refusal)), MSG_DONTWAIT);
  }
}

void ControlServer::Serve(int fd) {
  std::string pending;  // bytes received and not yet handled
  size_t scanned = 0;   // pending[0, scanned) holds no '\n'
  char chunk[kReadChunkBytes];
  while (true) {
    size_t newline = pending.find('\n', scanned);
    if ((newline == std::string::npos ? pending.size() : newline) > kMaxRequestBytes) {
      // The rest of the line is not read: the stream is out of sync, so close it.
      SendAll(fd, ToLine(ErrorResponse("request line longer than " +
                                       std::to_string(kMaxRequestBytes) + " bytes")));
      break;
    }
    if (newline == std::string::npos) {
      scanned = pending.size();
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the client left, or Stop() shut the connection down
      pending.append(chunk, static_cast<size_t>(n));
      continue;
    }
    {
      // Requests the client pipelined behind the one Stop() interrupted are not started.
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    Json response = Respond(std::string_view(pending.data(), newline), handler_);
    pending.erase(0, newline + 1);
    scanned = 0;
    if (!SendAll(fd, ToLine(response))) break;
  }

  std::lock_guard<std::mutex> lock(mu_);
  // Out of conn_fds_ before the close, so that Stop() never shuts down a reused fd number.
  conn_fds_.erase(fd);
  ::close(fd);
  --active_;
  auto self = std::find_if(threads_.begin(), threads_.end(), [](const std::thread& t) {
    return t.get_id() == std::this_thread::get_id();
  });
  if (self != threads_.end()) {
    // Nobody will join this thread: let it end on its own. Once mu_ is unlocked it touches
    // nothing of *this, so Stop() and the destructor (which must lock mu_ first) may run.
    // If Stop() has taken threads_ already, the thread is not found and Stop() joins it.
    self->detach();
    threads_.erase(self);
  }
}

Result<Json> ControlCall(const std::string& path, const Json& request, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  const std::string where = "control socket " + path;
  // Milliseconds left for poll(): -1 (forever) without a timeout, 0 once past the deadline.
  auto remaining_ms = [&]() -> int {
    if (timeout_ms < 0) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  };
  auto timed_out = [&](const char* waiting_for) {
    return Status::IoError(where + ": timed out after " + std::to_string(timeout_ms) +
                           " ms waiting for " + waiting_for);
  };

  const std::string line = ToLine(request);
  if (line.size() - 1 > ControlServer::kMaxRequestBytes) {
    return Status::InvalidArgument(where + ": request is " + std::to_string(line.size() - 1) +
                                   " bytes, over the limit of " +
                                   std::to_string(ControlServer::kMaxRequestBytes));
  }
  auto addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, where + ": socket(AF_UNIX)");
  if (timeout_ms >= 0) {
    // connect() on a unix socket waits (for a full backlog) up to the send timeout.
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;  // zero would mean forever
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_un)) !=
      0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return Status::NotFound(where +
                              ": no daemon is listening (is blockrep-source or blockrep-target "
                              "running with this state directory?)");
    }
    if (err == EACCES || err == EPERM) {
      return Status::PermissionDenied(where +
                                      ": permission denied (the socket is mode 0600: run as "
                                      "root or as the daemon's user)");
    }
    if (err == EAGAIN || err == EINPROGRESS) return timed_out("the daemon to accept");
    return Status::FromErrno(err, where + ": connect");
  }

  std::string_view out = line;
  while (!out.empty()) {
    pollfd pfd{fd.get(), POLLOUT, 0};
    int rc = ::poll(&pfd, 1, remaining_ms());
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Status::FromErrno(errno, where + ": poll");
    if (rc == 0) return timed_out("the daemon to read the request");
    ssize_t n = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::FromErrno(errno, where + ": send");
    }
    out.remove_prefix(static_cast<size_t>(n));
  }

  std::string in;
  char chunk[kReadChunkBytes];
  size_t newline;
  while ((newline = in.find('\n')) == std::string::npos) {
    if (in.size() > kMaxResponseBytes) {
      return Status::ProtocolError(where + ": response longer than " +
                                   std::to_string(kMaxResponseBytes) + " bytes");
    }
    pollfd pfd{fd.get(), POLLIN, 0};
    int rc = ::poll(&pfd, 1, remaining_ms());
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Status::FromErrno(errno, where + ": poll");
    if (rc == 0) return timed_out("a response");
    ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::FromErrno(errno, where + ": recv");
    }
    if (n == 0) {
      return Status::IoError(where + ": the daemon closed the connection without responding" +
                             (in.empty() ? "" : " (after a partial line)"));
    }
    in.append(chunk, static_cast<size_t>(n));
  }
  Json response = Json::parse(std::string_view(in.data(), newline), nullptr,
                              /*allow_exceptions=*/false);
  if (response.is_discarded()) return Status::ProtocolError(where + ": response is not JSON");
  if (!response.is_object()) {
    return Status::ProtocolError(where + ": response is not a JSON object");
  }
  return response;
}

}  // namespace blockrep
