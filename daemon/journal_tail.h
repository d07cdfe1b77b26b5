// JournalTail: reads one disk's HRL journal in seq order while the write path appends to it,
// for the shipper (daemon/shipper.h).
//
// It returns only records that have completed (seq < the caller's limit, the write path's
// lowest pending seq), verifies each one's checksum, and accounts for every seq: a seq with
// no record is fine only if a void marker forgives it (IsVoided); any other missing or
// failing record below the limit had completed, so it is corruption, and Next() says where
// ("journal segment 0000000000000001.hrl offset 8256: record seq 7 fails its checksum").
// The rules are those of docs/formats/journal.md, "Reading", applied to a live journal.
//
// Reads go through a window of up to kWindowBytes (the journal is mostly in the page
// cache), refreshed whenever it was read before the records now wanted had completed.
//
// Thread-safety: none; one shipper thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

class JournalTail {
 public:
  static constexpr size_t kWindowBytes = 4u << 20;

  JournalTail(std::string journal_dir, uint64_t journal_id,
              std::function<bool(uint64_t)> is_voided)
      : dir_(std::move(journal_dir)), journal_id_(journal_id), is_voided_(std::move(is_voided)) {}

  // Positions the reader so that the next record returned is the first with seq >= seq.
  // NotFound when the journal no longer holds seq (its oldest segment starts later).
  Status Seek(uint64_t seq);

  struct Record {
    journal::RecordHeader header;
    const uint8_t* payload = nullptr;  // header.payload_bytes bytes, valid until the next call
  };
  enum class Got { kRecord, kWait };
  // The next record, if it has completed (seq < limit): kRecord and *out. kWait when the
  // next seq is not below limit yet. A Corruption status when a completed record is
  // missing or does not verify (the reader stays where it was).
  Result<Got> Next(uint64_t limit, Record* out);

  // The seq the reader expects next (every seq below it has been returned or forgiven).
  uint64_t next_seq() const { return next_; }

 private:
  Status OpenSegment(uint64_t first_seq, const std::string& name);
  Status RefreshSegments();
  // Bytes [offset, offset + n) of the current segment, read fresh if the window does not
  // hold them or was read under an older limit. nullptr (and *eof) past the end of the file.
  Result<const uint8_t*> Bytes(uint64_t offset, size_t n, uint64_t limit, bool* eof);
  // A record that verifies at offset, with a seq in [min_seq, limit).
  Result<bool> RecordAt(uint64_t offset, uint64_t min_seq, uint64_t limit, Record* out);
  // Every seq in [from, to) is voided (or below skip_below_).
  bool AllForgiven(uint64_t from, uint64_t to) const;
  std::string Where(uint64_t offset) const;

  std::string dir_;
  uint64_t journal_id_;
  std::function<bool(uint64_t)> is_voided_;

  std::vector<std::pair<uint64_t, std::string>> segments_;  // (first seq, name), seq order
  size_t seg_index_ = 0;
  bool have_segment_ = false;
  UniqueFd fd_;
  uint64_t pos_ = 0;
  uint64_t next_ = 1;
  uint64_t skip_below_ = 0;  // records below this seq are read past, not returned

  std::vector<uint8_t> window_;
  uint64_t window_offset_ = 0;
  size_t window_bytes_ = 0;
  uint64_t window_limit_ = 0;  // the limit when the window was read
};

}  // namespace blockrep
