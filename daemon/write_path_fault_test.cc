// Checks how the WritePath answers a failing disk: the disk is opened through ProtectedDisk
// on real temporary files with a FaultyFileIo in place of the direct io_uring FileIo, so the
// real write path runs on a real ring (driven on the test thread) and meets short journal
// writes, ENOSPC, EIO and failed fdatasyncs exactly where a failing disk would give them.
// Each case then checks what the client was told, the backing file's bytes (read with pread
// on another descriptor), the journal (scanned with journal::ScanJournal) and the bitmap.
#include <gtest/gtest.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "core/dirty_bitmap.h"
#include "core/disk_state.h"
#include "core/faulty_file_io.h"
#include "core/io_ring.h"
#include "core/journal_reader.h"
#include "daemon/protected_disk.h"
#include "daemon/write_path.h"
#include "daemon/write_path_test_support.h"

namespace blockrep {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kDiskBytes = 4 * 1024 * kKiB;
constexpr char kFill = '\x5A';

using test::JournaledWrite;
using test::Pattern;
using test::SameBytes;

// What a descriptor the write path hands to FileIo refers to.
enum class FdKind { kBacking, kJournal, kBitmap, kOther };

std::string FdPath(int fd) {
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

class WritePathFaultTest : public ::testing::Test, protected test::ProtectedDiskHarness {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(CreateDisk(kDiskBytes, kFill)); }

  // Closes the disk here, while io_ (destroyed before the harness's members) is still alive.
  void TearDown() override {
    io_.SetRule(nullptr);
    DestroyDisk();
  }

  // Opens (or re-opens, after Close) the disk with io_ as its FileIo.
  void OpenDisk(ByteSize journal_max = ByteSize{64u << 20, 0}) {
    OpenDiskWith(Opts(journal_max, &io_));
  }

  // Called from inside a fault rule (under FaultyFileIo's lock).
  FdKind KindOf(int fd) const {
    if (pd_ != nullptr && fd == pd_->backing().fd()) return FdKind::kBacking;
    const std::string p = FdPath(fd);
    if (p.find(disk_dir_ + "/journal/") == 0) return FdKind::kJournal;
    if (p == disk_dir_ + "/bitmap") return FdKind::kBitmap;
    return FdKind::kOther;
  }

  FaultyFileIo io_{FileIo::Direct()};
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
