#include "daemon/journal_recovery.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace blockrep {
namespace {

// Zeroes written per step where the file system cannot zero a range in place.
constexpr size_t kZeroChunkBytes = 1u << 20;

Status PwriteAll(int fd, const uint8_t* p, uint64_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, "replay write at " + std::to_string(off));
    p += w;
    n -= static_cast<uint64_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status ZeroRange(int fd, uint64_t off, uint64_t len, bool punch) {
  const int mode = (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
  if (::fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)) == 0) {
    return Status::Ok();
  }
  if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENODEV) {
    return Status::FromErrno(errno, "replay fallocate at " + std::to_string(off));
  }
  static const std::vector<uint8_t> zeroes(kZeroChunkBytes, 0);
  while (len > 0) {
    const uint64_t n = len < kZeroChunkBytes ? len : kZeroChunkBytes;
    BLOCKREP_RETURN_IF_ERROR(PwriteAll(fd, zeroes.data(), n, off));
    off += n;
    len -= n;
  }
  return Status::Ok();
}

}  // namespace

Result<RecoveryReport> RecoverJournal(const std::string& journal_dir, uint64_t journal_id,
                                      int backing_fd, uint64_t disk_bytes, bool replay,
                                      DirtyBitmap* coverage) {
  RecoveryReport report;
  auto out_of_range = [&](const journal::RecordView& r) {
    return Status::Corruption("segment " + *r.segment + " offset " +
                              std::to_string(r.file_offset) + ": record seq " +
                              std::to_string(r.header.seq) + " changes bytes " +
                              std::to_string(r.header.offset) + "+" +
                              std::to_string(r.header.length) + ", past the disk's end " +
                              std::to_string(disk_bytes));
  };

  journal::ScanOptions scan_opts;
  scan_opts.journal_id = journal_id;
  Status range_error;
  scan_opts.visitor = [&](const journal::RecordView& r) -> Status {
    if (r.header.kind == journal::RecordKind::kMarker) return Status::Ok();
    if (r.header.offset + r.header.length > disk_bytes) {
      range_error = out_of_range(r);
      return range_error;
    }
    coverage->Mark(r.header.offset, r.header.length);
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(journal_dir, scan_opts);
  if (!scan.ok()) {
    if (!range_error.ok()) {
      report.scan.corruption = range_error.message();
      return report;
    }
    return scan.status();
  }
  report.scan = std::move(scan).value();
  if (!replay || report.scan.corruption || report.scan.records == 0) return report;

  // Replay from the last checkpoint: everything before it is on the disk already.
  report.replay_from_seq = report.scan.checkpoint_applied_below;
  journal::ScanOptions replay_opts;
  replay_opts.journal_id = journal_id;
  replay_opts.visit_from_seq = report.replay_from_seq;
  replay_opts.skip_segments_below_visit = true;
  replay_opts.visitor = [&](const journal::RecordView& r) -> Status {
    const journal::RecordHeader& h = r.header;
    switch (h.kind) {
      case journal::RecordKind::kWrite:
        BLOCKREP_RETURN_IF_ERROR(PwriteAll(backing_fd, r.payload, h.length, h.offset));
        break;
      case journal::RecordKind::kZero:
        BLOCKREP_RETURN_IF_ERROR(ZeroRange(backing_fd, h.offset, h.length, /*punch=*/false));
        break;
      case journal::RecordKind::kTrim:
        // A trim that could not punch a hole left the data; replay does the same.
        if (::fallocate(backing_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        static_cast<off_t>(h.offset), static_cast<off_t>(h.length)) != 0 &&
            errno != EOPNOTSUPP) {
          return Status::FromErrno(errno, "replay trim at " + std::to_string(h.offset));
        }
        break;
      case journal::RecordKind::kMarker:
        return Status::Ok();
    }
    ++report.replayed_records;
    report.replayed_bytes += h.length;
    return Status::Ok();
  };
  auto replayed = journal::ScanJournal(journal_dir, replay_opts);
  if (!replayed.ok()) return replayed.status();
  if (::fdatasync(backing_fd) != 0) return Status::FromErrno(errno, "fdatasync after replay");
  return report;
}

}  // namespace blockrep
