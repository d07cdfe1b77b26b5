// LagTracker: replication lag (RPO) and throughput over a sliding window, for `blockrep
// status`. The shipper records a sample of the current lag every kSampleMs (the age of the
// oldest acknowledged write not yet durable on the target, 0 when there is none) and the
// bytes it ships; readers get the p50/p99 lag over the last minute and the rate over the
// last ten seconds.
//
// Thread-safety: internally locked; Sample/AddBytes from the shipper, the rest from anyone.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

namespace blockrep {

class LagTracker {
 public:
  static constexpr uint64_t kSampleMs = 100;
  static constexpr uint64_t kLagWindowMs = 60000;
  static constexpr uint64_t kRateWindowMs = 10000;

  // now_ms: a monotonic clock in ms. Samples closer than kSampleMs to the last are ignored.
  void Sample(uint64_t now_ms, uint64_t lag_ms);
  void AddBytes(uint64_t now_ms, uint64_t bytes);

  struct Summary {
    std::optional<uint64_t> lag_ms;      // the latest sample
    std::optional<uint64_t> lag_p50_ms;  // over the window (none without samples)
    std::optional<uint64_t> lag_p99_ms;
    uint64_t lag_max_ms = 0;
    uint64_t samples = 0;
    uint64_t bytes_per_s = 0;            // over the rate window
  };
  Summary Summarize(uint64_t now_ms) const;
  // Forgets the lag samples (the lag means nothing while a resync runs).
  void ResetLag();

 private:
  void Trim(uint64_t now_ms);

  mutable std::mutex mu_;
  std::deque<std::pair<uint64_t, uint64_t>> lag_;    // (time, lag), oldest first
  std::deque<std::pair<uint64_t, uint64_t>> bytes_;  // (time rounded to 100 ms, bytes)
};

}  // namespace blockrep
