#include "daemon/write_path.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "core/clock.h"
#include "core/byte_size.h"
#include "core/check.h"
#include "core/journal_format.h"
#include "core/log.h"

namespace blockrep {
namespace {

// Zero padding that rounds a record up to kRecordAlignBytes; never written to.
const uint8_t kPad[journal::kRecordAlignBytes] = {};


void CallBackendDone(void* ctx, int err) { static_cast<nbd::BackendDone*>(ctx)->OnDone(err); }

}  // namespace

// One change (write, zero, trim) or journal marker, from reservation to reply.
class WritePath::ChangeOp final : public IoCompletion {
 public:
  enum class Kind { kWrite, kZero, kTrim, kMarker };

  ChangeOp(WritePath& wp, IoRing& ring, nbd::BackendDone* done, Kind kind, uint64_t offset,
           uint64_t length)
      : wp_(wp), ring_(ring), done_(done), kind_(kind), offset_(offset), length_(length) {}

  // The change's parameters, set before Start().
  const uint8_t* buf = nullptr;  // write payload
  bool fua = false;
  bool may_trim = false;
  bool fast_only = false;
  journal::MarkerType marker = journal::MarkerType::kNone;
  std::string body;                 // marker body
  std::vector<uint64_t> void_seqs;  // a void marker's seqs
  uint64_t checkpoint_value = 0;    // a checkpoint's applied-below

  // Who hears of a marker's end (markers the write path makes have none at first).
  void SetDone(nbd::BackendDone* done) { done_ = done; }

  // Entry point for client changes: reserves, then writes the record (or, in bitmap mode,
  // the bitmap pages) and then the backing change.
  void Start() {
    std::unique_lock<std::mutex> lock(wp_.mu_);
    ++wp_.in_flight_;
    if (wp_.mode_ == DiskMode::kJournaling && wp_.journal_->WouldExceedBudget(payload_bytes())) {
      wp_.SwitchToBitmapLocked("the journal passed its budget of " +
                               FormatBytes(wp_.journal_->max_bytes()));
    }
    if (wp_.mode_ == DiskMode::kJournaling) {
      const int err = ReserveLocked();
      lock.unlock();
      if (err != 0) return Finish(err);
      return SubmitRecord();
    }
    // Bitmap mode: the regions' bits must be on disk before the change is.
    ++wp_.bitmap_in_flight_;
    const bool durable = wp_.resync_durable_.AllSet(offset_, length_);
    wp_.resync_.Mark(offset_, length_);
    if (!durable) wp_.resync_.PagesOf(offset_, length_, &pages_);
    lock.unlock();
    if (pages_.empty()) return StartBacking();
    WriteNextPage();
  }

  // REQUIRES wp_.mu_. Takes a seq, space and a place in RangeOrder; 0 or -errno.
  int ReserveLocked() {
    auto slot = wp_.journal_->Reserve(payload_bytes());
    if (!slot.ok()) {
      LOG_ERROR("disk %s: %s", wp_.disk_.name().c_str(), slot.status().message().c_str());
      return -ENOSPC;
    }
    slot_ = std::move(slot).value();
    journaled_ = true;
    ++wp_.journaled_in_flight_;
    if (kind_ != Kind::kMarker) {
      entry_.owner = this;
      entry_.offset = offset_;
      entry_.length = length_;
      wp_.ranges_.Enter(&entry_);
      wp_.coverage_.Mark(offset_, length_);
    }
    return 0;
  }

  // Encodes and writes the record; REQUIRES a reservation.
  void SubmitRecord() {
    journal::RecordHeader h;
    h.flags = fua ? journal::kRecordFlagFua : 0;
    h.seq = slot_.seq;
    h.payload_bytes = payload_bytes();
    h.timestamp_ns = WallClockNs();
    h.lowest_pending_seq = slot_.lowest_pending;
    const uint8_t* payload = buf;
    switch (kind_) {
      case Kind::kWrite: h.kind = journal::RecordKind::kWrite; break;
      case Kind::kZero: h.kind = journal::RecordKind::kZero; break;
      case Kind::kTrim: h.kind = journal::RecordKind::kTrim; break;
      case Kind::kMarker:
        h.kind = journal::RecordKind::kMarker;
        h.marker = marker;
        payload = reinterpret_cast<const uint8_t*>(body.data());
        break;
    }
    if (kind_ != Kind::kMarker) {
      h.offset = offset_;
      h.length = length_;
    }
    journal::EncodeRecord(wp_.journal_id_, h, payload, header_);
    record_[0] = {header_, journal::kRecordHeaderBytes};
    record_count_ = 1;
    if (h.payload_bytes > 0) record_[record_count_++] = {const_cast<uint8_t*>(payload), h.payload_bytes};
    const uint64_t pad = journal::RecordBytes(h.payload_bytes) - journal::kRecordHeaderBytes -
                         h.payload_bytes;
    if (pad > 0) record_[record_count_++] = {const_cast<uint8_t*>(kPad), pad};
    record_bytes_ = journal::RecordBytes(h.payload_bytes);
    written_ = 0;
    phase_ = Phase::kJournal;
    SubmitRecordRest();
  }

  void OnIoComplete(int32_t res) override {
    switch (phase_) {
      case Phase::kJournal:
        if (res == -EAGAIN || res == -EINTR) return SubmitRecordRest();
        if (res < 0) return JournalFailed(res);
        if (res == 0) return JournalFailed(-EIO);
        written_ += static_cast<uint64_t>(res);
        if (written_ < record_bytes_) return SubmitRecordRest();  // short write: go on
        return JournalWritten();
      case Phase::kWaitRange:
        return StartBacking();  // resumed by the change that blocked it
      case Phase::kBitmapPage:
        if (res == -EAGAIN || res == -EINTR) return WriteNextPage();
        if (res != static_cast<int32_t>(DirtyBitmap::kPageBytes)) {
          LOG_ERROR("disk %s: bitmap page write: %s", wp_.disk_.name().c_str(),
                    res < 0 ? std::strerror(-res) : "short write");
          {
            std::lock_guard<std::mutex> lock(wp_.mu_);
            if (--wp_.bitmap_in_flight_ == 0) wp_.fence_cv_.notify_all();
          }
          return Finish(res < 0 ? res : -EIO);
        }
        if (++page_index_ < pages_.size()) return WriteNextPage();
        {
          std::lock_guard<std::mutex> lock(wp_.mu_);
          wp_.resync_durable_.Mark(offset_, length_);
        }
        return StartBacking();
      case Phase::kBacking:
        BLOCKREP_CHECK(false && "backing completions come through BackingIo::Done");
    }
  }

 private:
  enum class Phase { kJournal, kWaitRange, kBitmapPage, kBacking };

  uint32_t payload_bytes() const {
    if (kind_ == Kind::kWrite) return static_cast<uint32_t>(length_);
    if (kind_ == Kind::kMarker) return static_cast<uint32_t>(body.size());
    return 0;
  }

  void SubmitRecordRest() {
    // The part of record_ from byte written_ on.
    iovec iov[3];
    int n = 0;
    uint64_t skip = written_;
    for (int i = 0; i < record_count_; ++i) {
      if (skip >= record_[i].iov_len) {
        skip -= record_[i].iov_len;
        continue;
      }
      iov[n++] = {static_cast<uint8_t*>(record_[i].iov_base) + skip, record_[i].iov_len - skip};
      skip = 0;
    }
    std::memcpy(rest_, iov, sizeof(iovec) * static_cast<size_t>(n));
    wp_.io_.Writev(ring_, slot_.segment->fd.get(), rest_, n, slot_.file_offset + written_,
                   fua ? RWF_DSYNC : 0, this);
  }

  void JournalWritten() {
    bool go;
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      wp_.journal_->MarkWritten(slot_);
      journal_done_ = true;
      go = kind_ == Kind::kMarker || entry_.blockers == 0;
      if (go) {
        resumed_ = true;  // nobody else may start this change's backing write
      } else {
        phase_ = Phase::kWaitRange;
      }
    }
    if (go) StartBacking();
  }

  void JournalFailed(int err) {
    std::vector<ChangeOp*> resume;
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      if (!wp_.journal_failing_) {
        LOG_ERROR("disk %s: journal write of seq %lu in %s at offset %lu failed: %s; the "
                  "request fails (nothing unjournaled is acknowledged)",
                  wp_.disk_.name().c_str(), static_cast<unsigned long>(slot_.seq),
                  slot_.segment->path.c_str(), static_cast<unsigned long>(slot_.file_offset),
                  std::strerror(-err));
        wp_.journal_failing_ = true;
      }
      // This change never reaches the disk, so later overlapping ones need not wait for it.
      if (kind_ != Kind::kMarker) LeaveRangesLocked(&resume);
      if (marker == journal::MarkerType::kVoid) {
        wp_.void_in_flight_ = false;
        wp_.voids_.insert(wp_.voids_.end(), void_seqs.begin(), void_seqs.end());
      }
      // The seq stays pending until a void marker says it was never written.
      wp_.voids_.push_back(slot_.seq);
      --wp_.journaled_in_flight_;
      wp_.MaybeDropJournalLocked();
    }
    Resume(resume);
    Finish(err);
  }

  void StartBacking() {
    phase_ = Phase::kBacking;
    const BackingIo::Done done{&ChangeOp::BackingDone, this};
    switch (kind_) {
      case Kind::kWrite:
        return wp_.backing_.Write(ring_, offset_, static_cast<uint32_t>(length_), buf, fua, done);
      case Kind::kZero:
        return wp_.backing_.WriteZeroes(ring_, offset_, length_, may_trim, fast_only, fua, done);
      case Kind::kTrim:
        return wp_.backing_.Trim(ring_, offset_, length_, fua, done, &trim_performed_);
      case Kind::kMarker:
        return Applied(0);
    }
  }

  static void BackingDone(void* ctx, int err) { static_cast<ChangeOp*>(ctx)->Applied(err); }

  // The backing change (if any) finished with err.
  void Applied(int err) {
    std::vector<ChangeOp*> resume;
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      if (journaled_) {
        if (kind_ != Kind::kMarker) LeaveRangesLocked(&resume);
        const uint64_t lowest_before = wp_.journal_->lowest_pending();
        wp_.journal_->Complete(slot_.seq);
        if (marker == journal::MarkerType::kVoid) {
          for (uint64_t s : void_seqs) {
            wp_.journal_->Complete(s);
            if (err == 0) wp_.voided_.insert(s);
          }
          wp_.void_in_flight_ = false;
        }
        if (wp_.journal_->lowest_pending() != lowest_before) wp_.progress_cv_.notify_all();
        if (marker == journal::MarkerType::kFlushCheckpoint && err == 0) {
          wp_.last_checkpoint_written_ = std::max(wp_.last_checkpoint_written_, checkpoint_value);
        }
        wp_.journal_failing_ = false;
        --wp_.journaled_in_flight_;
        // The journal holds a change the disk may not: only a resync can tell.
        if (kind_ != Kind::kMarker && err != 0) {
          wp_.MarkForResyncLocked(offset_, length_, std::strerror(-err));
        } else if (kind_ == Kind::kTrim && !trim_performed_) {
          wp_.MarkForResyncLocked(offset_, length_, "the file system cannot punch holes");
        }
      } else if (kind_ != Kind::kMarker && --wp_.bitmap_in_flight_ == 0) {
        wp_.fence_cv_.notify_all();  // BeginResync may wait for this
      }
      wp_.MaybeDropJournalLocked();
    }
    Resume(resume);
    Finish(err);
  }

  // REQUIRES wp_.mu_. Leaves RangeOrder and picks the waiters this change was the last
  // blocker of that are parked (their record is written): this thread resumes those. A
  // waiter whose record is not written yet finds no blocker left when it is, and goes on by
  // itself. Deciding here, under the same lock as Leave, means each waiter is resumed
  // exactly once, and no waiter is touched after the lock is released (it may finish and be
  // deleted on its own thread at any moment after that).
  void LeaveRangesLocked(std::vector<ChangeOp*>* resume) {
    std::vector<RangeOrder::Entry*> ready;
    wp_.ranges_.Leave(&entry_, &ready);
    wp_.ResumeReadyLocked(ready, resume);
  }
  // Posts the parked waiters picked by LeaveRangesLocked to their own rings.
  void Resume(const std::vector<ChangeOp*>& resume) {
    for (ChangeOp* w : resume) ring_.Post(w->ring_, w, 0);
  }

  void WriteNextPage() {
    phase_ = Phase::kBitmapPage;
    const uint32_t p = pages_[page_index_];
    page_iov_ = {const_cast<uint8_t*>(wp_.resync_.page(p)), DirtyBitmap::kPageBytes};
    wp_.io_.Writev(ring_, wp_.bitmap_fd_.get(), &page_iov_, 1, DirtyBitmap::PageFileOffset(p),
                   RWF_DSYNC, this);
  }

  void Finish(int err) {
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      --wp_.in_flight_;
    }
    nbd::BackendDone* done = done_;
    delete this;
    if (done != nullptr) done->OnDone(err);
  }

  WritePath& wp_;
  IoRing& ring_;
  nbd::BackendDone* done_;  // null for markers the write path makes itself
  const Kind kind_;
  const uint64_t offset_;
  const uint64_t length_;

  Phase phase_ = Phase::kJournal;
  bool journaled_ = false;
  bool journal_done_ = false;   // guarded by wp_.mu_
  bool resumed_ = false;        // guarded by wp_.mu_
  bool trim_performed_ = false;
  JournalWriter::Slot slot_;
  RangeOrder::Entry entry_;     // guarded by wp_.mu_

  uint8_t header_[journal::kRecordHeaderBytes];
  iovec record_[3];
  int record_count_ = 0;
  iovec rest_[3];
  uint64_t record_bytes_ = 0;
  uint64_t written_ = 0;

  std::vector<uint32_t> pages_;
  size_t page_index_ = 0;
  iovec page_iov_{};

  friend class WritePath;
};

// A flush: fdatasync every journal segment written since the last flush, the backing disk
// and the bitmap, in parallel; then a checkpoint record.
class WritePath::FlushOp final {
 public:
  FlushOp(WritePath& wp, IoRing& ring, nbd::BackendDone* done) : wp_(wp), ring_(ring), done_(done) {
    marker_done_.op = this;
  }

  void Start() {
    std::vector<int> fds;
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      ++wp_.in_flight_;
      if (wp_.journal_ != nullptr) {
        segments_ = wp_.journal_->TakeDirty();
        applied_below_ = wp_.journal_->lowest_pending();
      }
      if (wp_.mode_ == DiskMode::kBitmap || !wp_.resync_.empty()) fds.push_back(wp_.bitmap_fd_.get());
    }
    for (const auto& seg : segments_) fds.push_back(seg->fd.get());
    fds.push_back(wp_.disk_.fd());
    syncs_.resize(fds.size());
    outstanding_ = fds.size();
    for (size_t i = 0; i < fds.size(); ++i) {
      syncs_[i].op = this;
      syncs_[i].fd = fds[i];
      wp_.io_.Fsync(ring_, fds[i], &syncs_[i]);
    }
  }

 private:
  struct Sync final : IoCompletion {
    FlushOp* op = nullptr;
    int fd = -1;
    void OnIoComplete(int32_t res) override {
      if (res == -EAGAIN || res == -EINTR) return op->wp_.io_.Fsync(op->ring_, fd, this);
      op->SyncDone(res);
    }
  };

  void SyncDone(int32_t res) {
    if (res < 0 && err_ == 0) err_ = res;
    if (--outstanding_ > 0) return;
    ChangeOp* markers[2] = {nullptr, nullptr};
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      if (err_ != 0) {
        // After a failed fdatasync the kernel may have dropped the pages it could not
        // write, and a later fdatasync can succeed without them. So no checkpoint may pass
        // this point again while the daemon runs: a restart then replays every change since
        // the last good one and repairs the disk.
        if (!wp_.checkpoints_pinned_) {
          LOG_ERROR("disk %s: flush: fdatasync failed: %s; journal checkpoints are held at "
                    "seq %lu so that a restart replays every later change",
                    wp_.disk_.name().c_str(), std::strerror(-err_),
                    static_cast<unsigned long>(wp_.last_checkpoint_written_));
        }
        wp_.checkpoints_pinned_ = true;
        if (wp_.journal_ != nullptr) wp_.journal_->ReturnDirty(segments_);
      } else if (wp_.journal_ != nullptr && wp_.mode_ == DiskMode::kJournaling) {
        if (!wp_.checkpoints_pinned_) {
          wp_.journal_->NoteCheckpoint(applied_below_);
          if (applied_below_ > wp_.last_checkpoint_written_) {
            markers[0] = wp_.NewMarkerLocked(ring_, journal::MarkerType::kFlushCheckpoint,
                                             journal::EncodeCheckpointBody(applied_below_));
            if (markers[0] != nullptr) markers[0]->checkpoint_value = applied_below_;
          }
        }
        // Seqs whose record write failed get their void marker here, where a flush shows
        // the journal's disk works again.
        markers[1] = wp_.MaybeVoidMarkerLocked(ring_);
      }
    }
    // The markers finish before the reply, so no operation outlives the request that
    // started it (a clean stop then finds nothing in flight).
    for (ChangeOp* m : markers) {
      if (m == nullptr) continue;
      ++markers_left_;
      m->SetDone(&marker_done_);
    }
    if (markers_left_ == 0) return Reply();
    for (ChangeOp* m : markers) {
      if (m != nullptr) m->SubmitRecord();
    }
  }

  // A marker's record failing is not the flush's failure: the data was already durable.
  struct MarkerDone final : nbd::BackendDone {
    FlushOp* op = nullptr;
    void OnDone(int) override {
      if (--op->markers_left_ == 0) op->Reply();
    }
  };

  void Reply() {
    {
      std::lock_guard<std::mutex> lock(wp_.mu_);
      --wp_.in_flight_;
    }
    nbd::BackendDone* done = done_;
    const int err = err_;
    delete this;
    done->OnDone(err);
  }

  WritePath& wp_;
  IoRing& ring_;
  nbd::BackendDone* done_;
  std::vector<std::shared_ptr<JournalSegment>> segments_;
  uint64_t applied_below_ = 0;
  std::vector<Sync> syncs_;
  size_t outstanding_ = 0;
  int err_ = 0;
  int markers_left_ = 0;
  MarkerDone marker_done_;
};

WritePath::WritePath(Parts parts)
    : disk_(*parts.disk),
      io_(*parts.io),
      backing_(*parts.disk, *parts.io),
      mode_(parts.state.mode),
      journal_(std::move(parts.journal)),
      resync_(std::move(parts.resync)),
      resync_durable_(resync_),
      coverage_(std::move(parts.coverage)),
      bitmap_fd_(std::move(parts.bitmap_fd)),
      bitmap_path_(std::move(parts.bitmap_path)),
      state_(std::move(parts.state)),
      state_path_(std::move(parts.state_path)),
      journal_dir_(std::move(parts.journal_dir)),
      journal_max_bytes_(parts.journal_max_bytes),
      segment_bytes_target_(parts.segment_bytes_target),
      voided_(parts.voided.begin(), parts.voided.end()) {
  BLOCKREP_CHECK(resync_.disk_bytes() == disk_.size_bytes());
  BLOCKREP_CHECK(coverage_.disk_bytes() == disk_.size_bytes());
  BLOCKREP_CHECK(mode_ == DiskMode::kBitmap || journal_ != nullptr);
  journal_id_ = parts.journal_id;
  if (journal_ != nullptr) {
    journal_id_ = journal_->journal_id();
    last_checkpoint_written_ = journal_->checkpoint();
    if (journal_max_bytes_ == 0) journal_max_bytes_ = journal_->max_bytes();
  }
}

WritePath::~WritePath() { BLOCKREP_CHECK(in_flight_ == 0); }

nbd::BackendCapabilities WritePath::capabilities() const {
  nbd::BackendCapabilities caps;
  caps.read_only = false;
  caps.can_trim = true;
  caps.can_zero = true;
  caps.can_fast_zero = true;
  // All connections share the backing fd and the page cache: a flush covers every write
  // completed on any of them.
  caps.can_multi_conn = true;
  return caps;
}

void WritePath::Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf,
                     nbd::BackendDone* done) {
  backing_.Read(ring, offset, length, buf, BackingIo::Done{&CallBackendDone, done});
}

void WritePath::Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf,
                      bool fua, nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes() && length <= journal::kMaxPayloadBytes);
  if (length == 0) return done->OnDone(0);
  auto* op = new ChangeOp(*this, ring, done, ChangeOp::Kind::kWrite, offset, length);
  op->buf = buf;
  op->fua = fua;
  op->Start();
}

void WritePath::WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                            bool fast_only, bool fua, nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  if (length == 0) return done->OnDone(0);
  auto* op = new ChangeOp(*this, ring, done, ChangeOp::Kind::kZero, offset, length);
  op->may_trim = may_trim;
  op->fast_only = fast_only;
  op->fua = fua;
  op->Start();
}

void WritePath::Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua,
                     nbd::BackendDone* done) {
  BLOCKREP_CHECK(offset + length <= disk_.size_bytes());
  if (length == 0) return done->OnDone(0);
  auto* op = new ChangeOp(*this, ring, done, ChangeOp::Kind::kTrim, offset, length);
  op->fua = fua;
  op->Start();
}

void WritePath::Flush(IoRing& ring, nbd::BackendDone* done) {
  (new FlushOp(*this, ring, done))->Start();
}

Status WritePath::BlockStatus(uint64_t offset, uint64_t length, uint32_t max_extents,
                              std::vector<nbd::Extent>* extents) {
  return disk_.Extents(offset, length, max_extents, extents);
}

WritePath::ChangeOp* WritePath::NewMarkerLocked(IoRing& ring, journal::MarkerType type,
                                                std::string body) {
  if (mode_ != DiskMode::kJournaling || journal_ == nullptr) return nullptr;
  auto* op = new ChangeOp(*this, ring, nullptr, ChangeOp::Kind::kMarker, 0, 0);
  op->marker = type;
  op->body = std::move(body);
  if (op->ReserveLocked() != 0) {
    delete op;
    return nullptr;
  }
  ++in_flight_;
  return op;
}

WritePath::ChangeOp* WritePath::MaybeVoidMarkerLocked(IoRing& ring) {
  if (voids_.empty() || void_in_flight_ || mode_ != DiskMode::kJournaling) return nullptr;
  const size_t n = std::min<size_t>(voids_.size(), journal::kMaxVoidSeqs);
  std::vector<uint64_t> seqs(voids_.begin(), voids_.begin() + static_cast<long>(n));
  ChangeOp* op = NewMarkerLocked(ring, journal::MarkerType::kVoid, journal::EncodeVoidBody(seqs));
  if (op == nullptr) return nullptr;
  voids_.erase(voids_.begin(), voids_.begin() + static_cast<long>(n));
  op->void_seqs = std::move(seqs);
  void_in_flight_ = true;
  return op;
}

bool WritePath::SwitchToBitmapLocked(const std::string& reason) {
  BLOCKREP_CHECK(mode_ == DiskMode::kJournaling);
  // The bitmap must hold the journal's regions, and the state file must say "bitmap",
  // before any change goes to the disk unjournaled: otherwise a restart would trust (and
  // replay) a journal that misses those changes. If either cannot be written, stay
  // journaling, over budget, and try again with the next change.
  DirtyBitmap merged = resync_;
  merged.Merge(coverage_);
  Status st = merged.WriteTo(bitmap_fd_.get(), bitmap_path_);
  DiskState next = state_;
  next.mode = DiskMode::kBitmap;
  next.reason = reason;
  next.since = NowRfc3339();
  next.next_seq = journal_->next_seq();
  if (st.ok()) st = next.Save(state_path_);
  if (!st.ok()) {
    if (!bitmap_switch_failing_) {
      LOG_ERROR("disk %s: %s, but switching to the dirty bitmap failed (%s); journaling on "
                "past the budget", disk_.name().c_str(), reason.c_str(), st.ToString().c_str());
    }
    bitmap_switch_failing_ = true;
    return false;
  }
  bitmap_switch_failing_ = false;
  mode_ = DiskMode::kBitmap;
  resync_ = std::move(merged);
  resync_durable_ = resync_;
  state_ = std::move(next);
  journal_droppable_ = true;
  voids_.clear();
  progress_cv_.notify_all();  // the shipper stops reading the journal
  LOG_WARN("disk %s: %s: now tracking changes in a dirty bitmap (%lu regions of %s dirty); "
           "resync required",
           disk_.name().c_str(), reason.c_str(), static_cast<unsigned long>(resync_.dirty_regions()),
           FormatBytes(DirtyBitmap::kRegionBytes).c_str());
  MaybeDropJournalLocked();
  return true;
}

void WritePath::MaybeDropJournalLocked() {
  if (mode_ != DiskMode::kBitmap || journal_ == nullptr || journaled_in_flight_ > 0 ||
      !journal_droppable_) {
    return;
  }
  Status st = journal_->DeleteAll();
  if (!st.ok()) {
    LOG_ERROR("disk %s: dropping the journal: %s", disk_.name().c_str(), st.ToString().c_str());
    return;
  }
  journal_.reset();
  coverage_.Clear();
  LOG_INFO("disk %s: journal deleted; its changes are in the dirty bitmap", disk_.name().c_str());
}

void WritePath::MarkForResyncLocked(uint64_t offset, uint64_t length, const char* why) {
  std::vector<uint32_t> pages;
  if (!resync_.Mark(offset, length, &pages)) return;
  LOG_WARN("disk %s: range %lu+%lu marked for resync: the journal has the change but the disk "
           "may not (%s)",
           disk_.name().c_str(), static_cast<unsigned long>(offset),
           static_cast<unsigned long>(length), why);
  for (uint32_t p : pages) {
    ssize_t n = ::pwrite(bitmap_fd_.get(), resync_.page(p), DirtyBitmap::kPageBytes,
                         static_cast<off_t>(DirtyBitmap::PageFileOffset(p)));
    if (n != static_cast<ssize_t>(DirtyBitmap::kPageBytes)) {
      LOG_ERROR("disk %s: writing bitmap page %u: %s", disk_.name().c_str(), p,
                n < 0 ? std::strerror(errno) : "short write");
      return;
    }
  }
  if (::fdatasync(bitmap_fd_.get()) != 0) {
    LOG_ERROR("disk %s: fdatasync %s: %s", disk_.name().c_str(), bitmap_path_.c_str(),
              std::strerror(errno));
    return;
  }
  resync_durable_.Mark(offset, length);
}

Status WritePath::SaveStateLocked() {
  Status st = state_.Save(state_path_);
  if (!st.ok()) LOG_ERROR("disk %s: saving state: %s", disk_.name().c_str(), st.ToString().c_str());
  return st;
}

Status WritePath::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  BLOCKREP_CHECK(in_flight_ == 0);
  Status first;
  auto keep = [&first](Status st) {
    if (!st.ok() && first.ok()) first = std::move(st);
  };
  if (::fdatasync(disk_.fd()) != 0) keep(Status::FromErrno(errno, "fdatasync " + disk_.path()));
  if (journal_ != nullptr && mode_ == DiskMode::kJournaling) {
    for (const auto& seg : journal_->TakeDirty()) {
      if (::fdatasync(seg->fd.get()) != 0) keep(Status::FromErrno(errno, "fdatasync " + seg->path));
    }
    while (!voids_.empty() && first.ok()) {
      const size_t n = std::min<size_t>(voids_.size(), journal::kMaxVoidSeqs);
      std::vector<uint64_t> seqs(voids_.begin(), voids_.begin() + static_cast<long>(n));
      voids_.erase(voids_.begin(), voids_.begin() + static_cast<long>(n));
      auto st = journal_->AppendMarkerSync(journal::MarkerType::kVoid, journal::EncodeVoidBody(seqs));
      if (st.ok()) {
        for (uint64_t s : seqs) journal_->Complete(s);
      }
      keep(st.status());
    }
    // Everything is on the backing disk now: a restart need replay nothing (unless a sync
    // failed while the daemon ran: then the restart must replay, see FlushOp).
    if (first.ok() && !checkpoints_pinned_) {
      keep(journal_->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint,
                                      journal::EncodeCheckpointBody(journal_->next_seq() + 1))
               .status());
    }
  }
  if (mode_ == DiskMode::kBitmap || !resync_.empty()) {
    if (::fdatasync(bitmap_fd_.get()) != 0) keep(Status::FromErrno(errno, "fdatasync " + bitmap_path_));
  }
  if (journal_ != nullptr) state_.next_seq = journal_->next_seq();
  state_.clean_shutdown = first.ok();
  keep(SaveStateLocked());
  return first;
}

Result<uint64_t> WritePath::ReclaimJournal(uint64_t upto_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (journal_ == nullptr) return uint64_t{0};
  auto freed = journal_->Reclaim(upto_seq);
  // Seqs below the oldest one left are never read again.
  voided_.erase(voided_.begin(), voided_.lower_bound(journal_->first_seq()));
  return freed;
}

WritePath::Stats WritePath::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.mode = mode_;
  s.reason = state_.reason;
  s.error = state_.error;
  if (journal_ != nullptr) {
    s.journal_bytes = journal_->bytes();
    s.journal_max_bytes = journal_->max_bytes();
    s.journal_segments = journal_->segment_count();
    s.next_seq = journal_->next_seq();
    s.lowest_pending_seq = journal_->lowest_pending();
  } else {
    s.next_seq = state_.next_seq;
  }
  s.dirty_regions = resync_.dirty_regions();
  s.changes_in_flight = in_flight_;
  s.resync_required = state_.resync_required() || !resync_.empty();
  return s;
}

// ---- for the shipper --------------------------------------------------------------------

void WritePath::ResumeReadyLocked(const std::vector<RangeOrder::Entry*>& ready,
                                  std::vector<ChangeOp*>* resume) {
  for (RangeOrder::Entry* e : ready) {
    if (e->fence) {
      fence_cv_.notify_all();
      continue;
    }
    auto* w = static_cast<ChangeOp*>(e->owner);
    if (w->journal_done_ && !w->resumed_) {
      w->resumed_ = true;
      resume->push_back(w);
    }
  }
}

Result<uint64_t> WritePath::Fenced(IoRing& ring, uint64_t offset, uint64_t length,
                                   const std::function<Status(uint64_t barrier)>& fn) {
  BLOCKREP_CHECK(length > 0 && offset + length <= disk_.size_bytes());
  RangeOrder::Entry entry;
  entry.fence = true;
  uint64_t barrier;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (mode_ != DiskMode::kJournaling || journal_ == nullptr) {
      return Status::Unsupported("disk " + disk_.name() + " is not journaling");
    }
    barrier = journal_->next_seq();
    entry.offset = offset;
    entry.length = length;
    ranges_.Enter(&entry);
    fence_cv_.wait(lock, [&entry] { return entry.blockers == 0; });
  }
  Status st = fn(barrier);
  std::vector<ChangeOp*> resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RangeOrder::Entry*> ready;
    ranges_.Leave(&entry, &ready);
    ResumeReadyLocked(ready, &resume);
  }
  for (ChangeOp* w : resume) ring.Post(w->ring_, w, 0);
  // The caller's ring is not driven by a loop that submits: send the wake-ups now.
  if (!resume.empty()) ring.Submit();
  if (!st.ok()) return st;
  return barrier;
}

uint64_t WritePath::WaitForLowestPending(uint64_t above, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto current = [this] {
    return mode_ == DiskMode::kJournaling && journal_ != nullptr ? journal_->lowest_pending() : 0;
  };
  progress_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    const uint64_t lp = current();
    return lp == 0 || lp > above;
  });
  return current();
}

bool WritePath::IsVoided(uint64_t seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  return voided_.count(seq) != 0;
}

WritePath::JournalPosition WritePath::Position() const {
  std::lock_guard<std::mutex> lock(mu_);
  JournalPosition p;
  p.mode = mode_;
  p.resync_pending = state_.resync_required() || !resync_.empty();
  p.journal_id = journal_id_;
  p.journal_dir = journal_dir_;
  if (journal_ != nullptr && mode_ == DiskMode::kJournaling) {
    p.first_seq = journal_->first_seq();
    p.lowest_pending = journal_->lowest_pending();
    p.next_seq = journal_->next_seq();
  } else {
    p.next_seq = state_.next_seq;
  }
  return p;
}

DiskState WritePath::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

Result<uint64_t> WritePath::BeginResync(DirtyBitmap* covered) {
  std::unique_lock<std::mutex> lock(mu_);
  if (mode_ == DiskMode::kBitmap) {
    if (journal_ != nullptr) {
      // The switch to the bitmap still waits for records in flight; it finishes soon.
      return Status::IoError("disk " + disk_.name() + ": the journal is still being dropped");
    }
    auto w = JournalWriter::Open(journal_dir_, journal_id_, state_.next_seq, {},
                                 journal_max_bytes_, segment_bytes_target_);
    if (!w.ok()) return Status::IoError("disk " + disk_.name() + ": " + w.status().message());
    journal_ = std::move(w).value();
    auto cp = journal_->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint,
                                         journal::EncodeCheckpointBody(journal_->next_seq() + 1));
    if (!cp.ok()) return Status::IoError("disk " + disk_.name() + ": " + cp.status().message());
    journal_->NoteCheckpoint(journal_->next_seq());
    last_checkpoint_written_ = journal_->next_seq();
    journal_droppable_ = false;
    coverage_.Clear();
  }
  DiskState next = state_;
  next.mode = DiskMode::kJournaling;
  next.resyncing = true;
  next.next_seq = journal_->next_seq();
  if (state_.mode != DiskMode::kJournaling) next.since = NowRfc3339();
  BLOCKREP_RETURN_IF_ERROR(next.Save(state_path_));
  const bool was_bitmap = mode_ == DiskMode::kBitmap;
  mode_ = DiskMode::kJournaling;
  state_ = std::move(next);
  const uint64_t first = journal_->next_seq();
  // Changes that started in bitmap mode marked their regions before they went to the
  // disk, but are not in RangeOrder: wait for them, so every later fenced read sees them.
  fence_cv_.wait(lock, [this] { return bitmap_in_flight_ == 0; });
  *covered = resync_;
  if (was_bitmap) {
    LOG_INFO("disk %s: journaling again from seq %lu for the resync of %lu regions",
             disk_.name().c_str(), static_cast<unsigned long>(first),
             static_cast<unsigned long>(resync_.dirty_regions()));
  }
  progress_cv_.notify_all();
  return first;
}

Status WritePath::FinishResync(const DirtyBitmap& covered) {
  std::lock_guard<std::mutex> lock(mu_);
  DirtyBitmap next = resync_;
  next.Subtract(covered);
  BLOCKREP_RETURN_IF_ERROR(next.WriteTo(bitmap_fd_.get(), bitmap_path_));
  DiskState st = state_;
  st.resyncing = false;
  st.reason.clear();
  if (!st.error.empty()) {
    LOG_INFO("disk %s: the resync repaired the replica; clearing the error (%s)",
             disk_.name().c_str(), st.error.c_str());
  }
  st.error.clear();
  st.since = NowRfc3339();
  BLOCKREP_RETURN_IF_ERROR(st.Save(state_path_));
  state_ = std::move(st);
  resync_ = next;
  resync_durable_ = std::move(next);
  return Status::Ok();
}

Status WritePath::MarkAllForResync(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  DirtyBitmap next = resync_;
  next.MarkAll();
  BLOCKREP_RETURN_IF_ERROR(next.WriteTo(bitmap_fd_.get(), bitmap_path_));
  DiskState st = state_;
  st.reason = why;
  st.since = NowRfc3339();
  BLOCKREP_RETURN_IF_ERROR(st.Save(state_path_));
  state_ = std::move(st);
  resync_ = next;
  resync_durable_ = std::move(next);
  LOG_WARN("disk %s: every region marked for resync: %s", disk_.name().c_str(), why.c_str());
  return Status::Ok();
}

Status WritePath::FlushSync(IoRing& ring) {
  struct Done final : nbd::BackendDone {
    bool done = false;
    int err = 0;
    void OnDone(int e) override {
      done = true;
      err = e;
    }
  } done;
  Flush(ring, &done);
  while (!done.done) {
    auto r = ring.SubmitAndDispatch(1);
    if (!r.ok()) return r.status();
  }
  if (done.err != 0) return Status::FromErrno(done.err, "disk " + disk_.name() + ": flush");
  return Status::Ok();
}

}  // namespace blockrep
