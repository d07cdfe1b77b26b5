// DiskState: what blockrep-source remembers about one protected disk between runs, in
// STATE_DIR/disks/NAME/state.json (docs/formats/disk-state.md). Written atomically (temp
// file, fdatasync, rename, directory fsync) at every change of mode and at a clean stop.
// Read by the daemon at start and by `blockrep journal ...` for operators.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace blockrep {

enum class DiskMode {
  kJournaling,  // every change is in the journal
  kBitmap,      // changes are tracked in the dirty bitmap; a resync is required
};
const char* DiskModeName(DiskMode mode);  // "journaling", "bitmap"

struct DiskState {
  static constexpr int kVersion = 1;

  std::string disk;            // the disk's name
  std::string path;            // its backing file or device when last served
  uint64_t disk_bytes = 0;
  DiskMode mode = DiskMode::kJournaling;
  // Why the disk left journaling, for operators ("journal passed its budget of 64 MiB").
  std::string reason;
  // An error that needs an operator (a corrupt journal); empty when none. The disk is still
  // served; the replica needs a full resync.
  std::string error;
  std::string since;           // when mode/error last changed, UTC, RFC 3339
  uint64_t next_seq = 1;       // no journal record will have a smaller seq
  bool clean_shutdown = false; // the daemon stopped cleanly after writing this
  // A resync runs: the disk journals again, and the bitmap's regions are being compared
  // with the replica (WritePath::BeginResync). Absent in older files: false.
  bool resyncing = false;
  // The disk's identity for replication: 32 lowercase hex digits, random, chosen when the
  // disk was first protected, and its generation (a failover starts a new one). Absent in
  // files from before replication: the daemon chooses an id then.
  std::string disk_id;
  uint64_t generation = 1;

  bool resync_required() const { return mode == DiskMode::kBitmap || resyncing || !error.empty(); }

  // JSON text (one object, keys as in the spec).
  std::string ToJson() const;
  static Result<DiskState> FromJson(const std::string& text, const std::string& where);

  static Result<DiskState> Load(const std::string& path);
  Status Save(const std::string& path) const;
};

// The current UTC time as RFC 3339, e.g. "2026-11-24T03:24:34Z".
std::string NowRfc3339();

}  // namespace blockrep
