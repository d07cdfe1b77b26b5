// Shipper: replicates one protected disk to its target (docs/formats/replication.md).
//
// One thread per disk. It connects over TLS, learns from HELLO_REPLY where the replica
// stands, and then streams: the journal's records in seq order (JournalTail), interleaved,
// while a copy or a resync runs, with sync items read at barriers (WritePath::Fenced), so
// the replica ends equal to the disk whatever the clients write meanwhile. The target's
// ACKs let it reclaim the journal. The per-connection protocol is ShipSession
// (daemon/ship_session.h); this class owns the thread, the retries and what `blockrep
// status` shows.
//
// Errors: a transient one (refused, reset or timed-out connection, the target out of
// space or busy) ends the session and the shipper retries after 1, 2, 4, 8, 10, then every
// 30 retry units (core/retry_schedule.h); a fatal one (a certificate refused, the disk not
// allowed, unknown, or of another size, id or generation) stops it in the error state,
// with the reason, until Resume().
//
// Thread-safety: every public method may be called from any thread (the control socket's).
// Lifetime: Start() once, Stop() before the ProtectedDisk closes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/lag_tracker.h"
#include "core/repl_wire.h"
#include "core/status.h"
#include "core/tls.h"
#include "daemon/protected_disk.h"

namespace blockrep {

struct ReplicationOptions {
  std::string target;                     // HOST:PORT of blockrep-target
  std::shared_ptr<const TlsContext> tls;  // client context (certificate, key, CA)
  uint64_t retry_unit_ms = 60000;
  int zstd_level = 1;                     // 0: no compression
  uint64_t bandwidth_bytes_per_s = 0;     // 0: no cap
  int connect_timeout_ms = 10000;
};

class Shipper {
 public:
  Shipper(ProtectedDisk& disk, ReplicationOptions options);
  ~Shipper();
  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  void Start();
  // Ends the session (batches not acknowledged are sent again next time) and joins.
  void Stop();

  // What `blockrep status` shows for this disk.
  nlohmann::json StatusJson() const;

  // Stops shipping (the journal keeps filling) until Resume().
  Status Pause();
  // Resumes after Pause(), or after a fatal error (retrying at once).
  Status Resume();
  // Starts a full resync: every block is compared with the replica, the differing ones sent.
  Status Resync();
  // Returns once the target holds every write acknowledged before the call (and the replica
  // is in sync), or after timeout_ms with an error saying what the disk is doing.
  Result<nlohmann::json> Drain(int timeout_ms);
  // Compares the disk with the replica block by block (exactly, while writes go on) and
  // returns the ranges that differ.
  Result<nlohmann::json> Verify(int timeout_ms);

  const std::string& name() const;

  // What the session reports back, and what control requests the session must act on.
  // (Shared with ShipSession; guarded by mu_.)
  enum class Phase {
    kConnecting,
    kInitialCopy,
    kResyncing,
    kProtected,
    kRetryWait,
    kPaused,
    kError,
    kStopped,
  };
  struct Shared;

 private:
  void Run();
  // Waits until deadline_ms (monotonic), a stop, or a control request that ends the wait.
  void WaitUntil(uint64_t deadline_ms);
  void SampleLag();

  ProtectedDisk& disk_;
  const ReplicationOptions options_;
  std::unique_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace blockrep
