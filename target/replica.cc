#include "target/replica.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>

#include "core/clock.h"
#include "core/byte_size.h"
#include "core/check.h"
#include "core/disk_state.h"
#include "core/durable_file.h"
#include "core/journal_reader.h"
#include "core/log.h"

namespace blockrep {
namespace {

constexpr char kFormat[] = "blockrep-replica";
constexpr int kStateVersion = 1;
constexpr size_t kMaxStateBytes = 64u << 10;
constexpr size_t kCommitBodyBytes = 32;
// The target journal has no budget of its own: during a resync it must hold everything
// until SYNC_END. The file system's free space is the limit (ENOSPC: kNoSpace, retried).
constexpr uint64_t kTargetJournalMaxBytes = std::numeric_limits<uint64_t>::max() / 2;
const uint8_t kPad[journal::kRecordAlignBytes] = {};


void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

std::string HexId(const repl::DiskId& id) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : id) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

bool ParseHexId(const std::string& s, repl::DiskId* id) {
  if (s.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*id)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string p = path.substr(0, i);
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir " + p);
  }
  return Status::Ok();
}

repl::ErrorCode CodeOf(const Status& st) {
  return st.message().find(std::strerror(ENOSPC)) != std::string::npos ? repl::ErrorCode::kNoSpace
                                                                        : repl::ErrorCode::kIoError;
}

const char* StateKey(repl::ReplicaState s) { return repl::ReplicaStateName(s); }

// o[k] as an unsigned number; false when o is not an object or has no such number.
bool GetU64(const nlohmann::json& o, const char* k, uint64_t* out) {
  if (!o.is_object() || !o.contains(k) || !o[k].is_number_unsigned()) return false;
  *out = o[k].get<uint64_t>();
  return true;
}


}  // namespace

Replica::~Replica() = default;

// ---- state file --------------------------------------------------------------------------

Status Replica::SaveState(bool closing) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kStateVersion;
  j["disk"] = config_.name;
  j["disk_id"] = HexId(disk_id_);
  j["generation"] = generation_;
  j["disk_bytes"] = disk_bytes_;
  j["source"] = source_;
  j["state"] = StateKey(state_);
  j["hold_from"] = hold_from_;
  if (state_ == repl::ReplicaState::kChanged) j["changed"] = changed_why_;
  struct stat st;
  if (image_fd_.valid() && !image_is_block_device_ && ::fstat(image_fd_.get(), &st) == 0) {
    nlohmann::ordered_json stamp;
    stamp["inode"] = static_cast<uint64_t>(st.st_ino);
    stamp["size"] = static_cast<uint64_t>(st.st_size);
    stamp["mtime_ns"] = NsOf(st.st_mtim);
    stamp["ctime_ns"] = NsOf(st.st_ctim);
    stamp["closed_cleanly"] = closing;
    j["image_stamp"] = stamp;
  }
  j["created"] = created_;
  j["updated"] = NowRfc3339();
  const std::string text =
      j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  BLOCKREP_RETURN_IF_ERROR(WriteFileDurably(config_.dir + "/replica.json", text.data(), text.size()));
  Publish();
  return Status::Ok();
}

Status Replica::LoadState() {
  const std::string path = config_.dir + "/replica.json";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  std::string text(kMaxStateBytes + 1, '\0');
  ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0) return Status::FromErrno(errno, "read " + path);
  if (static_cast<size_t>(n) > kMaxStateBytes) return Status::Corruption(path + ": too large");
  text.resize(static_cast<size_t>(n));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto str = [&](const char* k, std::string* out) -> bool {
    if (!j.contains(k) || !j[k].is_string()) return false;
    *out = j[k].get<std::string>();
    return true;
  };
  auto u64 = [&](const char* k, uint64_t* out) { return GetU64(j, k, out); };
  std::string format, disk, id, state;
  uint64_t version = 0;
  if (!str("format", &format) || format != kFormat) return bad("format: expected \"blockrep-replica\"");
  if (!u64("version", &version) || version != kStateVersion) return bad("version: not supported");
  if (!str("disk", &disk) || disk != config_.name) return bad("disk: not " + config_.name);
  if (!str("disk_id", &id) || !ParseHexId(id, &disk_id_)) return bad("disk_id: expected 32 hex digits");
  if (!u64("generation", &generation_)) return bad("generation: missing");
  if (!u64("disk_bytes", &disk_bytes_) || disk_bytes_ == 0) return bad("disk_bytes: missing");
  if (!str("source", &source_)) return bad("source: missing");
  if (!str("state", &state)) return bad("state: missing");
  if (state == "initial-copy") state_ = repl::ReplicaState::kInitialCopy;
  else if (state == "resync") state_ = repl::ReplicaState::kResync;
  else if (state == "in-sync") state_ = repl::ReplicaState::kInSync;
  else if (state == "changed") state_ = repl::ReplicaState::kChanged;
  else return bad("state: '" + state + "'");
  if (!u64("hold_from", &hold_from_)) return bad("hold_from: missing");
  if (state_ == repl::ReplicaState::kResync && hold_from_ == 0) return bad("hold_from: 0 in state resync");
  if (state_ == repl::ReplicaState::kChanged && !str("changed", &changed_why_)) return bad("changed: missing");
  if (j.contains("image_stamp")) {
    const nlohmann::json& t = j["image_stamp"];
    if (!GetU64(t, "inode", &stamp_.inode) || !GetU64(t, "size", &stamp_.size) ||
        !GetU64(t, "mtime_ns", &stamp_.mtime_ns) || !GetU64(t, "ctime_ns", &stamp_.ctime_ns) ||
        !t.contains("closed_cleanly") || !t["closed_cleanly"].is_boolean()) {
      return bad("image_stamp: expected inode, size, mtime_ns, ctime_ns and closed_cleanly");
    }
    closed_cleanly_ = t["closed_cleanly"].get<bool>();
    stamp_known_ = true;
  }
  str("created", &created_);
  exists_ = true;
  return Status::Ok();
}

// ---- files ---------------------------------------------------------------------------------

Status Replica::OpenImage(bool create) {
  const std::string& path = config_.image_path;
  int flags = O_RDWR | O_CLOEXEC;
  if (create) flags |= O_CREAT;
  image_fd_ = UniqueFd(::open(path.c_str(), flags, 0600));
  if (!image_fd_.valid()) return Status::FromErrno(errno, "open replica image " + path);
  struct stat st;
  if (::fstat(image_fd_.get(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  image_is_block_device_ = S_ISBLK(st.st_mode);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (image_is_block_device_) {
    if (::ioctl(image_fd_.get(), BLKGETSIZE64, &size) != 0) return Status::FromErrno(errno, "BLKGETSIZE64 " + path);
    if (size < disk_bytes_) {
      return Status::InvalidArgument("replica device " + path + " has " + FormatBytes(size) +
                                     ", the disk " + FormatBytes(disk_bytes_));
    }
    return Status::Ok();
  }
  if (create && size != disk_bytes_) {
    // A new replica: a sparse file of the disk's size (holes read as zeroes).
    if (::ftruncate(image_fd_.get(), 0) != 0 ||
        ::ftruncate(image_fd_.get(), static_cast<off_t>(disk_bytes_)) != 0) {
      return Status::FromErrno(errno, "size replica image " + path);
    }
  } else if (size != disk_bytes_) {
    return Status::Corruption("replica image " + path + " has " + std::to_string(size) +
                              " bytes, the disk " + std::to_string(disk_bytes_));
  }
  return Status::Ok();
}

Status Replica::OpenJournal(bool fresh) {
  journal_dir_ = config_.dir + "/journal";
  const std::string meta_path = config_.dir + "/journal.meta";
  if (fresh) {
    BLOCKREP_RETURN_IF_ERROR(MakeDirs(journal_dir_));
    auto list = journal::ListSegments(journal_dir_);
    if (!list.ok()) return list.status();
    for (const auto& [seq, name] : list.value()) ::unlink((journal_dir_ + "/" + name).c_str());
    journal::JournalMeta meta;
    if (::getrandom(&meta.journal_id, sizeof(meta.journal_id), 0) != sizeof(meta.journal_id)) {
      return Status::FromErrno(errno, "getrandom");
    }
    meta.disk_bytes = disk_bytes_;
    uint8_t buf[journal::kMetaBytes];
    journal::EncodeMeta(meta, buf);
    BLOCKREP_RETURN_IF_ERROR(WriteFileDurably(meta_path, buf, sizeof(buf)));
    journal_id_ = meta.journal_id;
    auto w = JournalWriter::Open(journal_dir_, journal_id_, 1, {}, kTargetJournalMaxBytes);
    if (!w.ok()) return w.status();
    journal_ = std::move(w).value();
    applied_below_ = image_synced_below_ = journal_->next_seq();
    return Status::Ok();
  }
  auto meta = journal::ReadJournalMeta(meta_path);
  if (!meta.ok()) return meta.status();
  journal_id_ = meta->journal_id;
  return Status::Ok();
}

Result<std::unique_ptr<Replica>> Replica::Open(const Config& config_in) {
  Config config = config_in;
  if (config.image_path.empty()) config.image_path = config.dir + "/replica.img";
  std::unique_ptr<Replica> r(new Replica(config));
  BLOCKREP_RETURN_IF_ERROR(MakeDirs(config.dir));
  const std::string lock = config.dir + "/lock";
  r->lock_fd_ = UniqueFd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!r->lock_fd_.valid()) return Status::FromErrno(errno, "open " + lock);
  if (::flock(r->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::InvalidArgument("replica " + config.name + ": " + config.dir +
                                   " is in use by another blockrep-target");
  }
  if (::access((config.dir + "/replica.json").c_str(), F_OK) != 0) {
    r->Publish();
    return r;  // new: created by Start
  }
  BLOCKREP_RETURN_IF_ERROR(r->LoadState());
  BLOCKREP_RETURN_IF_ERROR(r->OpenImage(false));
  // Before recovery, which replays nothing over an image found changed: what the journal
  // holds (an unfinished resync's held records, say) belongs to the image it replaced.
  const std::string changed = r->CheckImageStamp();
  if (!changed.empty()) {
    r->changed_why_ = r->config_.image_path + " " + changed + "; a full resync compares every block";
    LOG_WARN("replica %s: %s", config.name.c_str(), r->changed_why_.c_str());
    r->state_ = repl::ReplicaState::kChanged;
    r->hold_from_ = 0;
  }
  BLOCKREP_RETURN_IF_ERROR(r->OpenJournal(false));
  BLOCKREP_RETURN_IF_ERROR(r->Recover());
  // Running: a crash from here on leaves no "closed cleanly" mark (nor a lost "changed").
  if (r->error_.empty()) BLOCKREP_RETURN_IF_ERROR(r->SaveState());
  r->Publish();
  return r;
}

std::string Replica::CheckImageStamp() const {
  if (!stamp_known_ || image_is_block_device_ || state_ == repl::ReplicaState::kChanged) return "";
  struct stat st;
  if (::fstat(image_fd_.get(), &st) != 0) return "";  // OpenImage just did the same
  std::string why;
  if (static_cast<uint64_t>(st.st_ino) != stamp_.inode) {
    why = "is not the file blockrep-target wrote (inode " + std::to_string(st.st_ino) + ", was " +
          std::to_string(stamp_.inode) + ")";
  } else if (closed_cleanly_ && (NsOf(st.st_mtim) != stamp_.mtime_ns || NsOf(st.st_ctim) != stamp_.ctime_ns)) {
    // (Another size never gets here: OpenImage refuses it.)
    why = "changed while blockrep-target was stopped (its mtime or ctime is not the one the "
          "target's clean stop recorded)";
  }
  return why;
}

Status Replica::Close() {
  if (!exists_ || !journal_ || !error_.empty() || !image_fd_.valid()) return Status::Ok();
  if (group_items_ > 0) AbandonGroup();  // never acknowledged: the source sends it again
  // Everything applied is marked so: the next start replays nothing over the image.
  BLOCKREP_RETURN_IF_ERROR(Checkpoint());
  // fsync, not fdatasync: the timestamps the stamp records must be on disk too.
  if (::fsync(image_fd_.get()) != 0) return Status::FromErrno(errno, "fsync " + config_.image_path);
  return SaveState(/*closing=*/true);
}

// ---- journal ---------------------------------------------------------------------------------

Result<uint64_t> Replica::Append(journal::RecordKind kind, uint16_t flags, uint64_t offset,
                                 uint64_t length, const uint8_t* payload, uint32_t payload_bytes,
                                 journal::MarkerType marker, uint64_t timestamp_ns) {
  auto slot = journal_->Reserve(payload_bytes);
  if (!slot.ok()) return slot.status();
  Appended& a = appended_.emplace_back();
  a.slot = std::move(slot).value();
  if (kind == journal::RecordKind::kMarker) {
    a.body.assign(reinterpret_cast<const char*>(payload), payload_bytes);
    payload = reinterpret_cast<const uint8_t*>(a.body.data());
  }
  a.payload = payload;
  a.payload_bytes = payload_bytes;
  journal::RecordHeader h;
  h.kind = kind;
  h.flags = flags;
  h.seq = a.slot.seq;
  h.offset = offset;
  h.length = length;
  h.payload_bytes = payload_bytes;
  h.marker = marker;
  h.timestamp_ns = timestamp_ns;
  h.lowest_pending_seq = a.slot.lowest_pending;
  journal::EncodeRecord(journal_id_, h, payload, a.header);
  return a.slot.seq;
}

Status Replica::FlushAppends() {
  Status result;
  std::vector<iovec> iov;
  while (!appended_.empty()) {
    // A run: records back to back in one segment, at most IOV_MAX iovecs.
    const JournalSegment* seg = appended_.front().slot.segment.get();
    const uint64_t start = appended_.front().slot.file_offset;
    uint64_t end = start;
    size_t n = 0;
    iov.clear();
    while (n < appended_.size()) {
      Appended& a = appended_[n];
      if (a.slot.segment.get() != seg || a.slot.file_offset != end || iov.size() + 3 > IOV_MAX) break;
      const uint64_t total = journal::RecordBytes(a.payload_bytes);
      iov.push_back({a.header, sizeof(a.header)});
      if (a.payload_bytes > 0) iov.push_back({const_cast<uint8_t*>(a.payload), a.payload_bytes});
      const uint64_t pad = total - sizeof(a.header) - a.payload_bytes;
      if (pad > 0) iov.push_back({const_cast<uint8_t*>(kPad), pad});
      end += total;
      ++n;
    }
    // pwritev with short writes continued where they stopped.
    uint64_t done = 0;
    size_t first = 0;
    while (done < end - start) {
      ssize_t w = ::pwritev(seg->fd.get(), iov.data() + first, static_cast<int>(iov.size() - first),
                            static_cast<off_t>(start + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        // The seqs are lost: the group fails and the session ends; a restart voids them.
        result = Status::FromErrno(w < 0 ? errno : ENOSPC, "target journal: write " + seg->path);
        break;
      }
      done += static_cast<uint64_t>(w);
      size_t left = static_cast<size_t>(w);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    if (!result.ok()) break;
    for (size_t i = 0; i < n; ++i) {
      journal_->MarkWritten(appended_.front().slot);
      journal_->Complete(appended_.front().slot.seq);
      appended_.pop_front();
    }
  }
  if (!result.ok()) DropAppends();
  return result;
}

void Replica::DropAppends() {
  if (appended_.empty()) return;
  // Reserved seqs never written would read as a hole in the journal: a void marker says
  // they were given up (docs/formats/journal.md). Best effort: if even that fails, the
  // journal's next scan reports the hole and the replica needs an operator.
  std::vector<uint64_t> seqs;
  for (const Appended& a : appended_) {
    seqs.push_back(a.slot.seq);
    journal_->Complete(a.slot.seq);
  }
  appended_.clear();
  for (size_t i = 0; i < seqs.size(); i += journal::kMaxVoidSeqs) {
    const size_t n = std::min<size_t>(journal::kMaxVoidSeqs, seqs.size() - i);
    std::vector<uint64_t> part(seqs.begin() + static_cast<long>(i), seqs.begin() + static_cast<long>(i + n));
    auto st = journal_->AppendMarkerSync(journal::MarkerType::kVoid, journal::EncodeVoidBody(part));
    if (!st.ok()) {
      LOG_ERROR("replica %s: voiding %zu unwritten journal record(s): %s", config_.name.c_str(),
                part.size(), st.status().ToString().c_str());
    }
  }
}

Status Replica::SyncJournal() {
  BLOCKREP_RETURN_IF_ERROR(FlushAppends());
  auto dirty = journal_->TakeDirty();
  for (const auto& seg : dirty) {
    if (::fdatasync(seg->fd.get()) != 0) {
      journal_->ReturnDirty(dirty);
      return Status::FromErrno(errno, "target journal: fdatasync " + seg->path);
    }
  }
  return Status::Ok();
}

// ---- image ----------------------------------------------------------------------------------

Status Replica::ApplyToImage(journal::RecordKind kind, uint64_t offset, uint64_t length,
                             const uint8_t* data) {
  BLOCKREP_CHECK(offset + length <= disk_bytes_);
  const int fd = image_fd_.get();
  if (kind == journal::RecordKind::kWrite) {
    uint64_t done = 0;
    while (done < length) {
      ssize_t w = ::pwrite(fd, data + done, length - done, static_cast<off_t>(offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, "replica " + config_.name + ": write at " + std::to_string(offset + done));
      done += static_cast<uint64_t>(w);
    }
    applied_bytes_ += length;
    return Status::Ok();
  }
  // Zero and trim both leave zeroes; a hole keeps the replica sparse.
  if (!image_is_block_device_) {
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0) {
      return Status::Ok();
    }
  } else {
    uint64_t range[2] = {offset, length};
    if (::ioctl(fd, BLKZEROOUT, range) == 0) return Status::Ok();
  }
  // No hole punching here: write zeroes.
  static const std::vector<uint8_t> zeros(1u << 20, 0);
  for (uint64_t done = 0; done < length;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), length - done));
    ssize_t w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, "replica " + config_.name + ": zero at " + std::to_string(offset + done));
    done += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status Replica::HashChunk(uint64_t offset, uint64_t length, std::vector<uint64_t>* hashes) {
  scratch_.resize(length);
  uint64_t done = 0;
  while (done < length) {
    ssize_t r = ::pread(image_fd_.get(), scratch_.data() + done, length - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::FromErrno(r < 0 ? errno : EIO, "replica " + config_.name + ": read at " + std::to_string(offset + done));
    done += static_cast<uint64_t>(r);
  }
  repl::BlockHashes(scratch_.data(), length, hashes);
  return Status::Ok();
}

// ---- recovery --------------------------------------------------------------------------------

Status Replica::Replay(uint64_t from, uint64_t below, uint64_t* applied) {
  *applied = 0;
  journal::ScanOptions opt;
  opt.journal_id = journal_id_;
  opt.visit_from_seq = from;
  opt.skip_segments_below_visit = true;
  // Seqs voided in segments the scan skips are below `from`, and never replayed.
  std::vector<uint64_t> voided;
  {
    journal::ScanOptions first;
    first.journal_id = journal_id_;
    auto scan = journal::ScanJournal(journal_dir_, first);
    if (!scan.ok()) return scan.status();
    voided = scan->voided;
    std::sort(voided.begin(), voided.end());
  }
  opt.visitor = [&](const journal::RecordView& rv) -> Status {
    const journal::RecordHeader& h = rv.header;
    if (h.seq >= below || h.kind == journal::RecordKind::kMarker) return Status::Ok();
    if (std::binary_search(voided.begin(), voided.end(), h.seq)) return Status::Ok();
    BLOCKREP_RETURN_IF_ERROR(ApplyToImage(h.kind, h.offset, h.length, rv.payload));
    ++*applied;
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(journal_dir_, opt);
  if (!scan.ok()) return scan.status();
  if (scan->corruption) return Status::Corruption("target journal: " + *scan->corruption);
  return Status::Ok();
}

Status Replica::Recover() {
  // Pass 1: where the durable point is, what was never committed.
  struct Commit {
    uint64_t seq = 0, through = 0, cursor = 0, group_first = 0;
    uint32_t state = 0;
  } last;
  std::vector<uint64_t> records_after_commit;
  journal::ScanOptions opt;
  opt.journal_id = journal_id_;
  opt.visitor = [&](const journal::RecordView& rv) -> Status {
    const journal::RecordHeader& h = rv.header;
    if (h.kind == journal::RecordKind::kMarker && h.marker == journal::MarkerType::kCommit) {
      if (h.payload_bytes == kCommitBodyBytes) {
        last.seq = h.seq;
        last.through = Get64(rv.payload);
        last.cursor = Get64(rv.payload + 8);
        last.group_first = Get64(rv.payload + 16);
        last.state = static_cast<uint32_t>(Get64(rv.payload + 24) & 0xffffffffu);
        records_after_commit.clear();
      }
      return Status::Ok();
    }
    if (h.kind != journal::RecordKind::kMarker) records_after_commit.push_back(h.seq);
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(journal_dir_, opt);
  if (!scan.ok()) return scan.status();
  if (scan->corruption) {
    error_ = "target journal corrupt: " + *scan->corruption +
             "; move " + config_.dir + " aside to start this replica afresh";
    LOG_ERROR("replica %s: %s", config_.name.c_str(), error_.c_str());
    return Status::Ok();
  }
  if (last.seq == 0) {
    error_ = "target journal of " + config_.name + " holds no commit record; move " +
             config_.dir + " aside to start this replica afresh";
    LOG_ERROR("replica %s: %s", config_.name.c_str(), error_.c_str());
    return Status::Ok();
  }
  durable_through_ = last.through;
  sync_cursor_ = last.cursor;

  std::vector<JournalWriter::Existing> existing;
  for (const auto& s : scan->segments) {
    if (s.records == 0) {
      ::unlink((journal_dir_ + "/" + s.name).c_str());
      continue;
    }
    existing.push_back({s.first_seq, s.last_seq, s.file_bytes});
  }
  auto w = JournalWriter::Open(journal_dir_, journal_id_, scan->records > 0 ? scan->last_seq + 1 : 1,
                               existing, kTargetJournalMaxBytes);
  if (!w.ok()) return w.status();
  journal_ = std::move(w).value();
  // Records after the last commit were never acknowledged: void them (and the torn ones).
  std::vector<uint64_t> lost = records_after_commit;
  lost.insert(lost.end(), scan->dropped.begin(), scan->dropped.end());
  for (size_t i = 0; i < lost.size(); i += journal::kMaxVoidSeqs) {
    const size_t n = std::min<size_t>(journal::kMaxVoidSeqs, lost.size() - i);
    std::vector<uint64_t> seqs(lost.begin() + static_cast<long>(i), lost.begin() + static_cast<long>(i + n));
    auto st = journal_->AppendMarkerSync(journal::MarkerType::kVoid, journal::EncodeVoidBody(seqs));
    if (!st.ok()) return st.status();
  }
  if (!lost.empty()) {
    LOG_INFO("replica %s: dropped %zu journal record(s) that were never acknowledged",
             config_.name.c_str(), lost.size());
  }
  // Committed records since the last checkpoint: apply them again (unless held).
  uint64_t applied = 0;
  if (state_ != repl::ReplicaState::kInitialCopy && state_ != repl::ReplicaState::kChanged) {
    // A held resync keeps everything from hold_from out of the image until SYNC_END.
    const uint64_t below = state_ == repl::ReplicaState::kResync ? hold_from_ : UINT64_MAX;
    BLOCKREP_RETURN_IF_ERROR(Replay(scan->checkpoint_applied_below, below, &applied));
  }
  if (::fdatasync(image_fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync " + config_.image_path);
  const uint64_t below = state_ == repl::ReplicaState::kResync ? hold_from_ : journal_->next_seq() + 1;
  auto cp = journal_->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint, journal::EncodeCheckpointBody(below));
  if (!cp.ok()) return cp.status();
  journal_->NoteCheckpoint(std::min(below, journal_->next_seq()));
  applied_below_ = image_synced_below_ = std::min(below, journal_->next_seq());
  LOG_INFO("replica %s: %s, durable through source seq %lu%s%s", config_.name.c_str(),
           StateKey(state_), static_cast<unsigned long>(durable_through_),
           applied > 0 ? (", replayed " + std::to_string(applied) + " journal record(s)").c_str() : "",
           state_ != repl::ReplicaState::kInSync ? (", sync cursor " + FormatBytes(sync_cursor_)).c_str() : "");
  return Status::Ok();
}

// ---- the handshake --------------------------------------------------------------------------

repl::ErrorCode Replica::Check(const repl::Hello& hello, const std::string& identity,
                               std::string* why) const {
  if (identity != config_.source_identity) {
    *why = "disk " + config_.name + " is configured for source '" + config_.source_identity +
           "', not '" + identity + "'";
    return repl::ErrorCode::kIdentityNotAllowed;
  }
  if (!error_.empty()) {
    *why = error_;
    return repl::ErrorCode::kIoError;
  }
  if (!exists_) return repl::ErrorCode::kOk;
  if (hello.disk_bytes != disk_bytes_) {
    *why = "the replica of " + config_.name + " has " + std::to_string(disk_bytes_) +
           " bytes, the disk " + std::to_string(hello.disk_bytes) +
           "; move " + config_.dir + " aside on the target to replicate it afresh";
    return repl::ErrorCode::kSizeMismatch;
  }
  if (hello.disk_id != disk_id_) {
    *why = "the replica of " + config_.name + " belongs to disk id " + HexId(disk_id_) +
           ", this disk is " + HexId(hello.disk_id) + "; move " + config_.dir +
           " aside on the target to replicate it afresh";
    return repl::ErrorCode::kDiskIdMismatch;
  }
  if (hello.generation != generation_) {
    *why = "the replica of " + config_.name + " is of generation " + std::to_string(generation_) +
           ", the disk of generation " + std::to_string(hello.generation) + "; move " + config_.dir +
           " aside on the target to replicate it afresh";
    return repl::ErrorCode::kGenerationMismatch;
  }
  return repl::ErrorCode::kOk;
}

Status Replica::Start(const repl::Start& start, const repl::Hello& hello, const std::string& identity,
                      repl::ErrorCode* code) {
  *code = repl::ErrorCode::kBadStream;
  auto bad = [&](const std::string& why) {
    return Status::ProtocolError("START " + std::string(repl::StartModeName(start.mode)) + " for " +
                                 config_.name + " (replica " + StateKey(state_) + ", durable through " +
                                 std::to_string(durable_through_) + "): " + why);
  };
  if (start.first_seq == 0) return bad("first seq 0");
  Status st;
  switch (start.mode) {
    case repl::StartMode::kInitial: {
      if (exists_) return bad("the replica exists");
      disk_id_ = hello.disk_id;
      generation_ = hello.generation;
      disk_bytes_ = hello.disk_bytes;
      source_ = identity;
      created_ = NowRfc3339();
      st = OpenImage(true);
      if (st.ok()) st = OpenJournal(true);
      if (!st.ok()) break;
      state_ = repl::ReplicaState::kInitialCopy;
      durable_through_ = start.first_seq - 1;
      sync_cursor_ = 0;
      hold_from_ = 0;
      st = SaveState();  // last: its presence says the replica exists
      if (st.ok()) exists_ = true;
      LOG_INFO("replica %s: new, %s, from %s: initial copy begins", config_.name.c_str(),
               FormatBytes(disk_bytes_).c_str(), identity.c_str());
      break;
    }
    case repl::StartMode::kInitialResume:
      if (state_ != repl::ReplicaState::kInitialCopy) return bad("not in an initial copy");
      if (start.first_seq > durable_through_ + 1) return bad("first seq after durable through + 1");
      if (start.sync_cursor != sync_cursor_) return bad("cursor is not the durable one");
      // Items after the last ACK may have reached the image in part: from the cursor on,
      // the image must read as zeroes again, as the source assumes.
      if (sync_cursor_ < disk_bytes_) {
        st = ApplyToImage(journal::RecordKind::kZero, sync_cursor_, disk_bytes_ - sync_cursor_, nullptr);
      }
      if (st.ok() && ::fdatasync(image_fd_.get()) != 0) st = Status::FromErrno(errno, "fdatasync " + config_.image_path);
      durable_through_ = start.first_seq - 1;
      LOG_INFO("replica %s: initial copy resumes at %s", config_.name.c_str(), FormatBytes(sync_cursor_).c_str());
      break;
    case repl::StartMode::kResync: {
      if (!exists_) return bad("no replica to resync");
      if (::fdatasync(image_fd_.get()) != 0) {
        st = Status::FromErrno(errno, "fdatasync " + config_.image_path);
        break;
      }
      if (state_ == repl::ReplicaState::kResync) {
        // A new resync drops what the old one held: the image is still the consistent
        // state from before it, and a fresh journal starts.
        LOG_INFO("replica %s: a new resync replaces the unfinished one", config_.name.c_str());
      }
      st = OpenJournal(true);
      if (!st.ok()) break;
      hold_from_ = journal_->next_seq();
      state_ = repl::ReplicaState::kResync;
      changed_why_.clear();
      durable_through_ = start.first_seq - 1;
      sync_cursor_ = 0;
      st = SaveState();
      LOG_INFO("replica %s: resync begins; %s keeps the last consistent state until it ends",
               config_.name.c_str(), config_.image_path.c_str());
      break;
    }
    case repl::StartMode::kResyncResume:
      if (state_ != repl::ReplicaState::kResync) return bad("not in a resync");
      if (start.first_seq > durable_through_ + 1) return bad("first seq after durable through + 1");
      if (start.sync_cursor != sync_cursor_) return bad("cursor is not the durable one");
      durable_through_ = start.first_seq - 1;
      break;
    case repl::StartMode::kDelta:
      if (state_ != repl::ReplicaState::kInSync) return bad("the replica is not in sync");
      if (start.first_seq != durable_through_ + 1) return bad("first seq is not durable through + 1");
      break;
  }
  if (!st.ok()) {
    *code = CodeOf(st);
    return st;
  }
  // A commit marker makes the new state's durable point the journal's latest.
  group_first_seq_ = journal_->next_seq();
  group_items_ = 1;
  st = Commit(durable_through_, code);
  Publish();
  return st;
}

// ---- the stream -------------------------------------------------------------------------------

Status Replica::Item(const repl::ItemHeader& h, const uint8_t* data, bool* commit_first) {
  *commit_first = false;
  using repl::ItemType;
  const bool initial = state_ == repl::ReplicaState::kInitialCopy;
  const bool resync = state_ == repl::ReplicaState::kResync;
  auto bad = [&](const std::string& why) {
    return Status::ProtocolError(std::string(repl::ItemTypeName(h.type)) + " at " +
                                 std::to_string(h.offset) + ": " + why + " (replica " +
                                 StateKey(state_) + ")");
  };
  if (h.type == ItemType::kVerifyRequest) {
    if (state_ != repl::ReplicaState::kInSync) return bad("verify needs a replica in sync");
    if (!pending_.empty()) {
      *commit_first = true;  // answer after what came before it is applied
      return Status::Ok();
    }
    BLOCKREP_RETURN_IF_ERROR(HashChunk(h.offset, h.length, &scratch_hashes_));
    repl::VerifyHashes v;
    v.chunk_offset = h.offset;
    v.chunk_length = static_cast<uint32_t>(h.length);
    v.block_hashes = scratch_hashes_;
    replies_.emplace_back(repl::MsgType::kVerifyHashes, repl::EncodeVerifyHashes(v));
    return Status::Ok();
  }
  if (h.type == ItemType::kHashRequest) {
    if (!resync) return bad("hash requests belong to a resync");
    // The image is the state the resync began from: it does not change until SYNC_END.
    BLOCKREP_RETURN_IF_ERROR(HashChunk(h.offset, h.length, &scratch_hashes_));
    const uint64_t mine = repl::ChunkHash(scratch_hashes_.data(), scratch_hashes_.size());
    const uint64_t theirs = Get64(data);
    repl::Hashes out;
    out.chunk_offset = h.offset;
    out.chunk_length = static_cast<uint32_t>(h.length);
    out.equal = mine == theirs;
    if (!out.equal) out.block_hashes = scratch_hashes_;
    replies_.emplace_back(repl::MsgType::kHashes, repl::EncodeHashes(out));
    return Status::Ok();  // changes nothing: no commit needed for it
  }
  if (group_items_ == 0) group_first_seq_ = journal_->next_seq();
  ++group_items_;
  switch (h.type) {
    case ItemType::kWrite:
    case ItemType::kZero:
    case ItemType::kTrim: {
      const auto kind = h.type == ItemType::kWrite ? journal::RecordKind::kWrite
                        : h.type == ItemType::kZero ? journal::RecordKind::kZero
                                                    : journal::RecordKind::kTrim;
      if (initial) {
        BLOCKREP_RETURN_IF_ERROR(ApplyToImage(kind, h.offset, h.length, data));
        group_wrote_image_ = true;
        return Status::Ok();
      }
      auto seq = Append(kind, 0, h.offset, h.length, data, h.data_bytes, journal::MarkerType::kNone,
                        h.timestamp_ns);
      if (!seq.ok()) return seq.status();
      if (resync) {
        held_bytes_ += h.data_bytes;
      } else {
        pending_.push_back({kind, h.offset, h.length, data, false});
      }
      return Status::Ok();
    }
    case ItemType::kSyncWrite:
    case ItemType::kSyncZero: {
      if (!initial && !resync) return bad("no sync is running");
      const auto kind = h.type == ItemType::kSyncWrite ? journal::RecordKind::kWrite : journal::RecordKind::kZero;
      if (initial) {
        BLOCKREP_RETURN_IF_ERROR(ApplyToImage(kind, h.offset, h.length, data));
        group_wrote_image_ = true;
        if (kind == journal::RecordKind::kWrite && !image_is_block_device_) {
          // Start writing it back now, so that the commit's fdatasync finds little left to
          // do: the copy's writeback overlaps with receiving the next data.
          ::sync_file_range(image_fd_.get(), static_cast<off_t>(h.offset),
                            static_cast<off_t>(h.length), SYNC_FILE_RANGE_WRITE);
        }
        return Status::Ok();
      }
      auto seq = Append(kind, journal::kRecordFlagSync, h.offset, h.length, data, h.data_bytes,
                        journal::MarkerType::kNone, 0);
      if (!seq.ok()) return seq.status();
      held_bytes_ += h.data_bytes;
      return Status::Ok();
    }
    case ItemType::kSyncCursor:
      if (!initial && !resync) return bad("no sync is running");
      group_cursor_ = h.offset;
      group_has_cursor_ = true;
      return Status::Ok();
    case ItemType::kHashRequest:
      break;  // handled above
    case ItemType::kSyncEnd:
      if (!initial && !resync) return bad("no sync is running");
      sync_end_ = true;
      return Status::Ok();
    case ItemType::kVerifyRequest:
      break;  // handled above
  }
  return bad("unexpected item");
}

Status Replica::Commit(uint64_t through, repl::ErrorCode* code) {
  *code = repl::ErrorCode::kIoError;
  if (group_items_ == 0) return Status::Ok();
  Status st;
  auto fail = [&](Status s) {
    *code = CodeOf(s);
    // The group is lost (never acknowledged); the session ends and the source resends.
    DropAppends();
    pending_.clear();
    group_items_ = 0;
    sync_end_ = false;
    group_has_cursor_ = false;
    return s;
  };
  if (group_wrote_image_ && ::fdatasync(image_fd_.get()) != 0) {
    return fail(Status::FromErrno(errno, "fdatasync " + config_.image_path));
  }
  const uint64_t cursor = group_has_cursor_ ? group_cursor_ : sync_cursor_;
  uint8_t body[kCommitBodyBytes] = {};
  Put64(body, through);
  Put64(body + 8, cursor);
  Put64(body + 16, group_first_seq_);
  Put64(body + 24, static_cast<uint32_t>(state_));
  auto seq = Append(journal::RecordKind::kMarker, 0, 0, 0, body, sizeof(body), journal::MarkerType::kCommit, WallClockNs());
  if (!seq.ok()) return fail(seq.status());
  st = SyncJournal();
  if (!st.ok()) return fail(st);
  durable_through_ = through;
  sync_cursor_ = cursor;
  group_has_cursor_ = false;
  if (unapplied_from_ != 0 && state_ == repl::ReplicaState::kInSync) {
    // What an earlier commit made durable but could not apply comes first, in order.
    uint64_t applied = 0;
    st = Replay(unapplied_from_, group_first_seq_, &applied);
    if (!st.ok()) return fail(st);
    LOG_INFO("replica %s: applied %lu committed record(s) that an earlier commit could not",
             config_.name.c_str(), static_cast<unsigned long>(applied));
    unapplied_from_ = 0;
  }
  // Durable: now apply, in stream order.
  for (const Pending& p : pending_) {
    st = ApplyToImage(p.kind, p.offset, p.length, p.data);
    if (!st.ok()) {
      // Durable, so the source will not send it again: the next commit applies it.
      if (unapplied_from_ == 0) unapplied_from_ = applied_below_;
      return fail(st);
    }
  }
  pending_.clear();
  if (state_ != repl::ReplicaState::kResync) applied_below_ = journal_->next_seq();
  group_items_ = 0;
  group_wrote_image_ = false;
  if (sync_end_) {
    sync_end_ = false;
    if (state_ == repl::ReplicaState::kResync) {
      uint64_t applied = 0;
      st = Replay(hold_from_, UINT64_MAX, &applied);  // everything held, in order
      if (!st.ok()) return fail(st);
      LOG_INFO("replica %s: resync complete: applied %lu held record(s)", config_.name.c_str(),
               static_cast<unsigned long>(applied));
    } else {
      LOG_INFO("replica %s: initial copy complete", config_.name.c_str());
    }
    if (::fdatasync(image_fd_.get()) != 0) return fail(Status::FromErrno(errno, "fdatasync " + config_.image_path));
    state_ = repl::ReplicaState::kInSync;
    hold_from_ = 0;
    sync_cursor_ = 0;
    st = SaveState();
    if (!st.ok()) return fail(st);
    applied_below_ = image_synced_below_ = journal_->next_seq();
    // The journal's latest commit must say "in sync" too.
    group_first_seq_ = journal_->next_seq();
    group_items_ = 1;
    return Commit(through, code);
  }
  Publish();
  return Status::Ok();
}

void Replica::AbandonGroup() {
  DropAppends();
  pending_.clear();
  replies_.clear();
  group_items_ = 0;
  group_wrote_image_ = false;
  sync_end_ = false;
  group_has_cursor_ = false;
}

std::vector<std::pair<repl::MsgType, std::vector<uint8_t>>> Replica::TakeReplies() {
  std::vector<std::pair<repl::MsgType, std::vector<uint8_t>>> out;
  out.swap(replies_);
  return out;
}

Status Replica::Checkpoint() {
  if (!journal_ || group_items_ > 0) return Status::Ok();
  if (state_ == repl::ReplicaState::kResync) return Status::Ok();  // held: nothing to drop
  const uint64_t below = state_ == repl::ReplicaState::kInitialCopy ? journal_->next_seq() : applied_below_;
  if (below <= image_synced_below_ && journal_->segment_count() <= 1) return Status::Ok();
  if (::fdatasync(image_fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync " + config_.image_path);
  auto cp = journal_->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint, journal::EncodeCheckpointBody(below));
  if (!cp.ok()) return cp.status();
  journal_->NoteCheckpoint(below);
  image_synced_below_ = below;
  if (journal_->segment_count() > 1) {
    auto freed = journal_->Reclaim(below - 1);
    if (!freed.ok()) return freed.status();
    // The last commit may have gone with a deleted segment: repeat it.
    repl::ErrorCode code;
    group_first_seq_ = journal_->next_seq();
    group_items_ = 1;
    BLOCKREP_RETURN_IF_ERROR(Commit(durable_through_, &code));
  }
  return Status::Ok();
}

// ---- status ------------------------------------------------------------------------------------

void Replica::CountReceived(uint64_t wire_bytes) {
  std::lock_guard<std::mutex> lock(status_mu_);
  received_wire_bytes_ += wire_bytes;
}

void Replica::Publish() {
  nlohmann::json j;
  j["name"] = config_.name;
  j["state"] = exists_ ? StateKey(state_) : "new";
  j["source"] = config_.source_identity;
  j["disk_id"] = exists_ ? HexId(disk_id_) : "";
  j["generation"] = generation_;
  j["disk_bytes"] = disk_bytes_;
  j["image"] = config_.image_path;
  j["durable_through"] = durable_through_;
  j["sync_cursor"] = sync_cursor_;
  j["hold_from"] = hold_from_;
  j["held_bytes"] = held_bytes_;
  j["applied_bytes"] = applied_bytes_;
  j["journal_bytes"] = journal_ ? journal_->bytes() : 0;
  j["error"] = error_;
  if (state_ == repl::ReplicaState::kChanged) j["changed"] = changed_why_;
  struct stat st;
  if (image_fd_.valid() && ::fstat(image_fd_.get(), &st) == 0) {
    j["image_allocated_bytes"] = static_cast<uint64_t>(st.st_blocks) * 512;
  }
  std::lock_guard<std::mutex> lock(status_mu_);
  j["received_wire_bytes"] = received_wire_bytes_;
  status_ = std::move(j);
}

nlohmann::json Replica::StatusJson() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  nlohmann::json j = status_;
  j["received_wire_bytes"] = received_wire_bytes_;
  return j;
}

}  // namespace blockrep
