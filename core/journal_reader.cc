#include "core/journal_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/unique_fd.h"

namespace blockrep::journal {
namespace {

// Bytes read from a segment at once. A record larger than this is read whole.
constexpr size_t kWindowBytes = 1u << 20;
// Missing seqs one scan will list as dropped; more than a daemon can have in flight means
// the journal is not a crashed one but a damaged one.
constexpr size_t kMaxDroppedSeqs = 1u << 20;

// A read-only window on one segment file: Get(offset, len) returns the bytes, reading a
// larger chunk when they are not already held.
class SegmentWindow {
 public:
  SegmentWindow(int fd, uint64_t file_bytes) : fd_(fd), file_bytes_(file_bytes) {}

  // nullptr at a read error (errno kept in error()); REQUIRES offset + len <= file_bytes.
  const uint8_t* Get(uint64_t offset, size_t len) {
    BLOCKREP_CHECK(offset + len <= file_bytes_);
    if (offset >= start_ && offset + len <= start_ + held_) return buf_.data() + (offset - start_);
    size_t want = std::max(len, kWindowBytes);
    if (offset + want > file_bytes_) want = static_cast<size_t>(file_bytes_ - offset);
    if (buf_.size() < want) buf_.resize(want);
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd_, buf_.data() + got, want - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error_ = errno;
        held_ = 0;
        return nullptr;
      }
      if (n == 0) {  // the file shrank under us: treat the rest as absent
        error_ = EIO;
        held_ = 0;
        return nullptr;
      }
      got += static_cast<size_t>(n);
    }
    start_ = offset;
    held_ = want;
    return buf_.data();
  }
  int error() const { return error_; }

 private:
  int fd_;
  uint64_t file_bytes_;
  std::vector<uint8_t> buf_;
  uint64_t start_ = 0;
  size_t held_ = 0;
  int error_ = 0;
};

std::string Where(const std::string& segment, uint64_t offset) {
  return "segment " + segment + " offset " + std::to_string(offset);
}

class Scanner {
 public:
  Scanner(const std::string& dir, const ScanOptions& options) : dir_(dir), opt_(options) {}

  Status Run(ScanSummary* out) {
    auto list = ListSegments(dir_);
    if (!list.ok()) return list.status();
    const auto& segments = list.value();
    for (size_t i = 0; i < segments.size(); ++i) {
      // Visiting from a later seq: a segment wholly below it need not be read.
      if (opt_.skip_segments_below_visit && i + 1 < segments.size() &&
          segments[i + 1].first <= opt_.visit_from_seq) {
        continue;
      }
      BLOCKREP_RETURN_IF_ERROR(ScanSegment(segments[i].second, segments[i].first,
                                           i + 1 == segments.size(), out));
      if (out->corruption) break;
    }
    if (!out->corruption) Classify(out);
    return Status::Ok();
  }

 private:
  Status ScanSegment(const std::string& name, uint64_t name_seq, bool last, ScanSummary* out) {
    const std::string path = dir_ + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(errno, "journal: open " + path);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "journal: stat " + path);
    SegmentSummary seg;
    seg.name = name;
    seg.first_seq = name_seq;
    seg.file_bytes = static_cast<uint64_t>(st.st_size);
    SegmentWindow win(fd.get(), seg.file_bytes);

    SegmentHeader sh;
    const uint8_t* hb =
        seg.file_bytes >= kSegmentHeaderBytes ? win.Get(0, kSegmentHeaderBytes) : nullptr;
    if (hb == nullptr && win.error() != 0) {
      return Status::FromErrno(win.error(), "journal: read " + path);
    }
    const bool header_verifies = hb != nullptr && DecodeSegmentHeader(hb, &sh);
    if (!header_verifies || sh.journal_id != opt_.journal_id) {
      // A crash while the newest segment was being created leaves it short or unfinished;
      // nothing was ever written to it (the writer makes the header durable before it
      // reserves a record there, so bytes after a bad header mean damage, not a torn
      // create). Anywhere else it is damage.
      bool nothing_after = true;
      if (last && !header_verifies && seg.file_bytes > kSegmentHeaderBytes) {
        auto zero = RestIsZero(win, kSegmentHeaderBytes, seg.file_bytes);
        if (!zero.ok()) return zero.status();
        nothing_after = zero.value();
      }
      if (last && !header_verifies && nothing_after) {
        seg.header_torn = true;
        out->segments.push_back(seg);
        return Status::Ok();
      }
      out->corruption = "segment " + name + ": header does not verify" +
                        (header_verifies ? " (it belongs to another journal)"
                         : nothing_after ? ""
                                         : " but data follows it");
      out->segments.push_back(seg);
      return Status::Ok();
    }
    if (sh.first_seq != name_seq) {
      out->corruption = "segment " + name + ": header says first seq " +
                        std::to_string(sh.first_seq) + ", the file name another";
      out->segments.push_back(seg);
      return Status::Ok();
    }
    // Seqs between the previous segment's last record and this segment's first were
    // reserved in the previous segment's tail.
    if (have_prev_) {
      if (name_seq <= prev_seq_) {
        out->corruption = "segment " + name + ": first seq " + std::to_string(name_seq) +
                          " is not after seq " + std::to_string(prev_seq_) + " of " + prev_segment_;
        out->segments.push_back(seg);
        return Status::Ok();
      }
      if (name_seq > prev_seq_ + 1) {
        AddGap(out, prev_seq_ + 1, name_seq - 1, prev_segment_, prev_end_, prev_tail_bytes_);
      }
    }
    prev_seq_ = name_seq - 1;
    have_prev_ = true;

    uint64_t pos = kSegmentHeaderBytes;
    uint64_t hole_start = pos;
    bool in_hole = false;
    seg.end_offset = pos;
    while (pos + kRecordHeaderBytes <= seg.file_bytes) {
      RecordView rv;
      Status st = TryRecord(win, seg, pos, &rv);
      if (!st.ok()) return st;
      if (rv.segment != nullptr) {
        if (in_hole) {
          // Bytes [hole_start, pos) held records that never finished, or damage.
          if (rv.header.seq > prev_seq_ + 1) {
            AddGap(out, prev_seq_ + 1, rv.header.seq - 1, name, hole_start, pos - hole_start);
          }
          in_hole = false;
        } else if (rv.header.seq > prev_seq_ + 1) {
          AddGap(out, prev_seq_ + 1, rv.header.seq - 1, name, pos, 0);
        }
        BLOCKREP_RETURN_IF_ERROR(Accept(rv, &seg, out));
        pos += RecordBytes(rv.header.payload_bytes);
        seg.end_offset = pos;
        continue;
      }
      // Not a record here. The end of what was written (zeroes to the end of the file)?
      if (!in_hole) {
        auto zero = RestIsZero(win, pos, seg.file_bytes);
        if (!zero.ok()) return zero.status();
        if (zero.value()) break;
        in_hole = true;
        hole_start = pos;
      }
      pos += kRecordAlignBytes;  // look for the next record that verifies
    }
    if (in_hole || pos < seg.file_bytes) {
      // Bytes after the last record hold no record: a torn tail (or zero padding).
      auto zero = RestIsZero(win, seg.end_offset, seg.file_bytes);
      if (!zero.ok()) return zero.status();
      if (!zero.value()) seg.torn_tail_bytes = seg.file_bytes - seg.end_offset;
    }
    prev_segment_ = name;
    prev_end_ = seg.end_offset;
    prev_tail_bytes_ = seg.torn_tail_bytes;
    out->segments.push_back(seg);
    return Status::Ok();
  }

  // Sets rv (with segment != nullptr) when a record that verifies, with a seq after the
  // previous one, starts at pos.
  Status TryRecord(SegmentWindow& win, const SegmentSummary& seg, uint64_t pos, RecordView* rv) {
    const uint8_t* h = win.Get(pos, kRecordHeaderBytes);
    if (h == nullptr) return Status::FromErrno(win.error(), "journal: read " + dir_ + "/" + seg.name);
    RecordHeader hdr;
    if (!DecodeRecordHeader(h, &hdr)) return Status::Ok();
    if (pos + kRecordHeaderBytes + hdr.payload_bytes > seg.file_bytes) return Status::Ok();
    if (hdr.seq <= prev_seq_) return Status::Ok();  // stale bytes, not the next record
    // Header and payload together: one Get keeps both pointers valid.
    const uint8_t* all = win.Get(pos, kRecordHeaderBytes + hdr.payload_bytes);
    if (all == nullptr) return Status::FromErrno(win.error(), "journal: read " + dir_ + "/" + seg.name);
    if (!VerifyRecord(opt_.journal_id, all, all + kRecordHeaderBytes, hdr.payload_bytes)) {
      return Status::Ok();
    }
    rv->header = hdr;
    rv->payload = all + kRecordHeaderBytes;
    rv->segment = &seg.name;
    rv->file_offset = pos;
    return Status::Ok();
  }

  Status Accept(const RecordView& rv, SegmentSummary* seg, ScanSummary* out) {
    const RecordHeader& h = rv.header;
    if (out->records == 0) out->first_seq = h.seq;
    ++out->records;
    out->last_seq = h.seq;
    ++seg->records;
    seg->last_seq = h.seq;
    out->horizon = std::max(out->horizon, h.lowest_pending_seq);
    prev_seq_ = h.seq;
    if (h.kind == RecordKind::kMarker) {
      if (h.marker == MarkerType::kVoid) {
        std::vector<uint64_t> seqs;
        if (!DecodeVoidBody(rv.payload, h.payload_bytes, &seqs)) {
          out->corruption = Where(seg->name, rv.file_offset) + ": void marker seq " +
                            std::to_string(h.seq) + " has a malformed body";
          return Status::Ok();
        }
        out->voided.insert(out->voided.end(), seqs.begin(), seqs.end());
      } else if (h.marker == MarkerType::kFlushCheckpoint) {
        uint64_t below = 0;
        if (DecodeCheckpointBody(rv.payload, h.payload_bytes, &below)) {
          out->checkpoint_applied_below = std::max(out->checkpoint_applied_below, below);
        }
      }
    }
    if (opt_.visitor && h.seq >= opt_.visit_from_seq) return opt_.visitor(rv);
    return Status::Ok();
  }

  static Result<bool> RestIsZero(SegmentWindow& win, uint64_t from, uint64_t end) {
    while (from < end) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(end - from, kWindowBytes));
      const uint8_t* p = win.Get(from, n);
      if (p == nullptr) return Status::FromErrno(win.error(), "journal: read");
      for (size_t i = 0; i < n; ++i) {
        if (p[i] != 0) return false;
      }
      from += n;
    }
    return true;
  }

  void AddGap(ScanSummary* out, uint64_t first, uint64_t last, const std::string& segment,
              uint64_t offset, uint64_t bytes) {
    out->gaps.push_back({first, last, segment, offset, bytes});
  }

  // Missing seqs below the horizon had completed: corruption, unless a void marker forgives
  // them. At or above it they may have been in flight: dropped.
  void Classify(ScanSummary* out) {
    std::sort(out->voided.begin(), out->voided.end());
    auto voided = [&](uint64_t s) {
      return std::binary_search(out->voided.begin(), out->voided.end(), s);
    };
    for (const Gap& g : out->gaps) {
      for (uint64_t s = g.first_seq; s <= g.last_seq; ++s) {
        if (voided(s)) continue;
        if (s < out->horizon) {
          out->corruption = Where(g.segment, g.offset) + ": record seq " + std::to_string(s) +
                            " is missing or fails its checksum (" + std::to_string(g.bytes) +
                            " bytes there do not verify), but later records show it had "
                            "completed";
          return;
        }
        if (out->dropped.size() >= kMaxDroppedSeqs) {
          out->corruption = Where(g.segment, g.offset) + ": more than " +
                            std::to_string(kMaxDroppedSeqs) + " records missing";
          return;
        }
        out->dropped.push_back(s);
      }
    }
  }

  const std::string& dir_;
  const ScanOptions& opt_;
  bool have_prev_ = false;
  uint64_t prev_seq_ = 0;       // last verified seq (or the seq before a segment's first)
  std::string prev_segment_;
  uint64_t prev_end_ = 0;
  uint64_t prev_tail_bytes_ = 0;
};

}  // namespace

Result<JournalMeta> ReadJournalMeta(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  uint8_t buf[kMetaBytes];
  if (::pread(fd.get(), buf, sizeof(buf), 0) != static_cast<ssize_t>(sizeof(buf))) {
    return Status::Corruption(path + ": short file");
  }
  JournalMeta meta;
  if (!DecodeMeta(buf, &meta)) return Status::Corruption(path + ": does not verify");
  return meta;
}

Result<std::vector<std::pair<uint64_t, std::string>>> ListSegments(const std::string& journal_dir) {
  DIR* d = ::opendir(journal_dir.c_str());
  if (d == nullptr) return Status::FromErrno(errno, "journal: open directory " + journal_dir);
  std::vector<std::pair<uint64_t, std::string>> out;
  while (dirent* e = ::readdir(d)) {
    uint64_t seq;
    if (ParseSegmentName(e->d_name, &seq)) out.emplace_back(seq, e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<ScanSummary> ScanJournal(const std::string& journal_dir, const ScanOptions& options) {
  ScanSummary summary;
  Scanner scanner(journal_dir, options);
  BLOCKREP_RETURN_IF_ERROR(scanner.Run(&summary));
  return summary;
}

}  // namespace blockrep::journal
