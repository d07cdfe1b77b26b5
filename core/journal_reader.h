// Journal reading: walks a disk's HRL journal segments in order, verifies every record, and
// tells torn records (in flight at a crash, never acknowledged: dropped) from corruption (a
// record that had completed but no longer verifies: never skipped). The rules are those of
// docs/formats/journal.md, "Reading: torn records and corruption".
//
// Used by the source daemon's restart (replay), by `blockrep journal dump/verify`, and later
// by the shipper. Reads with pread into a bounded window, so memory stays small whatever the
// journal's size.
//
// Thread-safety: a plain function; safe to run while a writer appends (it then sees a prefix;
// records still in flight may look torn).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/status.h"

namespace blockrep::journal {

struct RecordView {
  RecordHeader header;
  const uint8_t* payload = nullptr;  // header.payload_bytes bytes; valid during the callback
  const std::string* segment = nullptr;  // segment file name
  uint64_t file_offset = 0;          // offset of the record header in the segment
};

struct SegmentSummary {
  std::string name;
  uint64_t first_seq = 0;
  uint64_t file_bytes = 0;
  uint64_t records = 0;         // verified records
  uint64_t last_seq = 0;        // of the last verified record; 0 when none
  uint64_t end_offset = 0;      // just past the last verified record
  uint64_t torn_tail_bytes = 0; // non-zero bytes after end_offset that hold no record
  bool header_torn = false;     // last segment only: its header never finished
};

// Seqs missing between two verified records, and where their bytes should have been.
struct Gap {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::string segment;
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

struct ScanSummary {
  std::vector<SegmentSummary> segments;
  uint64_t records = 0;
  uint64_t first_seq = 0;   // of the first verified record (0 when none)
  uint64_t last_seq = 0;    // of the last verified record (0 when none)
  // H of the format spec: the largest lowest-pending-seq of any verified record. A missing
  // seq below it had completed; at or above it, it may have been in flight.
  uint64_t horizon = 0;
  std::vector<Gap> gaps;
  std::vector<uint64_t> voided;          // seqs void markers forgive, sorted
  std::vector<uint64_t> dropped;         // missing seqs >= horizon: torn, never acknowledged
  uint64_t checkpoint_applied_below = 0; // of the last flush checkpoint (0: none)
  // Set when the journal is corrupt: names the segment, the byte offset and what is wrong.
  std::optional<std::string> corruption;
};

// Called for each verified record, in seq order, from `from_seq` on. A non-OK Status stops
// the scan and is returned.
using RecordVisitor = std::function<Status(const RecordView&)>;

struct ScanOptions {
  uint64_t journal_id = 0;
  uint64_t visit_from_seq = 0;
  RecordVisitor visitor;   // may be empty
  // Do not even read segments wholly before visit_from_seq (a replay after a full scan has
  // verified them); the summary then covers only what was read.
  bool skip_segments_below_visit = false;
};

// Scans every segment file (NNNNNNNNNNNNNNNN.hrl) in journal_dir. An error Status means the
// scan itself failed (unreadable directory or file); a corrupt journal is an OK result with
// `corruption` set (the scan still reports everything it could read).
Result<ScanSummary> ScanJournal(const std::string& journal_dir, const ScanOptions& options);

// Reads and verifies journal.meta (the journal's id and disk size).
Result<JournalMeta> ReadJournalMeta(const std::string& path);

// Segment file names in journal_dir, in seq order, with their first seqs.
Result<std::vector<std::pair<uint64_t, std::string>>> ListSegments(const std::string& journal_dir);

}  // namespace blockrep::journal
