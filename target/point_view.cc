#include "target/point_view.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/durable_file.h"
#include "core/journal_format.h"
#include "core/journal_index.h"
#include "core/journal_reader.h"

namespace blockrep {

Status PointView::Add(uint64_t seq, journal::RecordKind kind, uint64_t offset, uint64_t length,
                      const std::string& segment, uint64_t payload_offset) {
  if (kind == journal::RecordKind::kMarker || length == 0) return Status::Ok();
  if (offset > options_.disk_bytes || length > options_.disk_bytes - offset) {
    return Status::Corruption("journal record seq " + std::to_string(seq) + " at " +
                              std::to_string(offset) + "+" + std::to_string(length) +
                              " lies outside the disk (" + std::to_string(options_.disk_bytes) +
                              " bytes)");
  }
  ExtentSource src;
  if (kind == journal::RecordKind::kWrite) {
    auto [it, added] = file_of_.emplace(segment, static_cast<uint32_t>(segment_names_.size()));
    if (added) {
      const std::string path = options_.journal_dir + "/" + segment;
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
      segment_fds_.push_back(std::move(fd));
      segment_names_.push_back(segment);
    }
    src.kind = ExtentSource::Kind::kData;
    src.file = it->second;
    src.file_offset = payload_offset;
  } else {
    src.kind = ExtentSource::Kind::kZero;  // zero and trim records both read as zeros
  }
  map_.Set(offset, length, src);
  ++records_;
  return Status::Ok();
}

Result<std::unique_ptr<PointView>> PointView::Open(const Options& options) {
  if (options.through_seq + 1 < options.from_seq) {
    return Status::InvalidArgument("a view through seq " + std::to_string(options.through_seq) +
                                   " cannot start at seq " + std::to_string(options.from_seq));
  }
  std::unique_ptr<PointView> v(new PointView(options));
  v->base_fd_ = UniqueFd(::open(options.base_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!v->base_fd_.valid()) return Status::FromErrno(errno, "open " + options.base_path);
  auto list = journal::ListSegments(options.journal_dir);
  if (!list.ok()) return list.status();
  const auto& segments = list.value();

  // Sealed segments with a valid index: from their indexes. From the first segment without
  // one (at least the newest, which may still grow) on: a verifying scan.
  uint64_t last_seen = 0;
  size_t i = 0;
  bool complete = false;
  for (; i < segments.size(); ++i) {
    if (i + 1 < segments.size() && segments[i + 1].first <= options.from_seq) continue;
    if (i + 1 == segments.size()) break;
    auto idx = journal::ReadSegmentIndex(options.journal_dir, segments[i].second, options.journal_id);
    if (!idx.ok()) break;
    for (const journal::IndexEntry& e : idx->entries) {
      last_seen = std::max(last_seen, e.seq);
      if (e.seq < options.from_seq || e.seq > options.through_seq) continue;
      BLOCKREP_RETURN_IF_ERROR(v->Add(e.seq, e.kind, e.offset, e.length, segments[i].second, e.payload_offset));
    }
    ++v->indexed_segments_;
    if (segments[i + 1].first > options.through_seq) {
      complete = true;  // every later record is past the point
      break;
    }
  }
  if (!complete && i < segments.size()) {
    journal::ScanOptions scan;
    scan.journal_id = options.journal_id;
    scan.visit_from_seq = std::max(options.from_seq, segments[i].first);
    scan.skip_segments_below_visit = true;
    PointView* self = v.get();
    // Read (and verified) to the journal's end, even past through_seq, so that the scan can
    // tell a missing record from a torn tail.
    scan.visitor = [&](const journal::RecordView& r) -> Status {
      const journal::RecordHeader& h = r.header;
      if (h.seq > options.through_seq) return Status::Ok();
      return self->Add(h.seq, h.kind, h.offset, h.length, *r.segment,
                       r.file_offset + journal::kRecordHeaderBytes);
    };
    auto summary = journal::ScanJournal(options.journal_dir, scan);
    if (!summary.ok()) return summary.status();
    if (summary->corruption) {
      return Status::Corruption("the target journal in " + options.journal_dir +
                                " is corrupt: " + *summary->corruption);
    }
    for (uint64_t s : summary->dropped) {
      if (s >= options.from_seq && s <= options.through_seq) {
        return Status::Corruption("the target journal in " + options.journal_dir +
                                  " lacks record seq " + std::to_string(s) +
                                  ", which the view through seq " +
                                  std::to_string(options.through_seq) + " needs");
      }
    }
    last_seen = std::max(last_seen, summary->last_seq);
  }
  if (!complete && options.through_seq >= options.from_seq && last_seen < options.through_seq) {
    return Status::InvalidArgument("the target journal in " + options.journal_dir + " ends at seq " +
                                   std::to_string(last_seen) + ", before seq " +
                                   std::to_string(options.through_seq));
  }
  return v;
}

Status PointView::ReadFile(int fd, const std::string& what, uint64_t file_offset,
                           uint64_t length, uint8_t* out, bool zero_past_end) const {
  size_t got = 0;
  BLOCKREP_RETURN_IF_ERROR(PreadFull(fd, out, length, file_offset, what, &got));
  if (got == length) return Status::Ok();
  if (!zero_past_end) return Status::Corruption(what + " ends before byte " + std::to_string(file_offset + length));
  std::memset(out + got, 0, length - got);  // a sparse base shorter than the disk
  return Status::Ok();
}

Status PointView::Read(uint64_t offset, uint64_t length, uint8_t* out) const {
  BLOCKREP_CHECK(offset <= options_.disk_bytes && length <= options_.disk_bytes - offset);
  std::vector<ExtentMap::Piece> pieces;
  map_.Lookup(offset, length, &pieces);
  for (const ExtentMap::Piece& p : pieces) {
    uint8_t* dst = out + (p.offset - offset);
    if (!p.mapped) {
      BLOCKREP_RETURN_IF_ERROR(ReadFile(base_fd_.get(), options_.base_path, p.offset, p.length, dst,
                                        /*zero_past_end=*/true));
    } else if (p.source.kind == ExtentSource::Kind::kZero) {
      std::memset(dst, 0, p.length);
    } else {
      const std::string what = options_.journal_dir + "/" + segment_names_[p.source.file];
      BLOCKREP_RETURN_IF_ERROR(ReadFile(segment_fds_[p.source.file].get(), what,
                                        p.source.file_offset, p.length, dst,
                                        /*zero_past_end=*/false));
    }
  }
  return Status::Ok();
}

}  // namespace blockrep
