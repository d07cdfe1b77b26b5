#include "daemon/ship_session.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "core/clock.h"
#include "core/byte_size.h"
#include "core/check.h"
#include "core/log.h"
#include "core/version.h"

namespace blockrep {
namespace {

using repl::ItemHeader;
using repl::ItemType;
using repl::MsgType;

// How long the handshake may wait for each of the target's answers.
constexpr int kHandshakeTimeoutMs = 30000;
// How long the loop sleeps when there is nothing to do (bounded by new records).
constexpr int kIdleWaitMs = 5;
// How often acknowledged journal space is reclaimed (a flush first, for the checkpoint).
constexpr uint64_t kReclaimIntervalMs = 2000;
// How often the journal's fill is looked at between those.
constexpr uint64_t kReclaimCheckMs = 100;
// Compression must save at least this share of a batch to be worth its CPU; batches after
// one that did not are sent raw for a while (see CloseBatch).
constexpr double kMinCompressionGain = 0.05;
constexpr int kIncompressibleSkip = 16;
// A resync sends its hash requests in batches of this many (see ResyncIssue).
constexpr int kHashRequestsPerBatch = 4;
// Chunks the initial copy examines per step before looking at the connection again.
constexpr int kInitialChunksPerStep = 8;
// An initial-copy probe for holes covers at most this many chunks at once.
constexpr uint64_t kHoleProbeChunks = 64;


bool ParseDiskId(const std::string& hex, repl::DiskId* out) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
    (*out)[i] = static_cast<uint8_t>(v);
  }
  return true;
}

bool IsZero(const uint8_t* p, size_t n) {
  // Compare against the first byte, then check the first byte: memcmp is vectorised.
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

}  // namespace


// A chunk of a resync in flight: asked about (kAwait), then known equal (kDone) or not
// (kDiffer, with the target's block hashes).
struct ShipSession::Chunk {
  enum class State { kAwait, kDiffer, kDone };
  uint64_t offset = 0;
  uint64_t length = 0;
  State state = State::kAwait;
  std::vector<uint64_t> source_hashes;  // as of the barrier of the HASH_REQUEST
  std::vector<uint64_t> target_hashes;
  // A record shipped since that barrier overlaps the chunk: source_hashes may be stale.
  bool touched = false;
};

ShipSession::ShipSession(ProtectedDisk& disk, const ReplicationOptions& options,
                         Shipper::Shared& shared, IoRing& ring)
    : disk_(disk),
      wp_(disk.write_path()),
      options_(options),
      shared_(shared),
      ring_(ring),
      name_(disk.name()),
      disk_bytes_(disk.backing().size_bytes()) {}

ShipSession::~ShipSession() {
  if (conn_) conn_->Close();
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.connected = false;
  if (verify_job_ && !verify_job_->done) {
    verify_job_->done = true;
    verify_job_->status = Status::IoError("the connection to the target ended during the verify");
    shared_.cv.notify_all();
  }
}

bool ShipSession::StopRequested() {
  std::lock_guard<std::mutex> lock(shared_.mu);
  return shared_.stop || shared_.paused || shared_.resync_requested;
}

// ---- connection -------------------------------------------------------------------------

Status ShipSession::Connect() {
  auto fd = TcpConnect(options_.target, options_.connect_timeout_ms);
  if (!fd.ok()) return fd.status();
  auto conn = TlsConnection::Create(*options_.tls, std::move(fd).value(), options_.target);
  if (!conn.ok()) return conn.status();
  conn_ = std::move(conn).value();
  BLOCKREP_RETURN_IF_ERROR(conn_->Handshake(options_.connect_timeout_ms));
  last_receive_ms_ = last_send_ms_ = MonotonicMs();
  return Status::Ok();
}

void ShipSession::SendFrame(MsgType type, const std::vector<uint8_t>& payload) {
  uint8_t header[repl::kFrameHeaderBytes];
  repl::EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()), header);
  conn_->Queue(header, sizeof(header));
  conn_->Queue(payload);
  last_send_ms_ = MonotonicMs();
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.wire_bytes += sizeof(header) + payload.size();
}

Status ShipSession::ReadFrame(int timeout_ms, MsgType* type, std::vector<uint8_t>* payload) {
  const uint64_t deadline = MonotonicMs() + static_cast<uint64_t>(timeout_ms);
  while (true) {
    const std::span<const uint8_t> in = conn_->input();
    if (in.size() >= repl::kFrameHeaderBytes) {
      repl::FrameHeader h;
      BLOCKREP_RETURN_IF_ERROR(repl::DecodeFrameHeader(in.data(), &h));
      if (in.size() >= repl::kFrameHeaderBytes + h.payload_bytes) {
        *type = h.type;
        payload->assign(in.begin() + repl::kFrameHeaderBytes,
                        in.begin() + static_cast<long>(repl::kFrameHeaderBytes + h.payload_bytes));
        conn_->Consume(repl::kFrameHeaderBytes + h.payload_bytes);
        last_receive_ms_ = MonotonicMs();
        return Status::Ok();
      }
    }
    const uint64_t now = MonotonicMs();
    if (now >= deadline) {
      return Status::IoError("no answer from the target " + options_.target + " within " +
                             std::to_string(timeout_ms) + " ms");
    }
    BLOCKREP_RETURN_IF_ERROR(conn_->Pump(static_cast<int>(std::min<uint64_t>(deadline - now, 100))));
    if (StopRequested()) return Status::Shutdown("stopping");
  }
}

Status ShipSession::Handshake(bool* fatal) {
  const DiskState state = wp_.State();
  repl::Hello hello;
  hello.disk_bytes = disk_bytes_;
  hello.generation = state.generation;
  BLOCKREP_CHECK(ParseDiskId(state.disk_id, &hello.disk_id));
  hello.disk_name = name_;
  hello.software_version = kVersion;
  SendFrame(MsgType::kHello, repl::EncodeHello(hello));

  MsgType type;
  std::vector<uint8_t> payload;
  BLOCKREP_RETURN_IF_ERROR(ReadFrame(kHandshakeTimeoutMs, &type, &payload));
  if (type == MsgType::kError) {
    repl::Error e;
    BLOCKREP_RETURN_IF_ERROR(repl::DecodeError(payload.data(), payload.size(), &e));
    *fatal = repl::IsFatal(e.code);
    return Status::ProtocolError("the target refused the disk: " + std::string(repl::ErrorCodeName(e.code)) +
                                 ": " + e.message);
  }
  if (type != MsgType::kHelloReply) {
    return Status::ProtocolError(std::string("expected HELLO_REPLY, got ") + repl::MsgTypeName(type));
  }
  repl::HelloReply reply;
  BLOCKREP_RETURN_IF_ERROR(repl::DecodeHelloReply(payload.data(), payload.size(), &reply));
  if (reply.status != repl::ErrorCode::kOk) {
    *fatal = repl::IsFatal(reply.status);
    return Status::ProtocolError("the target refused the disk: " +
                                 std::string(repl::ErrorCodeName(reply.status)) + ": " +
                                 reply.message);
  }

  // Where to start (docs/formats/replication.md, "Delta (mode 1)", the table).
  const uint64_t through = reply.durable_through;
  WritePath::JournalPosition pos = wp_.Position();
  uint64_t unreadable_seq;
  bool fresh_resync;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    unreadable_seq = shared_.unreadable_seq;
    fresh_resync = shared_.fresh_resync;
  }
  // A record that failed its checksum breaks the journal's run of seqs as surely as a
  // reclaimed segment does: a stream that would have to ship it cannot start.
  auto continuous = [&] {
    return pos.mode == DiskMode::kJournaling && pos.first_seq <= through + 1 &&
           through + 1 <= pos.next_seq && through >= unreadable_seq;
  };
  repl::Start start;
  switch (reply.state) {
    case repl::ReplicaState::kNew:
      start.mode = repl::StartMode::kInitial;
      break;
    case repl::ReplicaState::kInitialCopy:
      start.mode = continuous() ? repl::StartMode::kInitialResume : repl::StartMode::kResync;
      if (start.mode == repl::StartMode::kResync) {
        BLOCKREP_RETURN_IF_ERROR(wp_.MarkAllForResync(
            "the initial copy was interrupted and the journal no longer holds seq " +
            std::to_string(through + 1)));
      }
      break;
    case repl::ReplicaState::kResync:
      start.mode = continuous() && state.resyncing && !fresh_resync ? repl::StartMode::kResyncResume
                                                                    : repl::StartMode::kResync;
      break;
    case repl::ReplicaState::kInSync:
      start.mode = continuous() && !pos.resync_pending ? repl::StartMode::kDelta
                                                       : repl::StartMode::kResync;
      break;
    case repl::ReplicaState::kChanged:
      // Changed by hand on the target: no record or bitmap says where, so every block is
      // compared.
      start.mode = repl::StartMode::kResync;
      BLOCKREP_RETURN_IF_ERROR(wp_.MarkAllForResync("the target's replica changed outside blockrep-target: " +
                                                    reply.message));
      break;
  }
  if (start.mode == repl::StartMode::kResync && pos.mode == DiskMode::kJournaling &&
      !continuous()) {
    // The journal lost seqs the replica lacks without the bitmap recording their regions
    // (the replica is ahead of, or far behind, this journal): only a full compare is safe.
    BLOCKREP_RETURN_IF_ERROR(wp_.MarkAllForResync(
        "the replica is at seq " + std::to_string(through) +
        (through < unreadable_seq
             ? " but the journal's record of seq " + std::to_string(unreadable_seq) + " is corrupt"
             : " but the journal holds seqs " + std::to_string(pos.first_seq) + " to " +
                   std::to_string(pos.next_seq - 1))));
  }
  if (start.mode != repl::StartMode::kDelta) {
    auto first = wp_.BeginResync(&covered_);
    if (!first.ok()) return first.status();
    pos = wp_.Position();
    const bool resume = start.mode == repl::StartMode::kInitialResume ||
                        start.mode == repl::StartMode::kResyncResume;
    // With the journal continuous since the replica's point, records go on from there
    // (the sync covers the bitmap's regions, the records everything else); otherwise from
    // the resync's first seq (the bitmap covers what the journal lost).
    start.first_seq = continuous() && start.mode != repl::StartMode::kInitial ? through + 1 : first.value();
    start.sync_cursor = resume ? reply.sync_cursor : 0;
    sync_ = start.mode == repl::StartMode::kInitial || start.mode == repl::StartMode::kInitialResume
                ? SyncKind::kInitial
                : SyncKind::kResync;
    sync_issue_ = sync_cursor_ = start.sync_cursor;
    sync_whole_disk_ = sync_ == SyncKind::kInitial;
  } else {
    start.first_seq = through + 1;
  }
  SendFrame(MsgType::kStart, repl::EncodeStart(start));
  BLOCKREP_RETURN_IF_ERROR(ReadFrame(kHandshakeTimeoutMs, &type, &payload));
  if (type == MsgType::kError) {
    repl::Error e;
    BLOCKREP_RETURN_IF_ERROR(repl::DecodeError(payload.data(), payload.size(), &e));
    *fatal = repl::IsFatal(e.code);
    return Status::ProtocolError("the target refused START: " +
                                 std::string(repl::ErrorCodeName(e.code)) + ": " + e.message);
  }
  if (type != MsgType::kAck) {
    return Status::ProtocolError(std::string("expected ACK, got ") + repl::MsgTypeName(type));
  }
  repl::Ack ack;
  BLOCKREP_RETURN_IF_ERROR(repl::DecodeAck(payload.data(), payload.size(), &ack));
  acked_through_ = reclaimed_through_ = ack.durable_through;
  replica_state_ = ack.state;
  if (fresh_resync && start.mode == repl::StartMode::kResync) {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.fresh_resync = false;
  }

  tail_ = std::make_unique<JournalTail>(pos.journal_dir, pos.journal_id,
                                        [this](uint64_t s) { return wp_.IsVoided(s); });
  BLOCKREP_RETURN_IF_ERROR(tail_->Seek(start.first_seq));
  first_seq_ = start.first_seq;

  LOG_INFO("disk %s: replicating to %s (%s): %s from seq %lu%s", name_.c_str(),
           options_.target.c_str(), conn_->peer_identity().c_str(), repl::StartModeName(start.mode),
           static_cast<unsigned long>(start.first_seq),
           start.sync_cursor > 0 ? (", sync from " + FormatBytes(start.sync_cursor)).c_str() : "");
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.connected = true;
    shared_.failures = 0;
    shared_.acked_through = acked_through_;
    shared_.covered_through = acked_through_;
    shared_.acked_known = true;
    shared_.replica_state = replica_state_;
    shared_.phase = sync_ == SyncKind::kInitial   ? Shipper::Phase::kInitialCopy
                    : sync_ == SyncKind::kResync ? Shipper::Phase::kResyncing
                                                 : Shipper::Phase::kProtected;
    if (sync_ != SyncKind::kNone) {
      shared_.sync_total_bytes = disk_bytes_;
      shared_.sync_done_bytes = sync_cursor_;
      shared_.sync_start_ms = MonotonicMs();
      shared_.sync_sent_bytes = 0;
      shared_.lag.ResetLag();
    }
    shared_.cv.notify_all();
  }
  return Status::Ok();
}

Status ShipSession::Run(bool* fatal) {
  *fatal = false;
  Status st = Connect();
  if (!st.ok()) {
    *fatal = st.code() == Status::Code::kPermissionDenied;
    return st;
  }
  st = Handshake(fatal);
  if (!st.ok()) {
    if (st.code() == Status::Code::kPermissionDenied) *fatal = true;
    if (st.code() == Status::Code::kShutdown) return Status::Ok();
    return st;
  }
  st = Serve();
  if (st.code() == Status::Code::kPermissionDenied) *fatal = true;
  return st;
}

// ---- the main loop -----------------------------------------------------------------------

Status ShipSession::Serve() {
  while (true) {
    if (StopRequested()) {
      BLOCKREP_RETURN_IF_ERROR(CloseBatch());
      // Let what is queued go out (best effort, briefly): the target may acknowledge it.
      for (int i = 0; i < 20 && conn_->queued_bytes() > 0; ++i) {
        if (!conn_->Pump(10).ok()) break;
      }
      return Status::Ok();
    }
    BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(0));
    bool progressed = false;
    const uint64_t shipped_before = tail_->next_seq();
    if (sync_ != SyncKind::kNone) BLOCKREP_RETURN_IF_ERROR(SyncStep(&progressed));
    BLOCKREP_RETURN_IF_ERROR(VerifyStep(&progressed));
    BLOCKREP_RETURN_IF_ERROR(ShipRecords(0, false));
    if (tail_->next_seq() != shipped_before) progressed = true;
    BLOCKREP_RETURN_IF_ERROR(CloseBatch());
    BLOCKREP_RETURN_IF_ERROR(Reclaim(false));
    UpdateOldestUnacked();
    UpdateCovered();

    const uint64_t now = MonotonicMs();
    if (now - last_send_ms_ >= static_cast<uint64_t>(repl::kKeepaliveMs)) {
      SendFrame(MsgType::kPing, {});
    }
    if (now - last_receive_ms_ >= static_cast<uint64_t>(repl::kPeerTimeoutMs)) {
      return Status::IoError("no word from the target " + options_.target + " for " +
                             std::to_string(repl::kPeerTimeoutMs / 1000) + " s");
    }
    if (!progressed) {
      if (WindowFull() || sync_ != SyncKind::kNone) {
        // Waiting for the target (acknowledgements, hashes): the socket wakes us.
        BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(kIdleWaitMs));
      } else {
        // Nothing to do: wait a little for the socket, then for new records.
        BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(0));
        if (wp_.WaitForLowestPending(tail_->next_seq(), kIdleWaitMs) == 0) {
          return Status::Ok();  // the disk left journaling: a resync is needed; start over
        }
      }
    }
  }
}

Status ShipSession::PumpAndHandle(int wait_ms) {
  BLOCKREP_RETURN_IF_ERROR(conn_->Pump(wait_ms));
  while (true) {
    const std::span<const uint8_t> in = conn_->input();
    if (in.size() < repl::kFrameHeaderBytes) return Status::Ok();
    repl::FrameHeader h;
    BLOCKREP_RETURN_IF_ERROR(repl::DecodeFrameHeader(in.data(), &h));
    if (in.size() < repl::kFrameHeaderBytes + h.payload_bytes) return Status::Ok();
    last_receive_ms_ = MonotonicMs();
    // Copy out: handling may pump the connection again.
    scratch_.assign(in.begin() + repl::kFrameHeaderBytes,
                    in.begin() + static_cast<long>(repl::kFrameHeaderBytes + h.payload_bytes));
    conn_->Consume(repl::kFrameHeaderBytes + h.payload_bytes);
    std::vector<uint8_t> payload = std::move(scratch_);
    BLOCKREP_RETURN_IF_ERROR(HandleFrame(h.type, payload.data(), payload.size()));
  }
}

Status ShipSession::HandleFrame(MsgType type, const uint8_t* p, size_t n) {
  switch (type) {
    case MsgType::kAck: {
      repl::Ack ack;
      BLOCKREP_RETURN_IF_ERROR(repl::DecodeAck(p, n, &ack));
      return HandleAck(ack);
    }
    case MsgType::kHashes: {
      repl::Hashes h;
      BLOCKREP_RETURN_IF_ERROR(repl::DecodeHashes(p, n, &h));
      return HandleHashes(std::move(h));
    }
    case MsgType::kVerifyHashes: {
      repl::VerifyHashes h;
      BLOCKREP_RETURN_IF_ERROR(repl::DecodeVerifyHashes(p, n, &h));
      return HandleVerifyHashes(std::move(h));
    }
    case MsgType::kError: {
      repl::Error e;
      BLOCKREP_RETURN_IF_ERROR(repl::DecodeError(p, n, &e));
      const std::string msg = "the target: " + std::string(repl::ErrorCodeName(e.code)) + ": " + e.message;
      if (repl::IsFatal(e.code)) return Status::PermissionDenied(msg);
      return Status::IoError(msg);
    }
    case MsgType::kPong:
      return Status::Ok();
    default:
      return Status::ProtocolError(std::string("unexpected ") + repl::MsgTypeName(type) +
                                   " from the target");
  }
}

Status ShipSession::HandleAck(const repl::Ack& ack) {
  if (ack.batch >= next_batch_) {
    return Status::ProtocolError("the target acknowledged batch " + std::to_string(ack.batch) +
                                 ", which was never sent");
  }
  while (!unacked_.empty() && unacked_.front().batch <= ack.batch) {
    unacked_bytes_ -= unacked_.front().raw_bytes;
    unacked_.pop_front();
  }
  acked_through_ = std::max(acked_through_, ack.durable_through);
  replica_state_ = ack.state;
  bool finished = false;
  if (sync_ != SyncKind::kNone && sync_end_sent_ && ack.state == repl::ReplicaState::kInSync) {
    BLOCKREP_RETURN_IF_ERROR(wp_.FinishResync(covered_));
    LOG_INFO("disk %s: %s complete; the replica is in sync", name_.c_str(),
             sync_ == SyncKind::kInitial ? "initial replication" : "resync");
    sync_ = SyncKind::kNone;
    finished = true;
  }
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.acked_through = acked_through_;
  shared_.covered_through = std::max(shared_.covered_through, acked_through_);
  shared_.replica_state = replica_state_;
  if (finished) {
    shared_.phase = Shipper::Phase::kProtected;
    shared_.sync_done_bytes = shared_.sync_total_bytes;
    ++shared_.resyncs_completed;
  }
  shared_.cv.notify_all();
  return Status::Ok();
}

bool ShipSession::WindowFull() const {
  return unacked_bytes_ >= repl::kMaxUnackedBytes || unacked_.size() >= repl::kMaxUnackedBatches ||
         MonotonicMs() < next_send_allowed_ms_ || conn_->queued_bytes() >= repl::kMaxUnackedBytes;
}

Status ShipSession::WaitForWindow() {
  while (WindowFull()) {
    if (StopRequested()) return Status::Shutdown("stopping");
    BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(kIdleWaitMs));
    if (MonotonicMs() - last_receive_ms_ >= static_cast<uint64_t>(repl::kPeerTimeoutMs)) {
      return Status::IoError("no acknowledgement from the target " + options_.target + " for " +
                             std::to_string(repl::kPeerTimeoutMs / 1000) + " s");
    }
    UpdateOldestUnacked();
  }
  return Status::Ok();
}

// ---- the stream -------------------------------------------------------------------------

void ShipSession::AddItem(const ItemHeader& h, const uint8_t* data) {
  if (batch_open_ && !batch_.Fits(h.data_bytes)) {
    // Sent with the next CloseBatch: never fails here; errors surface there.
    Status st = CloseBatch();
    (void)st;
  }
  if (!batch_open_) {
    // Records and initial-copy chunks close a batch once past kBatchTargetBytes.
    batch_.Reset(next_batch_, repl::kBatchTargetBytes + repl::kChunkBytes + 64 * 1024);
    batch_open_ = true;
    batch_oldest_ns_ = 0;
  }
  batch_.Add(h, data);
  const bool record = h.type == ItemType::kWrite || h.type == ItemType::kZero || h.type == ItemType::kTrim;
  if (record && batch_oldest_ns_ == 0) batch_oldest_ns_ = h.timestamp_ns;
}

Status ShipSession::CloseBatch() {
  if (!batch_open_ || batch_.empty()) return Status::Ok();
  // The reader starts at its segment's first record: until it has passed START's first
  // seq, that seq - 1 is what the stream covers (a through below it would move the target's
  // durable point back).
  const uint64_t through = std::max(tail_->next_seq(), first_seq_) - 1;
  const uint64_t raw = batch_.raw_bytes();
  // Data that does not compress (already compressed, encrypted, random) costs zstd time for
  // nothing: after a batch that shrank by less than kMinCompressionGain, the next
  // kIncompressibleSkip batches go out raw, then zstd tries again.
  const bool try_zstd = options_.zstd_level > 0 && skip_compression_ == 0;
  if (skip_compression_ > 0) --skip_compression_;
  // The batch goes out as one buffer handed to the connection (uncompressed, it is the very
  // buffer the items were built in); the connection's spare buffer comes back for the next.
  BLOCKREP_RETURN_IF_ERROR(batch_.FinishFrame(through, try_zstd ? options_.zstd_level : 0, &frame_));
  const uint64_t wire = frame_.size();
  if (try_zstd && raw >= 64 * 1024 &&
      static_cast<double>(wire) > static_cast<double>(raw) * (1.0 - kMinCompressionGain)) {
    skip_compression_ = kIncompressibleSkip;
  }
  conn_->Queue(std::move(frame_));
  batch_.Recycle(std::move(frame_));
  last_send_ms_ = MonotonicMs();
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.wire_bytes += wire;
  }
  unacked_.push_back({next_batch_, raw, through, batch_oldest_ns_});
  unacked_bytes_ += raw;
  ++next_batch_;
  batch_open_ = false;
  if (options_.bandwidth_bytes_per_s > 0) {
    const uint64_t now = MonotonicMs();
    const uint64_t cost_ms = wire * 1000 / options_.bandwidth_bytes_per_s;
    next_send_allowed_ms_ = std::max(next_send_allowed_ms_, now) + cost_ms;
  }
  // The loop may stay in ShipRecords for long under load: sample the lag here too.
  UpdateOldestUnacked();
  return Status::Ok();
}

Status ShipSession::ShipRecords(uint64_t below, bool wait) {
  while (true) {
    if (WindowFull()) {
      if (!wait) return Status::Ok();
      BLOCKREP_RETURN_IF_ERROR(CloseBatch());
      BLOCKREP_RETURN_IF_ERROR(WaitForWindow());
    }
    const WritePath::JournalPosition pos = wp_.Position();
    if (pos.mode != DiskMode::kJournaling) {
      return Status::Aborted("disk " + name_ + " left journaling (" +
                             wp_.State().reason + "); a resync follows");
    }
    const uint64_t want_below = below != 0 ? below : pos.lowest_pending;
    if (tail_->next_seq() >= want_below) return Status::Ok();
    const uint64_t limit = std::min(pos.lowest_pending, want_below);
    JournalTail::Record rec;
    auto got = tail_->Next(limit, &rec);
    if (!got.ok()) {
      if (got.status().code() == Status::Code::kCorruption &&
          wp_.Position().mode != DiskMode::kJournaling) {
        // The switch to the bitmap deleted the journal under the reader: not corruption.
        return Status::Aborted("disk " + name_ + " left journaling (" + wp_.State().reason +
                               "); a resync follows");
      }
      if (got.status().code() == Status::Code::kCorruption) {
        {
          std::lock_guard<std::mutex> lock(shared_.mu);
          shared_.unreadable_seq = std::max(shared_.unreadable_seq, tail_->next_seq());
        }
        // Never ship what does not verify: compare every block with the replica instead.
        LOG_ERROR("disk %s: %s; the record is not shipped, and a resync compares the disk with "
                  "its replica", name_.c_str(), got.status().message().c_str());
        BLOCKREP_RETURN_IF_ERROR(wp_.MarkAllForResync("journal record corrupt: " + got.status().message()));
        return Status::Aborted("journal corrupt; resync");
      }
      return got.status();
    }
    if (got.value() == JournalTail::Got::kWait) {
      if (!wait || below == 0) return Status::Ok();
      // Records below the barrier still in flight: they complete on their own.
      BLOCKREP_RETURN_IF_ERROR(CloseBatch());
      BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(0));
      if (wp_.WaitForLowestPending(tail_->next_seq(), kIdleWaitMs) == 0) {
        return Status::Aborted("disk " + name_ + " left journaling; a resync follows");
      }
      if (StopRequested()) return Status::Shutdown("stopping");
      continue;
    }
    const journal::RecordHeader& h = rec.header;
    if (h.kind != journal::RecordKind::kMarker) {
      // Chunks of a resync hashed before this record are stale where it lands.
      for (auto& c : chunks_) {
        if (h.offset < c->offset + c->length && c->offset < h.offset + h.length) c->touched = true;
      }
    }
    ItemHeader item;
    item.seq = h.seq;
    item.offset = h.offset;
    item.length = h.length;
    item.timestamp_ns = h.timestamp_ns;
    item.flags = (h.flags & journal::kRecordFlagFua) ? repl::kItemFlagFua : 0;
    switch (h.kind) {
      case journal::RecordKind::kWrite:
        item.type = ItemType::kWrite;
        item.data_bytes = h.payload_bytes;
        AddItem(item, rec.payload);
        {
          std::lock_guard<std::mutex> lock(shared_.mu);
          shared_.record_bytes += h.payload_bytes;
        }
        shared_.lag.AddBytes(MonotonicMs(), h.payload_bytes);
        break;
      case journal::RecordKind::kZero:
        item.type = ItemType::kZero;
        AddItem(item, nullptr);
        break;
      case journal::RecordKind::kTrim:
        item.type = ItemType::kTrim;
        AddItem(item, nullptr);
        break;
      case journal::RecordKind::kMarker:
        break;  // checkpoints and void markers are this journal's own business
    }
    if (batch_open_ && batch_.raw_bytes() >= repl::kBatchTargetBytes) {
      BLOCKREP_RETURN_IF_ERROR(CloseBatch());
    }
  }
}

// ---- sync -----------------------------------------------------------------------------------

Status ShipSession::ReadDisk(int fd, uint64_t offset, uint64_t length, uint8_t* out) {
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Status::FromErrno(n < 0 ? errno : EIO, "disk " + name_ + " read at " + std::to_string(offset + got));
    }
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<uint64_t> ShipSession::FencedHash(uint64_t offset, uint64_t length, std::vector<uint64_t>* hashes) {
  const int fd = disk_.backing().fd();
  auto barrier = wp_.Fenced(ring_, offset, length, [&](uint64_t) -> Status {
    chunk_buf_.resize(length);
    BLOCKREP_RETURN_IF_ERROR(ReadDisk(fd, offset, length, chunk_buf_.data()));
    repl::BlockHashes(chunk_buf_.data(), length, hashes);
    return Status::Ok();
  });
  if (!barrier.ok()) return barrier.status();
  BLOCKREP_RETURN_IF_ERROR(ShipRecords(barrier.value(), /*wait=*/true));
  return barrier;
}

Result<uint64_t> ShipSession::FencedRead(uint64_t offset, uint64_t length, std::vector<uint8_t>* buf) {
  buf->resize(length);
  const int fd = disk_.backing().fd();
  auto barrier = wp_.Fenced(ring_, offset, length,
                            [&](uint64_t) -> Status { return ReadDisk(fd, offset, length, buf->data()); });
  if (!barrier.ok()) return barrier.status();
  // Sync items at this barrier follow every record below it.
  BLOCKREP_RETURN_IF_ERROR(ShipRecords(barrier.value(), /*wait=*/true));
  return barrier;
}

void ShipSession::SetSyncProgress(uint64_t done) {
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.sync_done_bytes = done;
}

uint64_t ShipSession::NextDirtyChunk(uint64_t offset) const {
  if (sync_whole_disk_) return std::min(offset, disk_bytes_);
  const uint64_t per_region = DirtyBitmap::kRegionBytes;
  for (uint64_t r = offset / per_region; r < covered_.regions(); ++r) {
    if (covered_.Test(r)) {
      const uint64_t chunk = r * per_region / repl::kChunkBytes * repl::kChunkBytes;
      return std::max(chunk, offset);
    }
  }
  return disk_bytes_;
}

Status ShipSession::SyncStep(bool* progressed) {
  if (sync_end_sent_) return Status::Ok();
  if (sync_ == SyncKind::kInitial) {
    for (int i = 0; i < kInitialChunksPerStep && sync_issue_ < disk_bytes_ && !WindowFull(); ++i) {
      BLOCKREP_RETURN_IF_ERROR(InitialStep());
      *progressed = true;
      // Batches of about kBatchTargetBytes, as for records: the target's input buffer then
      // holds little of a next frame to move when it makes room.
      if (batch_open_ && batch_.raw_bytes() >= repl::kBatchTargetBytes) {
        BLOCKREP_RETURN_IF_ERROR(CloseBatch());
      }
    }
    if (sync_issue_ >= disk_bytes_) BLOCKREP_RETURN_IF_ERROR(SyncEnd());
    return Status::Ok();
  }
  const size_t before = chunks_.size();
  const uint64_t issued = sync_issue_;
  BLOCKREP_RETURN_IF_ERROR(ResyncIssue());
  BLOCKREP_RETURN_IF_ERROR(ResyncFinishFront());
  if (chunks_.size() != before || sync_issue_ != issued) *progressed = true;
  if (sync_issue_ >= disk_bytes_ && chunks_.empty()) BLOCKREP_RETURN_IF_ERROR(SyncEnd());
  return Status::Ok();
}

Status ShipSession::InitialStep() {
  const uint64_t c = sync_issue_;
  const int fd = disk_.backing().fd();
  // Holes first: SEEK_DATA, fenced so that "a hole" means "zero as of the barrier".
  const uint64_t probe = std::min(kHoleProbeChunks * repl::kChunkBytes, disk_bytes_ - c);
  uint64_t data_at = c;
  auto probed = wp_.Fenced(ring_, c, probe, [&](uint64_t) -> Status {
    off_t d = ::lseek(fd, static_cast<off_t>(c), SEEK_DATA);
    if (d >= 0) data_at = static_cast<uint64_t>(d);
    else if (errno == ENXIO) data_at = disk_bytes_;
    else data_at = c;  // no SEEK_DATA here (a block device): read everything
    return Status::Ok();
  });
  if (!probed.ok()) return probed.status();
  if (data_at >= c + repl::kChunkBytes) {
    const uint64_t skip_to = std::min(data_at / repl::kChunkBytes * repl::kChunkBytes, c + probe);
    ItemHeader cur;
    cur.type = ItemType::kSyncCursor;
    cur.offset = skip_to;
    AddItem(cur, nullptr);
    sync_issue_ = sync_cursor_ = skip_to;
    SetSyncProgress(skip_to);
    return Status::Ok();
  }
  const uint64_t len = repl::ChunkLength(c, disk_bytes_);
  auto barrier = FencedRead(c, len, &chunk_buf_);
  if (!barrier.ok()) return barrier.status();
  // Runs of blocks that are not all zero, each one SYNC_WRITE at the barrier.
  uint64_t sent = 0;
  for (uint64_t b = 0; b < len;) {
    const uint64_t bl = std::min(repl::kBlockBytes, len - b);
    if (IsZero(chunk_buf_.data() + b, bl)) {
      b += bl;
      continue;
    }
    uint64_t e = b + bl;
    while (e < len) {
      const uint64_t el = std::min(repl::kBlockBytes, len - e);
      if (IsZero(chunk_buf_.data() + e, el)) break;
      e += el;
    }
    ItemHeader w;
    w.type = ItemType::kSyncWrite;
    w.seq = barrier.value();
    w.offset = c + b;
    w.length = e - b;
    w.data_bytes = static_cast<uint32_t>(e - b);
    AddItem(w, chunk_buf_.data() + b);
    sent += e - b;
    b = e;
  }
  ItemHeader cur;
  cur.type = ItemType::kSyncCursor;
  cur.offset = c + len;
  AddItem(cur, nullptr);
  sync_issue_ = sync_cursor_ = c + len;
  SetSyncProgress(c + len);
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.sync_sent_bytes += sent;
  return Status::Ok();
}

Status ShipSession::ResyncIssue() {
  std::vector<uint64_t> hashes;
  while (chunks_.size() < repl::kMaxChunksInFlight && !WindowFull()) {
    const uint64_t c = NextDirtyChunk(sync_issue_);
    if (c >= disk_bytes_) {
      sync_issue_ = disk_bytes_;
      return Status::Ok();
    }
    const uint64_t len = repl::ChunkLength(c, disk_bytes_);
    auto barrier = FencedHash(c, len, &hashes);
    if (!barrier.ok()) return barrier.status();
    const uint64_t chunk_hash = repl::ChunkHash(hashes.data(), hashes.size());
    uint8_t data[8];
    for (int i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(chunk_hash >> (8 * i));
    ItemHeader req;
    req.type = ItemType::kHashRequest;
    req.offset = c;
    req.length = len;
    req.data_bytes = 8;
    AddItem(req, data);
    auto chunk = std::make_unique<Chunk>();
    chunk->offset = c;
    chunk->length = len;
    chunk->source_hashes = hashes;
    chunks_.push_back(std::move(chunk));
    sync_issue_ = c + len;
    // Send requests a few at a time, and take the answers that came: the target hashes its
    // chunks while this side reads and hashes the next ones.
    if (++requests_unsent_ >= kHashRequestsPerBatch) {
      requests_unsent_ = 0;
      BLOCKREP_RETURN_IF_ERROR(CloseBatch());
      BLOCKREP_RETURN_IF_ERROR(PumpAndHandle(0));
      BLOCKREP_RETURN_IF_ERROR(ResyncFinishFront());
    }
  }
  return Status::Ok();
}

Status ShipSession::HandleHashes(repl::Hashes h) {
  for (auto& c : chunks_) {
    if (c->state != Chunk::State::kAwait) continue;
    if (c->offset != h.chunk_offset || c->length != h.chunk_length) {
      return Status::ProtocolError("HASHES for chunk at " + std::to_string(h.chunk_offset) +
                                   ", but the next one asked about is at " + std::to_string(c->offset));
    }
    if (h.equal) {
      c->state = Chunk::State::kDone;
    } else {
      c->state = Chunk::State::kDiffer;
      c->target_hashes = std::move(h.block_hashes);
    }
    return Status::Ok();
  }
  return Status::ProtocolError("HASHES for chunk at " + std::to_string(h.chunk_offset) +
                               " that was not asked about");
}

Status ShipSession::ResyncFinishFront() {
  std::vector<uint64_t> hashes;
  while (!chunks_.empty()) {
    Chunk& c = *chunks_.front();
    if (c.state == Chunk::State::kAwait) return Status::Ok();
    if (c.state == Chunk::State::kDiffer) {
      if (WindowFull()) return Status::Ok();
      if (c.target_hashes.size() != c.source_hashes.size()) {
        return Status::ProtocolError("HASHES for chunk at " + std::to_string(c.offset) +
                                     " has the wrong number of block hashes");
      }
      // The blocks that differed at the request's barrier are read again at a new one; if no
      // record shipped in between touched the chunk, the other blocks are as they were then,
      // still equal to the target's, and only those blocks are needed (usually one or two
      // of the 256). Otherwise the whole chunk is read and compared again.
      std::vector<size_t> differ;
      for (size_t b = 0; b < c.source_hashes.size(); ++b) {
        if (c.source_hashes[b] != c.target_hashes[b]) differ.push_back(b);
      }
      chunk_buf_.resize(c.length);
      const int fd = disk_.backing().fd();
      auto barrier = wp_.Fenced(ring_, c.offset, c.length, [&](uint64_t) -> Status {
        for (size_t b : differ) {
          const uint64_t o = b * repl::kBlockBytes;
          BLOCKREP_RETURN_IF_ERROR(ReadDisk(fd, c.offset + o, std::min(repl::kBlockBytes, c.length - o),
                                            chunk_buf_.data() + o));
        }
        return Status::Ok();
      });
      if (!barrier.ok()) return barrier.status();
      BLOCKREP_RETURN_IF_ERROR(ShipRecords(barrier.value(), /*wait=*/true));
      std::vector<uint64_t>& hashes = c.source_hashes;
      if (c.touched) {
        barrier = FencedRead(c.offset, c.length, &chunk_buf_);
        if (!barrier.ok()) return barrier.status();
        repl::BlockHashes(chunk_buf_.data(), c.length, &hashes);
      }
      uint64_t sent = 0;
      // Runs of differing blocks of one kind (all zero here, or not): one item each.
      for (size_t b = 0; b < hashes.size();) {
        if (hashes[b] == c.target_hashes[b]) {
          ++b;
          continue;
        }
        const uint64_t start = b * repl::kBlockBytes;
        auto zero_at = [&](size_t i) {
          const uint64_t o = i * repl::kBlockBytes;
          return IsZero(chunk_buf_.data() + o, std::min(repl::kBlockBytes, c.length - o));
        };
        const bool zero = zero_at(b);
        size_t e = b + 1;
        while (e < hashes.size() && hashes[e] != c.target_hashes[e] && zero_at(e) == zero) ++e;
        const uint64_t end = std::min<uint64_t>(e * repl::kBlockBytes, c.length);
        ItemHeader w;
        w.type = zero ? ItemType::kSyncZero : ItemType::kSyncWrite;
        w.seq = barrier.value();
        w.offset = c.offset + start;
        w.length = end - start;
        w.data_bytes = zero ? 0 : static_cast<uint32_t>(end - start);
        AddItem(w, zero ? nullptr : chunk_buf_.data() + start);
        if (!zero) sent += end - start;
        b = e;
      }
      c.state = Chunk::State::kDone;
      std::lock_guard<std::mutex> lock(shared_.mu);
      shared_.sync_sent_bytes += sent;
    }
    ItemHeader cur;
    cur.type = ItemType::kSyncCursor;
    cur.offset = c.offset + c.length;
    AddItem(cur, nullptr);
    sync_cursor_ = c.offset + c.length;
    SetSyncProgress(sync_cursor_);
    chunks_.pop_front();
  }
  return Status::Ok();
}

Status ShipSession::SyncEnd() {
  if (sync_end_sent_) return Status::Ok();
  ItemHeader end;
  end.type = ItemType::kSyncEnd;
  end.seq = tail_->next_seq();
  AddItem(end, nullptr);
  sync_end_sent_ = true;
  return CloseBatch();
}

// ---- verify -------------------------------------------------------------------------------

Status ShipSession::VerifyStep(bool* progressed) {
  if (!verify_job_) {
    std::lock_guard<std::mutex> lock(shared_.mu);
    if (!shared_.verify || !shared_.verify->pending) return Status::Ok();
    verify_job_ = shared_.verify;
    verify_job_->pending = false;
    verify_issue_ = 0;
    verify_chunks_.clear();
    verify_diffs_.clear();
    verify_blocks_ = 0;
  }
  if (sync_ != SyncKind::kNone || replica_state_ != repl::ReplicaState::kInSync) {
    FinishVerify(Status::Unsupported("the replica is not in sync yet (" +
                                     std::string(repl::ReplicaStateName(replica_state_)) +
                                     "); verify once the copy or resync has finished"));
    return Status::Ok();
  }
  while (verify_chunks_.size() < repl::kMaxChunksInFlight && verify_issue_ < disk_bytes_ &&
         !WindowFull()) {
    const uint64_t len = repl::ChunkLength(verify_issue_, disk_bytes_);
    VerifyChunk vc{verify_issue_, len, {}};
    auto barrier = FencedHash(verify_issue_, len, &vc.hashes);
    if (!barrier.ok()) return barrier.status();
    ItemHeader req;
    req.type = ItemType::kVerifyRequest;
    req.offset = verify_issue_;
    req.length = len;
    AddItem(req, nullptr);
    verify_chunks_.push_back(std::move(vc));
    verify_issue_ += len;
    *progressed = true;
  }
  return Status::Ok();
}

Status ShipSession::HandleVerifyHashes(repl::VerifyHashes h) {
  if (!verify_job_ || verify_chunks_.empty()) {
    return Status::ProtocolError("VERIFY_HASHES that was not asked for");
  }
  VerifyChunk vc = std::move(verify_chunks_.front());
  verify_chunks_.pop_front();
  if (vc.offset != h.chunk_offset || vc.hashes.size() != h.block_hashes.size()) {
    return Status::ProtocolError("VERIFY_HASHES for chunk at " + std::to_string(h.chunk_offset) +
                                 ", expected " + std::to_string(vc.offset));
  }
  for (size_t i = 0; i < vc.hashes.size(); ++i) {
    ++verify_blocks_;
    if (vc.hashes[i] == h.block_hashes[i]) continue;
    const uint64_t o = vc.offset + i * repl::kBlockBytes;
    const uint64_t l = std::min(repl::kBlockBytes, vc.offset + vc.length - o);
    if (!verify_diffs_.empty() && verify_diffs_.back().first + verify_diffs_.back().second == o) {
      verify_diffs_.back().second += l;
    } else {
      verify_diffs_.emplace_back(o, l);
    }
  }
  if (verify_issue_ >= disk_bytes_ && verify_chunks_.empty()) FinishVerify(Status::Ok());
  return Status::Ok();
}

void ShipSession::FinishVerify(Status st) {
  nlohmann::json result;
  if (st.ok()) {
    uint64_t differing = 0;
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& [o, l] : verify_diffs_) {
      differing += l;
      ranges.push_back({{"offset", o}, {"length", l}});
    }
    result["disk"] = name_;
    result["equal"] = verify_diffs_.empty();
    result["bytes_compared"] = disk_bytes_;
    result["blocks_compared"] = verify_blocks_;
    result["differing_bytes"] = differing;
    result["differing_ranges"] = ranges;
    result["through_seq"] = tail_->next_seq() - 1;
  }
  std::lock_guard<std::mutex> lock(shared_.mu);
  verify_job_->status = std::move(st);
  verify_job_->result = std::move(result);
  verify_job_->done = true;
  verify_job_.reset();
  shared_.cv.notify_all();
}

// ---- housekeeping -------------------------------------------------------------------------

Status ShipSession::Reclaim(bool force) {
  const uint64_t now = MonotonicMs();
  if (acked_through_ <= reclaimed_through_) return Status::Ok();
  if (!force && now - last_reclaim_ms_ < kReclaimCheckMs) return Status::Ok();
  const WritePath::Stats ws = wp_.stats();
  // Every couple of seconds, and at once when the journal fills up: past its budget the
  // disk would fall back to its bitmap and need a resync.
  const bool filling = ws.journal_bytes > ws.journal_max_bytes / 4;
  if (!force && !filling && now - last_reclaim_ms_ < kReclaimIntervalMs) return Status::Ok();
  last_reclaim_ms_ = now;
  if (ws.journal_segments <= 1) return Status::Ok();
  // A flush first: a segment is reclaimed only below a checkpoint (restart needs nothing
  // from it then), and clients may never flush.
  Status st = wp_.FlushSync(ring_);
  if (!st.ok()) {
    LOG_WARN("disk %s: flush before reclaiming the journal: %s", name_.c_str(), st.ToString().c_str());
    return Status::Ok();
  }
  auto freed = wp_.ReclaimJournal(acked_through_);
  if (!freed.ok()) {
    LOG_WARN("disk %s: reclaiming the journal: %s", name_.c_str(), freed.status().ToString().c_str());
    return Status::Ok();
  }
  reclaimed_through_ = acked_through_;
  if (freed.value() > 0) {
    LOG_DEBUG("disk %s: reclaimed %s of journal through seq %lu", name_.c_str(),
              FormatBytes(freed.value()).c_str(), static_cast<unsigned long>(acked_through_));
  }
  return Status::Ok();
}

void ShipSession::UpdateCovered() {
  if (!unacked_.empty() || batch_open_ || sync_ != SyncKind::kNone) return;
  const uint64_t covered = std::max(acked_through_, tail_->next_seq() - 1);
  std::lock_guard<std::mutex> lock(shared_.mu);
  if (covered <= shared_.covered_through) return;
  shared_.covered_through = covered;
  shared_.cv.notify_all();
}

void ShipSession::UpdateOldestUnacked() {
  uint64_t oldest = 0;
  for (const Unacked& u : unacked_) {
    if (u.oldest_ns != 0) {
      oldest = u.oldest_ns;
      break;
    }
  }
  if (oldest == 0 && batch_open_) oldest = batch_oldest_ns_;
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.oldest_unacked_ns = oldest;
  const uint64_t now_ns = WallClockNs();
  if (sync_ == SyncKind::kNone) {
    shared_.lag.Sample(MonotonicMs(), oldest != 0 && now_ns > oldest ? (now_ns - oldest) / 1000000 : 0);
  }
}

}  // namespace blockrep
