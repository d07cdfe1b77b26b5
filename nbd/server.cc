#include "nbd/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "nbd/handshake.h"

namespace blockrep::nbd {

Server::~Server() { Stop(); }

Status Server::Listen(const std::string& spec) {
  auto l = nbd::Listen(spec);
  if (!l.ok()) return l.status();
  listeners_.push_back(std::move(l.value()));
  return Status::Ok();
}

Status Server::Start() {
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return Status::FromErrno(errno, "eventfd");
  stop_fd_ = UniqueFd(efd);
  for (int i = 0; i < options_.workers; ++i) {
    auto w = std::make_unique<Worker>(i);
    BLOCKREP_RETURN_IF_ERROR(w->Start());
    workers_.push_back(std::move(w));
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void Server::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    // Clients still negotiating have no request in flight: cut them off.
    for (int fd : handshake_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  if (stop_fd_.valid()) {
    uint64_t one = 1;
    ssize_t ignored = ::write(stop_fd_.get(), &one, sizeof(one));
    (void)ignored;
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::unique_lock<std::mutex> lock(mu_);
    handshakes_done_.wait(lock, [this] { return handshake_fds_.empty(); });
  }
  for (auto& w : workers_) w->RequestStop();
  for (auto& w : workers_) w->Join();
  for (const Listener& l : listeners_) {
    if (!l.unix_path.empty()) ::unlink(l.unix_path.c_str());
  }
}

Worker* Server::LeastLoadedWorker() {
  Worker* best = workers_.front().get();
  for (auto& w : workers_) {
    if (w->load() < best->load()) best = w.get();
  }
  return best;
}

void Server::AcceptLoop() {
  std::vector<pollfd> pfds;
  pfds.push_back({stop_fd_.get(), POLLIN, 0});
  for (const Listener& l : listeners_) pfds.push_back({l.fd.get(), POLLIN, 0});
  while (true) {
    int rc = ::poll(pfds.data(), pfds.size(), -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("accept loop: poll: %s", std::strerror(errno));
      return;
    }
    if (pfds[0].revents != 0) return;  // stopping
    for (size_t i = 1; i < pfds.size(); ++i) {
      if (!(pfds[i].revents & POLLIN)) continue;
      int fd = ::accept4(pfds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        // EMFILE and friends: log and keep serving the clients we have.
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
          LOG_WARN("accept on %s: %s", listeners_[i - 1].spec.c_str(), std::strerror(errno));
        }
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails on unix: fine
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || static_cast<int>(handshake_fds_.size()) >= options_.max_handshakes) {
        LOG_WARN("refusing a client: %s", stopping_ ? "server is stopping"
                                                    : "too many handshakes in progress");
        ::close(fd);
        continue;
      }
      handshake_fds_.insert(fd);
      std::thread([this, fd] { RunHandshake(fd); }).detach();
    }
  }
}

void Server::RunHandshake(int fd) {
  UniqueFd owned(fd);
  FdStream stream(fd, options_.handshake_timeout_ms);
  Handshake hs(catalog_, stream);
  auto result = hs.Run();
  if (!result.ok()) {
    LOG_WARN("handshake failed: %s", result.status().ToString().c_str());
  } else if (result.value().has_value()) {
    const Session& s = *result.value();
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      handshake_fds_.erase(fd);
      LeastLoadedWorker()->Adopt(std::move(owned), s);
      handshakes_done_.notify_all();
      return;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  handshake_fds_.erase(fd);
  owned.Reset();
  handshakes_done_.notify_all();
}

}  // namespace blockrep::nbd
