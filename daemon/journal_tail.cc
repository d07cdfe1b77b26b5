#include "daemon/journal_tail.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/check.h"
#include "core/journal_reader.h"

namespace blockrep {

std::string JournalTail::Where(uint64_t offset) const {
  const std::string name = have_segment_ ? segments_[seg_index_].second : "?";
  return "journal segment " + name + " offset " + std::to_string(offset);
}

Status JournalTail::RefreshSegments() {
  auto list = journal::ListSegments(dir_);
  if (!list.ok()) return list.status();
  if (!have_segment_) {
    segments_ = std::move(list).value();
    return Status::Ok();
  }
  const std::pair<uint64_t, std::string> current = segments_[seg_index_];
  segments_ = std::move(list).value();
  auto it = std::lower_bound(segments_.begin(), segments_.end(), current.first,
                             [](const auto& s, uint64_t first) { return s.first < first; });
  if (it == segments_.end() || it->first != current.first) {
    // Reclaimed under the reader, typically once the target acknowledged every record in
    // it while the reader sat at its end: the open fd still reads it. It stays in the list
    // so that the reader goes on to its successor.
    it = segments_.insert(it, current);
  }
  seg_index_ = static_cast<size_t>(it - segments_.begin());
  return Status::Ok();
}

Status JournalTail::OpenSegment(uint64_t first_seq, const std::string& name) {
  const std::string path = dir_ + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "journal: open " + path);
  uint8_t hb[journal::kSegmentHeaderBytes];
  ssize_t n = ::pread(fd.get(), hb, sizeof(hb), 0);
  journal::SegmentHeader sh;
  if (n != static_cast<ssize_t>(sizeof(hb)) || !journal::DecodeSegmentHeader(hb, &sh) ||
      sh.journal_id != journal_id_ || sh.first_seq != first_seq) {
    return Status::Corruption("journal segment " + name + ": header does not verify");
  }
  fd_ = std::move(fd);
  pos_ = journal::kSegmentHeaderBytes;
  window_bytes_ = 0;
  have_segment_ = true;
  return Status::Ok();
}

Status JournalTail::Seek(uint64_t seq) {
  have_segment_ = false;
  fd_.Reset();
  window_bytes_ = 0;
  BLOCKREP_RETURN_IF_ERROR(RefreshSegments());
  if (segments_.empty() || segments_.front().first > seq) {
    return Status::NotFound("journal " + dir_ + " no longer holds seq " + std::to_string(seq) +
                            (segments_.empty() ? " (it is empty)"
                                               : " (it starts at seq " +
                                                     std::to_string(segments_.front().first) + ")"));
  }
  size_t i = 0;
  while (i + 1 < segments_.size() && segments_[i + 1].first <= seq) ++i;
  seg_index_ = i;
  BLOCKREP_RETURN_IF_ERROR(OpenSegment(segments_[i].first, segments_[i].second));
  next_ = segments_[i].first;
  skip_below_ = seq;
  return Status::Ok();
}

Result<const uint8_t*> JournalTail::Bytes(uint64_t offset, size_t n, uint64_t limit, bool* eof) {
  *eof = false;
  const bool held = offset >= window_offset_ && offset + n <= window_offset_ + window_bytes_;
  // A window read under an older limit may predate the record now wanted.
  if (held && window_limit_ >= limit) return window_.data() + (offset - window_offset_);
  const size_t want = std::max(n, kWindowBytes);
  if (window_.size() < want) window_.resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t r = ::pread(fd_.get(), window_.data() + got, want - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, Where(offset) + ": read");
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  window_offset_ = offset;
  window_bytes_ = got;
  window_limit_ = limit;
  if (got < n) {
    *eof = true;
    return static_cast<const uint8_t*>(nullptr);
  }
  return window_.data();
}

Result<bool> JournalTail::RecordAt(uint64_t offset, uint64_t min_seq, uint64_t limit,
                                   Record* out) {
  bool eof;
  auto h = Bytes(offset, journal::kRecordHeaderBytes, limit, &eof);
  if (!h.ok()) return h.status();
  if (eof) return false;
  journal::RecordHeader hdr;
  if (!journal::DecodeRecordHeader(h.value(), &hdr)) return false;
  if (hdr.seq < min_seq || hdr.seq >= limit) return false;
  auto all = Bytes(offset, journal::kRecordHeaderBytes + hdr.payload_bytes, limit, &eof);
  if (!all.ok()) return all.status();
  if (eof) return false;
  if (!journal::VerifyRecord(journal_id_, all.value(), all.value() + journal::kRecordHeaderBytes,
                             hdr.payload_bytes)) {
    return false;
  }
  out->header = hdr;
  out->payload = all.value() + journal::kRecordHeaderBytes;
  return true;
}

bool JournalTail::AllForgiven(uint64_t from, uint64_t to) const {
  for (uint64_t s = from; s < to; ++s) {
    if (s >= skip_below_ && !is_voided_(s)) return false;
  }
  return true;
}

Result<JournalTail::Got> JournalTail::Next(uint64_t limit, Record* out) {
  BLOCKREP_CHECK(have_segment_);
  while (true) {
    if (next_ >= limit) return Got::kWait;
    // The normal case: the record for next_ (or, after forgiven seqs, a later one) is here.
    auto here = RecordAt(pos_, next_, limit, out);
    if (!here.ok()) return here.status();
    if (here.value()) {
      const uint64_t seq = out->header.seq;
      if (seq > next_ && !AllForgiven(next_, seq)) {
        return Status::Corruption(Where(pos_) + ": records seq " + std::to_string(next_) + " to " +
                                  std::to_string(seq - 1) + " are missing but had completed");
      }
      pos_ += journal::RecordBytes(out->header.payload_bytes);
      next_ = seq + 1;
      if (seq < skip_below_) continue;
      return Got::kRecord;
    }
    // No record for next_ at pos_. Either next_'s write failed (it is voided, and its slot
    // holds whatever the failed write left), or this segment's records end here and the
    // next segment goes on, or a completed record no longer verifies.
    // Look further on in this segment (up to its end) for the next record that verifies.
    bool found = false;
    for (uint64_t p = pos_ + journal::kRecordAlignBytes;; p += journal::kRecordAlignBytes) {
      Record r;
      bool end;
      auto b = Bytes(p, journal::kRecordHeaderBytes, limit, &end);
      if (!b.ok()) return b.status();
      if (end) break;
      auto at = RecordAt(p, next_, limit, &r);
      if (!at.ok()) return at.status();
      if (at.value()) {
        if (AllForgiven(next_, r.header.seq)) {
          pos_ = p;
          found = true;
        }
        break;
      }
    }
    if (found) continue;
    // Nothing more in this segment: the next one, if the writer has rolled over.
    if (seg_index_ + 1 >= segments_.size()) BLOCKREP_RETURN_IF_ERROR(RefreshSegments());
    if (seg_index_ + 1 < segments_.size()) {
      const uint64_t first = segments_[seg_index_ + 1].first;
      if (first > next_ && !AllForgiven(next_, first)) {
        return Status::Corruption(Where(pos_) + ": record seq " + std::to_string(next_) +
                                  " is missing or fails its checksum, but it had completed");
      }
      if (first >= next_ || AllForgiven(next_, first)) {
        ++seg_index_;
        BLOCKREP_RETURN_IF_ERROR(OpenSegment(first, segments_[seg_index_].second));
        next_ = std::max(next_, first);
        continue;
      }
    }
    if (AllForgiven(next_, next_ + 1)) {
      // A voided seq whose slot left nothing behind: it is accounted for; what follows it
      // has not completed yet (or is further on, found next time).
      ++next_;
      continue;
    }
    return Status::Corruption(Where(pos_) + ": record seq " + std::to_string(next_) +
                              " is missing or fails its checksum, but it had completed");
  }
}

}  // namespace blockrep
