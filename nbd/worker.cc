#include "nbd/worker.h"

#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/log.h"

namespace blockrep::nbd {

Worker::~Worker() { Join(); }

Status Worker::Start() {
  int efd = ::eventfd(0, EFD_CLOEXEC);
  if (efd < 0) return Status::FromErrno(errno, "eventfd");
  event_fd_ = UniqueFd(efd);
  std::promise<Status> started;
  std::future<Status> result = started.get_future();
  thread_ = std::thread([this, &started] { Run(&started); });
  Status st = result.get();
  if (!st.ok()) Join();
  return st;
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Adopt(UniqueFd fd, const Session& session) {
  load_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.emplace_back(std::move(fd), session);
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(event_fd_.get(), &one, sizeof(one));
  (void)ignored;
}

void Worker::RequestStop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(event_fd_.get(), &one, sizeof(one));
  (void)ignored;
}

void Worker::Schedule(Connection* c) {
  if (c->scheduled_) return;
  c->scheduled_ = true;
  scheduled_.push_back(c);
}

void Worker::PostWakeupRead() {
  io_uring_sqe* sqe = ring_->GetSqe(&wakeup_);
  io_uring_prep_read(sqe, event_fd_.get(), &wakeup_value_, sizeof(wakeup_value_), 0);
}

void Worker::OnWakeup(int32_t res) {
  if (res < 0 && res != -EINTR && res != -EAGAIN) {
    LOG_ERROR("worker %d: eventfd read: %s", index_, std::strerror(-res));
  }
  std::vector<std::pair<UniqueFd, Session>> arrivals;
  bool stop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    arrivals.swap(inbox_);
    stop = stop_requested_;
  }
  for (auto& [fd, session] : arrivals) {
    if (stopping_ || stop) {  // arrived after shutdown began: just close it
      load_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    auto c = std::make_unique<Connection>(*this, std::move(fd), session, next_connection_id_++);
    LOG_DEBUG("worker %d: connection %lu to export '%s'", index_, (unsigned long)c->id(),
              session.exp->name.c_str());
    c->Start();
    connections_.push_back(std::move(c));
  }
  if (stop && !stopping_) {
    stopping_ = true;
    for (auto& c : connections_) c->Stop();
  }
  if (!stopping_) PostWakeupRead();
}

void Worker::RunScheduled() {
  // Flush may schedule again (it does not today); swap first so the loop is bounded.
  std::vector<Connection*> batch;
  batch.swap(scheduled_);
  bool any_finished = false;
  for (Connection* c : batch) {
    c->scheduled_ = false;
    c->Flush();
    any_finished |= c->finished();
  }
  if (!any_finished) return;
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished() && !(*it)->scheduled_) {
      LOG_DEBUG("worker %d: connection %lu closed", index_, (unsigned long)(*it)->id());
      it = connections_.erase(it);
      load_.fetch_sub(1, std::memory_order_relaxed);
    } else {
      ++it;
    }
  }
}

void Worker::Run(std::promise<Status>* started) {
  auto ring = IoRing::Create();
  if (!ring.ok()) {
    started->set_value(ring.status());
    return;
  }
  ring_ = std::move(ring.value());
  wakeup_.w = this;
  PostWakeupRead();
  started->set_value(Status::Ok());  // `started` is gone after this line

  while (!(stopping_ && connections_.empty())) {
    auto dispatched = ring_->SubmitAndDispatch(1);
    if (!dispatched.ok()) {
      // io_uring_enter failing is not something a retry fixes; losing the loop would hang
      // every client, so stop loudly.
      LOG_ERROR("worker %d: %s", index_, dispatched.status().ToString().c_str());
      std::abort();
    }
    RunScheduled();
  }
  // In-flight SQEs are gone with the connections; the pending eventfd read is cancelled by
  // io_uring_queue_exit when ring_ is destroyed.
  ring_.reset();
}

}  // namespace blockrep::nbd
