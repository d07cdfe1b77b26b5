// Checks WritePath's reads, writes, zeroes, trims and flushes (journaled, as the daemon runs
// them: the disk is opened through ProtectedDisk with its state beside it) against a real
// temporary file
// (on the test temp dir's file system and on tmpfs, which lacks ZERO_RANGE and so takes the
// write-zeroes fallback) through a real io_uring, driving completions on the test thread until
// each operation's BackendDone fires, and verifying contents and allocation with syscalls.
#include "daemon/write_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "core/io_ring.h"
#include "daemon/protected_disk.h"
#include "daemon/write_path_test_support.h"
#include "nbd/protocol.h"

namespace blockrep {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kFileBytes = 3 * 1024 * kKiB;  // several kZeroChunkBytes
constexpr char kFill = '\xAB';

using test::Done;
using test::Pattern;

// The parameter names the directory to work in: "tmpdir" (::testing::TempDir()) or "shm"
// (/dev/shm, a tmpfs).
class WritePathTest : public ::testing::TestWithParam<std::string>,
                      protected test::ProtectedDiskHarness {
 protected:
  void SetUp() override {
    std::string base;  // the test temp dir
    if (GetParam() == "shm") {
      std::error_code ec;
      if (!std::filesystem::is_directory("/dev/shm", ec)) GTEST_SKIP() << "no /dev/shm";
      base = "/dev/shm";
    }
    // Fully allocated and filled, so zeroing and trimming have something to change.
    ASSERT_NO_FATAL_FAILURE(CreateDisk(kFileBytes, kFill, base));
    ASSERT_NO_FATAL_FAILURE(OpenDiskWith(Opts(ByteSize{0, 100})));
    disk_ = &pd_->backing();
  }

  void TearDown() override { DestroyDisk(); }

  int64_t AllocatedBlocks() {
    struct stat st;
    EXPECT_EQ(::fstat(disk_->fd(), &st), 0);
    return st.st_blocks;
  }

  BackingDisk* disk_ = nullptr;
};

TEST_P(WritePathTest, CapabilitiesAndSize) {
  EXPECT_EQ(wp_->size_bytes(), kFileBytes);
  nbd::BackendCapabilities caps = wp_->capabilities();
  EXPECT_FALSE(caps.read_only);
  EXPECT_TRUE(caps.can_trim);
  EXPECT_TRUE(caps.can_zero);
  EXPECT_TRUE(caps.can_fast_zero);
  EXPECT_TRUE(caps.can_multi_conn);
}

TEST_P(WritePathTest, WriteThenReadRoundTrip) {
  const uint64_t offset = 12345;  // deliberately unaligned
  const std::string data = Pattern(8 * kKiB, 1);
  ASSERT_EQ(Write(offset, data), 0);
  std::vector<uint8_t> buf(data.size());
  ASSERT_EQ(Read(offset, static_cast<uint32_t>(buf.size()), buf.data()), 0);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), data);
  EXPECT_EQ(FileBytes(offset, data.size()), data) << "the write did not reach the file";
  EXPECT_EQ(FileBytes(offset - 1, 1), std::string(1, kFill));
  EXPECT_EQ(FileBytes(offset + data.size(), 1), std::string(1, kFill));
}

TEST_P(WritePathTest, FuaWriteReadsBack) {
  const std::string data = Pattern(64 * kKiB, 2);
  ASSERT_EQ(Write(128 * kKiB, data, /*fua=*/true), 0);
  EXPECT_EQ(FileBytes(128 * kKiB, data.size()), data);
}

TEST_P(WritePathTest, WriteOfLastByte) {
  ASSERT_EQ(Write(kFileBytes - 1, "z"), 0);
  EXPECT_EQ(FileBytes(kFileBytes - 1, 1), "z");
  EXPECT_EQ(disk_->size_bytes(), kFileBytes);
}

TEST_P(WritePathTest, ReadOfUnwrittenRangeReturnsFileContents) {
  std::vector<uint8_t> buf(4096, 0);
  ASSERT_EQ(Read(0, 4096, buf.data()), 0);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), std::string(4096, kFill));
}

TEST_P(WritePathTest, WriteZeroesMayTrimReadsBackZeroAndFreesBlocks) {
  const int64_t before = AllocatedBlocks();
  ASSERT_EQ(WriteZeroes(64 * kKiB, 512 * kKiB, /*may_trim=*/true), 0);
  std::vector<uint8_t> buf(512 * kKiB, 0xFF);
  ASSERT_EQ(Read(64 * kKiB, static_cast<uint32_t>(buf.size()), buf.data()), 0);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), std::string(512 * kKiB, '\0'));
  EXPECT_EQ(FileBytes(64 * kKiB - 1, 1), std::string(1, kFill));
  EXPECT_EQ(FileBytes(576 * kKiB, 1), std::string(1, kFill));
  EXPECT_LT(AllocatedBlocks(), before) << "punching a hole should free blocks";
  EXPECT_EQ(disk_->size_bytes(), kFileBytes);
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kFileBytes) << "KEEP_SIZE: size must not change";
}

TEST_P(WritePathTest, WriteZeroesWithoutTrimReadsBackZero) {
  ASSERT_EQ(WriteZeroes(100 * kKiB, 300 * kKiB, /*may_trim=*/false), 0);
  EXPECT_EQ(FileBytes(100 * kKiB, 300 * kKiB), std::string(300 * kKiB, '\0'));
  EXPECT_EQ(FileBytes(100 * kKiB - 1, 1), std::string(1, kFill));
  EXPECT_EQ(FileBytes(400 * kKiB, 1), std::string(1, kFill));
}

TEST_P(WritePathTest, WriteZeroesWithoutTrimKeepsBlocksAllocated) {
  const int64_t before = AllocatedBlocks();
  ASSERT_EQ(WriteZeroes(128 * kKiB, 256 * kKiB, /*may_trim=*/false), 0);
  EXPECT_GE(AllocatedBlocks(), before) << "NO_HOLE must not deallocate";
}

TEST_P(WritePathTest, WriteZeroesUnalignedReadsBackZero) {
  ASSERT_EQ(WriteZeroes(4097, 10000, /*may_trim=*/true), 0);
  EXPECT_EQ(FileBytes(4097, 10000), std::string(10000, '\0'));
  EXPECT_EQ(FileBytes(4096, 1), std::string(1, kFill));
  EXPECT_EQ(FileBytes(4097 + 10000, 1), std::string(1, kFill));
}

TEST_P(WritePathTest, WriteZeroesOverSeveralZeroChunksReadsBackZero) {
  const uint64_t offset = 100 * kKiB;
  const uint64_t length = 2 * BackingIo::kZeroChunkBytes + 12345;
  ASSERT_LT(offset + length, kFileBytes);
  ASSERT_EQ(WriteZeroes(offset, length, /*may_trim=*/false), 0);
  EXPECT_EQ(FileBytes(offset, length), std::string(length, '\0'));
  EXPECT_EQ(FileBytes(offset - 1, 1), std::string(1, kFill));
  EXPECT_EQ(FileBytes(offset + length, 1), std::string(1, kFill));
}

TEST_P(WritePathTest, FuaWriteZeroesOverSeveralZeroChunksReadsBackZero) {
  const uint64_t length = BackingIo::kZeroChunkBytes + 4096;
  ASSERT_EQ(WriteZeroes(0, length, /*may_trim=*/false, /*fast_only=*/false, /*fua=*/true), 0);
  EXPECT_EQ(FileBytes(0, length), std::string(length, '\0'));
  EXPECT_EQ(FileBytes(length, 1), std::string(1, kFill));
}

TEST_P(WritePathTest, FuaWriteZeroesReadsBackZero) {
  ASSERT_EQ(WriteZeroes(0, 64 * kKiB, /*may_trim=*/false, /*fast_only=*/false, /*fua=*/true), 0);
  EXPECT_EQ(FileBytes(0, 64 * kKiB), std::string(64 * kKiB, '\0'));
}

TEST_P(WritePathTest, FastZeroEitherZeroesOrFailsWithoutChange) {
  int err = WriteZeroes(0, 64 * kKiB, /*may_trim=*/false, /*fast_only=*/true);
  if (err == 0) {
    EXPECT_EQ(FileBytes(0, 64 * kKiB), std::string(64 * kKiB, '\0'));
  } else {
    EXPECT_EQ(err, -ENOTSUP);
    EXPECT_EQ(FileBytes(0, 64 * kKiB), std::string(64 * kKiB, kFill));
  }
}

TEST_P(WritePathTest, TrimSucceedsAndLeavesTheRestAlone) {
  ASSERT_EQ(Trim(256 * kKiB, 256 * kKiB), 0);
  EXPECT_EQ(FileBytes(0, 256 * kKiB), std::string(256 * kKiB, kFill));
  EXPECT_EQ(FileBytes(512 * kKiB, kFileBytes - 512 * kKiB),
            std::string(kFileBytes - 512 * kKiB, kFill));
  EXPECT_EQ(disk_->size_bytes(), kFileBytes);
}

TEST_P(WritePathTest, FuaTrimSucceeds) { EXPECT_EQ(Trim(0, 4096, /*fua=*/true), 0); }

TEST_P(WritePathTest, BlockStatusSeesHolePunchedByWriteZeroes) {
  ASSERT_EQ(WriteZeroes(256 * kKiB, 64 * kKiB, /*may_trim=*/true), 0);
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(wp_->BlockStatus(0, kFileBytes, 16, &e).ok());
  if (e.size() == 1) GTEST_SKIP() << "file system reports no holes";
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].length, 256 * kKiB);
  EXPECT_EQ(e[0].flags, 0u);
  EXPECT_EQ(e[1].length, 64 * kKiB);
  EXPECT_EQ(e[1].flags, nbd::kStateHole | nbd::kStateZero);
  EXPECT_EQ(e[2].length, kFileBytes - 320 * kKiB);
  EXPECT_EQ(e[2].flags, 0u);
}

TEST_P(WritePathTest, FlushReturnsZero) {
  ASSERT_EQ(Write(0, Pattern(4096, 3)), 0);
  EXPECT_EQ(Flush(), 0);
}

TEST_P(WritePathTest, ConcurrentOperationsAllComplete) {
  const std::string a = Pattern(4096, 4), b = Pattern(4096, 5);
  Done da, db, dflush;
  wp_->Write(*ring_, 0, 4096, reinterpret_cast<const uint8_t*>(a.data()), false, &da);
  wp_->Write(*ring_, 8192, 4096, reinterpret_cast<const uint8_t*>(b.data()), true, &db);
  wp_->Flush(*ring_, &dflush);
  EXPECT_EQ(Await(da), 0);
  EXPECT_EQ(Await(db), 0);
  EXPECT_EQ(Await(dflush), 0);
  EXPECT_EQ(FileBytes(0, 4096), a);
  EXPECT_EQ(FileBytes(8192, 4096), b);
}

TEST_P(WritePathTest, ReadPastTruncatedEndReturnsEio) {
  ASSERT_EQ(::ftruncate(disk_->fd(), 4096), 0);  // the file shrinks under the server
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(Read(64 * kKiB, 4096, buf.data()), -EIO);
}

TEST_P(WritePathTest, ReadSpanningTruncatedEndReturnsEioNotShortData) {
  ASSERT_EQ(::ftruncate(disk_->fd(), 4096 + 100), 0);
  std::vector<uint8_t> buf(8192);
  EXPECT_EQ(Read(0, 8192, buf.data()), -EIO);
}

INSTANTIATE_TEST_SUITE_P(FileSystems, WritePathTest, ::testing::Values("tmpdir", "shm"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace blockrep
