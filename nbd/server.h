// Server: accepts NBD clients on its listeners, negotiates each on a short-lived handshake
// thread, and hands the connection to the least-loaded Worker for the transmission phase.
//
// Lifetime: Listen() and Start() once, then Stop() once (from any thread but a worker's);
// Stop returns when no request is left in flight and every worker has exited. The catalog
// and its backends must outlive the server.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "nbd/export_catalog.h"
#include "nbd/listener.h"
#include "nbd/worker.h"

namespace blockrep::nbd {

struct ServerOptions {
  int workers = 2;
  // A client must finish its handshake within this long.
  int handshake_timeout_ms = 30000;
  // Handshakes in progress at once; further clients are closed at accept. Each handshake
  // holds a thread, so this bounds threads spent on clients that never get to transmission.
  int max_handshakes = 64;
};

class Server {
 public:
  Server(const ExportCatalog& catalog, ServerOptions options)
      : catalog_(catalog), options_(options) {}
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status Listen(const std::string& spec);
  Status Start();
  void Stop();

 private:
  void AcceptLoop();
  void RunHandshake(int fd);
  Worker* LeastLoadedWorker();

  const ExportCatalog& catalog_;
  const ServerOptions options_;
  std::vector<Listener> listeners_;
  std::vector<std::unique_ptr<Worker>> workers_;
  UniqueFd stop_fd_;  // eventfd: wakes the accept loop
  std::thread accept_thread_;

  std::mutex mu_;
  std::condition_variable handshakes_done_;
  std::set<int> handshake_fds_;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  bool stopped_ = false;
};

}  // namespace blockrep::nbd
