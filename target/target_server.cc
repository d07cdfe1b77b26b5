#include "target/target_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/log.h"
#include "core/version.h"
#include "target/replica_session.h"

namespace blockrep {
namespace {

// How long a new session waits for an old one to let go of its replica.
constexpr int kTakeoverWaitMs = 10000;

std::string PeerName(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

}  // namespace

TargetServer::~TargetServer() { Stop(); }

Status TargetServer::Start() {
  for (const DiskConfig& d : options_.disks) {
    Replica::Config rc;
    rc.name = d.name;
    rc.source_identity = d.source_identity;
    rc.dir = options_.state_dir + "/replicas/" + d.name;
    rc.image_path = d.image_path;
    auto r = Replica::Open(rc);
    if (!r.ok()) return Status::IoError("replica " + d.name + ": " + r.status().message());
    replicas_[d.name] = std::move(r).value();
  }
  auto fd = TcpListen(options_.listen);
  if (!fd.ok()) return fd.status();
  listen_fd_ = std::move(fd).value();
  stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return Status::FromErrno(errno, "eventfd");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void TargetServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (ReplicaSession* s : sessions_) s->RequestStop();
    for (int fd : handshake_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  if (stop_fd_.valid()) {
    const uint64_t one = 1;
    ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
    (void)n;
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return active_ == 0; });
  std::vector<Worker> workers = std::move(workers_);
  lock.unlock();
  for (auto& w : workers) w.thread.join();
  // No session runs now: record each image's stamp as closed cleanly.
  for (auto& [name, r] : replicas_) {
    Status st = r->Close();
    if (!st.ok()) LOG_WARN("replica %s: closing: %s", name.c_str(), st.ToString().c_str());
  }
}

void TargetServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      LOG_WARN("accept on %s: %s", options_.listen.c_str(), std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    UniqueFd conn(fd);
    ++counters_.connections;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (active_ >= kMaxConnections) {
      LOG_WARN("refusing a connection from %s: %d connections already", PeerName(ss).c_str(), active_);
      continue;
    }
    // Finished connection threads are joined here, so they do not pile up.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    ++active_;
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers_.push_back({std::thread([this, done, c = std::move(conn), peer = PeerName(ss)]() mutable {
                          Serve(std::move(c), std::move(peer));
                          done->store(true);
                        }),
                        done});
  }
}

void TargetServer::Serve(UniqueFd fd, std::string peer) {
  const int raw_fd = fd.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    handshake_fds_.insert(raw_fd);
  }
  auto conn = TlsConnection::Create(*options_.tls, std::move(fd), peer);
  Status st = conn.ok() ? conn.value()->Handshake(kHandshakeTimeoutMs) : conn.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    handshake_fds_.erase(raw_fd);
  }
  if (!st.ok()) {
    if (st.code() == Status::Code::kPermissionDenied) {
      ++counters_.tls_refused;
      LOG_WARN("refused a TLS connection from %s: %s", peer.c_str(), st.message().c_str());
    } else {
      ++counters_.tls_failed;
      LOG_INFO("TLS handshake with %s failed: %s", peer.c_str(), st.message().c_str());
    }
  } else {
    ReplicaSession session(*this, std::move(conn).value());
    bool run = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) run = false;
      else sessions_.insert(&session);
    }
    if (run) {
      session.Run();
      std::lock_guard<std::mutex> lock(mu_);
      sessions_.erase(&session);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  --active_;
  cv_.notify_all();
}

Replica* TargetServer::Acquire(const std::string& name, ReplicaSession* session, bool* busy) {
  *busy = false;
  auto it = replicas_.find(name);
  if (it == replicas_.end()) return nullptr;
  std::unique_lock<std::mutex> lock(mu_);
  auto owner = owners_.find(name);
  if (owner != owners_.end() && owner->second != session) {
    LOG_INFO("replica %s: a new session takes over from the old one", name.c_str());
    owner->second->RequestStop();
    const bool freed = cv_.wait_for(lock, std::chrono::milliseconds(kTakeoverWaitMs),
                                    [&] { return owners_.count(name) == 0 || stopping_; });
    if (!freed || stopping_) {
      *busy = true;
      return nullptr;
    }
  }
  owners_[name] = session;
  return it->second.get();
}

void TargetServer::Release(const std::string& name, ReplicaSession* session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = owners_.find(name);
  if (it != owners_.end() && it->second == session) owners_.erase(it);
  cv_.notify_all();
}

nlohmann::json TargetServer::StatusJson() const {
  nlohmann::json j;
  j["daemon"] = "blockrep-target";
  j["version"] = kVersion;
  j["listen"] = options_.listen;
  j["identity"] = options_.tls ? options_.tls->own_identity() : "";
  nlohmann::json reps = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, r] : replicas_) {
    nlohmann::json rj = r->StatusJson();
    rj["connected"] = owners_.count(name) != 0;
    reps.push_back(rj);
  }
  j["replicas"] = reps;
  j["connections"] = counters_.connections.load();
  j["tls_refused"] = counters_.tls_refused.load();
  j["tls_failed"] = counters_.tls_failed.load();
  j["sessions_refused"] = counters_.sessions_refused.load();
  return j;
}

}  // namespace blockrep
