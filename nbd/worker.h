// Worker: one thread, one io_uring, many connections in the transmission phase.
//
// The loop: submit everything queued and wait for at least one completion, dispatch every
// completion (socket and disk alike), then let each connection the round touched post its
// socket I/O (Connection::Flush), and delete finished connections. Connections arrive from
// handshake threads through a locked inbox and an eventfd the loop keeps a read posted on.
//
// Thread-safety: Adopt, RequestStop and load may be called from any thread; everything else
// runs on the worker thread.
#pragma once

#include <atomic>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/buffer_pool.h"
#include "core/io_ring.h"
#include "core/unique_fd.h"
#include "nbd/connection.h"

namespace blockrep::nbd {

class Worker {
 public:
  explicit Worker(int index) : index_(index) {}
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread; returns once its ring exists, or the error that prevented it.
  Status Start();
  // Hands over a negotiated connection.
  void Adopt(UniqueFd fd, const Session& session);
  // Stop reading new requests on every connection, answer the ones already read, then exit.
  void RequestStop();
  void Join();
  // Connections owned, for placing new ones on the least-loaded worker.
  size_t load() const { return load_.load(std::memory_order_relaxed); }

  // Worker thread only.
  IoRing& ring() { return *ring_; }
  BufferPool& pool() { return pool_; }
  void Schedule(Connection* c);

 private:
  struct Wakeup : IoCompletion {
    Worker* w = nullptr;
    void OnIoComplete(int32_t res) override { w->OnWakeup(res); }
  };
  void Run(std::promise<Status>* started);
  void PostWakeupRead();
  void OnWakeup(int32_t res);
  void RunScheduled();

  const int index_;
  std::thread thread_;
  UniqueFd event_fd_;
  std::unique_ptr<IoRing> ring_;
  BufferPool pool_;
  std::atomic<size_t> load_{0};

  std::mutex mu_;
  std::vector<std::pair<UniqueFd, Session>> inbox_;  // guarded by mu_
  bool stop_requested_ = false;                       // guarded by mu_

  bool stopping_ = false;
  uint64_t wakeup_value_ = 0;
  Wakeup wakeup_;
  uint64_t next_connection_id_ = 0;
  std::list<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> scheduled_;
};

}  // namespace blockrep::nbd
