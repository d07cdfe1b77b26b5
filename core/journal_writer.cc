#include "core/durable_file.h"
#include "core/clock.h"
#include "core/journal_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/check.h"
#include "core/log.h"

namespace blockrep {
namespace {



}  // namespace

Result<std::unique_ptr<JournalWriter>> JournalWriter::Open(
    const std::string& journal_dir, uint64_t journal_id, uint64_t next_seq,
    const std::vector<Existing>& existing, uint64_t max_bytes, uint64_t segment_bytes_target) {
  BLOCKREP_CHECK(next_seq >= 1);
  std::unique_ptr<JournalWriter> w(new JournalWriter());
  w->dir_ = journal_dir;
  w->journal_id_ = journal_id;
  w->next_seq_ = next_seq;
  w->lowest_pending_ = next_seq;
  w->max_bytes_ = max_bytes;
  w->segment_bytes_target_ = segment_bytes_target;
  // Everything in the existing segments is complete and on the backing disk (the restart
  // replayed it), so the checkpoint starts at next_seq.
  w->checkpoint_ = next_seq;
  for (const Existing& e : existing) {
    auto seg = std::make_shared<JournalSegment>();
    seg->path = journal_dir + "/" + journal::SegmentName(e.first_seq);
    seg->first_seq = e.first_seq;
    seg->last_seq = e.last_seq;
    seg->end_offset = e.bytes;
    w->bytes_ += e.bytes;
    w->segments_.push_back(std::move(seg));  // fd stays closed: never written again
  }
  BLOCKREP_RETURN_IF_ERROR(w->Roll());
  return w;
}

Status JournalWriter::Roll() {
  const std::string path = dir_ + "/" + journal::SegmentName(next_seq_);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(errno, "journal: create " + path);
  uint8_t header[journal::kSegmentHeaderBytes];
  journal::EncodeSegmentHeader({journal_id_, next_seq_, WallClockNs()}, header);
  ssize_t n = ::pwrite(fd.get(), header, sizeof(header), 0);
  Status st;
  if (n != static_cast<ssize_t>(sizeof(header))) {
    st = Status::FromErrno(n < 0 ? errno : ENOSPC, "journal: write header of " + path);
  } else if (::fdatasync(fd.get()) != 0) {
    st = Status::FromErrno(errno, "journal: fdatasync " + path);
  } else {
    st = FsyncDir(dir_);
  }
  if (!st.ok()) {
    ::unlink(path.c_str());
    return st;
  }
  auto seg = std::make_shared<JournalSegment>();
  seg->path = path;
  seg->first_seq = next_seq_;
  seg->end_offset = journal::kSegmentHeaderBytes;
  seg->fd = std::move(fd);
  bytes_ += journal::kSegmentHeaderBytes;
  segments_.push_back(std::move(seg));
  LOG_DEBUG("journal: new segment %s", path.c_str());
  return Status::Ok();
}

bool JournalWriter::WouldExceedBudget(uint32_t payload_bytes) const {
  return bytes_ + CostOf(payload_bytes) > max_bytes_;
}

uint64_t JournalWriter::CostOf(uint32_t payload_bytes) const {
  const uint64_t need = journal::RecordBytes(payload_bytes);
  const JournalSegment& active = *segments_.back();
  const bool rolls = active.last_seq != 0 && active.end_offset + need > segment_bytes_target_;
  return need + (rolls ? journal::kSegmentHeaderBytes : 0);
}

Result<JournalWriter::Slot> JournalWriter::Reserve(uint32_t payload_bytes) {
  BLOCKREP_CHECK(payload_bytes <= journal::kMaxPayloadBytes);
  const uint64_t need = journal::RecordBytes(payload_bytes);
  if (CostOf(payload_bytes) > need) BLOCKREP_RETURN_IF_ERROR(Roll());
  Slot slot;
  slot.seq = next_seq_++;
  slot.segment = segments_.back();
  slot.file_offset = slot.segment->end_offset;
  slot.segment->end_offset += need;
  slot.segment->last_seq = slot.seq;
  bytes_ += need;
  pending_.push_back(false);
  slot.lowest_pending = lowest_pending_;
  return slot;
}

void JournalWriter::Complete(uint64_t seq) {
  BLOCKREP_CHECK(seq >= lowest_pending_ && seq < lowest_pending_ + pending_.size());
  pending_[seq - lowest_pending_] = true;
  while (!pending_.empty() && pending_.front()) {
    pending_.pop_front();
    ++lowest_pending_;
  }
}

Result<uint64_t> JournalWriter::AppendMarkerSync(journal::MarkerType type,
                                                 const std::string& body) {
  auto slot = Reserve(static_cast<uint32_t>(body.size()));
  if (!slot.ok()) return slot.status();
  journal::RecordHeader h;
  h.kind = journal::RecordKind::kMarker;
  h.marker = type;
  h.seq = slot->seq;
  h.payload_bytes = static_cast<uint32_t>(body.size());
  h.timestamp_ns = WallClockNs();
  h.lowest_pending_seq = slot->lowest_pending;
  std::string record(journal::RecordBytes(h.payload_bytes), '\0');
  journal::EncodeRecord(journal_id_, h, reinterpret_cast<const uint8_t*>(body.data()),
                        reinterpret_cast<uint8_t*>(record.data()));
  std::memcpy(record.data() + journal::kRecordHeaderBytes, body.data(), body.size());
  const JournalSegment& seg = *slot->segment;
  size_t done = 0;
  while (done < record.size()) {
    ssize_t n = ::pwrite(seg.fd.get(), record.data() + done, record.size() - done,
                         static_cast<off_t>(slot->file_offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : ENOSPC, "journal: write " + seg.path);
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(seg.fd.get()) != 0) return Status::FromErrno(errno, "journal: fdatasync " + seg.path);
  Complete(slot->seq);
  return slot->seq;
}

std::vector<std::shared_ptr<JournalSegment>> JournalWriter::TakeDirty() {
  std::vector<std::shared_ptr<JournalSegment>> out;
  for (auto& seg : segments_) {
    if (seg->dirty) {
      seg->dirty = false;
      out.push_back(seg);
    }
  }
  return out;
}

void JournalWriter::ReturnDirty(const std::vector<std::shared_ptr<JournalSegment>>& segments) {
  for (const auto& seg : segments) seg->dirty = true;
}

void JournalWriter::NoteCheckpoint(uint64_t applied_below) {
  if (applied_below > checkpoint_) checkpoint_ = applied_below;
}

Result<uint64_t> JournalWriter::Reclaim(uint64_t upto_seq) {
  uint64_t freed = 0;
  while (segments_.size() > 1) {
    const JournalSegment& oldest = *segments_.front();
    // Its records are all <= last_seq; an empty segment (last_seq 0) holds nothing.
    if (oldest.last_seq > upto_seq || oldest.last_seq >= checkpoint_) break;
    if (oldest.last_seq >= lowest_pending_) break;
    if (::unlink(oldest.path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "journal: delete " + oldest.path);
    }
    freed += oldest.end_offset;
    bytes_ -= oldest.end_offset;
    segments_.pop_front();
  }
  if (freed > 0) BLOCKREP_RETURN_IF_ERROR(FsyncDir(dir_));
  return freed;
}

Status JournalWriter::DeleteAll() {
  for (const auto& seg : segments_) {
    if (::unlink(seg->path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "journal: delete " + seg->path);
    }
  }
  segments_.clear();
  bytes_ = 0;
  return FsyncDir(dir_);
}

}  // namespace blockrep
