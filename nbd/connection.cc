#include "nbd/connection.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/check.h"
#include "core/endian.h"
#include "core/log.h"
#include "nbd/protocol.h"
#include "nbd/reply.h"
#include "nbd/worker.h"

namespace blockrep::nbd {

// One accepted request, from parse to the end of its reply's transmission.
struct Connection::Op final : public BackendDone {
  Connection* conn = nullptr;
  Request req;
  uint8_t* buf = nullptr;        // pool buffer: read data or write payload
  size_t buf_bytes = 0;
  uint32_t payload_got = 0;      // write payload bytes received so far
  uint8_t hdr[kStructuredReplyHeaderBytes + 8];  // reply header (+ data chunk offset)
  uint32_t hdr_len = 0;
  const uint8_t* data = nullptr; // read data following hdr
  uint32_t data_len = 0;
  std::string tail;              // structured payload following hdr (error, block status)
  Op* next = nullptr;

  size_t reply_bytes() const { return hdr_len + data_len + tail.size(); }
  void OnDone(int err) override { conn->OnBackendDone(this, err); }
};

Connection::Connection(Worker& worker, UniqueFd fd, const Session& session, uint64_t id)
    : worker_(worker),
      fd_(std::move(fd)),
      session_(session),
      backend_(session.exp->backend),
      size_bytes_(session.exp->backend->size_bytes()),
      id_(id) {
  rbuf_ = worker_.pool().Get(kRecvBufferBytes);
  recv_cb_.c = this;
  send_cb_.c = this;
}

Connection::~Connection() {
  BLOCKREP_CHECK(finished());
  worker_.pool().Put(rbuf_, kRecvBufferBytes);
}

void Connection::Start() { Schedule(); }

void Connection::Schedule() { worker_.Schedule(this); }

bool Connection::finished() const {
  return reading_done_ && !recv_in_flight_ && !send_in_flight_ && ops_in_flight_ == 0;
}

bool Connection::Throttled() const {
  return ops_in_flight_ >= kMaxRequestsInFlight || bytes_in_flight_ >= kMaxBytesInFlight;
}

void Connection::StopReading() {
  reading_done_ = true;
  // A write whose payload never fully arrived was never acknowledged: drop it, but not while
  // the kernel may still be receiving into its buffer (OnRecv drops it then).
  if (pending_ != nullptr && !recv_in_flight_) {
    FreeOp(pending_);
    pending_ = nullptr;
  }
  if (recv_in_flight_ && !cancel_requested_) {
    cancel_requested_ = true;
    io_uring_sqe* sqe = worker_.ring().GetSqe(nullptr);
    io_uring_prep_cancel(sqe, &recv_cb_, 0);
  }
  Schedule();
}

void Connection::Stop() {
  if (!reading_done_) {
    LOG_DEBUG("connection %lu: server stopping, no more requests", (unsigned long)id_);
    StopReading();
  }
}

void Connection::Flush() {
  if (send_head_ != nullptr && !send_in_flight_ && !send_failed_) PostSend();
  if (!reading_done_ && !recv_in_flight_) {
    // With the buffer full of unparsed requests, wait for completions to make room.
    if (state_ == RecvState::kPayload || head_ > 0 || tail_ < kRecvBufferBytes) PostRecv();
  }
}

void Connection::PostRecv() {
  uint8_t* target;
  size_t len;
  if (state_ == RecvState::kPayload) {
    target = pending_->buf + pending_->payload_got;
    len = pending_->req.length - pending_->payload_got;
    recv_into_rbuf_ = false;
  } else {
    if (head_ > 0) {  // move the unparsed tail to the front
      std::memmove(rbuf_, rbuf_ + head_, tail_ - head_);
      tail_ -= head_;
      head_ = 0;
    }
    target = rbuf_ + tail_;
    len = kRecvBufferBytes - tail_;
    recv_into_rbuf_ = true;
  }
  io_uring_sqe* sqe = worker_.ring().GetSqe(&recv_cb_);
  io_uring_prep_recv(sqe, fd_.get(), target, len, 0);
  recv_in_flight_ = true;
}

void Connection::OnRecv(int32_t res) {
  recv_in_flight_ = false;
  cancel_requested_ = false;
  if (reading_done_) {  // stopped meanwhile: whatever arrived was never acknowledged
    if (pending_ != nullptr) {
      FreeOp(pending_);
      pending_ = nullptr;
    }
    Schedule();
    return;
  }
  if (res == -EAGAIN || res == -EINTR) {
    Schedule();
    return;
  }
  if (res <= 0) {
    if (res < 0 && res != -ECONNRESET && res != -ECANCELED) {
      LOG_WARN("connection %lu: recv: %s", (unsigned long)id_, std::strerror(-res));
    }
    if (pending_ != nullptr || tail_ > head_) {
      LOG_WARN("connection %lu: client went away in the middle of a request",
               (unsigned long)id_);
    }
    StopReading();
    return;
  }
  if (!recv_into_rbuf_) {
    BLOCKREP_CHECK(state_ == RecvState::kPayload && pending_ != nullptr);
    pending_->payload_got += static_cast<uint32_t>(res);
    if (pending_->payload_got == pending_->req.length) {
      state_ = RecvState::kHeader;
      Op* op = pending_;
      pending_ = nullptr;
      Dispatch(op);
    }
  } else {
    tail_ += static_cast<size_t>(res);
  }
  ProcessInput();
  Schedule();
}

void Connection::ProcessInput() {
  while (!reading_done_) {
    const size_t avail = tail_ - head_;
    if (state_ == RecvState::kDiscard) {
      const size_t n = avail < discard_left_ ? avail : static_cast<size_t>(discard_left_);
      head_ += n;
      discard_left_ -= n;
      if (discard_left_ > 0) break;
      state_ = RecvState::kHeader;
      continue;
    }
    if (state_ == RecvState::kPayload) {
      const size_t need = pending_->req.length - pending_->payload_got;
      const size_t n = avail < need ? avail : need;
      std::memcpy(pending_->buf + pending_->payload_got, rbuf_ + head_, n);
      head_ += n;
      pending_->payload_got += static_cast<uint32_t>(n);
      if (n < need) break;  // the rest is received straight into the op's buffer
      state_ = RecvState::kHeader;
      Op* op = pending_;
      pending_ = nullptr;
      Dispatch(op);
      continue;
    }
    if (Throttled() || avail < kRequestHeaderBytes) break;

    Request r;
    if (!ParseRequestHeader(rbuf_ + head_, &r)) {
      // Out of sync: nothing after this can be trusted. The spec allows a hard disconnect.
      LOG_WARN("connection %lu: bad request magic, disconnecting", (unsigned long)id_);
      StopReading();
      ::shutdown(fd_.get(), SHUT_RD);
      break;
    }
    head_ += kRequestHeaderBytes;
    if (r.type == kCmdDisc) {  // no reply; finish what is in flight, then close
      LOG_DEBUG("connection %lu: client disconnected", (unsigned long)id_);
      StopReading();
      break;
    }

    Op* op = new Op();
    op->conn = this;
    op->req = r;
    ++ops_in_flight_;
    const uint32_t error = ValidateRequest(r, session_, size_bytes_);
    if (error != 0) {
      if (r.type == kCmdWrite) {
        discard_left_ = r.length;
        state_ = RecvState::kDiscard;
      }
      char why[160];
      std::snprintf(why, sizeof(why), "invalid %s request: offset %llu, length %u, flags 0x%x",
                    CommandName(r.type), static_cast<unsigned long long>(r.offset), r.length,
                    r.flags);
      ReplyError(op, error, why);
      continue;
    }
    if (r.type == kCmdWrite) {
      op->buf_bytes = r.length;
      op->buf = worker_.pool().Get(r.length);
      bytes_in_flight_ += r.length;
      pending_ = op;
      state_ = RecvState::kPayload;
      continue;
    }
    Dispatch(op);
  }
  // Rewind only when no recv is landing at tail_ (see recv_into_rbuf_).
  if (head_ == tail_ && !(recv_in_flight_ && recv_into_rbuf_)) head_ = tail_ = 0;
}

void Connection::Dispatch(Op* op) {
  const Request& r = op->req;
  IoRing& ring = worker_.ring();
  const bool fua = (r.flags & kCmdFlagFua) != 0;
  switch (r.type) {
    case kCmdRead:
      op->buf_bytes = r.length;
      op->buf = worker_.pool().Get(r.length);
      bytes_in_flight_ += r.length;
      backend_->Read(ring, r.offset, r.length, op->buf, op);
      break;
    case kCmdWrite:
      backend_->Write(ring, r.offset, r.length, op->buf, fua, op);
      break;
    case kCmdFlush:
      backend_->Flush(ring, op);
      break;
    case kCmdTrim:
      backend_->Trim(ring, r.offset, r.length, fua, op);
      break;
    case kCmdWriteZeroes:
      backend_->WriteZeroes(ring, r.offset, r.length, !(r.flags & kCmdFlagNoHole),
                            (r.flags & kCmdFlagFastZero) != 0, fua, op);
      break;
    case kCmdBlockStatus: {
      std::vector<Extent> extents;
      const uint32_t max = (r.flags & kCmdFlagReqOne) ? 1 : kMaxBlockStatusExtents;
      Status st = backend_->BlockStatus(r.offset, r.length, max, &extents);
      if (!st.ok()) {
        ReplyError(op, kEio, st.ToString());
        break;
      }
      op->tail = BlockStatusPayload(kBaseAllocationContextId, extents);
      op->hdr_len = kStructuredReplyHeaderBytes;
      EncodeChunkHeader(op->hdr, kReplyFlagDone, kReplyTypeBlockStatus, r.cookie,
                        static_cast<uint32_t>(op->tail.size()));
      QueueReply(op);
      break;
    }
    default:
      BLOCKREP_CHECK(false && "validated request has an unknown type");
  }
}

void Connection::OnBackendDone(Op* op, int err) {
  const Request& r = op->req;
  if (err != 0) {
    ReplyError(op, ErrnoToNbdError(err),
               std::string(CommandName(r.type)) + " at offset " + std::to_string(r.offset) +
                   " failed: " + std::strerror(-err));
    return;
  }
  if (r.type == kCmdRead) {
    op->data = op->buf;
    op->data_len = r.length;
    if (session_.structured_replies) {
      op->hdr_len = kStructuredReplyHeaderBytes + 8;
      EncodeChunkHeader(op->hdr, kReplyFlagDone, kReplyTypeOffsetData, r.cookie, r.length + 8);
      StoreBe64(op->hdr + kStructuredReplyHeaderBytes, r.offset);
    } else {
      op->hdr_len = kSimpleReplyHeaderBytes;
      EncodeSimpleReply(op->hdr, 0, r.cookie);
    }
  } else {
    op->hdr_len = kSimpleReplyHeaderBytes;
    EncodeSimpleReply(op->hdr, 0, r.cookie);
  }
  QueueReply(op);
}

void Connection::ReplyError(Op* op, uint32_t error, const std::string& message) {
  LOG_DEBUG("connection %lu: %s", (unsigned long)id_, message.c_str());
  op->data = nullptr;
  op->data_len = 0;
  if (session_.structured_replies) {
    // The spec: with structured replies a READ must never get a simple reply, and errors
    // SHOULD carry a message.
    op->tail = ErrorChunkPayload(error, message);
    op->hdr_len = kStructuredReplyHeaderBytes;
    EncodeChunkHeader(op->hdr, kReplyFlagDone, kReplyTypeError, op->req.cookie,
                      static_cast<uint32_t>(op->tail.size()));
  } else {
    op->hdr_len = kSimpleReplyHeaderBytes;
    EncodeSimpleReply(op->hdr, error, op->req.cookie);
  }
  QueueReply(op);
}

void Connection::QueueReply(Op* op) {
  if (send_failed_) {
    FreeOp(op);
    return;
  }
  op->next = nullptr;
  if (send_tail_ != nullptr) {
    send_tail_->next = op;
  } else {
    send_head_ = op;
  }
  send_tail_ = op;
  Schedule();
}

void Connection::PostSend() {
  int n = 0;
  size_t skip = send_offset_;
  for (Op* op = send_head_; op != nullptr && n + 2 <= kMaxSendIovecs; op = op->next) {
    const uint8_t* second = op->data != nullptr ? op->data
                                                : reinterpret_cast<const uint8_t*>(op->tail.data());
    const size_t second_len = op->data != nullptr ? op->data_len : op->tail.size();
    // Only the first reply can be partly sent already.
    if (skip < op->hdr_len) {
      iov_[n++] = {op->hdr + skip, op->hdr_len - skip};
      skip = 0;
    } else {
      skip -= op->hdr_len;
    }
    if (second_len > skip) {
      iov_[n++] = {const_cast<uint8_t*>(second) + skip, second_len - skip};
    }
    skip = 0;
  }
  msg_ = {};
  msg_.msg_iov = iov_;
  msg_.msg_iovlen = static_cast<size_t>(n);
  io_uring_sqe* sqe = worker_.ring().GetSqe(&send_cb_);
  io_uring_prep_sendmsg(sqe, fd_.get(), &msg_, MSG_NOSIGNAL);
  send_in_flight_ = true;
}

void Connection::OnSend(int32_t res) {
  send_in_flight_ = false;
  if (res == -EAGAIN || res == -EINTR) {
    Schedule();
    return;
  }
  if (res < 0) {
    if (res != -EPIPE && res != -ECONNRESET) {
      LOG_WARN("connection %lu: send: %s", (unsigned long)id_, std::strerror(-res));
    }
    send_failed_ = true;
    while (send_head_ != nullptr) {
      Op* op = send_head_;
      send_head_ = op->next;
      FreeOp(op);
    }
    send_tail_ = nullptr;
    if (!reading_done_) StopReading();
    ::shutdown(fd_.get(), SHUT_RDWR);
    Schedule();
    return;
  }
  const bool was_throttled = Throttled();
  size_t sent = static_cast<size_t>(res) + send_offset_;
  while (send_head_ != nullptr && sent >= send_head_->reply_bytes()) {
    Op* op = send_head_;
    sent -= op->reply_bytes();
    send_head_ = op->next;
    FreeOp(op);
  }
  if (send_head_ == nullptr) send_tail_ = nullptr;
  send_offset_ = sent;
  if (was_throttled && !Throttled()) ProcessInput();
  Schedule();
}

void Connection::FreeOp(Op* op) {
  if (op->buf != nullptr) {
    worker_.pool().Put(op->buf, op->buf_bytes);
    bytes_in_flight_ -= op->buf_bytes;
  }
  --ops_in_flight_;
  delete op;
}

}  // namespace blockrep::nbd
