// The retry schedule for transient replication errors (../shared/DESIGN.md, "Errors and
// retries"): wait 1, 2, 4, 8 and 10 units after the first five failures in a row, then 30
// units after every later one. The unit is a minute by default and configurable
// (`retry_unit`), so that tests run the same schedule in fractions of a second.
#pragma once

#include <cstdint>

namespace blockrep {

// Units to wait after the n-th failure in a row (n >= 1).
inline uint32_t RetryDelayUnits(uint32_t failures) {
  static constexpr uint32_t kSchedule[] = {1, 2, 4, 8, 10};
  static constexpr uint32_t kThereafter = 30;
  if (failures == 0) return 0;
  return failures <= 5 ? kSchedule[failures - 1] : kThereafter;
}

// Default unit: one minute.
inline constexpr uint64_t kDefaultRetryUnitMs = 60000;

}  // namespace blockrep
