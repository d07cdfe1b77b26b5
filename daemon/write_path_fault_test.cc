// Checks how the WritePath answers a failing disk: the disk is opened through ProtectedDisk
// on real temporary files with a FaultyFileIo in place of the direct io_uring FileIo, so the
// real write path runs on a real ring (driven on the test thread) and meets short journal
// writes, ENOSPC, EIO and failed fdatasyncs exactly where a failing disk would give them.
// Each case then checks what the client was told, the backing file's bytes (read with pread
// on another descriptor), the journal (scanned with journal::ScanJournal) and the bitmap.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/dirty_bitmap.h"
#include "core/disk_state.h"
#include "core/faulty_file_io.h"
#include "core/io_ring.h"
#include "core/journal_reader.h"
#include "daemon/protected_disk.h"
#include "daemon/write_path.h"

namespace blockrep {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kDiskBytes = 4 * 1024 * kKiB;
constexpr char kFill = '\x5A';
constexpr char kGarbage = '\xEE';  // what a lost page cache leaves, as far as a test can tell
constexpr char kDiskName[] = "disk0";

// Records the one OnDone call of an operation.
class Done : public nbd::BackendDone {
 public:
  void OnDone(int err) override {
    ++calls;
    this->err = err;
  }
  int calls = 0;
  int err = INT_MIN;
};

// Compares bytes without printing kilobytes of them: names the first difference.
::testing::AssertionResult SameBytes(const std::string& actual, const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << actual.size() << " bytes where " << expected.size() << " were expected";
  }
  size_t i = 0;
  while (actual[i] == expected[i]) ++i;
  size_t differing = 0;
  for (size_t j = i; j < actual.size(); ++j) differing += actual[j] != expected[j];
  char buf[96];
  std::snprintf(buf, sizeof(buf), "byte %zu is 0x%02x, expected 0x%02x (%zu of %zu bytes differ)",
                i, static_cast<uint8_t>(actual[i]), static_cast<uint8_t>(expected[i]), differing,
                actual.size());
  return ::testing::AssertionFailure() << buf;
}

// What a descriptor the write path hands to FileIo refers to.
enum class FdKind { kBacking, kJournal, kBitmap, kOther };

std::string FdPath(int fd) {
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

// A verified write record, as the journal holds it.
struct JournaledWrite {
  uint64_t seq;
  uint64_t offset;
  std::string payload;
};

class WritePathFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string dir = base + "blockrep_write_path_fault_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    dir_ = dir;
    path_ = dir_ + "/disk.img";
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string fill(kDiskBytes, kFill);
    ASSERT_EQ(::pwrite(fd, fill.data(), fill.size(), 0), static_cast<ssize_t>(kDiskBytes));
    ::close(fd);
    state_dir_ = dir_ + "/state";
    disk_dir_ = ProtectedDisk::DiskDir(state_dir_, kDiskName);
    auto ring = IoRing::Create(64);
    ASSERT_TRUE(ring.ok()) << ring.status().ToString();
    ring_ = std::move(ring).value();
  }

  void TearDown() override {
    io_.SetRule(nullptr);
    if (pd_ != nullptr) {
      EXPECT_TRUE(pd_->Close().ok());
    }
    pd_.reset();
    ring_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Opens (or re-opens, after Close) the disk with io_ as its FileIo.
  void OpenDisk(ByteSize journal_max = ByteSize{64u << 20, 0}) {
    ProtectedDisk::Options opts;
    opts.state_dir = state_dir_;
    opts.journal_max = journal_max;
    opts.io = &io_;
    auto pd = ProtectedDisk::Open(kDiskName, path_, opts);
    ASSERT_TRUE(pd.ok()) << pd.status().ToString();
    pd_ = std::move(pd).value();
    wp_ = &pd_->write_path();
  }

  void CloseDisk() {
    ASSERT_NE(pd_, nullptr);
    Status st = pd_->Close();
    EXPECT_TRUE(st.ok()) << st.ToString();
    pd_.reset();
    wp_ = nullptr;
  }

  // The daemon dies: no Close, so no final checkpoint. Every operation has completed (the
  // WritePath requires that of its destructor).
  void Crash() {
    ASSERT_NE(pd_, nullptr);
    ASSERT_EQ(wp_->stats().changes_in_flight, 0u);
    pd_.reset();
    wp_ = nullptr;
  }

  // Overwrites the backing file's bytes behind the daemon's back.
  void Clobber(uint64_t offset, uint64_t length) {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string garbage(length, kGarbage);
    EXPECT_EQ(::pwrite(fd, garbage.data(), length, static_cast<off_t>(offset)),
              static_cast<ssize_t>(length));
    ::close(fd);
  }

  // Called from inside a fault rule (under FaultyFileIo's lock).
  FdKind KindOf(int fd) const {
    if (pd_ != nullptr && fd == pd_->backing().fd()) return FdKind::kBacking;
    const std::string p = FdPath(fd);
    if (p.find(disk_dir_ + "/journal/") == 0) return FdKind::kJournal;
    if (p == disk_dir_ + "/bitmap") return FdKind::kBitmap;
    return FdKind::kOther;
  }

  // Dispatches completions until `done` fires, in a bounded number of rounds.
  int Await(Done& done) {
    for (int round = 0; round < 10000 && done.calls == 0; ++round) {
      auto r = ring_->SubmitAndDispatch(1);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().ToString();
        return INT_MIN;
      }
    }
    EXPECT_EQ(done.calls, 1) << "the operation never completed";
    return done.err;
  }
  int Write(uint64_t offset, const std::string& data) {
    Done d;
    wp_->Write(*ring_, offset, static_cast<uint32_t>(data.size()),
               reinterpret_cast<const uint8_t*>(data.data()), /*fua=*/false, &d);
    return Await(d);
  }
  int Flush() {
    Done d;
    wp_->Flush(*ring_, &d);
    return Await(d);
  }

  // The backing file's bytes, read on a descriptor of our own.
  std::string FileBytes(uint64_t offset, uint64_t length) {
    std::string out(length, '\0');
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    if (fd < 0) return "";
    ssize_t n = ::pread(fd, out.data(), length, static_cast<off_t>(offset));
    ::close(fd);
    EXPECT_EQ(n, static_cast<ssize_t>(length));
    return out;
  }

  // Scans the journal directory (open or closed disk); records every verified write.
  journal::ScanSummary ScanJournal(std::vector<JournaledWrite>* writes = nullptr) {
    auto meta = journal::ReadJournalMeta(disk_dir_ + "/journal.meta");
    EXPECT_TRUE(meta.ok()) << meta.status().ToString();
    if (!meta.ok()) return {};
    journal::ScanOptions opts;
    opts.journal_id = meta->journal_id;
    opts.visitor = [writes](const journal::RecordView& r) {
      if (writes != nullptr && r.header.kind == journal::RecordKind::kWrite) {
        writes->push_back(
            {r.header.seq, r.header.offset,
             std::string(reinterpret_cast<const char*>(r.payload), r.header.payload_bytes)});
      }
      return Status::Ok();
    };
    auto scan = journal::ScanJournal(disk_dir_ + "/journal", opts);
    EXPECT_TRUE(scan.ok()) << scan.status().ToString();
    if (!scan.ok()) return {};
    return std::move(scan).value();
  }

  static std::string Pattern(size_t n, uint8_t seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xFF);
    return s;
  }

  std::string dir_;
  std::string path_;
  std::string state_dir_;
  std::string disk_dir_;
  FaultyFileIo io_{FileIo::Direct()};
  std::unique_ptr<ProtectedDisk> pd_;
  WritePath* wp_ = nullptr;
  std::unique_ptr<IoRing> ring_;
};

TEST_F(WritePathFaultTest, ShortJournalWriteIsCompleted) {
  OpenDisk();
  int shortened = 0;
  io_.SetRule([&](const FileRequest& r) {
    if (r.op == FileOp::kWrite && KindOf(r.fd) == FdKind::kJournal && shortened == 0) {
      ++shortened;
      return Fault::Short(100);  // cuts the record inside its payload
    }
    return Fault::None();
  });
  const uint64_t offset = 64 * kKiB;
  const std::string data = Pattern(8 * kKiB, 1);

  ASSERT_EQ(Write(offset, data), 0);
  EXPECT_EQ(io_.faults_injected(), 1);
  EXPECT_TRUE(SameBytes(FileBytes(offset, data.size()), data));
  CloseDisk();

  std::vector<JournaledWrite> writes;
  journal::ScanSummary scan = ScanJournal(&writes);
  EXPECT_FALSE(scan.corruption.has_value()) << *scan.corruption;
  EXPECT_TRUE(scan.dropped.empty());
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].offset, offset);
  EXPECT_TRUE(SameBytes(writes[0].payload, data))
      << "the rest of the record after the short write is wrong";
}

TEST_F(WritePathFaultTest, EnospcOnJournalFailsTheRequestAndAppliesNothing) {
  OpenDisk();
  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kWrite && KindOf(r.fd) == FdKind::kJournal ? Fault::Error(-ENOSPC)
                                                                      : Fault::None();
  });
  const uint64_t offset = 128 * kKiB;
  const std::string data = Pattern(16 * kKiB, 2);

  EXPECT_EQ(Write(offset, data), -ENOSPC);
  EXPECT_GE(io_.faults_injected(), 1);
  EXPECT_TRUE(SameBytes(FileBytes(offset, data.size()), std::string(data.size(), kFill)))
      << "a change the journal lacks reached the backing disk";
  std::vector<JournaledWrite> writes;
  journal::ScanSummary scan = ScanJournal(&writes);
  EXPECT_FALSE(scan.corruption.has_value()) << *scan.corruption;
  EXPECT_TRUE(writes.empty());
  EXPECT_EQ(wp_->stats().changes_in_flight, 0u);
}

TEST_F(WritePathFaultTest, WritesSucceedAgainAfterJournalSpaceReturns) {
  OpenDisk();
  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kWrite && KindOf(r.fd) == FdKind::kJournal ? Fault::Error(-ENOSPC)
                                                                      : Fault::None();
  });
  const uint64_t failed_seq = wp_->stats().next_seq;
  const std::string lost = Pattern(8 * kKiB, 3);
  ASSERT_EQ(Write(0, lost), -ENOSPC);

  io_.SetRule(nullptr);  // space is back
  const std::string a = Pattern(8 * kKiB, 4), b = Pattern(12 * kKiB, 5);
  ASSERT_EQ(Write(256 * kKiB, a), 0);
  ASSERT_EQ(Write(512 * kKiB + 100, b), 0);
  ASSERT_EQ(Flush(), 0);

  journal::ScanSummary scan = ScanJournal();
  EXPECT_FALSE(scan.corruption.has_value()) << *scan.corruption;
  EXPECT_NE(std::find(scan.voided.begin(), scan.voided.end(), failed_seq), scan.voided.end())
      << "the flush wrote no void marker for seq " << failed_seq;
  EXPECT_EQ(wp_->stats().lowest_pending_seq, wp_->stats().next_seq)
      << "the failed seq still holds back the checkpoint";

  CloseDisk();
  OpenDisk();  // restart
  WritePath::Stats st = wp_->stats();
  EXPECT_EQ(st.mode, DiskMode::kJournaling);
  EXPECT_EQ(st.error, "");
  scan = ScanJournal();
  EXPECT_FALSE(scan.corruption.has_value()) << *scan.corruption;
  EXPECT_TRUE(SameBytes(FileBytes(256 * kKiB, a.size()), a));
  EXPECT_TRUE(SameBytes(FileBytes(512 * kKiB + 100, b.size()), b));
  EXPECT_TRUE(SameBytes(FileBytes(0, lost.size()), std::string(lost.size(), kFill)));
}

TEST_F(WritePathFaultTest, EioOnBackingFailsTheRequestAndMarksResync) {
  OpenDisk();
  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kWrite && KindOf(r.fd) == FdKind::kBacking ? Fault::Error(-EIO)
                                                                      : Fault::None();
  });
  const uint64_t offset = 3 * DirtyBitmap::kRegionBytes + 4096;
  const std::string data = Pattern(8 * kKiB, 6);

  EXPECT_EQ(Write(offset, data), -EIO);
  std::vector<JournaledWrite> writes;
  journal::ScanSummary scan = ScanJournal(&writes);
  EXPECT_FALSE(scan.corruption.has_value()) << *scan.corruption;
  ASSERT_EQ(writes.size(), 1u) << "the record was written before the backing change";
  EXPECT_EQ(writes[0].offset, offset);
  EXPECT_TRUE(SameBytes(writes[0].payload, data));
  EXPECT_EQ(wp_->stats().dirty_regions, 1u);

  io_.SetRule(nullptr);
  CloseDisk();
  auto bitmap = DirtyBitmap::Load(disk_dir_ + "/bitmap", kDiskBytes);
  ASSERT_TRUE(bitmap.ok()) << bitmap.status().ToString();
  EXPECT_TRUE(bitmap->Test(offset / DirtyBitmap::kRegionBytes));
  EXPECT_EQ(bitmap->dirty_regions(), 1u);
}

TEST_F(WritePathFaultTest, FlushFsyncErrorIsReported) {
  OpenDisk();
  ASSERT_EQ(Write(0, Pattern(4096, 7)), 0);
  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kFsync && KindOf(r.fd) == FdKind::kBacking ? Fault::Error(-EIO)
                                                                      : Fault::None();
  });
  EXPECT_EQ(Flush(), -EIO);

  // The failed flush must hand its journal segment back: the next flush syncs it again.
  bool journal_synced = false;
  io_.SetRule([&](const FileRequest& r) {
    if (r.op == FileOp::kFsync && KindOf(r.fd) == FdKind::kJournal) journal_synced = true;
    return Fault::None();
  });
  EXPECT_EQ(Flush(), 0);
  EXPECT_TRUE(journal_synced) << "the journal segment of the failed flush was never synced";
}

// BUG: WritePath::FlushOp::SyncDone only hands the journal segments back when a backing
// fdatasync fails; the next successful flush then writes a checkpoint covering writes whose
// pages the kernel may have dropped at the failed writeback, so a restart no longer replays
// them and the disk silently lacks what the journal (and the replica) hold.
TEST_F(WritePathFaultTest, FailedBackingSyncKeepsEarlierWritesReplayable) {
  OpenDisk();
  const uint64_t offset = 64 * kKiB;
  const std::string a = Pattern(8 * kKiB, 10);
  ASSERT_EQ(Write(offset, a), 0);
  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kFsync && KindOf(r.fd) == FdKind::kBacking ? Fault::Error(-EIO)
                                                                      : Fault::None();
  });
  ASSERT_EQ(Flush(), -EIO);
  io_.SetRule(nullptr);
  ASSERT_EQ(Flush(), 0);  // Linux reports a writeback error once; this sync "succeeds"
  Crash();
  // After a failed writeback Linux marks the pages clean: the write may never reach the disk.
  Clobber(offset, a.size());

  OpenDisk();
  EXPECT_TRUE(SameBytes(FileBytes(offset, a.size()), a))
      << "a write from before a failed backing sync was not replayed from the journal";
}

TEST_F(WritePathFaultTest, BitmapModePageWriteFailureFailsTheRequest) {
  OpenDisk(ByteSize{16 * kKiB, 0});
  // The first write passes the tiny budget: the disk switches to the bitmap and the write,
  // with its bit made durable, succeeds.
  const std::string first = Pattern(32 * kKiB, 8);
  ASSERT_EQ(Write(0, first), 0);
  ASSERT_EQ(wp_->stats().mode, DiskMode::kBitmap);

  io_.SetRule([&](const FileRequest& r) {
    return r.op == FileOp::kWrite && KindOf(r.fd) == FdKind::kBitmap ? Fault::Error(-EIO)
                                                                     : Fault::None();
  });
  const uint64_t offset = 5 * DirtyBitmap::kRegionBytes;  // a region whose bit is not set
  const std::string data = Pattern(8 * kKiB, 9);
  EXPECT_EQ(Write(offset, data), -EIO);
  EXPECT_EQ(io_.faults_injected(), 1);
  EXPECT_TRUE(SameBytes(FileBytes(offset, data.size()), std::string(data.size(), kFill)))
      << "the change reached the disk before its bit was durable";
}

}  // namespace
}  // namespace blockrep
