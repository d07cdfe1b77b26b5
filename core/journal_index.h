// Journal segment indexes (docs/formats/retention.md, "The index"): for a sealed segment
// NNNNNNNNNNNNNNNN.hrl, the file NNNNNNNNNNNNNNNN.idx lists every record's seq, range, kind
// and where its payload is, so that a view of a recovery point is built from a few bytes per
// record instead of reading (and verifying) every payload again.
//
// An index is a cache of a segment that was verified when it was built: a missing, short or
// corrupt one is rebuilt from the segment.
//
// Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/status.h"

namespace blockrep::journal {

inline constexpr uint32_t kIndexMagic = 0x58495242;  // "BRIX"
inline constexpr uint32_t kIndexVersion = 1;
inline constexpr size_t kIndexHeaderBytes = 64;
inline constexpr size_t kIndexEntryBytes = 48;

struct IndexEntry {
  uint64_t seq = 0;
  uint64_t offset = 0;        // disk offset
  uint64_t length = 0;
  uint64_t payload_offset = 0;  // in the segment file (writes), else 0
  RecordKind kind = RecordKind::kWrite;
  uint16_t flags = 0;
  MarkerType marker = MarkerType::kNone;
  uint64_t timestamp_ns = 0;
  bool operator==(const IndexEntry&) const = default;
};

struct SegmentIndex {
  uint64_t first_seq = 0;      // the segment's (from its name)
  uint64_t segment_bytes = 0;  // its size when indexed
  std::vector<IndexEntry> entries;  // seq order
};

struct RecordView;
// The index entry of a record as a journal scan sees it.
IndexEntry IndexEntryOf(const RecordView& r);

// "0000000000000001.idx" for "0000000000000001.hrl".
std::string IndexNameFor(const std::string& segment_name);

// Writes journal_dir/NAME.idx for the segment (temporary file, fdatasync, rename).
Status WriteSegmentIndex(const std::string& journal_dir, const std::string& segment_name,
                         uint64_t journal_id, const SegmentIndex& index);

// Reads and checks an index: its header checksum (seeded with journal_id), version, first
// seq, the segment's current size (an index of a segment that has since grown is stale),
// the entry count and the entries' checksum. NotFound when there is none; Corruption when
// it does not check out (the caller rebuilds it).
Result<SegmentIndex> ReadSegmentIndex(const std::string& journal_dir, const std::string& segment_name,
                                      uint64_t journal_id);

// Indexes every segment of journal_dir except the newest (which may still grow) that has no
// valid index, from one verifying scan. Returns how many indexes it wrote. A corrupt journal
// is an error naming where (nothing is indexed past the corruption).
Result<int> IndexSealedSegments(const std::string& journal_dir, uint64_t journal_id);

}  // namespace blockrep::journal
