#include "core/lag_tracker.h"

#include <algorithm>
#include <vector>

namespace blockrep {

void LagTracker::Trim(uint64_t now_ms) {
  while (!lag_.empty() && lag_.front().first + kLagWindowMs < now_ms) lag_.pop_front();
  while (!bytes_.empty() && bytes_.front().first + kRateWindowMs < now_ms) bytes_.pop_front();
}

void LagTracker::Sample(uint64_t now_ms, uint64_t lag_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!lag_.empty() && now_ms < lag_.back().first + kSampleMs) return;
  lag_.emplace_back(now_ms, lag_ms);
  Trim(now_ms);
}

void LagTracker::AddBytes(uint64_t now_ms, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t slot = now_ms - now_ms % kSampleMs;
  if (!bytes_.empty() && bytes_.back().first == slot) {
    bytes_.back().second += bytes;
  } else {
    bytes_.emplace_back(slot, bytes);
  }
  Trim(now_ms);
}

void LagTracker::ResetLag() {
  std::lock_guard<std::mutex> lock(mu_);
  lag_.clear();
}

LagTracker::Summary LagTracker::Summarize(uint64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mu_);
  Summary s;
  std::vector<uint64_t> lags;
  for (const auto& [t, lag] : lag_) {
    if (t + kLagWindowMs >= now_ms) lags.push_back(lag);
  }
  if (!lag_.empty()) s.lag_ms = lag_.back().second;
  if (!lags.empty()) {
    std::sort(lags.begin(), lags.end());
    // Nearest rank: the smallest sample at or above the given fraction of the samples.
    auto rank = [&lags](uint64_t percent) {
      size_t i = (lags.size() * percent + 99) / 100;
      return lags[std::min(lags.size(), std::max<size_t>(i, 1)) - 1];
    };
    s.lag_p50_ms = rank(50);
    s.lag_p99_ms = rank(99);
    s.lag_max_ms = lags.back();
    s.samples = lags.size();
  }
  uint64_t total = 0;
  uint64_t oldest = now_ms;
  for (const auto& [t, b] : bytes_) {
    if (t + kRateWindowMs >= now_ms) {
      total += b;
      oldest = std::min(oldest, t);
    }
  }
  // Over the whole window once it is full, over the time since the first byte before that.
  const uint64_t span_ms = std::max<uint64_t>(std::min(kRateWindowMs, now_ms - oldest + kSampleMs), 1000);
  s.bytes_per_s = total * 1000 / span_ms;
  return s;
}

}  // namespace blockrep
