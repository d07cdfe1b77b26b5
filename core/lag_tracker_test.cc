// LagTracker: the p50/p99 lag over the last minute and the byte rate over the last ten
// seconds, from samples at known (made-up) times; no clock or sleep is involved.
#include "core/lag_tracker.h"

#include <gtest/gtest.h>

#include "core/retry_schedule.h"

namespace blockrep {
namespace {

TEST(LagTrackerTest, NoSamplesNoLag) {
  LagTracker t;
  auto s = t.Summarize(1000);
  EXPECT_FALSE(s.lag_ms.has_value());
  EXPECT_FALSE(s.lag_p99_ms.has_value());
  EXPECT_EQ(s.bytes_per_s, 0u);
}

TEST(LagTrackerTest, PercentilesOverTheWindow) {
  LagTracker t;
  // 100 samples, 100 ms apart: lags 1..100 ms.
  for (uint64_t i = 1; i <= 100; ++i) t.Sample(i * 100, i);
  auto s = t.Summarize(100 * 100);
  EXPECT_EQ(*s.lag_ms, 100u);
  EXPECT_EQ(*s.lag_p50_ms, 50u);
  EXPECT_EQ(*s.lag_p99_ms, 99u);
  EXPECT_EQ(s.lag_max_ms, 100u);
  EXPECT_EQ(s.samples, 100u);
}

TEST(LagTrackerTest, SamplesOlderThanAMinuteDropOut) {
  LagTracker t;
  t.Sample(0, 5000);  // a spike, long ago
  for (uint64_t ms = 61000; ms <= 70000; ms += 100) t.Sample(ms, 10);
  auto s = t.Summarize(70000);
  EXPECT_EQ(*s.lag_p99_ms, 10u);
  EXPECT_EQ(s.lag_max_ms, 10u);
}

TEST(LagTrackerTest, SamplesCloserThanThePeriodAreIgnored) {
  LagTracker t;
  t.Sample(1000, 1);
  t.Sample(1050, 999);
  EXPECT_EQ(t.Summarize(1100).samples, 1u);
}

TEST(LagTrackerTest, RateOverTheLastTenSeconds) {
  LagTracker t;
  for (uint64_t ms = 0; ms < 20000; ms += 100) t.AddBytes(ms, 1000);  // 10 KB/s
  EXPECT_NEAR(static_cast<double>(t.Summarize(20000).bytes_per_s), 10000.0, 200.0);
}

TEST(LagTrackerTest, ResetLagKeepsTheRate) {
  LagTracker t;
  t.Sample(100, 7);
  t.AddBytes(100, 5000);
  t.ResetLag();
  auto s = t.Summarize(200);
  EXPECT_FALSE(s.lag_ms.has_value());
  EXPECT_GT(s.bytes_per_s, 0u);
}

TEST(RetryScheduleTest, OneTwoFourEightTenThenThirty) {
  const uint32_t want[] = {1, 2, 4, 8, 10, 30, 30, 30};
  for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(RetryDelayUnits(i + 1), want[i]) << "failure " << i + 1;
  EXPECT_EQ(RetryDelayUnits(1000), 30u);
}

}  // namespace
}  // namespace blockrep
