// ReplicaSession: the target's side of one replication connection
// (docs/formats/replication.md), after the TLS handshake: HELLO checks (disk configured,
// source identity allowed, size, id and generation), START, then groups of BATCHes: every
// frame that has arrived is applied to the Replica item by item, the group is committed
// (durable), and one ACK answers it; HASHES and VERIFY_HASHES answer requests; PING gets
// PONG. A bad frame or item gets ERROR and the connection closes.
//
// Thread-safety: runs on its own thread; RequestStop() may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/repl_wire.h"
#include "core/status.h"
#include "core/tls.h"

namespace blockrep {

class Replica;
class TargetServer;

class ReplicaSession {
 public:
  // A group takes at most this many raw batch bytes before it is committed (their buffers
  // stay in memory until then).
  static constexpr uint64_t kMaxGroupRawBytes = 64u << 20;
  // How often an idle session checkpoints its replica (fdatasync, reclaim the journal).
  static constexpr uint64_t kCheckpointIntervalMs = 2000;

  ReplicaSession(TargetServer& server, std::unique_ptr<TlsConnection> conn)
      : server_(server), conn_(std::move(conn)) {}
  ~ReplicaSession();

  void Run();
  // Ends the session soon (a takeover, or the daemon stopping).
  void RequestStop();

 private:
  Status Handshake();
  Status Stream();
  // Reads one whole frame, waiting at most timeout_ms. False in *got when none arrived.
  // *payload points into the connection's input, valid until the next NextFrame() or
  // Pump() (the frame is consumed at the start of the next NextFrame(): no copy).
  Status NextFrame(int timeout_ms, bool* got, repl::MsgType* type, std::span<const uint8_t>* payload);
  void Send(repl::MsgType type, const std::vector<uint8_t>& payload);
  void SendError(repl::ErrorCode code, const std::string& message);
  Status ApplyBatch(std::span<const uint8_t> payload);
  Status CommitGroup();
  Status Flush();  // sends what is queued (bounded wait)

  TargetServer& server_;
  std::unique_ptr<TlsConnection> conn_;
  std::atomic<bool> stop_{false};
  Replica* replica_ = nullptr;
  std::string disk_;
  repl::Hello hello_;
  size_t frame_unconsumed_ = 0;  // bytes of the frame NextFrame() returned last

  // The open group.
  std::vector<std::vector<uint8_t>> group_raw_;  // decoded batches, alive until the commit
  uint64_t group_raw_bytes_ = 0;
  uint64_t group_last_batch_ = 0;
  uint64_t group_through_ = 0;
  uint64_t committed_through_ = 0;  // through of the last batch whose items are all committed
  uint64_t last_record_seq_ = 0;
  uint64_t last_batch_ = 0;
  std::vector<uint8_t> raw_scratch_;
};

}  // namespace blockrep
