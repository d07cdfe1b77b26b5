// JournalWriter: the appending side of one disk's HRL journal (docs/formats/journal.md):
// sequence numbers, space in segment files, the set of records still in flight (which gives
// each new record its "lowest pending seq"), the segments a flush must sync, the size
// budget, and reclaiming space.
//
// It does no record I/O itself: Reserve() hands out a seq and a byte range in a segment, the
// WritePath writes the record there through io_uring, and Complete() retires the seq once the
// record and its backing-disk change have both finished. Creating a segment (open, header,
// fdatasync, directory fsync) and deleting segments are synchronous and rare.
//
// Thread-safety: none. REQUIRES: the caller serializes every call (the WritePath's mutex).
// Segments are shared_ptr so a segment's fd stays open while I/O on it is in flight even if
// Reclaim drops it from the journal meanwhile.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

struct JournalSegment {
  std::string path;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;     // largest seq reserved in it (0: none)
  uint64_t end_offset = 0;   // next free byte
  UniqueFd fd;               // O_RDWR; closed when the last reference goes
  bool dirty = false;        // a record completed in it since the last flush took it
};

class JournalWriter {
 public:
  struct Slot {
    uint64_t seq = 0;
    std::shared_ptr<JournalSegment> segment;
    uint64_t file_offset = 0;
    uint64_t lowest_pending = 0;
  };

  // Starts appending in journal_dir (which exists) at next_seq, in a new segment (a writer
  // never appends to a segment from before a restart). `existing` are the segments already
  // there (from the restart's scan), oldest first, with their sizes; they count against the
  // budget and can be reclaimed. segment_bytes_target: see journal::kSegmentBytesTarget
  // (tests use smaller segments).
  struct Existing {
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t bytes;
  };
  static Result<std::unique_ptr<JournalWriter>> Open(
      const std::string& journal_dir, uint64_t journal_id, uint64_t next_seq,
      const std::vector<Existing>& existing, uint64_t max_bytes,
      uint64_t segment_bytes_target = journal::kSegmentBytesTarget);

  // Appends a marker record synchronously (pwrite, fdatasync) and completes it: for the
  // restart's void marker and checkpoint and for a clean stop, when nothing else is in
  // flight. On failure the seq stays pending (the record may be torn).
  Result<uint64_t> AppendMarkerSync(journal::MarkerType type, const std::string& body);

  // True when appending a record with this payload would pass the budget.
  bool WouldExceedBudget(uint32_t payload_bytes) const;
  // A seq and the space for its record (kRecordHeaderBytes + payload, padded). Fails only
  // when a new segment cannot be created (e.g. ENOSPC); nothing is reserved then.
  Result<Slot> Reserve(uint32_t payload_bytes);
  // The record of `seq` is written (it may now be flushed).
  void MarkWritten(const Slot& slot) { slot.segment->dirty = true; }
  // seq's record and its backing change are both done, or seq was voided by a durable void
  // marker: it no longer holds back lowest_pending().
  void Complete(uint64_t seq);

  // Every seq below this has completed.
  uint64_t lowest_pending() const { return lowest_pending_; }
  uint64_t next_seq() const { return next_seq_; }
  // The oldest seq the journal may still hold: the first seq of its oldest segment.
  uint64_t first_seq() const { return segments_.empty() ? next_seq_ : segments_.front()->first_seq; }
  bool idle() const { return pending_.empty(); }
  uint64_t journal_id() const { return journal_id_; }

  // Segments with records completed since the last call; the flush fdatasyncs them. On a
  // failed sync, hand them back with ReturnDirty.
  std::vector<std::shared_ptr<JournalSegment>> TakeDirty();
  void ReturnDirty(const std::vector<std::shared_ptr<JournalSegment>>& segments);

  // A flush checkpoint says every seq below applied_below is on the backing disk.
  void NoteCheckpoint(uint64_t applied_below);
  uint64_t checkpoint() const { return checkpoint_; }

  // Deletes every segment whose records all have seq <= upto_seq and are below the last
  // checkpoint (so restart never needs them to repair the backing disk), oldest first,
  // never the active segment. Returns the bytes freed.
  Result<uint64_t> Reclaim(uint64_t upto_seq);
  // Deletes every segment file (the disk has switched to a dirty bitmap). REQUIRES: no
  // record write in flight. The writer takes no more records afterwards.
  Status DeleteAll();

  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  size_t segment_count() const { return segments_.size(); }

 private:
  JournalWriter() = default;
  Status Roll();
  // Bytes a record with this payload adds: the record, plus a segment header if it rolls.
  uint64_t CostOf(uint32_t payload_bytes) const;

  std::string dir_;
  uint64_t journal_id_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t max_bytes_ = 0;
  uint64_t segment_bytes_target_ = 0;
  uint64_t bytes_ = 0;  // sum of segment sizes (reserved bytes included)
  uint64_t checkpoint_ = 0;
  std::deque<std::shared_ptr<JournalSegment>> segments_;  // oldest first; back() is active
  // pending_[i] is true when seq lowest_pending_ + i has completed.
  std::deque<bool> pending_;
  uint64_t lowest_pending_ = 1;
};

}  // namespace blockrep
