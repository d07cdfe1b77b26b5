// WritePath: the one place through which every change to a protected disk passes.
//
// Every NBD write, write-zeroes and trim, and every FUSE write, fallocate and fsync, becomes
// a call here; nothing else writes the backing disk. A change is journaled first and applied
// second (docs/formats/journal.md, "Writing"):
//
//   Start    under the mutex: a seq and space in the journal (JournalWriter::Reserve), and
//            a place in RangeOrder after every earlier overlapping change
//   journal  the record (header + payload, one writev) goes to its segment
//   backing  once the record is written and no earlier overlapping change is in flight, the
//            change goes to the backing disk (BackingIo)
//   reply    when both are done; FUA makes both durable first (RWF_DSYNC / fdatasync)
//
// Nothing is acknowledged that is not journaled: a failed journal write fails the request
// (its seq is then voided by a void marker, so readers never take the hole for corruption).
// A backing change that fails after its record was written fails the request and marks its
// regions in the resync bitmap, since the journal now holds a change the disk may lack.
//
// Budget: when a record would take the journal past its budget, the disk switches to
// tracking changes in the persistent dirty bitmap (DiskMode::kBitmap, "resync required"):
// every region the journal's records touched is marked, the journal is deleted once its last
// record is done, and from then on a change first makes its regions' bits durable and then
// goes to the backing disk. Writes keep succeeding.
//
// A flush fdatasyncs the journal segments written since the last flush, the backing disk
// and the bitmap, replies, then appends a flush checkpoint (every seq below it is on the
// backing disk) so a restart replays only the journal after it.
//
// Reads go straight to the backing disk. Operations belong to the calling thread's ring;
// when one change finishes and an overlapping change from another thread may proceed, that
// change is resumed on its own ring through IoRing::Post.
//
// For the shipper (daemon/shipper.h): Fenced() reads a range as of a barrier seq (the
// ordering rule of docs/formats/replication.md), WaitForLowestPending() sleeps until more
// records have completed, and ResumeJournaling()/FinishResync() move a disk that needs a
// resync back to journaling and, once the replica has caught up, clear its bitmap.
//
// Thread-safety: safe for concurrent calls from several threads, each with its own ring.
// Lifetime: created by ProtectedDisk, which owns everything referenced here.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/dirty_bitmap.h"
#include "core/disk_state.h"
#include "core/file_io.h"
#include "core/unique_fd.h"
#include "daemon/backing_disk.h"
#include "daemon/backing_io.h"
#include "core/journal_writer.h"
#include "daemon/range_order.h"
#include "nbd/backend.h"

namespace blockrep {

class WritePath final : public nbd::Backend {
 public:
  struct Parts {
    BackingDisk* disk = nullptr;
    FileIo* io = nullptr;
    // Null when the disk starts in bitmap mode (its journal is gone).
    std::unique_ptr<JournalWriter> journal;
    DirtyBitmap resync{0};       // persistent resync bitmap, as loaded
    DirtyBitmap coverage{0};     // regions the journal's records touch
    UniqueFd bitmap_fd;          // the open bitmap file (resync bitmap), O_RDWR
    std::string bitmap_path;
    DiskState state;
    std::string state_path;
    // Where the journal lives and its budget, so that a disk in bitmap mode can start
    // journaling again (ResumeJournaling).
    std::string journal_dir;
    uint64_t journal_id = 0;
    uint64_t journal_max_bytes = 0;
    uint64_t segment_bytes_target = journal::kSegmentBytesTarget;
    // Seqs the journal's void markers forgive (and those the restart dropped as torn).
    std::vector<uint64_t> voided;
  };

  explicit WritePath(Parts parts);
  ~WritePath() override;

  uint64_t size_bytes() const override { return disk_.size_bytes(); }
  nbd::BackendCapabilities capabilities() const override;

  void Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf,
            nbd::BackendDone* done) override;
  void Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf, bool fua,
             nbd::BackendDone* done) override;
  void WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                   bool fast_only, bool fua, nbd::BackendDone* done) override;
  void Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua,
            nbd::BackendDone* done) override;
  void Flush(IoRing& ring, nbd::BackendDone* done) override;
  Status BlockStatus(uint64_t offset, uint64_t length, uint32_t max_extents,
                     std::vector<nbd::Extent>* extents) override;

  // Frees journal segments whose records all have seq <= upto_seq (and are on the backing
  // disk): what the shipper calls once the target has acknowledged them.
  Result<uint64_t> ReclaimJournal(uint64_t upto_seq);

  // ---- for the shipper ----------------------------------------------------------------

  // Runs fn(barrier) with [offset, offset + length) fenced: every change with a seq below
  // the barrier that overlaps the range has reached the backing disk, and no change with
  // the barrier's seq or a later one that overlaps it can reach the disk until fn returns.
  // So what fn reads of the range is its content "as of the barrier". Changes that
  // overlap wait meanwhile; keep fn short (one chunk). `ring` is the caller's own ring: the
  // changes the fence held up are resumed through it. Returns the barrier, or fn's error.
  // REQUIRES: journaling mode (kUnsupported otherwise: call ResumeJournaling first).
  Result<uint64_t> Fenced(IoRing& ring, uint64_t offset, uint64_t length,
                          const std::function<Status(uint64_t barrier)>& fn);

  // Waits until lowest_pending > above (more records completed), the disk leaves
  // journaling, or timeout_ms passes; returns lowest_pending (0 when not journaling).
  uint64_t WaitForLowestPending(uint64_t above, int timeout_ms);

  // True when a void marker forgives seq (a record whose write failed, or one dropped as
  // torn at a restart): a reader skips its missing record.
  bool IsVoided(uint64_t seq) const;

  struct JournalPosition {
    DiskMode mode = DiskMode::kJournaling;
    bool resync_pending = false;   // the resync bitmap holds regions (or a resync runs)
    uint64_t first_seq = 0;        // oldest seq the journal still holds (journaling mode)
    uint64_t lowest_pending = 0;   // every seq below it has completed
    uint64_t next_seq = 0;
    uint64_t journal_id = 0;
    std::string journal_dir;
  };
  JournalPosition Position() const;
  // The disk's state as the state file has it (identity, generation, mode, error).
  DiskState State() const;

  // Starts a resync: a disk in bitmap mode starts journaling again (a new segment at the
  // next seq) and the state file records "resyncing"; returns the first seq of the journal
  // from now on (the barrier from which records cover every change). Waits for changes
  // that started in bitmap mode to finish (they marked the bitmap; the resync reads them).
  // *covered gets the bitmap's regions at this moment: what the resync must compare.
  Result<uint64_t> BeginResync(DirtyBitmap* covered);
  // The resync that BeginResync started is done: the regions of `covered` are cleared from
  // the bitmap (regions marked since stay), the error state (if any) is cleared, and the
  // state file stops saying "resyncing".
  Status FinishResync(const DirtyBitmap& covered);
  // Marks every region for resync (a corrupt journal record found while shipping, or an
  // operator's `blockrep resync`); the state file records why.
  Status MarkAllForResync(const std::string& why);

  // A flush (as Flush) run to completion on the caller's ring: the shipper's way to get a
  // checkpoint, so that shipped segments can be reclaimed even if clients never flush.
  Status FlushSync(IoRing& ring);

  struct Stats {
    DiskMode mode;
    std::string reason;
    std::string error;
    uint64_t journal_bytes = 0;
    uint64_t journal_max_bytes = 0;
    uint64_t journal_segments = 0;
    uint64_t next_seq = 0;
    uint64_t lowest_pending_seq = 0;
    uint64_t dirty_regions = 0;
    uint64_t changes_in_flight = 0;
    bool resync_required = false;
  };
  Stats stats() const;

  // Clean stop. REQUIRES: no operation in flight (the front doors have stopped). Syncs the
  // journal, the disk and the bitmap, appends a final checkpoint, and records a clean
  // shutdown in the state file.
  Status Close();

  BackingDisk& disk() { return disk_; }

 private:
  class ChangeOp;
  class FlushOp;
  struct Fence;
  friend class ChangeOp;
  friend class FlushOp;

  // REQUIRES mu_. Of the RangeOrder entries that just lost their last blocker: a parked
  // change (its record written) is picked for resuming on its ring, a fence is woken.
  void ResumeReadyLocked(const std::vector<RangeOrder::Entry*>& ready,
                         std::vector<ChangeOp*>* resume);
  // REQUIRES mu_. Leaves journaling for the bitmap; `reason` says why. False (and still
  // journaling) when the bitmap or the state file could not be written.
  bool SwitchToBitmapLocked(const std::string& reason);
  // REQUIRES mu_. Deletes the journal once the switch to the bitmap has no record in flight.
  void MaybeDropJournalLocked();
  // REQUIRES mu_. Starts a void marker for seqs whose journal write failed, if none is in
  // flight; returns it (to be submitted after the mutex is released) or null.
  ChangeOp* MaybeVoidMarkerLocked(IoRing& ring);
  // REQUIRES mu_. Marks [offset, offset+length) for resync and writes the bitmap pages now
  // (synchronously: this is the rare path of a failed backing change).
  void MarkForResyncLocked(uint64_t offset, uint64_t length, const char* why);
  Status SaveStateLocked();
  // REQUIRES mu_. A marker record the write path writes for itself (flush checkpoint, void
  // marker), reserved; submit it with SubmitRecord() after releasing the mutex. Null when
  // the journal cannot take it.
  ChangeOp* NewMarkerLocked(IoRing& ring, journal::MarkerType type, std::string body);

  BackingDisk& disk_;
  FileIo& io_;
  BackingIo backing_;

  mutable std::mutex mu_;
  DiskMode mode_;                          // guarded by mu_
  std::unique_ptr<JournalWriter> journal_; // guarded by mu_; null once dropped
  RangeOrder ranges_;                      // guarded by mu_
  DirtyBitmap resync_;                     // guarded by mu_
  DirtyBitmap resync_durable_;             // guarded by mu_: bits known to be on disk
  DirtyBitmap coverage_;                   // guarded by mu_
  UniqueFd bitmap_fd_;
  std::string bitmap_path_;
  DiskState state_;                        // guarded by mu_
  std::string state_path_;
  std::vector<uint64_t> voids_;            // guarded by mu_: failed seqs awaiting a marker
  bool void_in_flight_ = false;            // guarded by mu_
  uint64_t in_flight_ = 0;                 // guarded by mu_: changes and flushes not finished
  uint64_t journaled_in_flight_ = 0;       // guarded by mu_: of those, with a record slot
  bool journal_failing_ = false;           // guarded by mu_: last record write failed (log once)
  bool journal_droppable_ = false;         // guarded by mu_: see SwitchToBitmapLocked
  bool bitmap_switch_failing_ = false;     // guarded by mu_: last switch attempt failed
  bool checkpoints_pinned_ = false;        // guarded by mu_: a flush's fdatasync failed
  uint64_t last_checkpoint_written_ = 0;   // guarded by mu_
  uint64_t journal_id_ = 0;                // constant after construction
  std::string journal_dir_;
  uint64_t journal_max_bytes_ = 0;
  uint64_t segment_bytes_target_ = 0;
  std::set<uint64_t> voided_;              // guarded by mu_
  uint64_t bitmap_in_flight_ = 0;          // guarded by mu_: changes started in bitmap mode
  std::condition_variable fence_cv_;       // a fence's blockers reached 0; bitmap changes done
  std::condition_variable progress_cv_;    // lowest_pending moved, or the mode changed
};

}  // namespace blockrep
