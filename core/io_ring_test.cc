// Checks IoRing on a real io_uring: NOP completions reach their IoCompletion with the
// kernel's result, user_data 0 is ignored, a full submission queue is flushed rather than
// failing, and completions may queue new work while being dispatched.
#include "core/io_ring.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <atomic>
#include <cstdint>
#include <future>
#include <thread>
#include <memory>
#include <vector>

namespace blockrep {
namespace {

class Counter : public IoCompletion {
 public:
  void OnIoComplete(int32_t res) override {
    ++calls;
    last_res = res;
  }
  int calls = 0;
  int32_t last_res = -1;
};

std::unique_ptr<IoRing> MakeRing(unsigned entries) {
  auto r = IoRing::Create(entries);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Dispatches until `done()` holds, for at most `rounds` rounds.
template <typename Pred>
bool DispatchUntil(IoRing& ring, Pred done, int rounds = 1000) {
  for (int i = 0; i < rounds && !done(); ++i) {
    if (!ring.SubmitAndDispatch(1).ok()) return false;
  }
  return done();
}

TEST(IoRing, NopCompletesWithZero) {
  auto ring = MakeRing(8);
  ASSERT_NE(ring, nullptr);
  Counter c;
  io_uring_prep_nop(ring->GetSqe(&c));
  auto n = ring->SubmitAndDispatch(1);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), 1u);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.last_res, 0);
}

TEST(IoRing, NullCompletionIsCountedButNotCalled) {
  auto ring = MakeRing(8);
  ASSERT_NE(ring, nullptr);
  Counter c;
  io_uring_prep_nop(ring->GetSqe(nullptr));
  io_uring_prep_nop(ring->GetSqe(&c));
  unsigned total = 0;
  while (total < 2) {
    auto n = ring->SubmitAndDispatch(1);
    ASSERT_TRUE(n.ok());
    total += n.value();
  }
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(c.calls, 1);
}

TEST(IoRing, FullSubmissionQueueIsFlushedNotFailed) {
  auto ring = MakeRing(4);
  ASSERT_NE(ring, nullptr);
  std::vector<Counter> counters(13);  // more than the SQ (4) and the CQ (8) hold
  for (Counter& c : counters) io_uring_prep_nop(ring->GetSqe(&c));
  auto all_done = [&] {
    for (const Counter& c : counters) {
      if (c.calls == 0) return false;
    }
    return true;
  };
  ASSERT_TRUE(DispatchUntil(*ring, all_done));
  for (const Counter& c : counters) EXPECT_EQ(c.calls, 1);
}

// Queues a follow-up NOP from inside its own completion, `left` times.
class Chain : public IoCompletion {
 public:
  Chain(IoRing& ring, int left) : ring_(ring), left_(left) {}
  void OnIoComplete(int32_t) override {
    ++calls;
    if (--left_ > 0) io_uring_prep_nop(ring_.GetSqe(this));
  }
  int calls = 0;

 private:
  IoRing& ring_;
  int left_;
};

TEST(IoRing, CompletionMayQueueMoreWork) {
  auto ring = MakeRing(4);
  ASSERT_NE(ring, nullptr);
  Chain chain(*ring, 10);
  io_uring_prep_nop(ring->GetSqe(&chain));
  ASSERT_TRUE(DispatchUntil(*ring, [&] { return chain.calls == 10; }));
  EXPECT_EQ(chain.calls, 10);
}

TEST(IoRing, FailedOperationReportsNegativeErrno) {
  auto ring = MakeRing(8);
  ASSERT_NE(ring, nullptr);
  Counter c;
  char buf[16];
  io_uring_prep_read(ring->GetSqe(&c), -1, buf, sizeof(buf), 0);  // bad fd
  ASSERT_TRUE(DispatchUntil(*ring, [&] { return c.calls > 0; }));
  EXPECT_EQ(c.last_res, -EBADF);
}

TEST(IoRing, PostToItselfRunsTheCompletionWithTheGivenResult) {
  auto ring = MakeRing(8);
  ASSERT_NE(ring, nullptr);
  Counter c;
  ring->Post(*ring, &c, -ENOSPC);
  ASSERT_TRUE(DispatchUntil(*ring, [&] { return c.calls > 0; }));
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.last_res, -ENOSPC);
}

// The way a worker resumes an operation that belongs to another worker: the message wakes
// the other thread, which is blocked waiting on its own ring, and the completion runs there.
TEST(IoRing, PostWakesAnotherThreadWaitingOnItsRing) {
  std::promise<IoRing*> ready;
  std::atomic<std::thread::id> ran_on{};
  std::atomic<int32_t> got{0};
  struct Recorder : IoCompletion {
    std::atomic<std::thread::id>* ran_on;
    std::atomic<int32_t>* got;
    bool done = false;
    void OnIoComplete(int32_t res) override {
      *ran_on = std::this_thread::get_id();
      *got = res;
      done = true;
    }
  } rec;
  rec.ran_on = &ran_on;
  rec.got = &got;
  std::thread other([&] {
    auto r = MakeRing(8);
    ready.set_value(r.get());
    while (!rec.done) ASSERT_TRUE(r->SubmitAndDispatch(1).ok());
  });
  IoRing* target = ready.get_future().get();
  auto mine = MakeRing(8);
  ASSERT_NE(mine, nullptr);
  mine->Post(*target, &rec, 4242);
  mine->Submit();
  const std::thread::id other_id = other.get_id();
  other.join();
  EXPECT_EQ(got.load(), 4242);
  EXPECT_EQ(ran_on.load(), other_id);
  // The sender's own completion (the message was delivered) is reaped without trouble.
  EXPECT_TRUE(mine->SubmitAndDispatch(1).ok());
}

}  // namespace
}  // namespace blockrep
