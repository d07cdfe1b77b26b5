#include "target/replica_session.h"


#include <chrono>
#include <cstring>
#include <span>

#include "core/clock.h"
#include "core/log.h"
#include "core/version.h"
#include "target/replica.h"
#include "target/target_server.h"

namespace blockrep {
namespace {

using repl::MsgType;

constexpr int kHelloTimeoutMs = 30000;
// How long the loop waits for a frame when nothing is pending.
constexpr int kIdleWaitMs = 200;


// The protocol's error code for a Status from the replica.
repl::ErrorCode CodeFor(const Status& st) {
  if (st.code() == Status::Code::kProtocolError) return repl::ErrorCode::kBadStream;
  if (st.message().find(std::strerror(ENOSPC)) != std::string::npos) return repl::ErrorCode::kNoSpace;
  return repl::ErrorCode::kIoError;
}

}  // namespace

ReplicaSession::~ReplicaSession() = default;

void ReplicaSession::RequestStop() {
  // Seen within kIdleWaitMs. Not a shutdown(SHUT_RD) to wake it sooner: OpenSSL takes the
  // EOF for a truncated stream, fails the connection and sends the source a "decode error"
  // alert instead of the ERROR kShutdown that says why the session ends.
  stop_ = true;
}

void ReplicaSession::Send(MsgType type, const std::vector<uint8_t>& payload) {
  uint8_t h[repl::kFrameHeaderBytes];
  repl::EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()), h);
  conn_->Queue(h, sizeof(h));
  conn_->Queue(payload);
}

void ReplicaSession::SendError(repl::ErrorCode code, const std::string& message) {
  repl::Error e;
  e.code = code;
  e.message = message.size() > repl::kMaxStringBytes ? message.substr(0, repl::kMaxStringBytes) : message;
  Send(MsgType::kError, repl::EncodeError(e));
  Status st = Flush();
  (void)st;
}

Status ReplicaSession::Flush() {
  const uint64_t deadline = MonotonicMs() + 5000;
  while (conn_->queued_bytes() > 0 && MonotonicMs() < deadline) {
    BLOCKREP_RETURN_IF_ERROR(conn_->Pump(50));
  }
  return Status::Ok();
}

Status ReplicaSession::NextFrame(int timeout_ms, bool* got, MsgType* type,
                                 std::span<const uint8_t>* payload) {
  *got = false;
  if (frame_unconsumed_ > 0) {
    conn_->Consume(frame_unconsumed_);
    frame_unconsumed_ = 0;
  }
  for (int round = 0; round < 2; ++round) {
    std::span<const uint8_t> in = conn_->input();
    if (in.size() >= repl::kFrameHeaderBytes) {
      repl::FrameHeader h;
      Status st = repl::DecodeFrameHeader(in.data(), &h);
      if (!st.ok()) {
        SendError(repl::ErrorCode::kBadMessage, st.message());
        return st;
      }
      const size_t total = repl::kFrameHeaderBytes + h.payload_bytes;
      if (in.size() >= total) {
        *payload = in.subspan(repl::kFrameHeaderBytes, h.payload_bytes);
        frame_unconsumed_ = total;
        if (replica_ != nullptr) replica_->CountReceived(total);
        *type = h.type;
        *got = true;
        return Status::Ok();
      }
    }
    if (round == 0) BLOCKREP_RETURN_IF_ERROR(conn_->Pump(timeout_ms));
  }
  return Status::Ok();
}

void ReplicaSession::Run() {
  Status st = Handshake();
  if (st.ok()) st = Stream();
  if (!st.ok() && !stop_) {
    LOG_WARN("replica %s: session with %s (%s) ended: %s", disk_.empty() ? "?" : disk_.c_str(),
             conn_->peer().c_str(), conn_->peer_identity().c_str(), st.ToString().c_str());
  } else if (replica_ != nullptr) {
    LOG_INFO("replica %s: session with %s ended", disk_.c_str(), conn_->peer().c_str());
  }
  if (replica_ != nullptr) {
    replica_->AbandonGroup();  // what was not committed was not acknowledged either
    server_.Release(disk_, this);
  }
  conn_->Close();
}

Status ReplicaSession::Handshake() {
  bool got = false;
  MsgType type;
  std::span<const uint8_t> payload;
  const uint64_t deadline = MonotonicMs() + kHelloTimeoutMs;
  while (!got) {
    if (stop_) return Status::Shutdown("stopping");
    if (MonotonicMs() >= deadline) return Status::IoError("no HELLO within " + std::to_string(kHelloTimeoutMs) + " ms");
    BLOCKREP_RETURN_IF_ERROR(NextFrame(kIdleWaitMs, &got, &type, &payload));
  }
  if (type != MsgType::kHello) {
    SendError(repl::ErrorCode::kBadMessage, std::string("expected HELLO, got ") + repl::MsgTypeName(type));
    return Status::ProtocolError("expected HELLO");
  }
  Status st = repl::DecodeHello(payload.data(), payload.size(), &hello_);
  if (!st.ok()) {
    SendError(repl::ErrorCode::kBadMessage, st.message());
    return st;
  }
  disk_ = hello_.disk_name;
  const std::string& identity = conn_->peer_identity();
  auto refuse = [&](repl::ErrorCode code, const std::string& why) {
    ++server_.counters().sessions_refused;
    LOG_WARN("replica %s: refused %s (%s): %s: %s", disk_.c_str(), conn_->peer().c_str(),
             identity.c_str(), repl::ErrorCodeName(code), why.c_str());
    repl::HelloReply reply;
    reply.status = code;
    reply.message = why;
    Send(MsgType::kHelloReply, repl::EncodeHelloReply(reply));
    Status f = Flush();
    (void)f;
    return Status::PermissionDenied(why);
  };
  if (hello_.version != repl::kProtocolVersion) {
    return refuse(repl::ErrorCode::kVersion, "protocol version " + std::to_string(hello_.version) +
                                                 " is not supported (this target speaks " +
                                                 std::to_string(repl::kProtocolVersion) + ")");
  }
  bool busy = false;
  Replica* r = server_.Acquire(disk_, this, &busy);
  if (r == nullptr && busy) {
    // Transient: the source retries.
    return refuse(repl::ErrorCode::kBusy, "disk " + disk_ + " is still held by an earlier session, "
                                          "or the target is stopping");
  }
  if (r == nullptr) {
    return refuse(repl::ErrorCode::kUnknownDisk,
                  "disk " + disk_ + " is not configured on this target (blockrep-target --disk " +
                      disk_ + "=" + identity + ", or [disks." + disk_ + "] in its config)");
  }
  replica_ = r;
  std::string why;
  const repl::ErrorCode code = r->Check(hello_, identity, &why);
  if (code != repl::ErrorCode::kOk) return refuse(code, why);

  repl::HelloReply reply;
  reply.state = r->state();
  reply.durable_through = r->durable_through();
  reply.sync_cursor = r->sync_cursor();
  reply.generation = r->generation();
  reply.disk_id = r->disk_id();
  if (reply.state == repl::ReplicaState::kChanged) reply.message = r->changed_why();
  Send(MsgType::kHelloReply, repl::EncodeHelloReply(reply));
  BLOCKREP_RETURN_IF_ERROR(Flush());

  got = false;
  while (!got) {
    if (stop_) return Status::Shutdown("stopping");
    if (MonotonicMs() >= deadline + kHelloTimeoutMs) return Status::IoError("no START");
    BLOCKREP_RETURN_IF_ERROR(NextFrame(kIdleWaitMs, &got, &type, &payload));
  }
  if (type != MsgType::kStart) {
    SendError(repl::ErrorCode::kBadMessage, std::string("expected START, got ") + repl::MsgTypeName(type));
    return Status::ProtocolError("expected START");
  }
  repl::Start start;
  st = repl::DecodeStart(payload.data(), payload.size(), &start);
  if (!st.ok()) {
    SendError(repl::ErrorCode::kBadMessage, st.message());
    return st;
  }
  repl::ErrorCode start_code;
  st = r->Start(start, hello_, identity, &start_code);
  if (!st.ok()) {
    SendError(start_code, st.message());
    return st;
  }
  committed_through_ = r->durable_through();
  repl::Ack ack;
  ack.batch = 0;
  ack.durable_through = r->durable_through();
  ack.sync_cursor = r->sync_cursor();
  ack.state = r->state();
  Send(MsgType::kAck, repl::EncodeAck(ack));
  LOG_INFO("replica %s: %s from %s (%s), durable through seq %lu", disk_.c_str(),
           repl::StartModeName(start.mode), conn_->peer().c_str(), identity.c_str(),
           static_cast<unsigned long>(r->durable_through()));
  return Flush();
}

Status ReplicaSession::ApplyBatch(std::span<const uint8_t> payload) {
  repl::BatchHeader bh;
  std::vector<uint8_t> raw;
  std::span<const uint8_t> items;
  // An initial copy applies each item as it comes and keeps no pointer into the batch: its
  // items are read where they arrived. Otherwise they must live until the commit (journal
  // appends and pending applies point into them), in raw.
  const bool applied_at_once = replica_->state() == repl::ReplicaState::kInitialCopy;
  Status st = repl::DecodeBatch(payload.data(), payload.size(), &bh, &raw,
                                applied_at_once ? &items : nullptr);
  if (!applied_at_once) items = raw;
  if (!st.ok()) {
    SendError(repl::ErrorCode::kBadMessage, st.message());
    return st;
  }
  if (bh.batch != last_batch_ + 1) {
    const std::string why = "batch " + std::to_string(bh.batch) + " after batch " + std::to_string(last_batch_);
    SendError(repl::ErrorCode::kBadStream, why);
    return Status::ProtocolError(why);
  }
  repl::ItemReader reader(items.data(), items.size(), bh.item_count, replica_->disk_bytes());
  repl::ItemHeader h;
  const uint8_t* data = nullptr;
  const uint64_t through_before = group_last_batch_ > 0 ? group_through_ : committed_through_;
  while (reader.Next(&h, &data)) {
    const bool record = h.type == repl::ItemType::kWrite || h.type == repl::ItemType::kZero ||
                        h.type == repl::ItemType::kTrim;
    if (record) {
      if (h.seq <= last_record_seq_ || h.seq > bh.through_seq) {
        const std::string why = "record seq " + std::to_string(h.seq) + " out of order (after " +
                                std::to_string(last_record_seq_) + ", batch through " +
                                std::to_string(bh.through_seq) + ")";
        SendError(repl::ErrorCode::kBadStream, why);
        return Status::ProtocolError(why);
      }
      last_record_seq_ = h.seq;
    }
    bool commit_first = false;
    st = replica_->Item(h, data, &commit_first);
    if (st.ok() && commit_first) {
      // A verify request: what came before it must be applied before it is answered.
      repl::ErrorCode code;
      st = replica_->Commit(through_before, &code);
      if (st.ok()) st = replica_->Item(h, data, &commit_first);
    }
    if (!st.ok()) {
      SendError(CodeFor(st), st.message());
      return st;
    }
  }
  if (!reader.status().ok()) {
    SendError(repl::ErrorCode::kBadMessage, reader.status().message());
    return reader.status();
  }
  for (auto& [type, bytes] : replica_->TakeReplies()) Send(type, bytes);
  group_raw_bytes_ += items.size();
  if (!raw.empty()) group_raw_.push_back(std::move(raw));  // items point into it until the commit
  group_last_batch_ = bh.batch;
  group_through_ = bh.through_seq;
  last_batch_ = bh.batch;
  return Status::Ok();
}

Status ReplicaSession::CommitGroup() {
  if (group_last_batch_ == 0) return Status::Ok();
  repl::ErrorCode code;
  Status st = replica_->Commit(group_through_, &code);
  if (!st.ok()) {
    SendError(code, st.message());
    return st;
  }
  for (auto& [type, bytes] : replica_->TakeReplies()) Send(type, bytes);
  repl::Ack ack;
  ack.batch = group_last_batch_;
  ack.durable_through = replica_->durable_through();
  ack.sync_cursor = replica_->sync_cursor();
  ack.state = replica_->state();
  Send(MsgType::kAck, repl::EncodeAck(ack));
  committed_through_ = group_through_;
  group_raw_.clear();
  group_raw_bytes_ = 0;
  group_last_batch_ = 0;
  return Status::Ok();
}

Status ReplicaSession::Stream() {
  uint64_t last_receive = MonotonicMs();
  uint64_t last_checkpoint = MonotonicMs();
  MsgType type;
  std::span<const uint8_t> payload;
  while (!stop_) {
    bool got = false;
    BLOCKREP_RETURN_IF_ERROR(NextFrame(group_last_batch_ > 0 ? 0 : kIdleWaitMs, &got, &type, &payload));
    const uint64_t now = MonotonicMs();
    if (got) {
      last_receive = now;
      switch (type) {
        case MsgType::kBatch:
          BLOCKREP_RETURN_IF_ERROR(ApplyBatch(payload));
          if (group_raw_bytes_ >= kMaxGroupRawBytes) BLOCKREP_RETURN_IF_ERROR(CommitGroup());
          break;
        case MsgType::kPing:
          Send(MsgType::kPong, {});
          break;
        default:
          SendError(repl::ErrorCode::kBadMessage,
                    std::string("unexpected ") + repl::MsgTypeName(type) + " in the stream");
          return Status::ProtocolError(std::string("unexpected ") + repl::MsgTypeName(type));
      }
      continue;
    }
    // Nothing more has arrived: the group is complete.
    BLOCKREP_RETURN_IF_ERROR(CommitGroup());
    BLOCKREP_RETURN_IF_ERROR(conn_->Pump(0));
    if (now - last_checkpoint >= kCheckpointIntervalMs) {
      last_checkpoint = now;
      Status st = replica_->Checkpoint();
      if (!st.ok()) {
        SendError(CodeFor(st), st.message());
        return st;
      }
    }
    if (now - last_receive >= static_cast<uint64_t>(repl::kPeerTimeoutMs)) {
      return Status::IoError("no word from the source for " +
                             std::to_string(repl::kPeerTimeoutMs / 1000) + " s");
    }
  }
  // Stopping: what arrived and is complete gets committed and acknowledged.
  Status st = CommitGroup();
  if (st.ok()) {
    SendError(repl::ErrorCode::kShutdown, "the target is stopping, or another session took over");
  }
  return st;
}

}  // namespace blockrep
