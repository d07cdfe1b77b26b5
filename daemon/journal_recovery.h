// Journal recovery at start: the restart rules of docs/formats/journal.md.
//
//   1. Scan every segment and verify every record (journal::ScanJournal).
//   2. A corrupt journal (a record that had completed no longer verifies, a segment missing
//      from the middle, ...) is reported, not repaired: the backing disk is left untouched
//      (replaying records on either side of a hole could roll a region back), and the caller
//      puts the disk in an error state that needs a full resync.
//   3. Otherwise the records from the last flush checkpoint on are replayed into the
//      backing disk in seq order (writes, zeroes, trims; markers have no effect), so disk and
//      journal agree whatever the crash lost of the disk's page cache, and the disk is
//      fdatasync'ed. Records dropped as torn were never acknowledged.
//
// Synchronous (pread/pwrite): it runs before the disk is served.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dirty_bitmap.h"
#include "core/journal_reader.h"
#include "core/status.h"

namespace blockrep {

struct RecoveryReport {
  journal::ScanSummary scan;
  uint64_t replayed_records = 0;
  uint64_t replayed_bytes = 0;  // disk bytes changed by replay (writes, zeroes, trims)
  uint64_t replay_from_seq = 0;
};

// Scans journal_dir and, if `replay` and it is not corrupt, replays into the open backing
// disk fd. A disk in bitmap mode must not replay: a journal left behind by a crash during the
// switch holds only changes from before it, and replaying them would roll back regions
// written since. coverage (sized for the disk) gets every region a verified record touches.
// An error Status means recovery could not run (I/O error); corruption is reported in
// report.scan.corruption.
Result<RecoveryReport> RecoverJournal(const std::string& journal_dir, uint64_t journal_id,
                                      int backing_fd, uint64_t disk_bytes, bool replay,
                                      DirtyBitmap* coverage);

}  // namespace blockrep
