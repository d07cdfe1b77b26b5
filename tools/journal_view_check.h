// JournalViewCheck: does the backing disk hold what the journal says it should?
//
// For every byte some journal record changed, the newest such record decides what the disk
// must hold there: its payload (write), zeroes (zero); a trim leaves the bytes unspecified and
// is not checked, but still hides older records. Bytes no record touched are not checked.
// `blockrep journal verify --backing PATH` runs it, and the crash tests use it to show that a
// restarted daemon's disk equals the journal's view.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep {

struct ViewMismatch {
  uint64_t offset = 0;   // first differing byte on the disk
  uint64_t length = 0;   // of the checked piece it lies in
  uint64_t seq = 0;      // the record that decides these bytes
  std::string segment;
  uint64_t file_offset = 0;
};

struct ViewCheckResult {
  uint64_t records_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<ViewMismatch> mismatches;  // at most kMaxReported
  uint64_t mismatch_count = 0;
  static constexpr size_t kMaxReported = 20;
};

// journal_dir holds the segments (a journal that does not verify is an error here: run
// `journal verify` without --backing first). backing_path is the disk's file or device.
Result<ViewCheckResult> CheckJournalView(const std::string& journal_dir, uint64_t journal_id,
                                         const std::string& backing_path);

}  // namespace blockrep
