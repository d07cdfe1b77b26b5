// PointCatalog: a replica's recovery points, the file STATE_DIR/replicas/NAME/points.log
// specified in docs/formats/retention.md ("points.log"): append-only 64-byte entries, each
// with its own checksum; rewritten whole (temporary file, fdatasync, rename, directory
// fsync) when points are dropped.
//
// Loading stops at the first entry that does not verify, when it is the last one (an append
// torn by a crash: the catalog is then rebuilt from the journal's point markers by the
// caller); one that does not verify with valid entries after it is corruption.
//
// Thread-safety: none; the replica's owner serializes calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

struct RecoveryPoint {
  enum class Type : uint8_t { kCrashConsistent = 1, kAppConsistent = 2 };
  Type type = Type::kCrashConsistent;
  uint64_t id = 0;          // source seq of the last record before the point
  uint64_t target_seq = 0;  // seq of the point's marker in the target journal
  uint64_t time_ns = 0;     // ns since the Unix epoch
  uint64_t lag_ns = 0;      // the point's time minus its newest write's timestamp
  std::string label;        // at most kLabelBytes bytes are kept

  static constexpr size_t kLabelBytes = 16;
  bool operator==(const RecoveryPoint&) const = default;
};

const char* RecoveryPointTypeName(RecoveryPoint::Type type);  // "crash", "app"

class PointCatalog {
 public:
  static constexpr size_t kEntryBytes = 64;
  static constexpr uint32_t kMagic = 0x54505242;  // "BRPT"

  struct Loaded {
    std::vector<RecoveryPoint> points;
    bool torn_tail = false;  // the last entry did not verify and was dropped
  };

  // Opens (creating it empty when missing) and loads path. A torn last entry is cut off
  // the file (so the next append lands where it should) and reported in torn_tail.
  static Result<std::unique_ptr<PointCatalog>> Open(const std::string& path, Loaded* loaded);

  // Appends one point and fdatasyncs. REQUIRES: target_seq larger than every earlier one.
  Status Append(const RecoveryPoint& point);
  // Replaces the whole catalog with `points` (oldest first), atomically.
  Status Rewrite(const std::vector<RecoveryPoint>& points);

  static void Encode(const RecoveryPoint& p, uint8_t out[kEntryBytes]);
  // False when the entry does not verify (magic, checksum, type, reserved bytes).
  static bool Decode(const uint8_t in[kEntryBytes], RecoveryPoint* p);

 private:
  explicit PointCatalog(std::string path) : path_(std::move(path)) {}
  std::string path_;
  UniqueFd fd_;
  uint64_t end_ = 0;  // bytes of whole entries
};

}  // namespace blockrep
