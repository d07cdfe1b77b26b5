#include "tools/journal_view_check.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "core/journal_reader.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

// Bytes compared at once.
constexpr uint64_t kChunkBytes = 1u << 20;

struct Rec {
  uint64_t seq;
  journal::RecordKind kind;
  uint64_t offset;
  uint64_t length;
  std::string segment;
  uint64_t file_offset;
};

// Disjoint [start, end) ranges already decided by newer records.
class Covered {
 public:
  // The parts of [start, end) not yet covered, then covers all of it.
  std::vector<std::pair<uint64_t, uint64_t>> TakeUncovered(uint64_t start, uint64_t end) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    uint64_t pos = start;
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < end; ++it) {
      if (it->second <= pos) continue;
      if (it->first > pos) out.emplace_back(pos, it->first);
      pos = std::max(pos, it->second);
      if (pos >= end) break;
    }
    if (pos < end) out.emplace_back(pos, end);
    Add(start, end);
    return out;
  }

 private:
  void Add(uint64_t start, uint64_t end) {
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin() && std::prev(it)->second >= start) --it;
    while (it != ranges_.end() && it->first <= end) {
      start = std::min(start, it->first);
      end = std::max(end, it->second);
      it = ranges_.erase(it);
    }
    ranges_[start] = end;
  }
  std::map<uint64_t, uint64_t> ranges_;
};

Status PreadAll(int fd, uint8_t* buf, uint64_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, "read " + what);
    if (r == 0) return Status::IoError("read " + what + ": unexpected end of file");
    buf += r;
    n -= static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Result<ViewCheckResult> CheckJournalView(const std::string& journal_dir, uint64_t journal_id,
                                         const std::string& backing_path) {
  std::vector<Rec> recs;
  journal::ScanOptions opts;
  opts.journal_id = journal_id;
  opts.visitor = [&](const journal::RecordView& r) {
    if (r.header.kind != journal::RecordKind::kMarker) {
      recs.push_back({r.header.seq, r.header.kind, r.header.offset, r.header.length, *r.segment,
                      r.file_offset});
    }
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(journal_dir, opts);
  if (!scan.ok()) return scan.status();
  if (scan->corruption) {
    return Status::Corruption("the journal does not verify: " + *scan->corruption);
  }
  UniqueFd disk(::open(backing_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!disk.valid()) return Status::FromErrno(errno, "open " + backing_path);

  ViewCheckResult result;
  Covered covered;
  std::vector<uint8_t> want(kChunkBytes), got(kChunkBytes);
  std::map<std::string, UniqueFd> segments;
  for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
    const Rec& r = *it;
    auto pieces = covered.TakeUncovered(r.offset, r.offset + r.length);
    if (pieces.empty() || r.kind == journal::RecordKind::kTrim) continue;
    ++result.records_checked;
    int seg_fd = -1;
    if (r.kind == journal::RecordKind::kWrite) {
      auto& fd = segments[r.segment];
      if (!fd.valid()) {
        fd = UniqueFd(::open((journal_dir + "/" + r.segment).c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid()) return Status::FromErrno(errno, "open segment " + r.segment);
      }
      seg_fd = fd.get();
    }
    for (auto [start, end] : pieces) {
      for (uint64_t pos = start; pos < end; pos += kChunkBytes) {
        const uint64_t n = std::min(kChunkBytes, end - pos);
        if (seg_fd >= 0) {
          const uint64_t src = r.file_offset + journal::kRecordHeaderBytes + (pos - r.offset);
          BLOCKREP_RETURN_IF_ERROR(PreadAll(seg_fd, want.data(), n, src, "segment " + r.segment));
        } else {
          std::fill(want.begin(), want.begin() + static_cast<long>(n), 0);
        }
        BLOCKREP_RETURN_IF_ERROR(PreadAll(disk.get(), got.data(), n, pos, backing_path));
        result.bytes_checked += n;
        if (std::memcmp(want.data(), got.data(), n) == 0) continue;
        uint64_t first = 0;
        while (want[first] == got[first]) ++first;
        ++result.mismatch_count;
        if (result.mismatches.size() < ViewCheckResult::kMaxReported) {
          result.mismatches.push_back({pos + first, n - first, r.seq, r.segment, r.file_offset});
        }
      }
    }
  }
  return result;
}

}  // namespace blockrep
