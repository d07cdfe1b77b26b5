// ShipSession: one connection of a Shipper to its target, from TLS handshake to its end
// (docs/formats/replication.md): HELLO, the choice of START mode, then the stream of
// records, sync items (initial copy or resync) and verify requests, and the target's ACKs,
// HASHES and VERIFY_HASHES.
//
// It runs on the shipper's thread and returns when the connection ends: a stop or pause
// request, a resync request, or an error. The Shared block (below) carries what it reports
// and the control requests it acts on.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dirty_bitmap.h"
#include "core/io_ring.h"
#include "core/lag_tracker.h"
#include "core/repl_wire.h"
#include "core/tls.h"
#include "daemon/journal_tail.h"
#include "daemon/protected_disk.h"
#include "daemon/shipper.h"

namespace blockrep {

// State shared between a Shipper's thread and the threads that ask it things.
struct Shipper::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;  // any change below

  // Control requests.
  bool stop = false;
  bool paused = false;
  bool resync_requested = false;  // end the session; the next one resyncs
  bool retry_now = false;         // cut a retry wait short
  struct VerifyJob {
    bool pending = false;  // asked, not started
    bool done = false;
    Status status;
    nlohmann::json result;
  };
  std::shared_ptr<VerifyJob> verify;

  // What the session reports.
  Phase phase = Phase::kConnecting;
  std::string error;            // the fatal error (phase kError)
  std::string last_error;       // the last transient error
  uint64_t failures = 0;        // transient failures in a row
  uint64_t connect_attempts = 0;
  uint64_t retry_at_ms = 0;     // monotonic; phase kRetryWait
  bool connected = false;
  repl::ReplicaState replica_state = repl::ReplicaState::kNew;
  uint64_t acked_through = 0;   // durable on the target
  // Every seq up to it is durable on the target or has nothing to ship (a marker the
  // stream skips): what Drain waits for, since a flush checkpoint after the last write
  // is never in a batch and so never acknowledged by itself.
  uint64_t covered_through = 0;
  // The latest seq whose journal record was found corrupt (0: none): no stream may start
  // at or before it, so the next one is a new resync with records from after it.
  uint64_t unreadable_seq = 0;
  // An operator asked for a resync (every block marked): the next session starts a new one
  // rather than resuming an unfinished one, whose cursor would skip the blocks below it.
  bool fresh_resync = false;
  bool acked_known = false;
  uint64_t oldest_unacked_ns = 0;  // write time of the oldest write not durable there; 0: none
  uint64_t sync_done_bytes = 0;
  uint64_t sync_total_bytes = 0;
  uint64_t sync_start_ms = 0;
  uint64_t sync_sent_bytes = 0;    // data bytes sync items carried
  uint64_t wire_bytes = 0;         // frame bytes sent (after compression)
  uint64_t record_bytes = 0;       // write data the records carried
  uint64_t resyncs_completed = 0;
  LagTracker lag;
};

class ShipSession {
 public:
  ShipSession(ProtectedDisk& disk, const ReplicationOptions& options, Shipper::Shared& shared,
              IoRing& ring);
  ~ShipSession();

  // Connects and runs until the connection ends. *fatal is set when the error must not be
  // retried. OK when it ended on request (stop, pause, resync).
  Status Run(bool* fatal);

 private:
  struct Chunk;
  enum class SyncKind { kNone, kInitial, kResync };

  Status Connect();
  Status Handshake(bool* fatal);
  Status Serve();

  // ---- I/O -------------------------------------------------------------------------
  // Pumps the connection (waiting at most wait_ms) and handles every whole frame received.
  Status PumpAndHandle(int wait_ms);
  Status HandleFrame(repl::MsgType type, const uint8_t* p, size_t n);
  Status HandleAck(const repl::Ack& ack);
  Status HandleHashes(repl::Hashes h);
  Status HandleVerifyHashes(repl::VerifyHashes h);
  // Reads one frame, waiting at most timeout_ms (handshake phase).
  Status ReadFrame(int timeout_ms, repl::MsgType* type, std::vector<uint8_t>* payload);
  void SendFrame(repl::MsgType type, const std::vector<uint8_t>& payload);
  bool WindowFull() const;
  // Waits (pumping) until the window has room. False: stop requested.
  Status WaitForWindow();

  // ---- the stream ------------------------------------------------------------------
  void AddItem(const repl::ItemHeader& h, const uint8_t* data);
  // Sends the open batch, if any.
  Status CloseBatch();
  // Ships every completed record with seq < below (0: all completed ones); with wait, waits
  // for records below `below` that are still in flight.
  Status ShipRecords(uint64_t below, bool wait);

  // ---- sync: initial copy and resync ----------------------------------------------------
  Status SyncStep(bool* progressed);
  Status InitialStep();
  Status ResyncIssue();
  Status ResyncFinishFront();
  Status SyncEnd();
  // The next chunk at or after offset that the dirty set touches; disk size if none.
  uint64_t NextDirtyChunk(uint64_t offset) const;
  // Reads [offset, offset+length) at a barrier into *buf, then ships every record below it.
  Result<uint64_t> FencedRead(uint64_t offset, uint64_t length, std::vector<uint8_t>* buf);
  // The same, but only the range's block hashes are wanted (the read reuses chunk_buf_).
  Result<uint64_t> FencedHash(uint64_t offset, uint64_t length, std::vector<uint64_t>* hashes);
  Status ReadDisk(int fd, uint64_t offset, uint64_t length, uint8_t* out);
  void SetSyncProgress(uint64_t done);

  // ---- verify -----------------------------------------------------------------------
  Status VerifyStep(bool* progressed);
  void FinishVerify(Status st);

  // ---- housekeeping -------------------------------------------------------------------
  Status Reclaim(bool force);
  void UpdateOldestUnacked();
  // With every batch acknowledged and none open, every seq the reader has passed is
  // covered (Shared::covered_through).
  void UpdateCovered();
  bool StopRequested();

  ProtectedDisk& disk_;
  WritePath& wp_;
  const ReplicationOptions& options_;
  Shipper::Shared& shared_;
  IoRing& ring_;
  const std::string name_;
  const uint64_t disk_bytes_;

  std::unique_ptr<TlsConnection> conn_;
  uint64_t last_send_ms_ = 0;
  uint64_t last_receive_ms_ = 0;
  uint64_t next_send_allowed_ms_ = 0;  // bandwidth cap

  // Stream state.
  std::unique_ptr<JournalTail> tail_;
  uint64_t first_seq_ = 1;  // START's first seq: every seq below it is covered
  repl::BatchBuilder batch_;
  bool batch_open_ = false;
  uint64_t batch_oldest_ns_ = 0;  // write time of the batch's first record
  uint64_t next_batch_ = 1;
  int skip_compression_ = 0;  // batches to send raw (incompressible data lately)
  struct Unacked {
    uint64_t batch;
    uint64_t raw_bytes;
    uint64_t through;
    uint64_t oldest_ns;  // 0 when it carries no record
  };
  std::deque<Unacked> unacked_;
  uint64_t unacked_bytes_ = 0;
  uint64_t acked_through_ = 0;
  repl::ReplicaState replica_state_ = repl::ReplicaState::kNew;
  uint64_t last_reclaim_ms_ = 0;
  uint64_t reclaimed_through_ = 0;
  std::vector<uint8_t> scratch_;
  std::vector<uint8_t> chunk_buf_;  // one chunk read at a barrier (reused: no page faults)
  std::vector<uint8_t> frame_;      // the next batch frame's buffer (recycled)

  // Sync state.
  SyncKind sync_ = SyncKind::kNone;
  DirtyBitmap covered_{0};       // the regions the sync compares
  bool sync_whole_disk_ = false;
  uint64_t sync_issue_ = 0;      // next chunk offset to start
  uint64_t sync_cursor_ = 0;     // every chunk below is done
  bool sync_end_sent_ = false;
  int requests_unsent_ = 0;      // hash requests in the open batch
  std::deque<std::unique_ptr<Chunk>> chunks_;  // in flight, in disk order

  // Verify state.
  std::shared_ptr<Shipper::Shared::VerifyJob> verify_job_;
  uint64_t verify_issue_ = 0;
  struct VerifyChunk {
    uint64_t offset;
    uint64_t length;
    std::vector<uint64_t> hashes;
  };
  std::deque<VerifyChunk> verify_chunks_;
  std::vector<std::pair<uint64_t, uint64_t>> verify_diffs_;
  uint64_t verify_blocks_ = 0;
};

}  // namespace blockrep
