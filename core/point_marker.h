// The body of a recovery-point marker (journal marker subtype 1), in the source's journal
// and the target's alike: docs/formats/retention.md, "Recovery points". The same bytes
// travel as the data of the replication item POINT.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace blockrep {

struct PointMarker {
  enum class Type : uint8_t { kCrashConsistent = 1, kAppConsistent = 2 };
  uint64_t id = 0;       // source seq of the last record before the point
  uint64_t time_ns = 0;  // ns since the Unix epoch
  Type type = Type::kCrashConsistent;
  std::string label;     // UTF-8, at most kMaxLabelBytes
  bool operator==(const PointMarker&) const = default;

  static constexpr size_t kFixedBytes = 26;
  static constexpr size_t kMaxLabelBytes = 256;
};

// REQUIRES: label.size() <= kMaxLabelBytes.
std::string EncodePointMarker(const PointMarker& m);
// Corruption (naming what is wrong) for a body that is not a point marker's.
Result<PointMarker> DecodePointMarker(const uint8_t* body, size_t n);

}  // namespace blockrep
