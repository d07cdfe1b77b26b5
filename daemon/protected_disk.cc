#include "daemon/protected_disk.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/durable_file.h"
#include "core/byte_size.h"
#include "core/log.h"
#include "daemon/journal_recovery.h"

namespace blockrep {
namespace {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + " exists and is not a directory");
    return Status::Ok();
  }
  return Status::FromErrno(errno, "mkdir " + path);
}

Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      BLOCKREP_RETURN_IF_ERROR(MakeDir(path.substr(0, i)));
    }
  }
  return Status::Ok();
}

Status WriteFileDurably(const std::string& path, const uint8_t* data, size_t n) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  if (::write(fd.get(), data, n) != static_cast<ssize_t>(n)) return Status::FromErrno(errno, "write " + tmp);
  if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "fdatasync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + tmp);
  return Status::Ok();
}


// A fresh disk: journal id, empty journal, journaling state, empty bitmap.
Status CreateState(const std::string& dir, const BackingDisk& disk) {
  journal::JournalMeta meta;
  if (::getrandom(&meta.journal_id, sizeof(meta.journal_id), 0) != sizeof(meta.journal_id)) {
    return Status::FromErrno(errno, "getrandom");
  }
  meta.disk_bytes = disk.size_bytes();
  BLOCKREP_RETURN_IF_ERROR(MakeDir(dir + "/journal"));
  DirtyBitmap empty(disk.size_bytes());
  BLOCKREP_RETURN_IF_ERROR(empty.Save(dir + "/bitmap"));
  DiskState state;
  state.disk = disk.name();
  state.path = disk.path();
  state.disk_bytes = disk.size_bytes();
  state.since = NowRfc3339();
  state.clean_shutdown = true;  // nothing to recover from
  BLOCKREP_RETURN_IF_ERROR(state.Save(dir + "/state.json"));
  // journal.meta last: its presence says the rest is complete.
  uint8_t buf[journal::kMetaBytes];
  journal::EncodeMeta(meta, buf);
  BLOCKREP_RETURN_IF_ERROR(WriteFileDurably(dir + "/journal.meta", buf, sizeof(buf)));
  return FsyncDir(dir);
}

Status DeleteSegments(const std::string& journal_dir) {
  auto list = journal::ListSegments(journal_dir);
  if (!list.ok()) return list.status();
  for (const auto& [seq, name] : list.value()) {
    const std::string p = journal_dir + "/" + name;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "delete " + p);
  }
  return FsyncDir(journal_dir);
}

}  // namespace

std::string ProtectedDisk::DiskDir(const std::string& state_dir, const std::string& name) {
  return state_dir + "/disks/" + name;
}

Result<std::unique_ptr<ProtectedDisk>> ProtectedDisk::Open(const std::string& name,
                                                           const std::string& path,
                                                           const Options& options) {
  auto opened = BackingDisk::Open(name, path);
  if (!opened.ok()) return opened.status();
  const std::string dir = DiskDir(options.state_dir, name);
  std::unique_ptr<ProtectedDisk> pd(new ProtectedDisk(std::move(opened).value(), dir));
  const BackingDisk& disk = pd->disk_;
  const std::string who = "disk " + name;
  const uint64_t journal_max_bytes = options.journal_max.Resolve(disk.size_bytes());
  // Segments small against the budget, so that reclaiming what the target acknowledged
  // frees space long before the budget is reached (a 64 MiB segment in a 128 MiB budget
  // could not be reclaimed in time).
  const uint64_t segment_bytes_target = std::min<uint64_t>(
      options.segment_bytes_target, std::max<uint64_t>(1u << 20, journal_max_bytes / 16));

  BLOCKREP_RETURN_IF_ERROR(MakeDirs(dir));
  pd->lock_fd_ = UniqueFd(::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!pd->lock_fd_.valid()) return Status::FromErrno(errno, who + ": open " + dir + "/lock");
  if (::flock(pd->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::InvalidArgument(who + ": state directory " + dir +
                                   " is in use by another blockrep-source");
  }

  const std::string meta_path = dir + "/journal.meta";
  if (::access(meta_path.c_str(), F_OK) != 0) {
    LOG_INFO("%s: new protected disk; state in %s", who.c_str(), dir.c_str());
    BLOCKREP_RETURN_IF_ERROR(CreateState(dir, disk));
  }
  auto meta = journal::ReadJournalMeta(meta_path);
  if (!meta.ok()) return Status(meta.status());
  if (meta->disk_bytes != disk.size_bytes()) {
    return Status::InvalidArgument(
        who + ": " + path + " has " + std::to_string(disk.size_bytes()) +
        " bytes, but its journal in " + dir + " was made for " +
        std::to_string(meta->disk_bytes) + " bytes. If the disk was resized on purpose, move " +
        dir + " away to start protection afresh (its replica then needs a full resync)");
  }
  auto loaded = DiskState::Load(dir + "/state.json");
  if (!loaded.ok()) return Status(loaded.status());
  DiskState state = std::move(loaded).value();
  if (state.path != path) {
    LOG_WARN("%s: was served from %s, now from %s", who.c_str(), state.path.c_str(), path.c_str());
    state.path = path;
  }
  if (!state.clean_shutdown) LOG_WARN("%s: the daemon did not stop cleanly last time", who.c_str());

  auto bitmap = DirtyBitmap::Load(dir + "/bitmap", disk.size_bytes());
  if (!bitmap.ok()) return Status(bitmap.status());
  DirtyBitmap resync = std::move(bitmap).value();
  DirtyBitmap coverage(disk.size_bytes());

  const std::string journal_dir = dir + "/journal";
  BLOCKREP_RETURN_IF_ERROR(MakeDir(journal_dir));
  auto rec = RecoverJournal(journal_dir, meta->journal_id, disk.fd(), disk.size_bytes(),
                            /*replay=*/state.mode == DiskMode::kJournaling, &coverage);
  if (!rec.ok()) return Status::IoError(who + ": journal recovery: " + rec.status().message());
  const journal::ScanSummary& scan = rec->scan;
  bool save_bitmap = false;
  if (scan.corruption) {
    const std::string aside = dir + "/journal.corrupt-" + NowRfc3339();
    if (::rename(journal_dir.c_str(), aside.c_str()) != 0) {
      return Status::FromErrno(errno, who + ": moving the corrupt journal to " + aside);
    }
    BLOCKREP_RETURN_IF_ERROR(MakeDir(journal_dir));
    state.error = "journal corrupt: " + *scan.corruption + "; it was moved to " + aside +
                  "; a full resync is required";
    state.mode = DiskMode::kBitmap;
    state.reason = "journal corrupt";
    state.since = NowRfc3339();
    state.next_seq = std::max(state.next_seq, scan.last_seq + 1);
    resync.MarkAll();
    save_bitmap = true;
    LOG_ERROR("%s: %s", who.c_str(), state.error.c_str());
  } else if (state.mode == DiskMode::kBitmap) {
    // A journal left by a crash during the switch to the bitmap: fold it in.
    if (scan.records > 0 || !scan.segments.empty()) {
      resync.Merge(coverage);
      save_bitmap = true;
      state.next_seq = std::max(state.next_seq, scan.last_seq + 1);
    }
  }
  if (save_bitmap) BLOCKREP_RETURN_IF_ERROR(resync.Save(dir + "/bitmap"));

  std::unique_ptr<JournalWriter> journal;
  if (state.mode == DiskMode::kJournaling) {
    if (rec->replayed_records > 0) {
      LOG_INFO("%s: replayed %lu journal records (%s) from seq %lu into %s", who.c_str(),
               static_cast<unsigned long>(rec->replayed_records),
               FormatBytes(rec->replayed_bytes).c_str(),
               static_cast<unsigned long>(rec->replay_from_seq), path.c_str());
    }
    // Segments without a record (a crash right after creating one) hold nothing: drop them,
    // so the next segment's name is free.
    std::vector<JournalWriter::Existing> existing;
    for (const journal::SegmentSummary& s : scan.segments) {
      if (s.records == 0) {
        ::unlink((journal_dir + "/" + s.name).c_str());
        continue;
      }
      existing.push_back({s.first_seq, s.last_seq, s.file_bytes});
    }
    const uint64_t next_seq = scan.records > 0 ? scan.last_seq + 1 : state.next_seq;
    auto w = JournalWriter::Open(journal_dir, meta->journal_id, next_seq, existing,
                                 journal_max_bytes, segment_bytes_target);
    if (!w.ok()) return Status::IoError(who + ": " + w.status().message());
    journal = std::move(w).value();
    if (!scan.dropped.empty()) {
      LOG_WARN("%s: dropped %zu torn journal record(s) that were in flight at the crash (never "
               "acknowledged)", who.c_str(), scan.dropped.size());
      for (size_t i = 0; i < scan.dropped.size(); i += journal::kMaxVoidSeqs) {
        const size_t n = std::min<size_t>(journal::kMaxVoidSeqs, scan.dropped.size() - i);
        std::vector<uint64_t> seqs(scan.dropped.begin() + static_cast<long>(i),
                                   scan.dropped.begin() + static_cast<long>(i + n));
        auto st = journal->AppendMarkerSync(journal::MarkerType::kVoid, journal::EncodeVoidBody(seqs));
        if (!st.ok()) return Status::IoError(who + ": " + st.status().message());
      }
    }
    auto cp = journal->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint,
                                        journal::EncodeCheckpointBody(journal->next_seq() + 1));
    if (!cp.ok()) return Status::IoError(who + ": " + cp.status().message());
    journal->NoteCheckpoint(journal->next_seq());
    if (journal->bytes() > journal_max_bytes) {
      LOG_WARN("%s: the journal holds %s, over its budget of %s; the next change switches the "
               "disk to a dirty bitmap", who.c_str(), FormatBytes(journal->bytes()).c_str(),
               FormatBytes(journal_max_bytes).c_str());
    }
  } else {
    BLOCKREP_RETURN_IF_ERROR(DeleteSegments(journal_dir));
    LOG_WARN("%s: %s since %s: tracking changes in a dirty bitmap (%lu regions dirty); resync "
             "required", who.c_str(), state.reason.c_str(), state.since.c_str(),
             static_cast<unsigned long>(resync.dirty_regions()));
  }

  state.clean_shutdown = false;
  state.disk_bytes = disk.size_bytes();
  if (state.disk_id.empty()) {
    // First start with replication (or a state from before it): the disk gets its identity.
    uint8_t id[16];
    if (::getrandom(id, sizeof(id), 0) != sizeof(id)) return Status::FromErrno(errno, "getrandom");
    static const char kHex[] = "0123456789abcdef";
    for (uint8_t b : id) {
      state.disk_id.push_back(kHex[b >> 4]);
      state.disk_id.push_back(kHex[b & 15]);
    }
  }
  BLOCKREP_RETURN_IF_ERROR(state.Save(dir + "/state.json"));

  WritePath::Parts parts;
  parts.disk = &pd->disk_;
  parts.io = options.io != nullptr ? options.io : &FileIo::Direct();
  parts.journal = std::move(journal);
  parts.resync = std::move(resync);
  parts.coverage = std::move(coverage);
  parts.bitmap_path = dir + "/bitmap";
  parts.bitmap_fd = UniqueFd(::open(parts.bitmap_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!parts.bitmap_fd.valid()) return Status::FromErrno(errno, who + ": open " + parts.bitmap_path);
  parts.state = std::move(state);
  parts.state_path = dir + "/state.json";
  parts.journal_dir = journal_dir;
  parts.journal_id = meta->journal_id;
  parts.journal_max_bytes = journal_max_bytes;
  parts.segment_bytes_target = segment_bytes_target;
  parts.voided = scan.voided;
  parts.voided.insert(parts.voided.end(), scan.dropped.begin(), scan.dropped.end());
  pd->write_path_ = std::make_unique<WritePath>(std::move(parts));
  return pd;
}

ProtectedDisk::~ProtectedDisk() = default;

Status ProtectedDisk::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  return write_path_->Close();
}

}  // namespace blockrep
