// IoRing: one io_uring, owned and driven by one thread (the pattern of liburing's
// examples/io_uring-cp.c and proxy.c: prepare a batch, submit once, reap all completions,
// advance once).
//
// Every SQE carries a pointer to an IoCompletion in user_data; the owner's loop calls
// IoCompletion::OnIoComplete(res) for each CQE, where res is the byte count or -errno exactly
// as the kernel returned it (callers handle res < 0, -EAGAIN, -ECANCELED, short transfers).
// user_data 0 marks SQEs whose completion is ignored (cancellations).
//
// Thread-safety: none. REQUIRES: all calls on the thread that created the ring.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "core/status.h"

namespace blockrep {

class IoCompletion {
 public:
  virtual void OnIoComplete(int32_t res) = 0;

 protected:
  ~IoCompletion() = default;
};

class IoRing {
 public:
  // Submission-queue depth. Completions can outnumber it (the CQ ring is twice as large and
  // the kernel buffers overflow), so this only bounds one batch.
  static constexpr unsigned kDefaultEntries = 512;

  static Result<std::unique_ptr<IoRing>> Create(unsigned entries = kDefaultEntries);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // Returns a zeroed SQE whose user_data is `completion`. When the SQ is full it submits
  // what is queued first, so it never fails for a live ring.
  io_uring_sqe* GetSqe(IoCompletion* completion);

  // Submits queued SQEs and waits until at least `wait_nr` completions are ready, then
  // dispatches every ready completion. Returns the number dispatched, or an error if
  // io_uring_enter itself failed (not counting -EINTR, which returns 0).
  Result<unsigned> SubmitAndDispatch(unsigned wait_nr);

  // Submits queued SQEs without waiting.
  void Submit();

  // Makes `completion->OnIoComplete(res)` run on the thread that owns `target` (which may be
  // this ring), through IORING_OP_MSG_RING: the way one worker resumes an operation that
  // belongs to another worker's ring. REQUIRES: called on this ring's owner thread; target
  // outlives the message.
  void Post(IoRing& target, IoCompletion* completion, int32_t res);

  // True when the kernel accepted IORING_SETUP_DEFER_TASKRUN (a cheaper completion path).
  bool deferred_taskrun() const { return deferred_taskrun_; }

 private:
  IoRing() = default;
  io_uring ring_{};
  // Completions for the source side of Post (their result only matters when it failed).
  struct PostSent : IoCompletion {
    void OnIoComplete(int32_t res) override;
  };
  PostSent post_sent_;
  bool deferred_taskrun_ = false;
};

}  // namespace blockrep
