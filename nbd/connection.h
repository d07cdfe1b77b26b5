// Connection: one client in the transmission phase, driven by its worker's io_uring loop.
//
// Requests are parsed from a receive buffer, validated once, and dispatched to the export's
// Backend without waiting for earlier ones; each reply is queued when its operation
// completes, so replies go out in completion order. Queued replies leave in batches (one
// sendmsg per loop round). A write's payload is read straight into its own buffer once its
// header is known; a rejected write's payload is read and dropped so the stream stays in
// sync.
//
// Backpressure: past kMaxRequestsInFlight requests or kMaxBytesInFlight bytes of buffers the
// connection stops parsing (and, once its receive buffer fills, stops reading), so a fast
// client cannot make the server allocate without bound.
//
// Lifetime: owned by its Worker; all methods run on the worker thread. The connection ends
// when reading has stopped (EOF, NBD_CMD_DISC, a bad magic, Stop()) and every request it
// accepted has completed and had its reply sent (or the socket failed); then finished() is
// true and the worker deletes it.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>

#include "core/unique_fd.h"
#include "nbd/handshake.h"
#include "nbd/request.h"

namespace blockrep::nbd {

class Worker;

class Connection {
 public:
  // Bytes read from the socket at once; requests are parsed out of this buffer.
  static constexpr size_t kRecvBufferBytes = 256 * 1024;
  // Requests accepted but not yet answered. Deeper than any client's queue (qemu 16, fio
  // iodepth, nbdcopy 64), so this only bounds a misbehaving one.
  static constexpr uint32_t kMaxRequestsInFlight = 512;
  // Buffer bytes held by those requests: bounds memory per connection at about this plus
  // one maximal request.
  static constexpr uint64_t kMaxBytesInFlight = 128ull << 20;
  // iovecs in one sendmsg (Linux IOV_MAX is 1024; two per reply).
  static constexpr int kMaxSendIovecs = 128;

  Connection(Worker& worker, UniqueFd fd, const Session& session, uint64_t id);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Server shutdown: read no more requests; finish and answer the ones already read.
  void Stop();
  // Called by the worker once per loop round after completions: posts the socket I/O the
  // round made necessary (one sendmsg for all queued replies, the next recv).
  void Flush();
  bool finished() const;
  uint64_t id() const { return id_; }

 private:
  struct Op;
  template <void (Connection::*M)(int32_t)>
  struct Callback : IoCompletion {
    Connection* c = nullptr;
    void OnIoComplete(int32_t res) override { (c->*M)(res); }
  };
  enum class RecvState { kHeader, kPayload, kDiscard };

  void OnRecv(int32_t res);
  void OnSend(int32_t res);
  void ProcessInput();
  void Dispatch(Op* op);
  void OnBackendDone(Op* op, int err);
  void ReplyError(Op* op, uint32_t error, const std::string& message);
  void QueueReply(Op* op);
  void FreeOp(Op* op);
  void PostRecv();
  void PostSend();
  void StopReading();
  bool Throttled() const;
  void Schedule();

  Worker& worker_;
  UniqueFd fd_;
  Session session_;
  Backend* backend_;
  uint64_t size_bytes_;
  uint64_t id_;

  uint8_t* rbuf_;
  size_t head_ = 0, tail_ = 0;  // unparsed bytes are rbuf_[head_, tail_)
  RecvState state_ = RecvState::kHeader;
  Op* pending_ = nullptr;       // write whose payload is being received (kPayload)
  uint64_t discard_left_ = 0;   // payload bytes of a rejected write still to drop (kDiscard)
  bool reading_done_ = false;
  bool recv_in_flight_ = false;
  // Where the posted recv lands: rbuf_ at tail_, or pending_'s payload buffer. Fixed when the
  // recv is posted: ProcessInput may run meanwhile (replies freed a throttled connection) and
  // change state_, but must leave rbuf_[tail_, end) alone until the recv completes.
  bool recv_into_rbuf_ = true;
  bool cancel_requested_ = false;

  uint32_t ops_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;

  Op* send_head_ = nullptr;     // replies waiting to be sent, in completion order
  Op* send_tail_ = nullptr;
  size_t send_offset_ = 0;      // bytes of send_head_'s reply already sent
  bool send_in_flight_ = false;
  bool send_failed_ = false;
  iovec iov_[kMaxSendIovecs];
  msghdr msg_{};

  bool scheduled_ = false;      // queued for Flush() this round (owned by the worker)

  Callback<&Connection::OnRecv> recv_cb_;
  Callback<&Connection::OnSend> send_cb_;
  friend class Worker;
};

}  // namespace blockrep::nbd
