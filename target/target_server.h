// TargetServer: blockrep-target's network side. It listens on one TCP address, runs the
// TLS handshake of each connection (mutual certificates, TLS 1.3), and hands it to a
// ReplicaSession (target/replica_session.h) on its own thread. It owns every configured
// Replica: a replica is opened (and locked) at start and written by at most one session
// at a time; a new session for a disk takes over from an old one (a source that
// reconnected before its old connection timed out).
//
// Thread-safety: Start/Stop from the main thread; StatusJson from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/tls.h"
#include "core/unique_fd.h"
#include "target/replica.h"

namespace blockrep {

class ReplicaSession;

class TargetServer {
 public:
  struct DiskConfig {
    std::string name;
    std::string source_identity;
    std::string image_path;  // empty: the default under the state directory
  };
  struct Options {
    std::string listen;  // HOST:PORT
    std::string state_dir;
    std::shared_ptr<const TlsContext> tls;
    std::vector<DiskConfig> disks;
  };
  // Handshakes in progress at once; more connections wait in the listen backlog.
  static constexpr int kMaxConnections = 64;
  static constexpr int kHandshakeTimeoutMs = 10000;

  explicit TargetServer(Options options) : options_(std::move(options)) {}
  ~TargetServer();

  // Opens every replica and starts listening.
  Status Start();
  // Stops accepting, ends every session (what they committed stays), joins.
  void Stop();

  nlohmann::json StatusJson() const;

  // For sessions: the replica named `name`, taken over from any session holding it (which
  // is told to stop and waited for). Null if no such disk is configured, or (*busy set)
  // if the target is stopping or the holder did not let go in time.
  Replica* Acquire(const std::string& name, ReplicaSession* session, bool* busy);
  void Release(const std::string& name, ReplicaSession* session);

  struct Counters {
    std::atomic<uint64_t> connections{0};
    std::atomic<uint64_t> tls_refused{0};     // handshakes that failed on certificates
    std::atomic<uint64_t> tls_failed{0};      // other handshake failures
    std::atomic<uint64_t> sessions_refused{0};  // HELLOs refused (unknown disk, identity, ...)
  };
  Counters& counters() { return counters_; }

 private:
  void AcceptLoop();
  void Serve(UniqueFd fd, std::string peer);

  Options options_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  std::thread accept_thread_;
  Counters counters_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Replica>> replicas_;  // constant after Start
  std::map<std::string, ReplicaSession*> owners_;              // guarded by mu_
  std::set<ReplicaSession*> sessions_;                         // guarded by mu_
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Worker> workers_;                                // guarded by mu_
  std::set<int> handshake_fds_;                                // guarded by mu_
  int active_ = 0;                                             // guarded by mu_
  bool stopping_ = false;                                      // guarded by mu_
};

}  // namespace blockrep
