// Clocks in the units the journal, the wire and the lag tracker use.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace blockrep {

// A timespec (a clock reading, a file's mtime or ctime) in ns.
inline uint64_t NsOf(const timespec& t) {
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// ns since the Unix epoch (CLOCK_REALTIME): record and point timestamps.
inline uint64_t WallClockNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return NsOf(ts);
}

// ms of a steady clock: timeouts and intervals.
inline uint64_t MonotonicMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace blockrep
