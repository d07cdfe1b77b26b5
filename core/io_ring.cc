#include "core/io_ring.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/check.h"

namespace blockrep {

Result<std::unique_ptr<IoRing>> IoRing::Create(unsigned entries) {
  std::unique_ptr<IoRing> ring(new IoRing());
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  // SINGLE_ISSUER: only the owning thread submits, which lets the kernel skip locking.
  // DEFER_TASKRUN: completion work runs when we enter the kernel to wait, not by interrupting
  // the thread mid-loop; it needs SINGLE_ISSUER (Linux 6.1). COOP_TASKRUN is the older,
  // weaker form (5.19). Probe the best and fall back.
  const unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  int rc = -EINVAL;
  for (unsigned flags : kFlagSets) {
    std::memset(&params, 0, sizeof(params));
    params.flags = flags;
    rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
    if (rc == 0) {
      ring->deferred_taskrun_ = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      return ring;
    }
    if (rc != -EINVAL) break;
  }
  return Status::FromErrno(rc, "io_uring_queue_init");
}

IoRing::~IoRing() { io_uring_queue_exit(&ring_); }

io_uring_sqe* IoRing::GetSqe(IoCompletion* completion) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  BLOCKREP_CHECK(sqe != nullptr);
  io_uring_sqe_set_data(sqe, completion);
  return sqe;
}

void IoRing::Submit() { io_uring_submit(&ring_); }

void IoRing::Post(IoRing& target, IoCompletion* completion, int32_t res) {
  io_uring_sqe* sqe = GetSqe(&post_sent_);
  // The target's CQE carries len as res and data as user_data.
  io_uring_prep_msg_ring(sqe, target.ring_.ring_fd, static_cast<unsigned>(res),
                         reinterpret_cast<uint64_t>(completion), 0);
}

void IoRing::PostSent::OnIoComplete(int32_t res) {
  // A lost wake-up would strand an operation (and its client) forever; the target ring is
  // alive by contract, so failure here is a programmer error.
  if (res < 0) {
    std::fprintf(stderr, "io_uring msg_ring failed: %s\n", std::strerror(-res));
    std::abort();
  }
}

Result<unsigned> IoRing::SubmitAndDispatch(unsigned wait_nr) {
  int rc = io_uring_submit_and_wait(&ring_, wait_nr);
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    return Status::FromErrno(rc, "io_uring_submit_and_wait");
  }
  unsigned dispatched = 0;
  // Completions may queue new SQEs (and, rarely, submit them when the SQ fills); that is
  // safe while we walk the CQ because we only advance past the entries we have consumed.
  while (true) {
    io_uring_cqe* cqe = nullptr;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      auto* completion = static_cast<IoCompletion*>(io_uring_cqe_get_data(cqe));
      int32_t res = cqe->res;
      ++seen;
      // Callbacks never reap, so advancing once after the walk is safe.
      if (completion != nullptr) completion->OnIoComplete(res);
    }
    if (seen == 0) break;
    io_uring_cq_advance(&ring_, seen);
    dispatched += seen;
  }
  return dispatched;
}

}  // namespace blockrep
